// ForkSnapshotWorker: the server's SnapshotWorker. Start forks the process; the child runs the job
// on its copy-on-write image of memory — the state machine exactly as it was at the fork, however
// the parent changes it meanwhile — reports the result through a pipe and exits. The parent's
// driver is held only for the fork itself (copying page tables; 1–3 ms at 45 MiB resident, dump.txt
// states it for every snapshot); the price comes after, as each page the parent writes while the
// child lives is copied on first touch (docs/benchmarks.md, Growth, measures what that costs
// clients). LogCabin and Redis take their snapshots the same way.
//
// The child has one thread: it reads memory (the state machine without its lock: nothing else
// runs), allocates (glibc's malloc resets its locks in the child at fork), and writes one file; it
// touches no gRPC state and takes no other lock another thread may have held at the fork. GCC
// 12's libasan has no fork interceptor, so its allocator's locks are not reset in the child, and
// under ASan a child may, rarely, deadlock at birth: the replica stops a writer that makes no
// progress (replica_snapshot.cc, kSnapshotStall) and tries again. It dies with the thread that
// forked it, the driver (PR_SET_PDEATHSIG), which cancels it before it exits; so a killed node
// leaves no writer behind. Until it is gone it shares the node's descriptors, the directory lock
// among them: a node restarted at once after kill -9 may find the lock held for as long as the
// child takes to die (an fsync in progress), and says so.
#pragma once

#include <sys/types.h>

#include <string>

#include "node/snapshot_worker.h"

namespace raftkv::node {

class ForkSnapshotWorker : public SnapshotWorker {
 public:
  ForkSnapshotWorker() = default;
  ~ForkSnapshotWorker() override { Cancel(); }
  ForkSnapshotWorker(const ForkSnapshotWorker&) = delete;
  ForkSnapshotWorker& operator=(const ForkSnapshotWorker&) = delete;

  absl::Status Start(Job job) override;
  std::optional<absl::StatusOr<uint64_t>> Poll() override;
  void Cancel() override;

 private:
  // Reads what the child wrote so far into report_ (the pipe is non-blocking).
  void DrainPipe();
  // The child's result from its exit status and report.
  absl::StatusOr<uint64_t> Outcome(int wait_status) const;

  pid_t child_ = -1;    // the running child, or -1
  int report_fd_ = -1;  // read end of the child's pipe while it runs
  std::string report_;  // "OK <bytes>" or "ERR <code> <message>"
};

}  // namespace raftkv::node

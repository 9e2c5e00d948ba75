// SnapshotWorker: runs the one slow step of taking a snapshot — writing the whole state machine
// to a file — outside the owner's turn, so that the node keeps answering peers and clients while
// it is written (docs/design.md §3, "Snapshots without stopping service").
//
// The replica decides when a snapshot is taken, what it holds, and what happens once it is
// written (rename, directory sync, log cut: node/replica_snapshot.cc); a worker only runs the
// writing. The server forks a child that writes the copy-on-write image of the process
// (ForkSnapshotWorker, node/fork_snapshot_worker.h); the simulator and the tests write at once and
// report it some turns later (InlineSnapshotWorker), so that every step the replica takes while a
// snapshot is being written runs under the simulator's faults.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace raftkv::node {

class SnapshotWorker {
 public:
  // Writes the snapshot and returns its size in bytes. Run by the worker: it must read only the
  // state as it was when Start was called.
  using Job = std::function<absl::StatusOr<uint64_t>()>;

  virtual ~SnapshotWorker() = default;
  // Starts `job` on the state as it is now; whatever the owner changes once Start returned is not
  // seen by it. At most one job runs at a time.
  virtual absl::Status Start(Job job) = 0;
  // nullopt while the job runs; its result once it finished (the worker is then idle again).
  virtual std::optional<absl::StatusOr<uint64_t>> Poll() = 0;
  // Stops a running job and waits for it to be gone. The file it was writing stays: recovery
  // deletes leftover temporary files.
  virtual void Cancel() = 0;
};

// Runs the job inside Start, on the caller's thread, and reports its result after `polls_to_wait`
// more calls to Poll (chosen per job; 0: at the first Poll).
class InlineSnapshotWorker : public SnapshotWorker {
 public:
  explicit InlineSnapshotWorker(std::function<int()> polls_to_wait = nullptr)
      : polls_to_wait_(std::move(polls_to_wait)) {}

  absl::Status Start(Job job) override {
    result_ = job();
    polls_left_ = polls_to_wait_ ? polls_to_wait_() : 0;
    return absl::OkStatus();
  }
  std::optional<absl::StatusOr<uint64_t>> Poll() override {
    if (!result_.has_value() || polls_left_-- > 0) return std::nullopt;
    std::optional<absl::StatusOr<uint64_t>> result = std::move(result_);
    result_.reset();
    return result;
  }
  void Cancel() override { result_.reset(); }

 private:
  std::function<int()> polls_to_wait_;
  std::optional<absl::StatusOr<uint64_t>> result_;
  int polls_left_ = 0;
};

}  // namespace raftkv::node

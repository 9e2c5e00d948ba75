// Timing and batching parameters of the consensus core, and their validation.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/types.h"

namespace raftkv::raft {

// Deliberate bugs, for proving that the simulator's checkers catch real mistakes. Every flag is
// off in production; only tests and `raftkv-sim --bug=...` switch one on.
enum class InjectedBug : uint32_t {
  kNone = 0,
  kSkipOldLeaseWait = 1,  // a new leader serves reads/commits without waiting out old leases
  kCommitOldTermByCount,  // commit an earlier term's entry by counting replicas (§5.4.2 bug)
  kForgetToPersistVote,   // grant votes without making them durable (§5.2 bug)
  kReadWithoutLease,      // any node that thinks it is leader serves reads, and a leader cut off
                          // from its majority does not step down (Raft without the lease)
  kSkipNoopBeforeRead,    // serve lease reads before this term's NO-OP is applied
  // Driver-level (node/replica.cc), for the simulator's power-loss disk:
  kSaveCommitBeforeLogCut,  // metadata.txt gets the new commit index before the log is cut/synced
  kOneSyncForCutAndAppend,  // a log truncation and the append over it share one fsync
  kCompactBeforeSnapshotDurable,  // cut the log before the snapshot covering it is synced/renamed
  kInstallOlderSnapshot,          // a follower installs a snapshot older than its commit index
  kSnapshotWithoutSessions,       // snapshots leave out the client session table
  kVoteWhileRebuilding,           // a node rebuilt with an empty log votes at once
};

InjectedBug ParseInjectedBug(const std::string& name, bool* ok);
const char* InjectedBugName(InjectedBug bug);

// What no correct node ever sends, so the RPC boundary (rpc/proto_convert.cc) refuses it and
// the core ignores it:
//   * a term above kMaxTerm: elections never get there (one a millisecond for 146,000 years), and
//     staying this far below 2^64 means term + 1 can never wrap. No node ever holds a higher term:
//     one that reached it would stop starting elections rather than go past it;
//   * a duration (a lease asked for, a lease reported) above kMaxDuration: no timing setting may
//     exceed it (Validate; etcd caps its election timeout at 50 s), so now + duration never
//     overflows either.
inline constexpr Term kMaxTerm = Term{1} << 62;
// Nor does a correct peer's term run more than this far ahead of ours: 2^32 elections at one a
// millisecond take 50 days. A forged message cannot push a term to kMaxTerm in one step.
inline constexpr Term kMaxTermJump = Term{1} << 32;
// No log reaches this index; a peer's message naming one beyond it is refused (so index
// arithmetic never overflows).
inline constexpr LogIndex kMaxLogIndex = LogIndex{1} << 62;
inline constexpr Duration kMaxDuration = std::chrono::seconds(60);

struct RaftConfig {
  NodeId id = 0;
  int cluster_size = 1;  // nodes are 0..cluster_size-1

  Duration heartbeat_interval = std::chrono::milliseconds(50);
  Duration election_timeout_min = std::chrono::milliseconds(500);
  Duration election_timeout_max{0};  // 0: 2 × election_timeout_min
  Duration lease_duration = std::chrono::milliseconds(400);
  // Bound on every clock's rate error against real time: a clock advances between (1-d) and
  // (1+d) seconds per real second. See docs/design.md, "Lease safety".
  double max_clock_drift = 0.01;
  // Allow lease_duration (with its drift margin) to reach the election timeout. Safe (new leaders
  // always wait out old leases) but slows failover, so it must be asked for.
  bool allow_long_lease = false;

  int max_entries_per_append = 512;
  int64_t max_bytes_per_append = 1 << 20;
  int max_inflight_appends = 8;  // pipelined AppendEntries per follower
  // InstallSnapshot: the size of a chunk, and how many may be in flight to one follower (so a
  // transfer shares the leader's link and disk with its other followers and its clients).
  int64_t snapshot_chunk_bytes = 512 << 10;
  int max_inflight_snapshot_chunks = 4;

  InjectedBug injected_bug = InjectedBug::kNone;
  // Whether `bug` is switched on: every deliberate bug is asked for through here.
  bool Injected(InjectedBug bug) const { return injected_bug == bug; }

  Duration EffectiveElectionTimeoutMax() const {
    return election_timeout_max.count() > 0 ? election_timeout_max : 2 * election_timeout_min;
  }

  // The lease the leader grants itself: shorter than what followers hold by the factor
  // (1-d)/(1+d), so that it ends, in real time, no later than every follower's record of it
  // even when the leader's clock is slowest and the follower's fastest.
  Duration LeaderLeaseDuration() const;

  // Converts a remaining lease measured on another node's clock into a wait on ours: the factor
  // (1+d)/(1-d) covers the other clock being slow and ours fast.
  Duration InflateRemoteDuration(Duration remote) const;

  // Checks every rule; the error names the key and the rule broken.
  absl::Status Validate() const;
};

}  // namespace raftkv::raft

// RaftNode: one member of a Raft cluster as a pure, deterministic state machine.
//
// It owns no thread, socket, file or clock. Time arrives as the `now` argument of every call (a
// monotonic reading of this node's clock), messages arrive through Step(), client commands
// through Propose(), and randomness comes from the seeded generator given at construction. What
// the node wants done — persist, send, apply — accumulates until the driver calls TakeReady();
// ready.h states the order in which the driver must carry it out.
//
// The algorithm is Raft as in Ongaro & Ousterhout, "In Search of an Understandable Consensus
// Algorithm" (Figure 2; sections cited as §N) with the leader-lease read path of the Raft thesis
// §6.4.1, made explicit in time:
//   * every AppendEntries carries the lease duration; a follower that accepts one records
//     lease_end = receive_time + lease_duration and never lowers it (not across leaders or terms);
//   * every RequestVote reply carries the longest remaining lease the voter knows of; a new
//     leader commits nothing and serves no read until all those leases have run out;
//   * the leader's own lease runs from the send time of the newest heartbeat round acknowledged by
//     a majority, for LeaderLeaseDuration(); a leader that cannot renew it steps down.
// docs/design.md argues why no two nodes can then hold a lease at the same real instant.
//
// Every RequestVote and AppendEntries stepped gets exactly one reply, in the order stepped (per
// sender); the server pairs replies with their RPCs on that promise.
//
// Thread-safety: none. One thread (the server's driver, or the simulator) makes every call.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/rng.h"
#include "raft/config.h"
#include "raft/progress.h"
#include "raft/quorum.h"
#include "raft/raft_log.h"
#include "raft/ready.h"

namespace raftkv::raft {

enum class Role { kFollower, kCandidate, kLeader };
const char* RoleName(Role role);

// What survived on this node's disk, handed to the constructor on start-up.
struct RecoveredState {
  HardState hard_state;
  // The newest durable snapshot (index 0: none); its state is the driver's, already loaded.
  SnapshotMeta snapshot;
  // The log, built as it was read back (contiguous, terms never decreasing: RaftLog holds to
  // that). Its base is at or below the snapshot's index, and it holds the snapshot's entry (index
  // and term), as its base or as an entry.
  RaftLog log;
};

// How much of the committed log one Ready hands out to apply (its entries' payloads plus their
// headers): a longer backlog goes out over several Readies (HasReady stays true meanwhile).
inline constexpr size_t kMaxCommittedBytesPerReady = 1 << 20;

struct ProposeResult {
  bool accepted = false;
  LogIndex index = 0;  // where the command will commit, if it does
  Term term = 0;
  NodeId leader_hint = kNoNode;  // when not accepted
};

enum class ReadRefusal {
  kNone,
  kNotLeader,           // ask leader_hint
  kWaitingForOldLease,  // a new leader waiting out its predecessors' leases; retry soon
  kNoLease,             // leader without a majority-renewed lease right now
  kNoopNotApplied,      // leader whose NO-OP has not committed yet; retry soon
};

struct LeaseReadResult {
  ReadRefusal refusal = ReadRefusal::kNone;
  // When allowed: the read must see every entry up to this index (the commit index at the check).
  LogIndex read_index = 0;
  NodeId leader_hint = kNoNode;
  bool ok() const { return refusal == ReadRefusal::kNone; }
};

// A node's lease, as an interval of its own clock, for the simulator's lease-safety checker.
struct LeaseWindow {
  TimePoint from;
  TimePoint until;
};

class RaftNode {
 public:
  static absl::StatusOr<std::unique_ptr<RaftNode>> Create(const RaftConfig& config,
                                                          RecoveredState recovered, TimePoint now,
                                                          uint64_t rng_seed);

  // Input.
  void Tick(TimePoint now);
  void Step(const Message& message, TimePoint now);
  // Whether Step acts on `message` (and so answers it, if it is a request): addressed to this node
  // from another node of the cluster, with a term a correct peer can send (config.h).
  bool WillAct(const Message& message) const;
  ProposeResult Propose(std::string command, TimePoint now);
  // Starts an election now, as if the election timer had fired (etcd's MsgHup): for script tests,
  // and the way leadership transfer will start one. A leader ignores it.
  void Campaign(TimePoint now);
  LeaseReadResult LeaseRead(TimePoint now) const;

  // Output (see ready.h for the contract).
  bool HasReady() const;
  Ready TakeReady();
  void Advance(const Ready& ready);

  // Snapshots (Raft §7; snapshot.cc).
  // The driver made a snapshot of the applied state up to `meta.index` durable (the file written,
  // synced, renamed, the directory synced): the log may now go up to `compact_to` (at most
  // meta.index: the driver keeps a tail for followers that lag a little), and followers that need
  // older entries get this snapshot.
  void SnapshotTaken(const SnapshotMeta& meta, LogIndex compact_to);
  // After Advance() of a Ready with `snapshot_to_install`, and before any other input: whether
  // the received file checked out and is now this node's durable snapshot and state. If it is,
  // the log is cut to match it (Figure 13: kept after the snapshot's entry if ours has it, else
  // emptied); the driver must make logs.txt match log() before the next Ready's replies leave.
  void SnapshotInstalled(bool ok, TimePoint now);
  const SnapshotMeta& snapshot() const { return snapshot_; }

  // Observers, for status pages, tests and the simulator's checkers.
  NodeId id() const { return config_.id; }
  Role role() const { return role_; }
  // Rebuilt (HardState::rebuilt_at_term) and not caught up yet: no votes, no campaigns.
  bool rebuilding() const { return rebuilt_at_term_ > 0; }
  Term term() const { return current_term_; }
  NodeId voted_for() const { return voted_for_; }
  NodeId leader_id() const { return leader_id_; }
  LogIndex commit_index() const { return commit_index_; }
  LogIndex applied_index() const { return applied_index_; }
  const RaftLog& log() const { return log_; }
  const RaftConfig& config() const { return config_; }
  // Time left on this leader's own lease (0 when not leader or not holding one).
  Duration LeaseRemaining(TimePoint now) const;
  // The interval in which this node would serve lease reads if nothing else happened.
  std::optional<LeaseWindow> CurrentLeaseWindow() const;
  // When this node's next timer fires (election or heartbeat or lease deadline).
  TimePoint NextDeadline() const;
  // A leader's view of `peer`'s log; nullptr when this node is not leader, or `peer` is itself
  // or not a node of the cluster.
  const Progress* progress(NodeId peer) const {
    if (role_ != Role::kLeader || peer == config_.id || peer < 0 ||
        peer >= static_cast<NodeId>(progress_.size())) {
      return nullptr;
    }
    return &progress_[static_cast<size_t>(peer)];
  }

 private:
  RaftNode(const RaftConfig& config, RecoveredState recovered, TimePoint now, uint64_t rng_seed);

  // Every input entry point: checks the Ready protocol and that time moves forward.
  void AcceptInput(TimePoint now);

  // Roles (raft_node.cc).
  void BecomeFollower(Term term, NodeId leader, TimePoint now);
  void BecomeCandidate(TimePoint now);
  void BecomeLeader(TimePoint now);
  void ResetElectionTimer(TimePoint now);
  // Ends a rebuild (HardState::rebuilt_at_term) once the commit index covers an entry of a later
  // term than the rebuild's.
  void MaybeEndRebuild();
  void SetTerm(Term term);
  int Majority() const { return MajorityOf(config_.cluster_size); }
  void Send(NodeId to, MessageBody body);
  void Emit(Event::Kind kind, NodeId peer, Term term, Duration duration = Duration(0));
  // The invariants of one node (docs/design.md §5), now and against the last check.
  void CheckInvariants();
  HardState HardStateToPersist() const;

  // Elections (election.cc).
  void StartElection(TimePoint now);
  void HandleRequestVote(const Message& message, TimePoint now);
  void HandleRequestVoteReply(const Message& message, TimePoint now);

  // Replication (replication.cc).
  // What every request from a leader (AppendEntries, an InstallSnapshot chunk) does first: false
  // when it must be refused untouched (a stale term, or a second leader in ours); otherwise this
  // node follows the sender, resets its election timer and records the lease it asks for.
  // True when `message` comes from a node other than the leader this node knows for the message's
  // term, which is its current one (never with injected bugs: the simulator's checker judges).
  bool ClaimsSecondLeader(const Message& message) const;
  bool FollowLeader(const Message& message, Duration lease_duration, TimePoint now);
  void BroadcastHeartbeat(TimePoint now);
  void SendAppends(TimePoint now);
  bool SendAppendsTo(NodeId peer, TimePoint now);
  void ExpireStalledAppends(TimePoint now);
  void HandleAppendEntries(const Message& message, TimePoint now);
  // Whether `request` (consistent at prev_log_index) would replace a committed entry.
  bool ConflictsWithCommitted(const AppendEntries& request) const;
  void HandleAppendEntriesReply(const Message& message, TimePoint now);
  void MaybeAdvanceCommit(TimePoint now);

  // Snapshots (snapshot.cc).
  bool SendSnapshotChunks(NodeId peer, TimePoint now);
  void SendSnapshotChunk(NodeId peer, uint64_t offset, uint64_t length, TimePoint now);
  void HandleInstallSnapshot(const Message& message, TimePoint now);
  void HandleInstallSnapshotReply(const Message& message, TimePoint now);
  // In TakeReady: a received snapshot the commit index has since reached is answered, not
  // installed.
  void MaybeDropOvertakenInstall();

  // Leases (lease.cc).
  void RecordFollowerLease(Duration lease_duration, TimePoint now);
  Duration KnownLeaseRemaining(TimePoint now) const;
  std::optional<TimePoint> QuorumAckedSendTime(TimePoint now) const;
  std::optional<TimePoint> LeaseExpiry(TimePoint now) const;
  bool LeaseValid(TimePoint now) const;
  bool OldLeasesExpired(TimePoint now) const;
  void CheckLeaseRenewal(TimePoint now);

  RaftConfig config_;
  Rng rng_;

  // Persistent state (Figure 2).
  Term current_term_ = 0;
  NodeId voted_for_ = kNoNode;
  Term rebuilt_at_term_ = 0;  // HardState::rebuilt_at_term: no votes, no campaigns while nonzero
  RaftLog log_;
  // The newest snapshot the driver made durable or installed (index 0: none).
  // Invariant: log_.BaseIndex() <= snapshot_.index <= applied_index_.
  SnapshotMeta snapshot_;

  // Volatile state.
  Role role_ = Role::kFollower;
  NodeId leader_id_ = kNoNode;
  LogIndex commit_index_ = 0;
  LogIndex applied_index_ = 0;  // handed out as committed_entries
  TimePoint election_deadline_{};
  TimePoint last_now_{};

  // Candidate state.
  std::set<NodeId> votes_granted_;

  // Follower: the snapshot being received (chunks written by the driver, from offset 0 up to
  // `received`), and the one whose last chunk is in, awaiting SnapshotInstalled().
  struct Receiving {
    SnapshotMeta meta;
    uint64_t received = 0;
  };
  std::optional<Receiving> receiving_;
  std::optional<Message> install_pending_;  // the last chunk's message, to answer once installed
  bool install_handed_out_ = false;         // in a Ready: SnapshotInstalled comes next
  std::vector<InstallSnapshot> chunks_to_write_;

  // Leader state.
  std::vector<Progress> progress_;  // indexed by NodeId; this node's own slot unused
  TimePoint next_heartbeat_at_{};
  TimePoint leader_since_{};
  LogIndex noop_index_ = 0;  // this term's NO-OP

  // Lease state. `known_lease_end_` is the latest instant (on our clock) until which some leader
  // — possibly this node in an earlier term — may hold a lease. It never decreases (§6.4.1).
  TimePoint known_lease_end_{};
  // Leader/candidate: leases of earlier leaders end by this instant; nothing commits before it.
  TimePoint old_lease_wait_end_{};

  // What CheckInvariants saw last, to check what may never change or go back within a term.
  struct InvariantSnapshot {
    Term term = 0;
    LogIndex commit_index = 0;
    NodeId voted_for = kNoNode;
    Term leader_term = 0;
    NodeId leader = kNoNode;  // the leader this node learned of in leader_term, if any
  };
  InvariantSnapshot last_checked_;

  // Ready bookkeeping.
  HardState last_persisted_hard_state_;
  bool hard_state_dirty_ = false;
  std::vector<Message> messages_;
  std::vector<Message> messages_after_persist_;
  std::vector<Event> events_;
  bool ready_outstanding_ = false;
  bool pending_broadcast_ = false;  // proposals appended since the last Ready: stream them
};

}  // namespace raftkv::raft

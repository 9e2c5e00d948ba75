// What the core hands back to its driver after each batch of input (the shape of etcd's
// raft.Ready). The driver must process a Ready in this order:
//
//   1. send `messages`                      (they depend on nothing in this Ready being durable;
//                                            this is how the leader's own fsync runs in parallel
//                                            with replication, Raft thesis §10.2.1)
//   2. persist `hard_state`, then truncate the log at `truncate_from`, then append `entries`,
//      and write `snapshot_chunks` into the snapshot being received, and make all of it durable
//      (fsync) before going on;
//   3. send `messages_after_persist`        (vote grants, AppendEntries replies, vote requests:
//                                            each promises something that step 2 made durable)
//   4. apply `committed_entries` in order   (every one is durable on this node after step 2)
//   5. call RaftNode::Advance(ready), then, if `snapshot_to_install` is set, check the received
//      snapshot file, load it as the state, and call RaftNode::SnapshotInstalled (raft_node.h).
//
// No other call into the node may happen between TakeReady() and Advance().
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "raft/message.h"

namespace raftkv::raft {

// The state that must survive a crash (Figure 2 "persistent state on all servers"), plus the
// commit index, which is kept only so an operator can read it and a restart can apply sooner.
struct HardState {
  Term term = 0;
  NodeId voted_for = kNoNode;
  LogIndex commit_index = 0;
  // Nonzero after this node's log was discarded (raftkv-node --rebuild) in this term: the node
  // then neither votes nor campaigns until its commit index covers an entry of a later term.
  // Why that is enough: every entry this node ever acknowledged has a term <= rebuilt_at_term.
  // An entry e of a later term, once committed, was made durable by a majority that did not
  // count this node's lost log, so every later leader holds e (that majority meets every
  // electing one in a node that kept its log) and with it every entry committed before e's term:
  // all that this node's lost log helped commit. From then on its vote cannot elect a leader
  // without them, even if a crash cost it e itself. A vote from an empty log before that could
  // elect a candidate missing entries that only this node's lost log had made a majority.
  Term rebuilt_at_term = 0;

  friend bool operator==(const HardState&, const HardState&) = default;
};

// Things worth a line in the node's event log (dump.txt). The server renders them in the
// wording operators expect; the simulator prints them in its trace.
struct Event {
  enum class Kind {
    kElectionTimeout,     // starting an election
    kBecameLeader,        // term
    kWaitingForOldLease,  // duration = time still to wait
    kHeartbeatRound,      // leader sent a heartbeat round, renewing its lease
    kLeaseRenewalFailed,  // leader could not renew its lease: stepping down
    kSteppedDown,         // leader or candidate became follower
    kVoteGranted,         // peer = candidate, term
    kVoteDenied,          // peer = candidate, term
    kAppendAccepted,      // peer = leader
    kAppendRejected,      // peer = leader
    kRebuildEnded,        // term = the later term whose entry is now committed here
  };
  Kind kind;
  NodeId peer = kNoNode;
  Term term = 0;
  Duration duration{0};
};

struct Ready {
  // Set when the term or the vote changed: durable before messages_after_persist leave (§5.1).
  std::optional<HardState> hard_state;
  // The commit index, always: the driver may record it lazily (it is not needed for safety).
  LogIndex commit_index = 0;
  std::optional<LogIndex> truncate_from;  // drop every entry with index >= this, before appending
  std::vector<Entry> entries;             // append after truncation
  std::vector<Message> messages;
  std::vector<Message> messages_after_persist;
  std::vector<Entry> committed_entries;
  std::vector<Event> events;
  // Follower: chunks of a leader's snapshot to write at their offsets into the file being received
  // (a chunk at offset 0 starts a new one), and, when the last is among them, the snapshot to check
  // and install once they are durable.
  std::vector<InstallSnapshot> snapshot_chunks;
  std::optional<SnapshotMeta> snapshot_to_install;

  bool MustSync() const {
    return hard_state.has_value() || truncate_from || !entries.empty() || !snapshot_chunks.empty();
  }
  bool Empty() const {
    return !MustSync() && messages.empty() && messages_after_persist.empty() &&
           committed_entries.empty() && events.empty() && !snapshot_to_install;
  }
};

}  // namespace raftkv::raft

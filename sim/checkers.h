// Cross-node safety checks the simulator runs after every event (Raft §5.2-§5.4 and the lease):
//   * election safety: at most one leader per term;
//   * one vote per term per node, even across crashes (the vote must be durable);
//   * log matching: two logs with an entry of the same index and term agree up to it;
//   * leader completeness: a new leader's log holds every entry committed before its term;
//   * state-machine safety: every node's committed prefix, and everything it applies, matches
//     one canonical committed history;
//   * lease safety: no two nodes are ever inside a lease window at the same real instant.
// Logs are compared through prefix hash chains, so each check is O(1) per new entry.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "raft/raft_node.h"

namespace raftkv::sim {

class SafetyChecker {
 public:
  explicit SafetyChecker(int nodes);

  // The node's in-memory log changed as described by `ready` (truncation, then appends).
  void OnLogChanged(NodeId node, const raft::Ready& ready);
  // The node restarted from its disk with this log, which starts after `base` (the entries up to
  // it are in the node's snapshot, which must hold committed entries only).
  void OnRestart(NodeId node, LogIndex base, const std::vector<raft::Entry>& log);
  // The node installed a leader's snapshot up to `index` as its state; its log now ends at `last`
  // (it kept its entries after the snapshot's, or has none). An index below what the node had
  // applied is a state that went back.
  void OnSnapshotInstalled(NodeId node, LogIndex index, LogIndex last);
  // After the node processed an event: role, term, vote and commit checks.
  void OnState(NodeId node, const raft::RaftNode& raft);
  void OnApplied(NodeId node, const raft::Entry& entry);
  // The node's lease window, converted to real time (nullopt: none). A crashed node has none.
  void OnLeaseWindow(NodeId node, std::optional<std::pair<int64_t, int64_t>> window,
                     int64_t real_now);
  void Finish(int64_t real_now);

  const std::optional<std::string>& violation() const { return violation_; }
  LogIndex canonical_commit() const { return canonical_.size(); }

 private:
  struct LeaseSegment {
    NodeId node;
    int64_t from;
    int64_t to;
  };
  void Fail(std::string message);
  void CheckSegment(const LeaseSegment& segment, int64_t real_now);
  static uint64_t ChainHash(uint64_t previous, const raft::Entry& entry);

  int nodes_;
  std::optional<std::string> violation_;
  std::vector<std::vector<uint64_t>> chains_;  // per node: chain hash of entry i at [i-1]
  std::vector<LogIndex> applied_;              // per node: the highest index it applied
  std::map<std::pair<LogIndex, Term>, uint64_t> index_term_hash_;
  std::vector<uint64_t> canonical_;  // chain hashes of the committed history
  // For each committed index, the term in which it was committed: the term of the entry whose
  // commitment committed it (§5.4.2: a leader commits by counting only its own term's entries).
  std::vector<Term> commit_term_;
  std::map<Term, NodeId> leader_of_term_;
  std::map<std::pair<NodeId, Term>, NodeId> vote_of_;
  std::vector<Term> last_term_;
  std::vector<bool> was_leader_;
  std::vector<std::optional<LeaseSegment>> claims_;
  std::vector<LeaseSegment> history_;
};

}  // namespace raftkv::sim

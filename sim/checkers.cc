#include "sim/checkers.h"

#include <algorithm>
#include <functional>

namespace raftkv::sim {

SafetyChecker::SafetyChecker(int nodes)
    : nodes_(nodes),
      chains_(nodes),
      applied_(nodes, 0),
      last_term_(nodes, 0),
      was_leader_(nodes, false),
      claims_(nodes) {}

void SafetyChecker::Fail(std::string message) {
  if (!violation_) violation_ = std::move(message);
}

uint64_t SafetyChecker::ChainHash(uint64_t previous, const raft::Entry& entry) {
  uint64_t h = previous ^ 0x9e3779b97f4a7c15ULL;
  auto mix = [&h](uint64_t value) {
    h ^= value + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdULL;
  };
  mix(entry.term);
  mix(entry.index);
  mix(static_cast<uint64_t>(entry.type));
  mix(std::hash<std::string>{}(entry.data));
  return h;
}

void SafetyChecker::OnLogChanged(NodeId node, const raft::Ready& ready) {
  std::vector<uint64_t>& chain = chains_[node];
  if (ready.truncate_from) chain.resize(std::min<size_t>(chain.size(), *ready.truncate_from - 1));
  for (const raft::Entry& entry : ready.entries) {
    if (entry.index != chain.size() + 1) {
      Fail("node " + std::to_string(node) + " appended index " + std::to_string(entry.index) +
           " after " + std::to_string(chain.size()));
      return;
    }
    const uint64_t hash = ChainHash(chain.empty() ? 0 : chain.back(), entry);
    chain.push_back(hash);
    // Log matching (§5.3): the same index and term must mean the same prefix everywhere.
    auto [it, inserted] = index_term_hash_.try_emplace({entry.index, entry.term}, hash);
    if (!inserted && it->second != hash) {
      Fail("log matching: node " + std::to_string(node) + " holds a different log up to index " +
           std::to_string(entry.index) + " term " + std::to_string(entry.term) +
           " than another node");
    }
  }
}

void SafetyChecker::OnRestart(NodeId node, LogIndex base, const std::vector<raft::Entry>& log) {
  chains_[node].clear();
  applied_[node] = 0;  // it applies again from its snapshot
  if (base > 0) {
    // A snapshot stands for the committed history up to its index: nothing else may be in it.
    if (base > canonical_.size()) {
      Fail("node " + std::to_string(node) + " restarted with a log starting after index " +
           std::to_string(base) + ", beyond what was ever committed (" +
           std::to_string(canonical_.size()) + ")");
      return;
    }
    chains_[node].assign(canonical_.begin(),
                         canonical_.begin() + static_cast<std::ptrdiff_t>(base));
  }
  raft::Ready ready;
  ready.entries = log;
  OnLogChanged(node, ready);
  was_leader_[node] = false;
}

void SafetyChecker::OnSnapshotInstalled(NodeId node, LogIndex index, LogIndex last) {
  std::vector<uint64_t>& chain = chains_[node];
  if (index < applied_[node]) {
    Fail("state-machine safety: node " + std::to_string(node) +
         " installed a snapshot up to index " + std::to_string(index) + " after applying up to " +
         std::to_string(applied_[node]) + ": its state went back");
    return;
  }
  applied_[node] = index;
  if (index > canonical_.size()) {
    Fail("node " + std::to_string(node) + " installed a snapshot up to index " +
         std::to_string(index) + ", beyond what was ever committed (" +
         std::to_string(canonical_.size()) + ")");
    return;
  }
  const bool kept = last > index;
  if (kept && (chain.size() < last || chain[index - 1] != canonical_[index - 1])) {
    Fail("log matching: node " + std::to_string(node) + " kept entries after snapshot index " +
         std::to_string(index) + " on a log that differs from the committed one there");
    return;
  }
  if (!kept)
    chain.assign(canonical_.begin(), canonical_.begin() + static_cast<std::ptrdiff_t>(index));
}

void SafetyChecker::OnState(NodeId node, const raft::RaftNode& raft) {
  const std::string who = "node " + std::to_string(node);
  const Term term = raft.term();
  if (term < last_term_[node])
    Fail(who + ": term went back from " + std::to_string(last_term_[node]));
  last_term_[node] = term;
  if (raft.voted_for() != kNoNode) {
    auto [it, inserted] = vote_of_.try_emplace({node, term}, raft.voted_for());
    if (!inserted && it->second != raft.voted_for()) {
      Fail(who + " voted twice in term " + std::to_string(term) + ": for " +
           std::to_string(it->second) + " and for " + std::to_string(raft.voted_for()));
    }
  }
  const std::vector<uint64_t>& chain = chains_[node];
  if (raft.role() == raft::Role::kLeader) {
    auto [it, inserted] = leader_of_term_.try_emplace(term, node);
    if (!inserted && it->second != node) {
      Fail("election safety: nodes " + std::to_string(it->second) + " and " + std::to_string(node) +
           " both led term " + std::to_string(term));
    }
    if (!was_leader_[node]) {
      // Leader completeness (§5.4): every entry committed in an earlier term must be in the new
      // leader's log. (A stale leader of a lower term may legally lack what a higher term
      // committed; it will be deposed.)
      const size_t committed = static_cast<size_t>(
          std::lower_bound(commit_term_.begin(), commit_term_.end(), term) - commit_term_.begin());
      if (committed > 0 &&
          (chain.size() < committed || chain[committed - 1] != canonical_[committed - 1])) {
        Fail("leader completeness: " + who + " became leader of term " + std::to_string(term) +
             " without committed entry " + std::to_string(committed) + " (its log has " +
             std::to_string(chain.size()) + " entries, last term " +
             std::to_string(raft.log().LastTerm()) + ")");
      }
    }
  }
  was_leader_[node] = raft.role() == raft::Role::kLeader;

  // State-machine safety: this node's committed prefix is the canonical committed history.
  const LogIndex commit = raft.commit_index();
  if (commit > chain.size()) {
    Fail(who + " commit index " + std::to_string(commit) + " beyond its log");
    return;
  }
  if (commit == 0) return;
  if (commit <= canonical_.size()) {
    if (chain[commit - 1] != canonical_[commit - 1]) {
      Fail("state-machine safety: " + who + " committed a different entry at or before index " +
           std::to_string(commit));
    }
  } else {
    if (!canonical_.empty() && chain[canonical_.size() - 1] != canonical_.back()) {
      Fail("state-machine safety: " + who + " committed a log that diverges before index " +
           std::to_string(canonical_.size()));
      return;
    }
    commit_term_.resize(commit, raft.log().TermAt(commit));
    canonical_.insert(canonical_.end(),
                      chain.begin() + static_cast<std::ptrdiff_t>(canonical_.size()),
                      chain.begin() + static_cast<std::ptrdiff_t>(commit));
  }
}

void SafetyChecker::OnApplied(NodeId node, const raft::Entry& entry) {
  applied_[node] = std::max(applied_[node], entry.index);
  const std::vector<uint64_t>& chain = chains_[node];
  if (entry.index > canonical_.size() || entry.index > chain.size() ||
      chain[entry.index - 1] != canonical_[entry.index - 1]) {
    Fail("state-machine safety: node " + std::to_string(node) + " applied index " +
         std::to_string(entry.index) + " which is not the committed entry there");
  }
}

void SafetyChecker::OnLeaseWindow(NodeId node, std::optional<std::pair<int64_t, int64_t>> window,
                                  int64_t real_now) {
  // The claim held so far ends now; what the node believes from now on replaces it.
  if (claims_[node]) {
    LeaseSegment held = *claims_[node];
    held.to = std::min(held.to, real_now);
    if (held.from < held.to) {
      CheckSegment(held, real_now);
      history_.push_back(held);
    }
    claims_[node].reset();
  }
  if (window) {
    const int64_t from = std::max(window->first, real_now);
    if (from < window->second) claims_[node] = LeaseSegment{node, from, window->second};
  }
  if (history_.size() > 4096) {
    // Segments that ended long ago cannot overlap anything still to come.
    std::erase_if(history_,
                  [&](const LeaseSegment& s) { return s.to < real_now - 60'000'000'000; });
  }
}

void SafetyChecker::CheckSegment(const LeaseSegment& segment, int64_t real_now) {
  auto overlaps = [&](const LeaseSegment& other) {
    return other.node != segment.node && other.from < segment.to && segment.from < other.to;
  };
  auto report = [&](const LeaseSegment& other) {
    Fail("lease safety: node " + std::to_string(segment.node) + " held a lease in [" +
         std::to_string(segment.from) + ", " + std::to_string(segment.to) + ") ns and node " +
         std::to_string(other.node) + " in [" + std::to_string(other.from) + ", " +
         std::to_string(other.to) + ") ns");
  };
  for (const LeaseSegment& other : history_) {
    if (overlaps(other)) return report(other);
  }
  for (const auto& claim : claims_) {
    if (!claim) continue;
    LeaseSegment held = *claim;
    held.to = std::min(held.to, real_now);  // only what it has certainly held so far
    if (overlaps(held)) return report(held);
  }
}

void SafetyChecker::Finish(int64_t real_now) {
  for (NodeId node = 0; node < nodes_; ++node) OnLeaseWindow(node, std::nullopt, real_now);
}

}  // namespace raftkv::sim

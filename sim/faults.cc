// The nemesis: a seeded schedule of crashes, pauses and partitions during the fault phase, and
// the healing that starts the liveness phase.
#include "sim/simulator.h"

namespace raftkv::sim {
std::optional<FaultSet> ParseFaults(const std::string& text) {
  FaultSet set;
  if (text == "all") return set;
  set = FaultSet{false, false, false, false, false};
  if (text == "none") return set;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string name = text.substr(start, comma - start);
    if (name == "partition") {
      set.partitions = true;
    } else if (name == "crash") {
      set.crashes = true;
    } else if (name == "pause") {
      set.pauses = true;
    } else if (name == "drift") {
      set.drift = true;
    } else if (name == "loss") {
      set.loss = true;
    } else {
      return std::nullopt;
    }
    start = comma + 1;
  }
  return set;
}

void Simulator::ScheduleFaults() { Schedule(now_ + rng_.Between(200, 1500) * kMs, FaultStep{}); }

void Simulator::InjectFault() {
  ScheduleFaults();
  const FaultSet& faults = options_.faults;
  std::vector<int> kinds;  // 0 crash, 1 pause, 2 partition
  if (faults.crashes) kinds.push_back(0);
  if (faults.pauses) kinds.push_back(1);
  if (faults.partitions) kinds.push_back(2);
  if (kinds.empty()) return;
  const int n = options_.nodes;
  // Half the time aim at the leader: that is where lease and failover bugs live.
  auto pick = [&](auto eligible) -> std::optional<NodeId> {
    std::optional<NodeId> leader = CurrentLeader();
    if (leader && eligible(*leader) && rng_.Chance(0.5)) return leader;
    std::vector<NodeId> candidates;
    for (NodeId id = 0; id < n; ++id) {
      if (eligible(id)) candidates.push_back(id);
    }
    if (candidates.empty()) return std::nullopt;
    return candidates[rng_.Below(candidates.size())];
  };
  switch (kinds[rng_.Below(kinds.size())]) {
    case 0: {
      auto victim = pick([&](NodeId id) { return nodes_[id].replica != nullptr; });
      if (!victim) return;
      CrashNode(*victim, "(nemesis)");
      return;
    }
    case 1: {
      auto victim = pick([&](NodeId id) { return nodes_[id].replica && !nodes_[id].paused; });
      if (!victim) return;
      Node& node = nodes_[*victim];
      node.paused = true;
      node.paused_until = now_ + rng_.Between(50, 3000) * kMs;
      Schedule(node.paused_until, Resume{*victim});
      Trace("pause " + std::to_string(*victim) + " for " +
            std::to_string((node.paused_until - now_) / kMs) + "ms");
      return;
    }
    default:
      break;
  }
  std::vector<bool> group(n, false);
  switch (rng_.Below(5)) {
    case 0: {  // isolate the leader (or anyone)
      group[pick([](NodeId) { return true; }).value_or(0)] = true;
      network_.Isolate(group);
      break;
    }
    case 1: {  // random split into two sides
      for (NodeId id = 0; id < n; ++id) group[id] = rng_.Chance(0.5);
      network_.Isolate(group);
      break;
    }
    case 2: {  // one-way loss on one link
      const NodeId from = static_cast<NodeId>(rng_.Below(n));
      const NodeId to = static_cast<NodeId>((from + 1 + rng_.Below(n - 1)) % n);
      network_.SetReachable(from, to, false);
      break;
    }
    case 3: {  // bridge: two sides that cannot talk, and one node that sees both
      const NodeId bridge = static_cast<NodeId>(rng_.Below(n));
      for (NodeId id = 0; id < n; ++id) group[id] = rng_.Chance(0.5);
      network_.Isolate(group);
      for (NodeId id = 0; id < n; ++id) {
        network_.SetReachable(bridge, id, true);
        network_.SetReachable(id, bridge, true);
      }
      break;
    }
    default:
      network_.Heal();
      break;
  }
  Trace("network " + network_.Describe());
}

void Simulator::HealEverything() {
  network_.Heal();
  network_.options().loss = 0;
  network_.options().duplication = 0;
  for (NodeId id = 0; id < options_.nodes; ++id) {
    Node& node = nodes_[id];
    if (!node.replica) {
      StartNode(id);
    } else if (node.paused) {
      node.paused = false;
      AfterNodeEvent(id);
    }
  }
}

}  // namespace raftkv::sim

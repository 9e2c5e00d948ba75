#include "sim/network.h"

namespace raftkv::sim {

SimNetwork::SimNetwork(int nodes, NetworkOptions options)
    : nodes_(nodes), options_(options), reachable_(nodes, std::vector<bool>(nodes, true)) {}

std::vector<int64_t> SimNetwork::Route(NodeId from, NodeId to, Rng& rng) const {
  std::vector<int64_t> delays;
  if (!reachable_[from][to] || rng.Chance(options_.loss)) return delays;
  delays.push_back(rng.Between(options_.min_delay_ns, options_.max_delay_ns));
  if (rng.Chance(options_.duplication)) {
    delays.push_back(rng.Between(options_.min_delay_ns, 4 * options_.max_delay_ns));
  }
  return delays;
}

void SimNetwork::Heal() {
  for (auto& row : reachable_) row.assign(nodes_, true);
}

void SimNetwork::Isolate(const std::vector<bool>& in_group) {
  for (int a = 0; a < nodes_; ++a) {
    for (int b = 0; b < nodes_; ++b) {
      if (in_group[a] != in_group[b]) reachable_[a][b] = false;
    }
  }
}

std::string SimNetwork::Describe() const {
  std::string out;
  for (int a = 0; a < nodes_; ++a) {
    for (int b = 0; b < nodes_; ++b) {
      if (a != b && !reachable_[a][b]) {
        out += std::to_string(a) + "-x->" + std::to_string(b) + " ";
      }
    }
  }
  return out.empty() ? "healed" : out;
}

}  // namespace raftkv::sim

// The simulated network between nodes: per-message delay, loss, duplication (reordering follows
// from random delays), and a reachability matrix for symmetric and one-way partitions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/rng.h"
#include "common/types.h"

namespace raftkv::sim {

struct NetworkOptions {
  int64_t min_delay_ns = 200'000;    // 0.2 ms
  int64_t max_delay_ns = 5'000'000;  // 5 ms
  double loss = 0.0;
  double duplication = 0.0;
};

class SimNetwork {
 public:
  SimNetwork(int nodes, NetworkOptions options);

  // Delivery delays for one message from -> to: empty if it is lost, two entries if duplicated.
  std::vector<int64_t> Route(NodeId from, NodeId to, Rng& rng) const;

  bool Reachable(NodeId from, NodeId to) const { return reachable_[from][to]; }
  void SetReachable(NodeId from, NodeId to, bool reachable) { reachable_[from][to] = reachable; }
  void Heal();
  // Cuts every link between `group` and the rest, both ways.
  void Isolate(const std::vector<bool>& in_group);
  std::string Describe() const;

  NetworkOptions& options() { return options_; }

 private:
  int nodes_;
  NetworkOptions options_;
  std::vector<std::vector<bool>> reachable_;
};

}  // namespace raftkv::sim

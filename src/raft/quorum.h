// The quorum rule, in one place (LogCabin's quorumMin, etcd's quorum/majority.go): commitment
// (match indexes) and the lease (acknowledged send times) both ask "what value has a majority of
// the voters reached?". Table tests: tests/raft/quorum_test.cc.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <optional>
#include <vector>

namespace raftkv::raft {

// How many voters of `cluster_size` make a majority.
inline int MajorityOf(int cluster_size) { return cluster_size / 2 + 1; }

// The greatest value that at least a majority of a `cluster_size`-voter cluster has reached, given
// one value per voter that has reported one (voters with nothing to report are left out). None
// when fewer than a majority have reported.
template <typename T>
std::optional<T> QuorumValue(std::vector<T> values, int cluster_size) {
  const size_t majority = static_cast<size_t>(MajorityOf(cluster_size));
  if (values.size() < majority) return std::nullopt;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(majority - 1),
                   values.end(), std::greater<T>());
  return values[majority - 1];
}

}  // namespace raftkv::raft

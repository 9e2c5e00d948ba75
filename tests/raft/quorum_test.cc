// The quorum rule (raft/quorum.h) as a table: the value a majority of the voters has reached.
#include "raft/quorum.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace raftkv::raft {
namespace {

TEST(Quorum, MajorityOfClusterSizes) {
  const int expected[] = {1, 2, 2, 3, 3, 4, 4, 5, 5};  // sizes 1..9
  for (int size = 1; size <= 9; ++size) EXPECT_EQ(MajorityOf(size), expected[size - 1]) << size;
}

TEST(Quorum, ValueAMajorityHasReached) {
  struct Case {
    int cluster_size;
    std::vector<uint64_t> values;  // one per voter that reported
    std::optional<uint64_t> expected;
  } cases[] = {
      {1, {7}, 7},
      {1, {}, std::nullopt},
      {3, {5, 5, 5}, 5},
      {3, {9, 4, 1}, 4},       // two of three have reached 4
      {3, {9, 1}, 1},          // one voter silent: the two that spoke must both count
      {3, {9}, std::nullopt},  // fewer than a majority reported
      {4, {8, 6, 4, 2}, 4},    // four voters need three
      {5, {10, 10, 3, 2, 1}, 3},
      {5, {10, 10, 10, 2, 1}, 10},
      {5, {7, 7, 7}, 7},  // exactly a majority reported
      {7, {1, 2, 3, 4, 5, 6, 7}, 4},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(QuorumValue(c.values, c.cluster_size), c.expected)
        << "cluster of " << c.cluster_size << ", " << c.values.size() << " values";
  }
}

}  // namespace
}  // namespace raftkv::raft

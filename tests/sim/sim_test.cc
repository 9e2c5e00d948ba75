// The simulator itself: determinism, safety under every fault on 3/5/7 nodes, and proof that each
// checker catches the bug it exists for.
#include <gtest/gtest.h>

#include <algorithm>

#include "sim/regression_seeds.h"
#include "sim/simulator.h"

namespace raftkv::sim {
namespace {

SimOptions Options(uint64_t seed, int nodes, int64_t steps = 8000) {
  SimOptions options;
  options.seed = seed;
  options.nodes = nodes;
  options.steps = steps;
  return options;
}

TEST(Simulator, SameSeedSameTrace) {
  const SimResult a = Simulator(Options(42, 5)).Run();
  const SimResult b = Simulator(Options(42, 5)).Run();
  const SimResult c = Simulator(Options(43, 5)).Run();
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(a.events, b.events);
  EXPECT_NE(a.trace_hash, c.trace_hash);
}

TEST(Simulator, ParsesFaultLists) {
  EXPECT_TRUE(ParseFaults("all").has_value());
  auto some = ParseFaults("crash,drift");
  ASSERT_TRUE(some.has_value());
  EXPECT_TRUE(some->crashes && some->drift && !some->partitions && !some->pauses);
  EXPECT_FALSE(ParseFaults("crash,meteor").has_value());
}

// A few hundred seeds across cluster sizes, all fault kinds. (`make soak` runs thousands.)
class SimulatorSeeds : public ::testing::TestWithParam<int> {};

TEST_P(SimulatorSeeds, NoViolationUnderAllFaults) {
  const int nodes = GetParam();
  const int seeds = nodes == 3 ? 150 : nodes == 5 ? 100 : 50;
  int ops = 0;
  for (int seed = 1; seed <= seeds; ++seed) {
    const SimResult result = Simulator(Options(seed, nodes)).Run();
    ASSERT_TRUE(result.ok) << result.violation << "\n  replay: build/sim/raftkv-sim --seed " << seed
                           << " --nodes " << nodes << " --steps 8000 --trace";
    EXPECT_FALSE(result.linearizability_inconclusive) << "seed " << seed;
    ops += result.ops_ok;
  }
  EXPECT_GT(ops, seeds * 100) << "the workload barely ran: the faults are too harsh";
}

INSTANTIATE_TEST_SUITE_P(ClusterSizes, SimulatorSeeds, ::testing::Values(3, 5, 7),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::to_string(info.param) + "_nodes";
                         });

// Seeds that once failed and were fixed, replayed forever.
TEST(Simulator, RegressionSeeds) {
  auto runs =
      ReadRegressionSeeds(RAFTKV_SOURCE_DIR "/tests/sim/regression_seeds.txt", SimOptions{});
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_FALSE(runs->empty());
  for (const SimOptions& run : *runs) {
    const SimResult result = Simulator(run).Run();
    EXPECT_TRUE(result.ok) << "seed " << run.seed << ": " << result.violation;
  }
}

// Each deliberate bug must be caught by the simulator within a bounded number of seeds.
struct BugCase {
  raft::InjectedBug bug;
  int nodes;
  int max_seeds;
  const char* expected;  // what the violation must mention (alternatives split by '|')
};

bool Mentions(const std::string& violation, const std::string& expected) {
  for (size_t at = 0; at <= expected.size();) {
    const size_t bar = std::min(expected.find('|', at), expected.size());
    if (violation.find(expected.substr(at, bar - at)) != std::string::npos) return true;
    at = bar + 1;
  }
  return false;
}

class InjectedBugs : public ::testing::TestWithParam<BugCase> {};

TEST_P(InjectedBugs, SimulatorCatchesIt) {
  const BugCase& c = GetParam();
  for (int seed = 1; seed <= c.max_seeds; ++seed) {
    SimOptions options = Options(seed, c.nodes, 20000);
    options.bug = c.bug;
    const SimResult result = Simulator(options).Run();
    if (!result.ok) {
      EXPECT_TRUE(Mentions(result.violation, c.expected)) << result.violation;
      return;
    }
  }
  ADD_FAILURE() << raft::InjectedBugName(c.bug) << " not caught in " << c.max_seeds << " seeds";
}

INSTANTIATE_TEST_SUITE_P(
    Bugs, InjectedBugs,
    ::testing::Values(
        BugCase{raft::InjectedBug::kReadWithoutLease, 3, 50, "lease safety|linearizability"},
        BugCase{raft::InjectedBug::kSkipOldLeaseWait, 3, 300, "lease safety"},
        BugCase{raft::InjectedBug::kForgetToPersistVote, 5, 300, "voted twice"},
        BugCase{raft::InjectedBug::kSkipNoopBeforeRead, 3, 300, "linearizability"},
        // The power-loss disk: a crash between metadata.txt and the log cut
        // (replays a stale entry, or leaves a commit index past the log, which recovery
        // refuses), and a torn truncate + append (a line half new, half old, which recovery
        // refuses).
        BugCase{raft::InjectedBug::kSaveCommitBeforeLogCut, 3, 200,
                "state-machine safety|committed entries were lost"},
        BugCase{raft::InjectedBug::kOneSyncForCutAndAppend, 3, 200, "failed to start"},
        // Snapshots: the log cut before the snapshot covering it is durable (a crash between
        // loses entries), a follower rolled back to a snapshot older than its commit index, and
        // snapshots without the session table (a retried SET applies twice).
        BugCase{raft::InjectedBug::kCompactBeforeSnapshotDurable, 3, 50,
                "entries in between are lost"},
        BugCase{raft::InjectedBug::kInstallOlderSnapshot, 3, 300, "its state went back"},
        BugCase{raft::InjectedBug::kSnapshotWithoutSessions, 3, 50, "linearizability"},
        // --rebuild: a node whose log was lost votes at once, and elects a leader without an
        // entry that its lost log had helped commit.
        BugCase{raft::InjectedBug::kVoteWhileRebuilding, 3, 50, "leader completeness"}),
    [](const ::testing::TestParamInfo<BugCase>& info) {
      std::string name = raft::InjectedBugName(info.param.bug);
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

}  // namespace
}  // namespace raftkv::sim

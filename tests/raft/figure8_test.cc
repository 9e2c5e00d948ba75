// Raft paper Figure 8, scripted: why a leader must not commit an entry of an earlier term by
// counting replicas (§5.4.2). With the deliberate bug switched on, the simulator's checker sees
// a leader elected without a committed entry, which it then overwrites; without it, nothing is
// lost.
#include "tests/raft/test_cluster.h"

namespace raftkv::raft::testing {
namespace {

// Runs the Figure 8 schedule on five nodes and returns the checker's verdict.
std::optional<std::string> RunFigure8(InjectedBug bug) {
  sim::SafetyChecker checker(5);
  TestCluster cluster(5, [bug](RaftConfig& c) {
    c.injected_bug = bug;
    c.max_entries_per_append = 1;  // so X and the new NO-OP travel in separate messages
    c.max_inflight_appends = 1;
  });
  cluster.AttachChecker(&checker);
  // Only `winner` may collect votes; everyone else's RequestVote is dropped.
  auto only_candidate = [](NodeId winner, std::function<bool(const Message&)> also) {
    return [winner, also](const Message& m) {
      if (std::holds_alternative<RequestVote>(m.body) && m.from != winner) return true;
      return also ? also(m) : false;
    };
  };
  auto until_leader = [&](NodeId winner, std::function<bool(const Message&)> drop) {
    for (int i = 0; i < 5000 && cluster.Leader() != winner; ++i) cluster.Run(1, drop);
    return cluster.Leader() == winner;
  };
  // (a) S0 leads and appends X, which reaches only S1.
  if (!until_leader(0, only_candidate(0, nullptr))) return "setup: S0 not elected";
  cluster.Run(100, only_candidate(0, nullptr));  // NO-OP committed everywhere
  cluster.Propose(0, "X");
  cluster.Process(0);
  auto s0_to_s1_only = [](const Message& m) {
    return m.from == 0 && std::holds_alternative<AppendEntries>(m.body) && m.to != 1;
  };
  cluster.Run(5, s0_to_s1_only);
  cluster.Crash(0);
  // (b) S4 wins with votes from S2, S3 (and itself), appends Y at X's index, shares it with no one.
  auto isolate_s1_and_mute_s4 = [](const Message& m) {
    return m.from == 1 || m.to == 1 ||
           (m.from == 4 && std::holds_alternative<AppendEntries>(m.body));
  };
  if (!until_leader(4, only_candidate(4, isolate_s1_and_mute_s4))) return "setup: S4 not elected";
  cluster.Propose(4, "Y");
  cluster.Process(4);
  cluster.Crash(4);
  // (c) S0 restarts and wins again; X reaches S2 and S3, but S0's new NO-OP reaches no one.
  cluster.Start(0);
  std::optional<Term> s0_term;
  auto x_only = [&](const Message& m) {
    if (m.from != 0 || !std::holds_alternative<AppendEntries>(m.body)) return false;
    if (m.to != 2 && m.to != 3) return true;  // S1 and S4 hear nothing from S0
    const auto& request = std::get<AppendEntries>(m.body);
    bool carries_new_term = false;
    for (const Entry& e : request.entries) carries_new_term |= e.term == s0_term;
    // S0's own-term entries never land anywhere; a probe that will be rejected may pass, so
    // that S0 backs off and sends X on its own.
    return carries_new_term && cluster.up(m.to) &&
           cluster.node(m.to).log().LastIndex() >= request.prev_log_index;
  };
  if (!until_leader(0, only_candidate(0, [&](const Message& m) {
                      s0_term = cluster.up(0) ? std::optional<Term>(cluster.node(0).term())
                                              : std::nullopt;
                      return x_only(m);
                    }))) {
    return "setup: S0 not re-elected";
  }
  s0_term = cluster.node(0).term();
  cluster.Run(50, only_candidate(0, x_only));
  cluster.Crash(0);
  // (d) S4 restarts and wins with S1, S2, S3 (its last term is higher than X's), overwriting X.
  cluster.Start(4);
  until_leader(4, only_candidate(4, nullptr));
  cluster.Run(200, only_candidate(4, nullptr));
  checker.Finish(0);
  return checker.violation();
}

TEST(Figure8, CommittingAnOldTermEntryByCountingLosesIt) {
  const std::optional<std::string> violation = RunFigure8(InjectedBug::kCommitOldTermByCount);
  ASSERT_TRUE(violation.has_value()) << "the checker missed the Figure 8 bug";
  // The first symptom: S4 wins term 9 without X, which S0 (wrongly) committed in term 5.
  EXPECT_NE(violation->find("leader completeness"), std::string::npos) << *violation;
}

TEST(Figure8, TheCorrectRuleLosesNothing) {
  EXPECT_EQ(RunFigure8(InjectedBug::kNone), std::nullopt);
}

}  // namespace
}  // namespace raftkv::raft::testing

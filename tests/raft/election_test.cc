// Leader election: Raft §5.1, §5.2, §5.4.1 and the NO-OP of §8.
#include <set>

#include "tests/raft/test_cluster.h"

namespace raftkv::raft::testing {
namespace {

std::unique_ptr<RaftNode> Solo(NodeId id, int size, RecoveredState recovered = {},
                               uint64_t seed = 7) {
  auto node = RaftNode::Create(TestConfig(id, size), std::move(recovered), At(0), seed);
  EXPECT_TRUE(node.ok()) << node.status();
  return std::move(*node);
}

Message Vote(NodeId from, NodeId to, Term term, LogIndex last_index, Term last_term) {
  return Message{from, to, term, RequestVote{last_index, last_term}};
}

// §5.2: "If election timeout elapses without receiving AppendEntries RPC from current leader or
// granting vote to candidate: convert to candidate"; the timeout is randomized in [T, 2T].
TEST(Election, FollowerStartsElectionOnlyAfterRandomizedTimeout) {
  std::set<int64_t> fired_at;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    auto node = Solo(0, 3, {}, seed);
    int64_t ms = 0;
    while (node->role() == Role::kFollower) {
      node->Tick(At(++ms));
      ASSERT_LE(ms, 200) << "timeout beyond election_timeout_max";
    }
    EXPECT_GE(ms, 100) << "timeout below election_timeout_min";
    fired_at.insert(ms);
    EXPECT_EQ(node->role(), Role::kCandidate);
    EXPECT_EQ(node->term(), 1u);
  }
  EXPECT_GT(fired_at.size(), 5u) << "timeouts are not randomized";
}

// §5.2 + persistence: the candidate's new term and self-vote are durable before any
// RequestVote leaves.
TEST(Election, CandidatePersistsTermAndVoteBeforeAskingForVotes) {
  auto node = Solo(0, 3);
  node->Tick(At(250));
  Ready ready = node->TakeReady();
  ASSERT_TRUE(ready.hard_state.has_value());
  EXPECT_EQ(ready.hard_state->term, 1u);
  EXPECT_EQ(ready.hard_state->voted_for, 0);
  EXPECT_TRUE(ready.messages.empty()) << "vote requests must wait for the fsync";
  ASSERT_EQ(ready.messages_after_persist.size(), 2u);
  for (const Message& m : ready.messages_after_persist) {
    EXPECT_TRUE(std::holds_alternative<RequestVote>(m.body));
    EXPECT_EQ(m.term, 1u);
  }
  node->Advance(ready);
}

// §5.2: "Each server will vote for at most one candidate in a given term, on a first-come-first-
// served basis"; the grant leaves only after the vote is durable.
TEST(Election, AtMostOneVotePerTerm) {
  auto node = Solo(0, 3);
  node->Step(Vote(1, 0, 5, 0, 0), At(1));
  Ready ready = node->TakeReady();
  ASSERT_TRUE(ready.hard_state.has_value());
  EXPECT_EQ(ready.hard_state->voted_for, 1);
  ASSERT_EQ(ready.messages_after_persist.size(), 1u);
  EXPECT_TRUE(std::get<RequestVoteReply>(ready.messages_after_persist[0].body).granted);
  node->Advance(ready);

  node->Step(Vote(2, 0, 5, 0, 0), At(2));
  ready = node->TakeReady();
  ASSERT_EQ(ready.messages_after_persist.size(), 1u);
  EXPECT_FALSE(std::get<RequestVoteReply>(ready.messages_after_persist[0].body).granted);
  node->Advance(ready);

  // The same candidate asking again (a retransmission) gets the same answer.
  node->Step(Vote(1, 0, 5, 0, 0), At(3));
  ready = node->TakeReady();
  EXPECT_TRUE(std::get<RequestVoteReply>(ready.messages_after_persist[0].body).granted);
  node->Advance(ready);
}

// §5.2 across a restart: the vote is part of the persistent state.
TEST(Election, RestartedNodeRemembersItsVote) {
  RecoveredState recovered;
  recovered.hard_state = HardState{5, 1, 0};
  auto node = Solo(0, 3, recovered);
  node->Step(Vote(2, 0, 5, 0, 0), At(1));
  Ready ready = node->TakeReady();
  EXPECT_FALSE(std::get<RequestVoteReply>(ready.messages_after_persist[0].body).granted);
}

// §5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
// candidate" — compare last terms first, then lengths.
TEST(Election, VoteDeniedToCandidateWithStaleLog) {
  RecoveredState recovered;
  recovered.hard_state = HardState{3, kNoNode, 0};
  recovered.log = RaftLog({Entry{1, 1, EntryType::kNoop, {}}, Entry{3, 2, EntryType::kNoop, {}}});
  auto node = Solo(0, 3, recovered);
  const struct {
    LogIndex last_index;
    Term last_term;
    bool granted;
  } cases[] = {{5, 2, false}, {1, 3, false}, {2, 3, true}};
  Term term = 4;
  for (const auto& c : cases) {
    ++term;
    node->Step(Vote(1, 0, term, c.last_index, c.last_term), At(static_cast<int64_t>(term)));
    Ready ready = node->TakeReady();
    EXPECT_EQ(std::get<RequestVoteReply>(ready.messages_after_persist[0].body).granted, c.granted)
        << "candidate log ends " << c.last_index << "/" << c.last_term;
    node->Advance(ready);
  }
}

// §5.1: "If RPC request or response contains term T > currentTerm: set currentTerm = T, convert to
// follower".
TEST(Election, LeaderStepsDownOnHigherTerm) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  const Term term = cluster.node(leader).term();
  const NodeId other = (leader + 1) % 3;
  cluster.Step(Vote(other, leader, term + 1, 0, 0));
  EXPECT_EQ(cluster.node(leader).role(), Role::kFollower);
  EXPECT_EQ(cluster.node(leader).term(), term + 1);
}

// §5.2 and §8: a three-node cluster elects exactly one leader, which appends a NO-OP of its term
// that every node then commits.
TEST(Election, ClusterElectsOneLeaderWhoCommitsANoop) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  cluster.Run(50);
  int leaders = 0;
  for (NodeId id = 0; id < 3; ++id) {
    leaders += cluster.node(id).role() == Role::kLeader ? 1 : 0;
    EXPECT_EQ(cluster.node(id).leader_id(), leader);
    ASSERT_FALSE(cluster.applied(id).empty());
    EXPECT_EQ(cluster.applied(id).back().type, EntryType::kNoop);
    EXPECT_EQ(cluster.applied(id).back().term, cluster.node(leader).term());
  }
  EXPECT_EQ(leaders, 1);
}

// A single-node cluster is its own majority.
TEST(Election, SingleNodeElectsItselfAndCommits) {
  TestCluster cluster(1);
  EXPECT_EQ(cluster.ElectLeader(), 0);
  ProposeResult result = cluster.Propose(0, "x");
  ASSERT_TRUE(result.accepted);
  cluster.Process(0);
  EXPECT_EQ(cluster.node(0).commit_index(), result.index);
}

// (A log with a gap cannot be recovered at all: RaftLog holds entries contiguous by construction,
// and logs.txt's reader numbers them by position.)
TEST(Election, CreateRefusesInconsistentRecoveredState) {
  RecoveredState future;
  future.hard_state.term = 1;
  future.log = RaftLog({Entry{2, 1, EntryType::kNoop, {}}});
  EXPECT_FALSE(RaftNode::Create(TestConfig(0, 3), future, At(0), 1).ok());
  RecoveredState bad_vote;
  bad_vote.hard_state = HardState{1, 7, 0};
  EXPECT_FALSE(RaftNode::Create(TestConfig(0, 3), bad_vote, At(0), 1).ok());
}

// A term no correct node can reach (the RPC boundary refuses it too) is never adopted: adopting
// 2^64-1 would make the next election's term + 1 wrap to 0.
TEST(Election, AbsurdTermsAreIgnored) {
  auto node = RaftNode::Create(TestConfig(0, 3), {}, At(0), 1);
  ASSERT_TRUE(node.ok());
  (*node)->Step(Vote(1, 0, ~Term{0}, 0, 0), At(1));
  EXPECT_EQ((*node)->term(), 0u);
  EXPECT_FALSE((*node)->HasReady() && !(*node)->TakeReady().messages_after_persist.empty());
  auto damaged = RaftNode::Create(TestConfig(0, 3),
                                  RecoveredState{HardState{~Term{0}, 1, 0}, {}, {}}, At(0), 1);
  EXPECT_FALSE(damaged.ok());
  // Nor is a term that jumps more than 2^32 ahead of ours, even one below kMaxTerm.
  EXPECT_FALSE((*node)->WillAct(Vote(1, 0, kMaxTerm, 0, 0)));
  EXPECT_FALSE((*node)->WillAct(Vote(1, 0, kMaxTermJump + 1, 0, 0)));
  EXPECT_TRUE((*node)->WillAct(Vote(1, 0, kMaxTermJump, 0, 0)));
  EXPECT_FALSE((*node)->WillAct(Vote(0, 0, 1, 0, 0))) << "from itself";
}

// A node that holds kMaxTerm (only a forged term can get it there) stops starting elections
// instead of going past it: it waits as a follower, and never aborts.
TEST(Election, NoElectionPastTheMaximumTerm) {
  auto node = RaftNode::Create(TestConfig(0, 3),
                               RecoveredState{HardState{kMaxTerm, kNoNode, 0}, {}, {}}, At(0), 1);
  ASSERT_TRUE(node.ok());
  for (int64_t ms = 0; ms <= 2000; ms += 50) {
    (*node)->Tick(At(ms));
    if ((*node)->HasReady()) (*node)->Advance((*node)->TakeReady());
  }
  EXPECT_EQ((*node)->term(), kMaxTerm);
  EXPECT_EQ((*node)->role(), Role::kFollower);
}

}  // namespace
}  // namespace raftkv::raft::testing

// The leader lease (Raft thesis §6.4.1, made explicit in time; see docs/design.md).
#include "tests/raft/test_cluster.h"

namespace raftkv::raft::testing {
namespace {

Duration VoteReplyLease(RaftNode& node, NodeId candidate, Term term, TimePoint now) {
  node.Step(Message{candidate, node.id(), term, RequestVote{100, 100}}, now);
  Ready ready = node.TakeReady();
  node.Advance(ready);
  for (const Message& m : ready.messages_after_persist) {
    if (const auto* reply = std::get_if<RequestVoteReply>(&m.body)) {
      return reply->old_lease_remaining;
    }
  }
  ADD_FAILURE() << "no vote reply";
  return Duration(0);
}

// A follower that accepts an AppendEntries records receive time + lease duration, and reports
// what remains of it in every vote reply, granted or not.
TEST(Lease, FollowerReportsRemainingLeaseInVoteReplies) {
  auto created = RaftNode::Create(TestConfig(0, 3), {}, At(0), 1);
  ASSERT_TRUE(created.ok());
  RaftNode& node = **created;
  (void)VoteReplyLease(node, 1, 1, At(100));  // past the restart lease
  AppendEntries heartbeat;
  heartbeat.lease_duration = std::chrono::milliseconds(80);
  heartbeat.sent_at = At(1000);
  node.Step(Message{1, 0, 1, heartbeat}, At(1000));
  node.Advance(node.TakeReady());
  // Granted (a new term) and denied (same term, already voted) both carry 80 - 30 = 50 ms.
  EXPECT_EQ(VoteReplyLease(node, 2, 2, At(1030)), std::chrono::milliseconds(50));
  EXPECT_EQ(VoteReplyLease(node, 1, 2, At(1030)), std::chrono::milliseconds(50));
  EXPECT_EQ(VoteReplyLease(node, 1, 3, At(2000)), Duration(0));
}

// After a restart a node cannot know what lease it granted just before crashing: it assumes a
// whole lease is outstanding.
TEST(Lease, RestartedNodeAssumesAFullLeaseOutstanding) {
  auto created = RaftNode::Create(TestConfig(0, 3), {}, At(500), 1);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(VoteReplyLease(**created, 1, 1, At(500)), std::chrono::milliseconds(80));
}

// The new leader commits nothing and serves no read until the longest old lease reported by its
// voters has run out (stretched for clock drift), then takes its own lease.
// Node 0 of 3 campaigns at 300 and wins at 310 with a vote reporting 60 ms of old lease; returns
// the Ready of that win.
Ready ElectWithOldLease(RaftNode& node) {
  node.Tick(At(300));
  node.Advance(node.TakeReady());
  node.Step(Message{1, 0, 1, RequestVoteReply{true, std::chrono::milliseconds(60)}}, At(310));
  Ready ready = node.TakeReady();
  node.Advance(ready);
  return ready;
}

TEST(Lease, NewLeaderWaitsOutTheOldLease) {
  auto created = RaftNode::Create(TestConfig(0, 3), {}, At(0), 1);
  ASSERT_TRUE(created.ok());
  RaftNode& node = **created;
  const Ready ready = ElectWithOldLease(node);
  ASSERT_EQ(node.role(), Role::kLeader);
  bool announced = false;
  for (const Event& e : ready.events) announced |= e.kind == Event::Kind::kWaitingForOldLease;
  EXPECT_TRUE(announced);
  // Follower 1 acknowledges the NO-OP at once.
  AppendEntriesReply ack;
  ack.success = true;
  ack.match_index = 1;
  ack.echoed_sent_at = At(310);
  node.Step(Message{1, 0, 1, ack}, At(311));
  EXPECT_EQ(node.commit_index(), 0u) << "committed while an old lease may still be served";
  EXPECT_EQ(node.LeaseRead(At(311)).refusal, ReadRefusal::kWaitingForOldLease);
  // 60 ms on the voter's clock is 60 × 1.01/0.99 ≈ 61.2 ms on ours, from receipt at 310.
  node.Tick(At(371));
  EXPECT_EQ(node.LeaseRead(At(371)).refusal, ReadRefusal::kWaitingForOldLease);
  EXPECT_EQ(node.commit_index(), 0u);
  // Keep the lease renewed, then pass the wait.
  ack.echoed_sent_at = At(372);
  node.Step(Message{1, 0, 1, ack}, At(372));
  node.Tick(At(372));
  EXPECT_EQ(node.commit_index(), 1u);
  node.Advance(node.TakeReady());  // applies the NO-OP
  EXPECT_TRUE(node.LeaseRead(At(373)).ok());
}

// An acknowledgement counts toward the lease only if its request left while this node led: a
// follower that rejects an AppendEntries of an older term (this node's own, sent while it led an
// earlier term, arriving late) records no lease for it, yet echoes its send time in a reply that
// carries the current term.
TEST(Lease, EchoesFromBeforeLeadershipDoNotCount) {
  auto created = RaftNode::Create(TestConfig(0, 3), {}, At(0), 1);
  ASSERT_TRUE(created.ok());
  RaftNode& node = **created;
  ElectWithOldLease(node);
  ASSERT_EQ(node.role(), Role::kLeader);
  AppendEntriesReply stale;
  stale.success = false;
  stale.rejected_prev_index = 0;
  stale.echoed_sent_at = At(305);  // sent before this node became leader at 310
  node.Step(Message{1, 0, 1, stale}, At(312));
  node.Advance(node.TakeReady());
  // Past the old lease (≈ 371), no one has acknowledged anything sent in this term.
  node.Tick(At(372));
  EXPECT_EQ(node.LeaseRemaining(At(372)), Duration(0)) << "a lease dated from before leadership";
  EXPECT_FALSE(node.CurrentLeaseWindow().has_value());
}

// The leader's lease runs from the send time of the newest round a majority acknowledged, for
// lease_duration × (1-d)/(1+d); without renewal it stops serving reads, then steps down.
TEST(Lease, LeaseIsDatedFromSendTimeAndExpiresWithoutRenewal) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  const RaftNode& node = cluster.node(leader);
  const TimePoint cut = cluster.now();
  auto isolate = [&](const Message& m) { return m.from == leader || m.to == leader; };
  // The last acknowledged round left at or before `cut`; 80 ms × 0.99/1.01 ≈ 78.4 ms later the
  // lease is gone even though acks arrived after the send.
  cluster.Run(78, isolate);
  EXPECT_TRUE(node.LeaseRead(cluster.now()).ok() || node.role() != Role::kLeader);
  cluster.Run(2, isolate);
  EXPECT_FALSE(node.LeaseRead(cluster.now()).ok());
  EXPECT_LE(cluster.now() - cut, std::chrono::milliseconds(81));
  EXPECT_EQ(node.role(), Role::kFollower) << "a leader that cannot renew its lease steps down";
  EXPECT_GE(cluster.CountEvents(Event::Kind::kLeaseRenewalFailed), 1);
}

// A leader serves lease reads only once its NO-OP is applied (thesis §6.4): before that it may
// not know the latest committed entries.
TEST(Lease, NoReadsBeforeTheNoopIsApplied) {
  TestCluster cluster(3);
  cluster.Run(300, [](const Message& m) {
    // Let the election through, but no AppendEntries: the NO-OP cannot commit.
    return std::holds_alternative<AppendEntries>(m.body);
  });
  auto leader = cluster.Leader();
  ASSERT_TRUE(leader.has_value());
  const LeaseReadResult read = cluster.node(*leader).LeaseRead(cluster.now());
  EXPECT_FALSE(read.ok());
}

// Followers refuse lease reads and point at the leader.
TEST(Lease, FollowersRedirectReads) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  const LeaseReadResult read = cluster.node((leader + 1) % 3).LeaseRead(cluster.now());
  EXPECT_EQ(read.refusal, ReadRefusal::kNotLeader);
  EXPECT_EQ(read.leader_hint, leader);
}

// A leader that steps down remembers its own lease and reports it to the next candidate.
TEST(Lease, DeposedLeaderReportsItsOwnLease) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  const Duration remaining = cluster.node(leader).LeaseRemaining(cluster.now());
  ASSERT_GT(remaining.count(), 0);
  const NodeId candidate = (leader + 1) % 3;
  cluster.in_flight().clear();
  cluster.Step(Message{candidate, leader, cluster.node(leader).term() + 1, RequestVote{100, 100}});
  std::optional<Duration> reported;
  for (const Message& m : cluster.in_flight()) {
    if (const auto* reply = std::get_if<RequestVoteReply>(&m.body))
      reported = reply->old_lease_remaining;
  }
  ASSERT_TRUE(reported.has_value()) << "no vote reply";
  EXPECT_GE(*reported, remaining);
}

}  // namespace
}  // namespace raftkv::raft::testing

// Log replication and commitment: Raft §5.3, §5.4.2, batching and pipelining.
#include "tests/raft/test_cluster.h"

namespace raftkv::raft::testing {
namespace {

bool IsAppend(const Message& m) { return std::holds_alternative<AppendEntries>(m.body); }

// §5.3: entries proposed to the leader reach every follower and are applied everywhere, in the
// same order, exactly once.
TEST(Replication, CommittedEntriesAreAppliedEverywhereInOrder) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(cluster.Propose(leader, "cmd" + std::to_string(i)).accepted);
  }
  cluster.Process(leader);
  cluster.Run(50);
  for (NodeId id = 0; id < 3; ++id) {
    std::vector<std::string> commands;
    LogIndex expected_index = 1;
    for (const Entry& entry : cluster.applied(id)) {
      EXPECT_EQ(entry.index, expected_index++) << "applied out of order or twice";
      if (entry.type == EntryType::kCommand) commands.push_back(Payload(entry));
    }
    ASSERT_EQ(commands.size(), 20u) << "node " << id;
    EXPECT_EQ(commands.front(), "cmd0");
    EXPECT_EQ(commands.back(), "cmd19");
  }
}

// Followers refuse proposals and name the leader.
TEST(Replication, FollowerRefusesProposalWithLeaderHint) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  const NodeId follower = (leader + 1) % 3;
  ProposeResult result = cluster.Propose(follower, "x");
  EXPECT_FALSE(result.accepted);
  EXPECT_EQ(result.leader_hint, leader);
}

// Batching: proposals made together travel together, in one AppendEntries per follower.
TEST(Replication, ConcurrentProposalsShareOneAppendEntries) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  cluster.Run(30);
  for (int i = 0; i < 100; ++i) cluster.Propose(leader, "v");
  cluster.RecordReadies();
  cluster.Process(leader);
  const Ready ready = cluster.TakeReadies(leader).at(0);
  int appends = 0;
  for (const Message& m : ready.messages) {
    if (!IsAppend(m)) continue;
    ++appends;
    EXPECT_EQ(std::get<AppendEntries>(m.body).entries.size(), 100u);
  }
  EXPECT_EQ(appends, 2);
  EXPECT_EQ(ready.entries.size(), 100u) << "the leader persists the batch with one write";
}

// Pipelining: the leader keeps up to max_inflight_appends requests in flight per follower without
// waiting for answers, and no more.
TEST(Replication, PipelineIsBoundedByInflightWindow) {
  TestCluster cluster(3, [](RaftConfig& c) {
    c.max_entries_per_append = 2;
    c.max_inflight_appends = 3;
  });
  const NodeId leader = cluster.ElectLeader();
  cluster.Run(30);
  for (int i = 0; i < 20; ++i) cluster.Propose(leader, "v");
  cluster.RecordReadies();
  cluster.Process(leader);
  int appends_to_one_peer = 0;
  const NodeId peer = (leader + 1) % 3;
  for (const Ready& ready : cluster.TakeReadies(leader)) {
    for (const Message& m : ready.messages) appends_to_one_peer += IsAppend(m) && m.to == peer;
  }
  EXPECT_EQ(appends_to_one_peer, 3) << "no replies were delivered: the window stays full";
}

// The leader counts itself toward a majority only for entries on its own disk (§5.3 with the
// thesis §10.2.1 parallel write): before Advance() nothing commits even if followers acked.
TEST(Replication, LeaderCountsItselfOnlyAfterPersisting) {
  auto created = RaftNode::Create(TestConfig(0, 1), {}, At(0), 1);
  ASSERT_TRUE(created.ok());
  RaftNode& node = **created;
  node.Tick(At(300));  // alone, it elects itself and appends its NO-OP
  while (node.HasReady()) node.Advance(node.TakeReady());
  ASSERT_EQ(node.role(), Role::kLeader);
  const ProposeResult proposal = node.Propose("x", At(301));
  Ready ready = node.TakeReady();
  EXPECT_LT(node.commit_index(), proposal.index);
  node.Advance(ready);
  EXPECT_EQ(node.commit_index(), proposal.index);
}

// §5.3: a follower with a conflicting suffix truncates it and takes the leader's entries; fast
// back-off skips a whole conflicting term per round trip.
TEST(Replication, ConflictingSuffixIsReplacedWithFewRoundTrips) {
  TestCluster cluster(3);
  NodeId leader = cluster.ElectLeader();
  cluster.Run(30);
  // Isolate the leader and let it append 50 entries nobody else sees.
  const NodeId old_leader = leader;
  for (int i = 0; i < 50; ++i) cluster.Propose(old_leader, "lost");
  cluster.Process(old_leader);
  auto isolate = [&](const Message& m) { return m.from == old_leader || m.to == old_leader; };
  cluster.Run(400, isolate);
  leader = *cluster.Leader();
  ASSERT_NE(leader, old_leader);
  for (int i = 0; i < 5; ++i) cluster.Propose(leader, "kept");
  cluster.Process(leader);
  cluster.Run(20, isolate);
  // Heal: count the AppendEntries rejections the old leader sends while converging.
  int rejections = 0;
  auto count = [&](const Message& m) {
    if (const auto* reply = std::get_if<AppendEntriesReply>(&m.body)) {
      // Consistency-check rejections carry a conflict index; stale-term ones do not.
      rejections += !reply->success && reply->conflict_index != 0 && m.from == old_leader;
    }
    return false;
  };
  cluster.Run(1000, count);  // the old leader may have raised its term: allow a re-election
  leader = *cluster.Leader();
  EXPECT_LE(rejections, 3) << "back-off went one entry at a time";
  const RaftLog& fixed = cluster.node(old_leader).log();
  const RaftLog& good = cluster.node(leader).log();
  ASSERT_EQ(fixed.LastIndex(), good.LastIndex());
  for (LogIndex i = 1; i <= good.LastIndex(); ++i) EXPECT_EQ(fixed.At(i), good.At(i));
  for (const Entry& entry : cluster.applied(old_leader)) EXPECT_NE(Payload(entry), "lost");
}

// §5.4.2: "Raft never commits log entries from previous terms by counting replicas." A new
// leader whose old-term entry sits on a majority still commits nothing until an entry of its
// own term (its NO-OP) reaches a majority.
TEST(Replication, OldTermEntryIsNotCommittedByCountingReplicas) {
  RaftConfig config = TestConfig(0, 3);
  RecoveredState recovered;
  recovered.hard_state = HardState{2, kNoNode, 0};
  recovered.log = RaftLog({Entry{2, 1, EntryType::kCommand, "old"}});
  auto created = RaftNode::Create(config, recovered, At(0), 3);
  ASSERT_TRUE(created.ok());
  RaftNode& node = **created;
  node.Tick(At(300));  // candidate, term 3
  Ready ready = node.TakeReady();
  node.Advance(ready);
  node.Step(Message{1, 0, 3, RequestVoteReply{true, Duration(0)}}, At(301));
  ready = node.TakeReady();  // leader: NO-OP at index 2
  node.Advance(ready);
  ASSERT_EQ(node.role(), Role::kLeader);
  // Follower 1 acknowledges index 1 only (the old entry): a majority holds it, but it is old.
  AppendEntriesReply ack;
  ack.success = true;
  ack.match_index = 1;
  ack.echoed_sent_at = At(301);
  node.Step(Message{1, 0, 3, ack}, At(302));
  EXPECT_EQ(node.commit_index(), 0u);
  // Once the NO-OP (term 3) is on a majority, both commit together.
  ack.match_index = 2;
  node.Step(Message{1, 0, 3, ack}, At(303));
  EXPECT_EQ(node.commit_index(), 2u);
}

// A peer request the core will not act on (here: misaddressed) is answered "no reply" at once and
// takes no reply slot, so the next real reply still goes back on the RPC it answers.
TEST(Replication, IgnoredRequestsTakeNoReplySlot) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  const NodeId follower = (leader + 1) % 3;
  std::vector<std::optional<Message>> replies;
  auto collect = [&](std::optional<Message> reply) { replies.push_back(std::move(reply)); };
  AppendEntries heartbeat;
  heartbeat.prev_log_index = cluster.node(follower).log().LastIndex();
  heartbeat.prev_log_term = cluster.node(follower).log().LastTerm();
  heartbeat.lease_duration = std::chrono::milliseconds(80);
  const Term term = cluster.node(leader).term();
  cluster.replica(follower).StepRequest(Message{follower, follower, term, heartbeat}, collect,
                                        cluster.now());
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_FALSE(replies[0].has_value());
  cluster.replica(follower).StepRequest(Message{leader, follower, term, heartbeat}, collect,
                                        cluster.now());
  cluster.Process(follower);
  ASSERT_EQ(replies.size(), 2u);
  ASSERT_TRUE(replies[1].has_value());
  EXPECT_TRUE(std::get<AppendEntriesReply>(replies[1]->body).success);
}

// InstallSnapshot travels as messages both ways: one that comes as an RPC is answered "no reply"
// at once and takes no slot, so the next AppendEntries reply still pairs with its own request.
TEST(Replication, ASnapshotChunkTakesNoReplySlot) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  const NodeId follower = (leader + 1) % 3;
  std::vector<std::optional<Message>> replies;
  auto collect = [&](std::optional<Message> reply) { replies.push_back(std::move(reply)); };
  const Term term = cluster.node(leader).term();
  InstallSnapshot chunk;
  chunk.snapshot = SnapshotMeta{1, term, 3, 4};
  chunk.length = 2;
  chunk.data = "ab";
  chunk.lease_duration = std::chrono::milliseconds(80);
  cluster.replica(follower).StepRequest(Message{leader, follower, term, chunk}, collect,
                                        cluster.now());
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_FALSE(replies[0].has_value());
  AppendEntries heartbeat;
  heartbeat.prev_log_index = cluster.node(follower).log().LastIndex();
  heartbeat.prev_log_term = cluster.node(follower).log().LastTerm();
  heartbeat.lease_duration = std::chrono::milliseconds(80);
  cluster.replica(follower).StepRequest(Message{leader, follower, term, heartbeat}, collect,
                                        cluster.now());
  cluster.Process(follower);
  ASSERT_EQ(replies.size(), 2u);
  ASSERT_TRUE(replies[1].has_value());
  EXPECT_TRUE(std::holds_alternative<AppendEntriesReply>(replies[1]->body));
}

}  // namespace
}  // namespace raftkv::raft::testing

namespace raftkv::raft::testing {
namespace {

// A forged AppendEntries in the current term, naming the real leader, with an entry that conflicts
// with a committed one (Leader Completeness, §5.4.3, says no correct leader sends it): refused,
// the log left as it is, and the node alive (it used to abort on its invariant).
TEST(Replication, AnEntryConflictingWithACommittedOneIsRefusedNotApplied) {
  TestCluster cluster(3);
  const NodeId first = cluster.ElectLeader();
  for (int i = 0; i < 3; ++i) cluster.Propose(first, "real" + std::to_string(i));
  cluster.Process(first);
  cluster.Run(50);
  // A new term, so that the committed entries are from an earlier one.
  cluster.Crash(first);
  const NodeId leader = cluster.ElectLeader();
  cluster.Run(50);
  const NodeId follower = 3 - first - leader;
  const LogIndex committed = cluster.node(follower).commit_index();
  ASSERT_GE(committed, 3u);
  const Term term = cluster.node(follower).term();
  const Entry before = cluster.node(follower).log().At(2);
  AppendEntries forged;
  forged.prev_log_index = 1;
  forged.prev_log_term = cluster.node(follower).log().TermAt(1);
  // In the current term: it differs from the committed entry's.
  forged.entries = {Entry{term, 2, EntryType::kCommand, kv::EncodeSet({"forged", "value", 0, 0})}};
  ASSERT_NE(before.term, term) << "the test needs a committed entry from an earlier term";
  forged.leader_commit = committed;
  forged.lease_duration = std::chrono::milliseconds(400);
  forged.sent_at = cluster.now();
  cluster.in_flight().clear();
  cluster.Step(Message{leader, follower, term, forged});
  EXPECT_EQ(cluster.node(follower).log().At(2), before);
  EXPECT_EQ(cluster.node(follower).commit_index(), committed);
  bool refused = false;
  for (const Message& m : cluster.in_flight()) {
    if (const auto* reply = std::get_if<AppendEntriesReply>(&m.body)) refused = !reply->success;
  }
  EXPECT_TRUE(refused);
  cluster.Run(50);  // and the cluster carries on
  EXPECT_TRUE(cluster.Propose(leader, "after").accepted);
}

// A forged AppendEntries in the current term from a node that is not the leader this follower
// knows for it (Election Safety, §5.2: at most one leader per term): refused as impossible, the
// follower keeps its leader, and it is alive. It used to take the second "leader" and trip its
// own invariant (fuzz_peer_message found it, through InstallSnapshot).
TEST(Replication, ASecondLeaderInAKnownLeadersTermIsRefused) {
  TestCluster cluster(3);
  const NodeId leader = cluster.ElectLeader();
  cluster.Run(50);
  const NodeId follower = (leader + 1) % 3;
  const NodeId impostor = (leader + 2) % 3;
  const Term term = cluster.node(follower).term();
  ASSERT_EQ(cluster.node(follower).leader_id(), leader);
  AppendEntries forged;
  forged.prev_log_index = cluster.node(follower).log().LastIndex();
  forged.prev_log_term = cluster.node(follower).log().TermAt(forged.prev_log_index);
  forged.lease_duration = std::chrono::milliseconds(400);
  forged.sent_at = cluster.now();
  cluster.in_flight().clear();
  cluster.Step(Message{impostor, follower, term, forged});
  EXPECT_EQ(cluster.node(follower).leader_id(), leader);
  bool refused_as_impossible = false;
  for (const Message& m : cluster.in_flight()) {
    if (const auto* reply = std::get_if<AppendEntriesReply>(&m.body)) {
      refused_as_impossible = !reply->success && reply->impossible;
    }
  }
  EXPECT_TRUE(refused_as_impossible);
  InstallSnapshot chunk;
  chunk.snapshot = SnapshotMeta{forged.prev_log_index + 10, term, 3, 4};
  chunk.data = "abcd";
  chunk.done = true;
  chunk.sent_at = cluster.now();
  cluster.Step(Message{impostor, follower, term, chunk});
  EXPECT_EQ(cluster.node(follower).leader_id(), leader);
  cluster.Run(50);  // and the cluster carries on
  EXPECT_TRUE(cluster.Propose(leader, "after").accepted);
}

}  // namespace
}  // namespace raftkv::raft::testing

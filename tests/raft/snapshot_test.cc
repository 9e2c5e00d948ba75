// InstallSnapshot at the level of one core (Raft §7): what a follower does with chunks, and what
// no message from another node may do to it.
#include "tests/raft/test_cluster.h"

namespace raftkv::raft::testing {
namespace {

std::vector<Entry> Noops(LogIndex from, LogIndex to, Term term) {
  std::vector<Entry> entries;
  for (LogIndex i = from; i <= to; ++i) entries.push_back(Entry{term, i, EntryType::kNoop, {}});
  return entries;
}

// Follower 1 of 3, term 1, log 1..5, commit 2.
std::unique_ptr<RaftNode> Follower() {
  auto node = RaftNode::Create(
      TestConfig(1, 3), RecoveredState{HardState{1, kNoNode, 2}, {}, RaftLog(Noops(1, 5, 1))},
      At(0), 1);
  EXPECT_TRUE(node.ok()) << node.status();
  return std::move(*node);
}

Message Chunk(const SnapshotMeta& meta, uint64_t offset, std::string data) {
  InstallSnapshot chunk;
  chunk.snapshot = meta;
  chunk.offset = offset;
  chunk.length = data.size();
  chunk.done = offset + data.size() == meta.bytes;
  chunk.data = std::move(data);
  chunk.lease_duration = std::chrono::milliseconds(100);
  return Message{0, 1, 1, chunk};
}

std::vector<InstallSnapshotReply> SnapshotReplies(const Ready& ready) {
  std::vector<InstallSnapshotReply> out;
  for (const Message& m : ready.messages_after_persist) {
    if (const auto* reply = std::get_if<InstallSnapshotReply>(&m.body)) out.push_back(*reply);
  }
  return out;
}

// The last chunk of a snapshot at index 4 arrives, and in the same turn the leader's
// AppendEntries commits up to 5. Installing the snapshot now would throw away entries 5 applied
// on top of the state: the core answers "installed" instead and hands out no install.
TEST(InstallSnapshot, ASnapshotOvertakenByTheCommitIndexInTheSameTurnIsNotInstalled) {
  auto node = Follower();
  const SnapshotMeta meta{4, 1, 3, 10};
  node->Step(Chunk(meta, 0, "0123456789"), At(1));
  AppendEntries append;
  append.prev_log_index = 5;
  append.prev_log_term = 1;
  append.leader_commit = 5;
  append.lease_duration = std::chrono::milliseconds(100);
  node->Step(Message{0, 1, 1, append}, At(2));
  Ready ready = node->TakeReady();
  EXPECT_FALSE(ready.snapshot_to_install.has_value());
  ASSERT_FALSE(ready.committed_entries.empty());
  EXPECT_EQ(ready.committed_entries.back().index, 5u) << "entries up to 5 are applied";
  const std::vector<InstallSnapshotReply> replies = SnapshotReplies(ready);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(replies[0].installed);
  EXPECT_EQ(replies[0].match_index, 4u);
  node->Advance(ready);
  EXPECT_EQ(node->log().LastIndex(), 5u) << "the log is untouched";
}

// The ordinary case: a snapshot past the commit index is written chunk by chunk, installed once
// the driver says the file checked out, and the log after it is kept when it holds its entry.
TEST(InstallSnapshot, ChunksAreWrittenThenInstalledKeepingTheMatchingSuffix) {
  auto node = Follower();
  const SnapshotMeta meta{4, 1, 3, 10};
  node->Step(Chunk(meta, 0, "01234"), At(1));
  node->Step(Chunk(meta, 7, "789"), At(2));  // a gap: refused, says what it holds
  node->Step(Chunk(meta, 5, "56789"), At(3));
  Ready ready = node->TakeReady();
  EXPECT_EQ(ready.snapshot_chunks.size(), 2u);
  ASSERT_TRUE(ready.snapshot_to_install.has_value());
  const std::vector<InstallSnapshotReply> replies = SnapshotReplies(ready);
  ASSERT_EQ(replies.size(), 2u) << "the last chunk is answered after the install";
  EXPECT_EQ(replies[1].received, 5u);
  node->Advance(ready);
  node->SnapshotInstalled(true, At(4));
  EXPECT_EQ(node->log().BaseIndex(), 4u);
  EXPECT_EQ(node->log().LastIndex(), 5u);
  EXPECT_EQ(node->commit_index(), 4u);
  ready = node->TakeReady();
  ASSERT_EQ(SnapshotReplies(ready).size(), 1u);
  EXPECT_TRUE(SnapshotReplies(ready)[0].installed);
  node->Advance(ready);
}

// A snapshot at an index no cluster reaches is refused like an absurd term: it would overflow
// the log's arithmetic later.
TEST(InstallSnapshot, AnAbsurdIndexIsRefused) {
  auto node = Follower();
  node->Step(Chunk(SnapshotMeta{~LogIndex{0} - 1, 1, 3, 4}, 0, "abcd"), At(1));
  Ready ready = node->TakeReady();
  EXPECT_TRUE(ready.snapshot_chunks.empty());
  EXPECT_FALSE(ready.snapshot_to_install.has_value());
  node->Advance(ready);
}

// A forged AppendEntries rejection naming an index past the leader's log must not move the
// leader's next index there (it would then look up a term it does not have, and stop).
TEST(Replication, ARejectionPastTheLeadersLogIsIgnored) {
  auto made = RaftNode::Create(TestConfig(0, 3), {}, At(0), 1);
  ASSERT_TRUE(made.ok());
  RaftNode& leader = **made;
  leader.Campaign(At(1));
  leader.Advance(leader.TakeReady());
  leader.Step(Message{1, 0, 1, RequestVoteReply{true, {}}}, At(2));
  ASSERT_EQ(leader.role(), Role::kLeader);
  leader.Advance(leader.TakeReady());
  AppendEntriesReply ack;
  ack.success = true;
  ack.match_index = leader.log().LastIndex();
  leader.Step(Message{1, 0, 1, ack}, At(3));
  leader.Advance(leader.TakeReady());
  AppendEntriesReply forged;
  forged.rejected_prev_index = 1000;
  forged.conflict_index = 1000;
  leader.Step(Message{1, 0, 1, forged}, At(4));
  leader.Propose("x", At(5));
  leader.Advance(leader.TakeReady());  // sends to node 1: must not abort
  SUCCEED();
}

}  // namespace
}  // namespace raftkv::raft::testing

// The leader's view of one follower (raft/progress.h) as a state machine: its transitions, one
// table row at a time (etcd's tracker/progress.go is the model).
#include "raft/progress.h"

#include <gtest/gtest.h>

namespace raftkv::raft {
namespace {

TimePoint At(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

// Probe: one request at a time, from next_index.
TEST(Progress, ProbeSendsOneAtATime) {
  Progress p;
  p.next_index = 5;
  EXPECT_TRUE(p.CanSend(8));
  p.Sent(7, At(1));  // a probe carrying 5..7
  EXPECT_FALSE(p.CanSend(8)) << "one probe outstanding at a time";
  EXPECT_EQ(p.next_index, 5u) << "a probe does not move next_index";
  p.ProbeAnswered();
  EXPECT_TRUE(p.CanSend(8));
}

// A success that shows where the logs match turns a probe into a pipeline.
TEST(Progress, AcknowledgementMovesToReplicate) {
  struct Case {
    LogIndex match_before, next_before, acked;
    Progress::Mode mode_after;
    LogIndex match_after, next_after;
  } cases[] = {
      {0, 5, 7, Progress::Mode::kReplicate, 7, 8},  // the probe matched: pipeline from 8
      {0, 5, 4, Progress::Mode::kReplicate, 4, 5},  // matched just below next: pipeline from 5
      {6, 7, 3, Progress::Mode::kReplicate, 6, 7},  // a stale ack never lowers match
  };
  for (const Case& c : cases) {
    Progress p;
    p.match_index = c.match_before;
    p.next_index = c.next_before;
    p.Acknowledged(c.acked);
    EXPECT_EQ(p.mode, c.mode_after);
    EXPECT_EQ(p.match_index, c.match_after);
    EXPECT_EQ(p.next_index, c.next_after);
  }
}

// Replicate: up to max_inflight requests, each advancing next_index; acknowledgements free room.
TEST(Progress, PipelineIsBoundedAndFreedByAcknowledgements) {
  Progress p;
  p.Acknowledged(4);  // replicate from 5
  ASSERT_EQ(p.mode, Progress::Mode::kReplicate);
  p.Sent(6, At(1));
  p.Sent(8, At(2));
  EXPECT_EQ(p.next_index, 9u);
  EXPECT_FALSE(p.CanSend(2)) << "two in flight, window of two";
  EXPECT_TRUE(p.CanSend(3));
  p.Acknowledged(6);
  EXPECT_TRUE(p.CanSend(2));
  EXPECT_EQ(p.inflight.size(), 1u);
}

// A rejection matters only if it answers what we are waiting for; then back to probing, never
// below what is known to match.
TEST(Progress, RejectionsBackOffUnlessSuperseded) {
  Progress p;
  p.Acknowledged(10);  // replicate from 11
  EXPECT_FALSE(p.RejectionIsNews(9)) << "older than what is known to match";
  EXPECT_TRUE(p.RejectionIsNews(12));
  p.BackOff(5);
  EXPECT_EQ(p.mode, Progress::Mode::kProbe);
  EXPECT_EQ(p.next_index, 11u) << "never below match_index + 1";
  Progress q;
  q.next_index = 20;
  EXPECT_FALSE(q.RejectionIsNews(15)) << "a probe waits for the answer to its own prev index";
  EXPECT_TRUE(q.RejectionIsNews(19));
  q.BackOff(12);
  EXPECT_EQ(q.next_index, 12u);
}

// A pipeline whose oldest request has gone unanswered for `patience` falls back to probing.
TEST(Progress, StalledPipelineFallsBackToProbe) {
  Progress p;
  p.Acknowledged(3);
  p.Sent(5, At(100));
  EXPECT_FALSE(p.Stalled(At(149), std::chrono::milliseconds(50)));
  EXPECT_TRUE(p.Stalled(At(150), std::chrono::milliseconds(50)));
  p.BecomeProbe();
  EXPECT_EQ(p.next_index, 4u);
  EXPECT_TRUE(p.inflight.empty());
}

// Lease acknowledgements: only echoes of requests sent while leading, never from the future,
// and only forward.
TEST(Progress, LeaseAcknowledgementsOnlyMoveForward) {
  Progress p;
  const TimePoint leader_since = At(100);
  p.RecordAck(At(90), leader_since, At(120));
  EXPECT_FALSE(p.acked_sent_at.has_value()) << "sent before this node led";
  p.RecordAck(At(130), leader_since, At(120));
  EXPECT_FALSE(p.acked_sent_at.has_value()) << "from the future";
  p.RecordAck(At(110), leader_since, At(120));
  EXPECT_EQ(p.acked_sent_at, At(110));
  p.RecordAck(At(105), leader_since, At(121));
  EXPECT_EQ(p.acked_sent_at, At(110)) << "never back";
}

// A snapshot transfer moves only on news: a reply that repeats what was acknowledged (an answer
// to a heartbeat chunk, or to a chunk that came after a lost one) does not resend the window;
// a lost chunk is resent when the transfer stalls. Fewer bytes than acknowledged means the
// follower started over.
TEST(Progress, SnapshotTransferRewindsOnlyWhenTheFollowerStartedOver) {
  struct Case {
    uint64_t acked_before, sent_before, received;
    uint64_t acked_after, sent_after;
  } cases[] = {
      {0, 400, 100, 100, 400},    // in order: acknowledged, nothing resent
      {100, 400, 100, 100, 400},  // no news: a repeat
      {300, 400, 0, 0, 0},        // the follower started over: from 0
      {100, 400, 400, 400, 400},  // all of it
  };
  for (const Case& c : cases) {
    Progress p;
    p.StartSnapshot(SnapshotMeta{10, 2, 3, 400}, At(0));
    p.snapshot_acked = c.acked_before;
    p.snapshot_sent = c.sent_before;
    p.SnapshotReceived(c.received, At(1), At(1));
    EXPECT_EQ(p.snapshot_acked, c.acked_after) << c.received;
    EXPECT_EQ(p.snapshot_sent, c.sent_after) << c.received;
  }
}

// Chunks and their replies are separate calls that may overtake each other: a reply to an older
// chunk saying less than a newer one acknowledged is late, not a follower starting over.
TEST(Progress, ALateSnapshotReplyDoesNotRewindTheTransfer) {
  Progress p;
  p.StartSnapshot(SnapshotMeta{10, 2, 3, 400}, At(0));
  p.snapshot_sent = 400;
  p.SnapshotReceived(300, At(3), At(4));  // the reply to the chunk sent at 3
  p.SnapshotReceived(100, At(1), At(5));  // the reply to the chunk sent at 1, overtaken
  EXPECT_EQ(p.snapshot_acked, 300u);
  EXPECT_EQ(p.snapshot_sent, 400u);
  p.SnapshotReceived(0, At(6), At(7));  // a newer reply: the follower started over
  EXPECT_EQ(p.snapshot_acked, 0u);
  EXPECT_EQ(p.snapshot_sent, 0u);
}

}  // namespace
}  // namespace raftkv::raft

#include "kv/kv_state_machine.h"

#include <gtest/gtest.h>

#include "common/rng.h"
#include "kv/command.h"

namespace raftkv::kv {
namespace {

TEST(Command, EncodeDecodeRoundTripsArbitraryBytes) {
  Rng rng(5);
  for (int i = 0; i < 1000; ++i) {
    SetCommand command;
    for (uint64_t n = rng.Below(40); n > 0; --n) command.key.push_back(char(rng.Below(256)));
    for (uint64_t n = rng.Below(200); n > 0; --n) command.value.push_back(char(rng.Below(256)));
    command.client_id = rng.Next();
    command.sequence = rng.Below(1'000'000);
    auto decoded = DecodeSet(EncodeSet(command));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, command);
  }
}

TEST(Command, DecodeRejectsTruncatedOrTrailingBytes) {
  const std::string good = EncodeSet({"key", "value", 7, 3});
  for (size_t length = 0; length < good.size(); ++length) {
    EXPECT_FALSE(DecodeSet(good.substr(0, length)).ok()) << length;
  }
  EXPECT_FALSE(DecodeSet(good + "x").ok());
}

// Raft thesis §6.3: a retried request with the same (client, sequence) is applied once.
TEST(KvStateMachine, RetriedSetIsAppliedOnce) {
  KvStateMachine sm;
  EXPECT_EQ(sm.ApplySet({"a", "1", 9, 1}, 1), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"a", "2", 9, 2}, 2), ApplyOutcome::kApplied);
  // The retry of sequence 1 arrives late: it must not bring "1" back.
  EXPECT_EQ(sm.ApplySet({"a", "1", 9, 1}, 3), ApplyOutcome::kDuplicate);
  EXPECT_EQ(sm.Get("a"), "2");
  // Requests out of order within a session (many in flight) are each applied once.
  EXPECT_EQ(sm.ApplySet({"b", "x", 9, 5}, 4), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"b", "y", 9, 4}, 5), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"b", "x", 9, 5}, 6), ApplyOutcome::kDuplicate);
  EXPECT_EQ(sm.Get("b"), "y");
  // The version counts applied SETs only: the three duplicates above left it alone.
  EXPECT_EQ(sm.Find("a")->version, 2u);
  EXPECT_EQ(sm.Find("b")->version, 2u);
  EXPECT_EQ(sm.Find("missing"), nullptr);
}

TEST(KvStateMachine, NoSessionMeansNoDeduplication) {
  KvStateMachine sm;
  EXPECT_EQ(sm.ApplySet({"a", "1", 0, 0}, 1), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"a", "1", 0, 0}, 2), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.Get("missing"), std::nullopt);
}

// Sessions are bounded; eviction is decided by log position, so every replica evicts the same one.
// A request from an evicted session (sequence > 1) is refused rather than risk a double apply.
TEST(KvStateMachine, LeastRecentlyUsedSessionIsEvictedDeterministically) {
  KvStateMachine sm(/*max_sessions=*/2);
  EXPECT_EQ(sm.ApplySet({"k", "a", 1, 1}, 1), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"k", "b", 2, 1}, 2), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"k", "c", 1, 2}, 3), ApplyOutcome::kApplied);  // session 1 used last
  EXPECT_EQ(sm.ApplySet({"k", "d", 3, 1}, 4), ApplyOutcome::kApplied);  // evicts session 2
  EXPECT_EQ(sm.session_count(), 2u);
  EXPECT_EQ(sm.ApplySet({"k", "e", 2, 2}, 5), ApplyOutcome::kSessionExpired);
  EXPECT_EQ(sm.Get("k"), "d");
  EXPECT_EQ(sm.ApplySet({"k", "f", 1, 3}, 6), ApplyOutcome::kApplied);
}

}  // namespace
}  // namespace raftkv::kv

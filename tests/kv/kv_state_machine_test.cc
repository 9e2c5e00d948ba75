#include "kv/kv_state_machine.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

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
  EXPECT_EQ(sm.Find("missing"), std::nullopt);
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

// Values are stored with their keys in one block: growing, shrinking, emptying and rewriting a
// value in place, with arbitrary bytes, must behave like a plain map.
TEST(KvStateMachine, StoreBehavesLikeAMapOfStrings) {
  KvStateMachine sm;
  std::map<std::string, StoredValue> model;
  Rng rng(3);
  const auto random_bytes = [&rng](uint64_t max_size) {
    std::string bytes;
    for (uint64_t n = rng.Below(max_size + 1); n > 0; --n) bytes.push_back(char(rng.Below(256)));
    return bytes;
  };
  std::vector<std::string> keys;
  for (int i = 0; i < 50; ++i) keys.push_back(random_bytes(20) + std::to_string(i));
  for (uint64_t index = 1; index <= 20'000; ++index) {
    const std::string& key = keys[rng.Below(keys.size())];
    // Sizes repeat often, so in-place rewrites happen as well as reallocations.
    const std::string value =
        rng.Below(3) == 0 ? random_bytes(300) : std::string(rng.Below(4), 'x');
    ASSERT_EQ(sm.ApplySet({key, value, 0, 0}, index), ApplyOutcome::kApplied);
    StoredValue& expected = model[key];
    expected.value = value;
    ++expected.version;
    const std::optional<StoredValue> found = sm.Find(key);
    ASSERT_TRUE(found.has_value());
    ASSERT_EQ(found->value, expected.value);
    ASSERT_EQ(found->version, expected.version);
  }
  EXPECT_EQ(sm.size(), model.size());
  for (const auto& [key, expected] : model) EXPECT_EQ(sm.Get(key), expected.value);
  EXPECT_EQ(sm.Find("not a key"), std::nullopt);
}

// The session keeps a watermark plus the out-of-order sequences above it; checked against the
// plain definition (applied iff seen before or out of the window below the highest) on random
// arrival orders with retries, gaps and sequences that never come.
TEST(KvStateMachine, SessionDeduplicationMatchesTheDefinition) {
  constexpr uint64_t kWindow = KvStateMachine::kSequenceWindow;
  Rng rng(11);
  for (int round = 0; round < 20; ++round) {
    KvStateMachine sm;
    std::set<uint64_t> seen;
    uint64_t highest = 0;
    uint64_t log_index = 0;
    uint64_t next = 1;
    // Sequence 1 opens the session; then mostly in order, with reordering, retries of old
    // sequences (some far out of the window) and skipped ones.
    ASSERT_EQ(sm.ApplySet({"k", "v", 7, 1}, ++log_index), ApplyOutcome::kApplied);
    seen.insert(1);
    highest = 1;
    next = 2;
    for (int i = 0; i < 20'000; ++i) {
      uint64_t sequence;
      const uint64_t dice = rng.Below(100);
      if (dice < 70) {
        sequence = next++;
      } else if (dice < 80) {
        sequence = next + rng.Below(20);  // ahead: arrives before those below it
      } else if (dice < 90) {
        sequence = 1 + rng.Below(next);  // a retry of something recent or old
      } else if (dice < 95 && highest > kWindow) {
        sequence = highest - kWindow + rng.Below(3);  // at the window's edge
      } else {
        next += 1 + rng.Below(3 * kWindow / 2);  // the client gave up on a range
        sequence = next++;
      }
      const bool duplicate = sequence + kWindow <= highest || seen.count(sequence) > 0;
      const ApplyOutcome outcome = sm.ApplySet({"k", "v", 7, sequence}, ++log_index);
      ASSERT_EQ(outcome, duplicate ? ApplyOutcome::kDuplicate : ApplyOutcome::kApplied)
          << "round " << round << " step " << i << " sequence " << sequence;
      if (!duplicate) {
        seen.insert(sequence);
        highest = std::max(highest, sequence);
      }
    }
  }
}

}  // namespace
}  // namespace raftkv::kv

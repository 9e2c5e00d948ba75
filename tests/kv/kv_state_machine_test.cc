#include "kv/kv_state_machine.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
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
    command.client_id = rng.Next() | 1;
    command.sequence = rng.Below(1'000'000);
    command.legacy_session = rng.Below(2) == 0;
    auto decoded = DecodeCommand(EncodeSet(command));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(std::get<SetCommand>(*decoded), command);
    const OpenSessionCommand open{rng.Next(), rng.Next(), rng.Next()};
    auto decoded_open = DecodeCommand(EncodeOpenSession(open));
    ASSERT_TRUE(decoded_open.ok());
    EXPECT_EQ(std::get<OpenSessionCommand>(*decoded_open), open);
  }
}

TEST(Command, DecodeRejectsTruncatedOrTrailingBytes) {
  for (const std::string& good :
       {EncodeSet({"key", "value", 7, 3}), EncodeOpenSession({1'700'000'000'000, 100, 60'000})}) {
    for (size_t length = 0; length < good.size(); ++length) {
      EXPECT_FALSE(DecodeCommand(good.substr(0, length)).ok()) << length;
    }
    EXPECT_FALSE(DecodeCommand(good + "x").ok());
  }
  EXPECT_FALSE(DecodeCommand("X").ok());
  // Without a session, a SET of either age means the same.
  auto sessionless = DecodeCommand(EncodeSet({"k", "v", 0, 0, /*legacy_session=*/true}));
  ASSERT_TRUE(sessionless.ok());
  EXPECT_FALSE(std::get<SetCommand>(*sessionless).legacy_session);
}

// A log index past every session id the tests open, for SETs whose index does not matter.
constexpr uint64_t kLater = 1'000'000;

// An OPEN-SESSION as a leader at `time_ms` would propose it, with room for `capacity` sessions
// and eviction after `idle_ms`.
OpenSessionCommand Open(uint64_t time_ms, uint64_t capacity = 100, uint64_t idle_ms = 1000) {
  return OpenSessionCommand{time_ms, capacity, idle_ms};
}

// Raft thesis §6.3: a retried request with the same (client, sequence) is applied once.
TEST(KvStateMachine, RetriedSetIsAppliedOnce) {
  KvStateMachine sm;
  ASSERT_EQ(sm.ApplyOpenSession(Open(0), 9), OpenOutcome::kOpened);  // client id 9
  EXPECT_EQ(sm.ApplySet({"a", "1", 9, 1}, kLater), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"a", "2", 9, 2}, kLater), ApplyOutcome::kApplied);
  // The retry of sequence 1 arrives late: it must not bring "1" back.
  EXPECT_EQ(sm.ApplySet({"a", "1", 9, 1}, kLater), ApplyOutcome::kDuplicate);
  EXPECT_EQ(sm.Get("a"), "2");
  // Requests out of order within a session (many in flight) are each applied once.
  EXPECT_EQ(sm.ApplySet({"b", "x", 9, 5}, kLater), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"b", "y", 9, 4}, kLater), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"b", "x", 9, 5}, kLater), ApplyOutcome::kDuplicate);
  EXPECT_EQ(sm.Get("b"), "y");
  // The version counts applied SETs only: the three duplicates above left it alone.
  EXPECT_EQ(sm.Find("a")->version, 2u);
  EXPECT_EQ(sm.Find("b")->version, 2u);
  EXPECT_EQ(sm.Find("missing"), std::nullopt);
}

TEST(KvStateMachine, NoSessionMeansNoDeduplication) {
  KvStateMachine sm;
  EXPECT_EQ(sm.ApplySet({"a", "1", 0, 0}, kLater), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"a", "1", 0, 0}, kLater), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.Find("a")->version, 2u);
}

// Defect 5, first half: a session is created only by OPEN-SESSION, so the retry of a first SET
// whose session was evicted in between is refused instead of re-creating the session and
// applying the SET a second time.
TEST(KvStateMachine, UnknownSessionIsRefusedAtEverySequence) {
  KvStateMachine sm;
  ASSERT_EQ(sm.ApplyOpenSession(Open(0, /*capacity=*/1, /*idle_ms=*/10), 1), OpenOutcome::kOpened);
  EXPECT_EQ(sm.ApplySet({"x", "v", 1, 1}, kLater), ApplyOutcome::kApplied);
  // Session 1 was used after the open at 0 s, so the next open counts it as used then: the table
  // is full. It then idles past the timeout, and a third client's session takes its place.
  ASSERT_EQ(sm.ApplyOpenSession(Open(50, 1, 10), 2), OpenOutcome::kTableFull);
  ASSERT_EQ(sm.ApplyOpenSession(Open(100, 1, 10), 3), OpenOutcome::kOpened);
  EXPECT_FALSE(sm.HasSession(1));
  EXPECT_EQ(sm.ApplySet({"x", "v", 1, 1}, kLater), ApplyOutcome::kSessionExpired);  // the retry
  EXPECT_EQ(sm.Find("x")->version, 1u);
  EXPECT_EQ(sm.ApplySet({"y", "v", 12345, 1}, kLater), ApplyOutcome::kSessionExpired);  // no such
  // An id the log has not reached cannot have been opened (a client inventing ids).
  EXPECT_EQ(sm.ApplySet({"y", "v", 0xfeedbeef, 1}, 500), ApplyOutcome::kNeverOpened);
  EXPECT_EQ(sm.ApplySet({"y", "v", 500, 1}, 500), ApplyOutcome::kNeverOpened);
  EXPECT_EQ(sm.Find("y"), std::nullopt);
}

// Logs written before OPEN-SESSION existed replay as they were applied then: sequence 1 of an
// unknown session opens it.
TEST(KvStateMachine, LegacySetsReplayByTheRulesOfTheirTime) {
  KvStateMachine sm;
  uint64_t index = 0;
  EXPECT_EQ(sm.ApplySet({"x", "a", 8121, 1, true}, ++index), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"x", "a", 8121, 1, true}, ++index), ApplyOutcome::kDuplicate);
  EXPECT_EQ(sm.ApplySet({"x", "b", 8121, 2, true}, ++index), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"y", "c", 999, 2, true}, ++index), ApplyOutcome::kSessionExpired);
  // No bound on sequences then: a jump was applied, and must replay so.
  EXPECT_EQ(sm.ApplySet({"x", "c", 8121, 100'000, true}, ++index), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.Find("x")->version, 3u);
  // Beyond that version's default capacity, the least recently used (in log order) went.
  for (uint64_t id = 1; id <= KvStateMachine::kLegacyMaxSessions; ++id) {
    ASSERT_EQ(sm.ApplySet({"z", "v", 1'000'000 + id, 1, true}, ++index), ApplyOutcome::kApplied);
  }
  EXPECT_EQ(sm.ApplySet({"x", "d", 8121, 100'001, true}, ++index), ApplyOutcome::kSessionExpired)
      << "8121 was the least recently used";
  EXPECT_EQ(sm.ApplySet({"z", "v", 1'000'002, 2, true}, ++index), ApplyOutcome::kApplied);
  // Legacy ids and sessions opened now never mix, even when the numbers meet.
  ASSERT_EQ(sm.ApplyOpenSession(Open(0), 5), OpenOutcome::kOpened);
  EXPECT_EQ(sm.ApplySet({"w", "v", 5, 1}, ++index), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.session_count(), 1u);
}

// Defect 5, second half: a sequence far ahead of the session is refused, so it cannot turn every
// later SET into a silent "duplicate".
TEST(KvStateMachine, SequenceFarAheadIsRefusedAndLaterSetsApply) {
  KvStateMachine sm;
  ASSERT_EQ(sm.ApplyOpenSession(Open(0), 1), OpenOutcome::kOpened);
  EXPECT_EQ(sm.ApplySet({"x", "a", 1, 1}, kLater), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"x", "b", 1, UINT64_MAX}, kLater), ApplyOutcome::kSequenceTooFar);
  EXPECT_EQ(sm.ApplySet({"x", "c", 1, 2 + KvStateMachine::kSequenceWindow}, kLater),
            ApplyOutcome::kSequenceTooFar);
  EXPECT_EQ(sm.ApplySet({"x", "c", 1, 1 + KvStateMachine::kSequenceWindow}, kLater),
            ApplyOutcome::kApplied);  // exactly the window ahead is allowed
  EXPECT_EQ(sm.ApplySet({"x", "d", 1, 2}, kLater), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.ApplySet({"x", "e", 1, 3}, kLater), ApplyOutcome::kApplied);
  EXPECT_EQ(sm.Get("x"), "e");
}

// The table never evicts a session used within the idle timeout, in log time: a client opening
// sessions in a loop fills the free places and is then refused, and everyone else keeps theirs.
TEST(KvStateMachine, OpeningInALoopCannotEvictActiveSessions) {
  KvStateMachine sm;
  constexpr uint64_t kCapacity = 10, kIdle = 60'000;
  uint64_t index = 0;
  std::vector<uint64_t> others;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(sm.ApplyOpenSession(Open(1000, kCapacity, kIdle), ++index), OpenOutcome::kOpened);
    others.push_back(index);
  }
  int opened = 0, refused = 0;
  for (uint64_t t = 1000; t < 31'000; t += 10) {  // 3,000 opens in 30 s of log time
    const OpenOutcome outcome = sm.ApplyOpenSession(Open(t, kCapacity, kIdle), ++index);
    (outcome == OpenOutcome::kOpened ? opened : refused)++;
    if (t % 5000 == 0) {  // the others keep working, now and then
      for (uint64_t id : others)
        ASSERT_EQ(sm.ApplySet({"k", "v", id, t / 5000}, kLater), ApplyOutcome::kApplied);
    }
  }
  EXPECT_EQ(opened, 5);
  EXPECT_EQ(refused, 2995);
  for (uint64_t id : others) EXPECT_TRUE(sm.HasSession(id)) << id;
  // A minute of log time later, the loop's idle sessions make room; the others, still in use, stay.
  for (uint64_t id : others)
    ASSERT_EQ(sm.ApplySet({"k", "v", id, 7}, kLater), ApplyOutcome::kApplied);
  ASSERT_EQ(sm.ApplyOpenSession(Open(95'000, kCapacity, kIdle), ++index), OpenOutcome::kOpened);
  for (uint64_t id : others) EXPECT_TRUE(sm.HasSession(id)) << id;
  EXPECT_EQ(sm.session_count(), kCapacity);
}

// Log time comes from the entries only and never goes back, whatever a new leader's clock says;
// a session used between two OPEN-SESSIONs counts as used at the later one.
TEST(KvStateMachine, LogTimeNeverDecreasesAndUseCountsAtTheNextOpen) {
  KvStateMachine sm;
  ASSERT_EQ(sm.ApplyOpenSession(Open(10'000, 2, 1000), 1), OpenOutcome::kOpened);
  ASSERT_EQ(sm.ApplyOpenSession(Open(5'000, 2, 1000), 2), OpenOutcome::kOpened);  // clock behind
  EXPECT_EQ(sm.log_time_ms(), 10'000u);
  EXPECT_EQ(sm.ApplySet({"k", "v", 1, 1}, kLater), ApplyOutcome::kApplied);
  // At 10.9 s, session 1 was used (at most 0.9 s ago) and session 2 has been idle 0.9 s: full.
  EXPECT_EQ(sm.ApplyOpenSession(Open(10'900, 2, 1000), 3), OpenOutcome::kTableFull);
  // At 11 s session 2 (idle since 10 s) goes; session 1 counts as used at 10.9 s and stays.
  EXPECT_EQ(sm.ApplyOpenSession(Open(11'000, 2, 1000), 4), OpenOutcome::kOpened);
  EXPECT_TRUE(sm.HasSession(1));
  EXPECT_FALSE(sm.HasSession(2));
  EXPECT_TRUE(sm.HasSession(4));
}

// The table against a plain model of its rules, written the slow and obvious way, over random
// interleavings of opens, SETs (in and out of order, retries, unknown and evicted sessions) and
// leaders' clocks that jump back and forth. Two state machines given the same entries must also
// agree: what an entry does depends on nothing else.
TEST(KvStateMachine, SessionTableMatchesTheModel) {
  struct ModelSession {
    std::set<uint64_t> applied;
    uint64_t highest = 0;
    std::optional<uint64_t> last_used_ms;  // nullopt: used since the last open
  };
  Rng rng(17);
  for (int round = 0; round < 20; ++round) {
    KvStateMachine sm, twin;
    std::map<uint64_t, ModelSession> model;
    uint64_t log_time = 0, index = 0;
    std::vector<uint64_t> ids;  // every id ever opened, evicted or not
    const uint64_t capacity = 1 + rng.Below(6), idle = 1 + rng.Below(50);
    for (int step = 0; step < 5000; ++step) {
      ++index;
      if (ids.empty() || rng.Below(10) == 0) {
        uint64_t time = 100 + log_time + rng.Below(20);
        if (rng.Below(5) == 0) time -= rng.Below(100);  // a new leader whose clock is behind
        const OpenSessionCommand open{time, capacity, idle};
        const OpenOutcome outcome = sm.ApplyOpenSession(open, index);
        ASSERT_EQ(twin.ApplyOpenSession(open, index), outcome);
        log_time = std::max(log_time, time);
        for (auto& [id, session] : model) {
          if (!session.last_used_ms) session.last_used_ms = log_time;
        }
        while (model.size() >= capacity) {
          auto oldest = model.begin();
          for (auto it = model.begin(); it != model.end(); ++it) {
            if (std::pair(*it->second.last_used_ms, it->first) <
                std::pair(*oldest->second.last_used_ms, oldest->first)) {
              oldest = it;
            }
          }
          if (log_time - *oldest->second.last_used_ms < idle) break;
          model.erase(oldest);
        }
        const bool room = model.size() < capacity;
        ASSERT_EQ(outcome, room ? OpenOutcome::kOpened : OpenOutcome::kTableFull) << step;
        if (room) {
          model[index].last_used_ms = log_time;
          ids.push_back(index);
        }
        continue;
      }
      const uint64_t id = rng.Below(20) == 0 ? 424242 : ids[rng.Below(ids.size())];
      auto it = model.find(id);
      const uint64_t highest = it == model.end() ? 0 : it->second.highest;
      const uint64_t sequence =
          rng.Below(8) == 0
              ? 1 + rng.Below(highest + 2 * KvStateMachine::kSequenceWindow)
              : 1 + highest + rng.Below(3) - rng.Below(std::min<uint64_t>(highest, 3) + 1);
      const SetCommand set{"k", std::to_string(index), id, sequence};
      const ApplyOutcome outcome = sm.ApplySet(set, index);
      ASSERT_EQ(twin.ApplySet(set, index), outcome);
      ApplyOutcome expected;
      if (it == model.end()) {
        expected = id >= index ? ApplyOutcome::kNeverOpened : ApplyOutcome::kSessionExpired;
      } else if (sequence + KvStateMachine::kSequenceWindow <= highest ||
                 it->second.applied.count(sequence) > 0) {
        expected = ApplyOutcome::kDuplicate;
      } else if (sequence > highest + KvStateMachine::kSequenceWindow) {
        expected = ApplyOutcome::kSequenceTooFar;
      } else {
        expected = ApplyOutcome::kApplied;
      }
      ASSERT_EQ(outcome, expected) << "round " << round << " step " << step << " seq " << sequence;
      if (expected == ApplyOutcome::kApplied || expected == ApplyOutcome::kDuplicate) {
        it->second.last_used_ms.reset();
      }
      if (expected == ApplyOutcome::kApplied) {
        it->second.applied.insert(sequence);
        it->second.highest = std::max(highest, sequence);
      }
    }
    EXPECT_EQ(sm.session_count(), model.size());
    EXPECT_EQ(sm.Get("k"), twin.Get("k"));
    EXPECT_EQ(sm.Find("k")->version, twin.Find("k")->version);
  }
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
    ASSERT_EQ(sm.ApplySet({key, value, 0, 0}, kLater), ApplyOutcome::kApplied);
    (void)index;
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
    uint64_t next = 1;
    // Mostly in order, with reordering, retries of old sequences (some far out of the window),
    // skipped ones and some too far ahead.
    ASSERT_EQ(sm.ApplyOpenSession(Open(0), 7), OpenOutcome::kOpened);
    ASSERT_EQ(sm.ApplySet({"k", "v", 7, 1}, kLater), ApplyOutcome::kApplied);
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
      const bool too_far = sequence > highest + kWindow;
      const ApplyOutcome outcome = sm.ApplySet({"k", "v", 7, sequence}, kLater);
      ASSERT_EQ(outcome, duplicate ? ApplyOutcome::kDuplicate
                         : too_far ? ApplyOutcome::kSequenceTooFar
                                   : ApplyOutcome::kApplied)
          << "round " << round << " step " << i << " sequence " << sequence;
      if (too_far) next = highest + 1 + rng.Below(kWindow);  // the client starts over within reach
      if (!duplicate && !too_far) {
        seen.insert(sequence);
        highest = std::max(highest, sequence);
      }
    }
  }
}

}  // namespace
}  // namespace raftkv::kv

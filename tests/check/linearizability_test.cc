#include "check/linearizability.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace raftkv::check {
namespace {

using Value = std::optional<std::string>;

Operation Write(uint64_t id, std::string key, Value value, int64_t invoke, int64_t complete,
                Outcome outcome = Outcome::kOk, uint32_t client = 0) {
  return Operation{id,     client,   OpKind::kWrite, std::move(key), std::move(value),
                   invoke, complete, outcome};
}

Operation Read(uint64_t id, std::string key, Value value, int64_t invoke, int64_t complete,
               Outcome outcome = Outcome::kOk, uint32_t client = 0) {
  return Operation{id,     client,   OpKind::kRead, std::move(key), std::move(value),
                   invoke, complete, outcome};
}

bool Contains(const std::vector<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

TEST(LinearizabilityTest, EmptyHistoryIsLinearizable) {
  const CheckResult result = CheckLinearizable({});
  EXPECT_TRUE(result.linearizable);
  EXPECT_FALSE(result.inconclusive);
}

TEST(LinearizabilityTest, SequentialWriteThenRead) {
  const CheckResult result = CheckLinearizable(
      {Read(1, "x", std::nullopt, 0, 5), Write(2, "x", "a", 10, 20), Read(3, "x", "a", 30, 40)});
  EXPECT_TRUE(result.linearizable) << result.explanation;
}

TEST(LinearizabilityTest, StaleReadAfterCompletedWriteIsViolation) {
  const CheckResult result = CheckLinearizable(
      {Write(1, "x", "a", 0, 10), Write(2, "x", "b", 20, 30), Read(3, "x", "a", 40, 50, {}, 7)});
  ASSERT_FALSE(result.linearizable);
  EXPECT_FALSE(result.inconclusive);
  EXPECT_EQ(result.key, "x");
  EXPECT_NE(result.explanation.find("op 3 (client 7, read \"a\""), std::string::npos)
      << result.explanation;
  EXPECT_NE(result.explanation.find("could hold \"a\""), std::string::npos) << result.explanation;
  EXPECT_NE(result.explanation.find("op 2 (client 0, write \"b\""), std::string::npos)
      << result.explanation;
  EXPECT_NE(result.explanation.find("first read that cannot be linearized"), std::string::npos);
  EXPECT_EQ(result.window, (std::vector<uint64_t>{1, 2, 3}));
}

TEST(LinearizabilityTest, ConcurrentWriteAndReadMaySeeEitherValue) {
  for (const Value& seen : {Value("a"), Value("b")}) {
    const CheckResult result = CheckLinearizable(
        {Write(1, "x", "a", 0, 10), Write(2, "x", "b", 20, 60), Read(3, "x", seen, 30, 50)});
    EXPECT_TRUE(result.linearizable) << result.explanation;
  }
}

TEST(LinearizabilityTest, TouchingIntervalsAreConcurrent) {
  EXPECT_TRUE(CheckLinearizable({Write(1, "x", "a", 0, 10), Read(2, "x", std::nullopt, 10, 20)})
                  .linearizable);
  EXPECT_FALSE(CheckLinearizable({Write(1, "x", "a", 0, 10), Read(2, "x", std::nullopt, 11, 20)})
                   .linearizable);
}

TEST(LinearizabilityTest, ConcurrentWritesOrderMustBeConsistent) {
  const std::vector<Operation> base = {Write(1, "x", "a", 0, 100), Write(2, "x", "b", 0, 100),
                                       Read(3, "x", "a", 150, 160)};
  EXPECT_TRUE(CheckLinearizable(base).linearizable);
  std::vector<Operation> flipped = base;
  flipped.push_back(Read(4, "x", "b", 170, 180));
  const CheckResult result = CheckLinearizable(flipped);
  EXPECT_FALSE(result.linearizable);
  EXPECT_TRUE(Contains(result.window, 3) || Contains(result.window, 4)) << result.explanation;
}

TEST(LinearizabilityTest, ReadOfNeverWrittenValueIsViolation) {
  const CheckResult result =
      CheckLinearizable({Write(1, "x", "a", 0, 10), Read(2, "x", "zzz", 20, 30)});
  ASSERT_FALSE(result.linearizable);
  EXPECT_NE(result.explanation.find("no write"), std::string::npos) << result.explanation;
  EXPECT_EQ(result.window, (std::vector<uint64_t>{2}));
}

TEST(LinearizabilityTest, ReadOfFailedWriteIsViolation) {
  const CheckResult result =
      CheckLinearizable({Write(1, "x", "a", 0, 10, Outcome::kFail), Read(2, "x", "a", 20, 30)});
  ASSERT_FALSE(result.linearizable);
  EXPECT_NE(result.explanation.find("failed"), std::string::npos) << result.explanation;
}

TEST(LinearizabilityTest, ReadFromTheFutureIsViolation) {
  const CheckResult result =
      CheckLinearizable({Read(1, "x", "a", 0, 10), Write(2, "x", "a", 20, 30)});
  ASSERT_FALSE(result.linearizable);
  EXPECT_NE(result.explanation.find("before any write"), std::string::npos) << result.explanation;
}

TEST(LinearizabilityTest, ReadAbsentAfterCompletedWriteIsViolation) {
  const CheckResult result =
      CheckLinearizable({Write(1, "x", "a", 0, 10), Read(2, "x", std::nullopt, 20, 30)});
  ASSERT_FALSE(result.linearizable);
  EXPECT_NE(result.explanation.find("op 2 (client 0, read absent"), std::string::npos)
      << result.explanation;
  EXPECT_TRUE(Contains(result.window, 2));
}

TEST(LinearizabilityTest, FailedAndIndeterminateReadsAreIgnored) {
  const CheckResult result =
      CheckLinearizable({Write(1, "x", "a", 0, 10), Read(2, "x", "junk", 20, 30, Outcome::kFail),
                         Read(3, "x", std::nullopt, 20, 30, Outcome::kIndeterminate)});
  EXPECT_TRUE(result.linearizable) << result.explanation;
}

TEST(LinearizabilityTest, IndeterminateWriteObservedLaterIsOk) {
  const CheckResult result = CheckLinearizable(
      {Write(1, "x", "a", 0, 10), Write(2, "x", "b", 20, 0, Outcome::kIndeterminate),
       Read(3, "x", "a", 30, 40), Read(4, "x", "b", 1000, 1010)});
  EXPECT_TRUE(result.linearizable) << result.explanation;
}

TEST(LinearizabilityTest, IndeterminateWriteNeverObservedIsOk) {
  const CheckResult result = CheckLinearizable(
      {Write(1, "x", "a", 0, 10), Write(2, "x", "b", 20, 0, Outcome::kIndeterminate),
       Read(3, "x", "a", 30, 40), Read(4, "x", "a", 1000, 1010)});
  EXPECT_TRUE(result.linearizable) << result.explanation;
}

TEST(LinearizabilityTest, IndeterminateWriteObservedThenOldValueIsViolation) {
  const CheckResult result = CheckLinearizable(
      {Write(1, "x", "a", 0, 10), Write(2, "x", "b", 20, 0, Outcome::kIndeterminate),
       Read(3, "x", "b", 30, 40), Read(4, "x", "a", 50, 60)});
  ASSERT_FALSE(result.linearizable);
  EXPECT_TRUE(Contains(result.window, 4)) << result.explanation;
}

TEST(LinearizabilityTest, IndeterminateDeleteIsOptional) {
  // A delete has no unique value, so it keeps an infinite interval and may never happen.
  const std::vector<Operation> base = {Write(1, "x", "a", 0, 10),
                                       Write(2, "x", std::nullopt, 20, 0, Outcome::kIndeterminate)};
  std::vector<Operation> never = base;
  never.push_back(Read(3, "x", "a", 100, 110));
  EXPECT_TRUE(CheckLinearizable(never).linearizable);
  std::vector<Operation> happened = base;
  happened.push_back(Read(3, "x", std::nullopt, 100, 110));
  EXPECT_TRUE(CheckLinearizable(happened).linearizable);
  happened.push_back(Read(4, "x", "a", 120, 130));
  EXPECT_FALSE(CheckLinearizable(happened).linearizable);
}

TEST(LinearizabilityTest, KeysAreIndependent) {
  // Interleaved in time, but a read of "y" does not see writes of "x".
  const CheckResult ok = CheckLinearizable(
      {Write(1, "x", "a", 0, 10), Read(2, "y", std::nullopt, 20, 30), Write(3, "y", "b", 40, 50),
       Read(4, "x", "a", 60, 70), Read(5, "y", "b", 60, 70)});
  EXPECT_TRUE(ok.linearizable) << ok.explanation;
  const CheckResult bad = CheckLinearizable(
      {Write(1, "x", "a", 0, 10), Read(2, "x", "a", 20, 30), Read(3, "y", "a", 20, 30)});
  ASSERT_FALSE(bad.linearizable);
  EXPECT_EQ(bad.key, "y");
}

TEST(LinearizabilityTest, BudgetExhaustionIsInconclusive) {
  CheckOptions options;
  options.max_states_per_key = 1;
  const CheckResult result = CheckLinearizable(
      {Write(1, "x", "a", 0, 10), Write(2, "x", "b", 0, 10), Read(3, "x", "b", 20, 30)}, options);
  EXPECT_TRUE(result.linearizable);
  EXPECT_TRUE(result.inconclusive);
  EXPECT_EQ(result.key, "x");
  EXPECT_FALSE(result.explanation.empty());
}

// Deterministic generator (splitmix64), so failures reproduce from the seed alone.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int64_t Uniform(int64_t lo, int64_t hi) {  // inclusive
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool Chance(int percent) { return Uniform(0, 99) < percent; }

 private:
  uint64_t state_;
};

// Clients issue ops back to back; each op takes effect on a simulated register at a random
// point inside its interval, so the history is linearizable by construction.
std::vector<Operation> GenerateHistory(uint64_t seed, int clients, int ops_per_client, int keys) {
  Rng rng(seed);
  std::vector<Operation> ops;
  std::vector<int64_t> points;
  std::vector<bool> applies;
  for (int c = 0; c < clients; ++c) {
    int64_t now = rng.Uniform(0, 50);
    for (int j = 0; j < ops_per_client; ++j) {
      Operation op;
      op.id = ops.size();
      op.client = static_cast<uint32_t>(c);
      op.kind = rng.Chance(40) ? OpKind::kWrite : OpKind::kRead;
      op.key = "k" + std::to_string(rng.Uniform(0, keys - 1));
      op.invoke_ns = now + rng.Uniform(0, 20);
      op.complete_ns = op.invoke_ns + rng.Uniform(0, 100);
      now = op.complete_ns;
      const int roll = static_cast<int>(rng.Uniform(0, 99));
      op.outcome = roll < 5 ? Outcome::kFail : roll < 12 ? Outcome::kIndeterminate : Outcome::kOk;
      if (op.kind == OpKind::kWrite) op.value = "v" + std::to_string(op.id);
      points.push_back(rng.Uniform(op.invoke_ns, op.complete_ns));
      applies.push_back(op.kind == OpKind::kWrite && op.outcome != Outcome::kFail &&
                        (op.outcome == Outcome::kOk || rng.Chance(50)));
      ops.push_back(op);
    }
  }
  std::vector<size_t> order(ops.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return points[a] < points[b]; });
  std::map<std::string, Value> registers;
  for (size_t i : order) {
    Operation& op = ops[i];
    if (applies[i]) registers[op.key] = op.value;
    if (op.kind == OpKind::kRead) {
      op.value = op.outcome == Outcome::kOk ? registers[op.key] : Value("garbage");
    }
  }
  return ops;
}

// Makes one read return a value that was provably overwritten before the read began: the old
// write completed before the new write was invoked, which completed before the read was invoked.
// Picks the earliest such read, or the latest one (which makes refutation explore the most).
// Returns the corrupted read's id, or nullopt if the history has no such triple.
std::optional<uint64_t> CorruptWithStaleRead(std::vector<Operation>* history, bool latest) {
  auto ok_write = [](const Operation& op) {
    return op.kind == OpKind::kWrite && op.outcome == Outcome::kOk;
  };
  std::vector<Operation*> reads;
  for (Operation& op : *history) {
    if (op.kind == OpKind::kRead && op.outcome == Outcome::kOk) reads.push_back(&op);
  }
  std::stable_sort(reads.begin(), reads.end(), [&](const Operation* a, const Operation* b) {
    return latest ? a->invoke_ns > b->invoke_ns : a->invoke_ns < b->invoke_ns;
  });
  for (Operation* read_ptr : reads) {
    Operation& read = *read_ptr;
    for (const Operation& newer : *history) {
      if (!ok_write(newer) || newer.key != read.key || newer.complete_ns >= read.invoke_ns)
        continue;
      for (const Operation& older : *history) {
        if (!ok_write(older) || older.key != read.key || older.complete_ns >= newer.invoke_ns) {
          continue;
        }
        read.value = older.value;
        return read.id;
      }
    }
  }
  return std::nullopt;
}

// Reference semantics by exhaustive search over orders of small single-key histories: every kOk
// op plus any subset of indeterminate writes, respecting real time and the register.
bool BruteForceLinearizable(const std::vector<Operation>& history) {
  std::vector<const Operation*> ops;
  for (const Operation& op : history) {
    if (op.outcome == Outcome::kOk || (op.kind == OpKind::kWrite && op.outcome != Outcome::kFail)) {
      ops.push_back(&op);
    }
  }
  auto end_of = [](const Operation& op) {
    return op.outcome == Outcome::kOk ? op.complete_ns : std::numeric_limits<int64_t>::max();
  };
  std::vector<bool> used(ops.size(), false);
  // Depth-first over orders: the next op must not have to follow an op that is still unused.
  auto extend = [&](auto& self, const Value& state) -> bool {
    bool all_required_done = true;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (!used[i] && ops[i]->outcome == Outcome::kOk) all_required_done = false;
    }
    if (all_required_done) return true;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (used[i]) continue;
      bool minimal = true;
      for (size_t j = 0; j < ops.size(); ++j) {
        if (!used[j] && j != i && ops[j]->outcome == Outcome::kOk &&
            end_of(*ops[j]) < ops[i]->invoke_ns) {
          minimal = false;
        }
      }
      const bool is_write = ops[i]->kind == OpKind::kWrite;
      if (!minimal || (!is_write && ops[i]->value != state)) continue;
      used[i] = true;
      const bool found = self(self, is_write ? ops[i]->value : state);
      used[i] = false;
      if (found) return true;
    }
    return false;
  };
  return extend(extend, std::nullopt);
}

TEST(LinearizabilityTest, AgreesWithBruteForceOnSmallRandomHistories) {
  Rng rng(7);
  int violations = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<Operation> history;
    const int n = static_cast<int>(rng.Uniform(1, 7));
    for (int i = 0; i < n; ++i) {
      Operation op;
      op.id = static_cast<uint64_t>(i);
      op.kind = rng.Chance(50) ? OpKind::kWrite : OpKind::kRead;
      op.key = "x";
      const int64_t v = rng.Uniform(-1, n - 1);  // reads may name any op's value
      if (op.kind == OpKind::kWrite) {
        op.value = rng.Chance(10) ? Value() : Value("v" + std::to_string(i));
      } else if (v >= 0) {
        op.value = "v" + std::to_string(v);
      }
      op.invoke_ns = rng.Uniform(0, 20);
      op.complete_ns = op.invoke_ns + rng.Uniform(0, 10);
      const int roll = static_cast<int>(rng.Uniform(0, 99));
      op.outcome = roll < 10 ? Outcome::kFail : roll < 30 ? Outcome::kIndeterminate : Outcome::kOk;
      history.push_back(op);
    }
    const bool expected = BruteForceLinearizable(history);
    violations += expected ? 0 : 1;
    const CheckResult result = CheckLinearizable(history);
    ASSERT_EQ(result.linearizable, expected) << "round " << round << ": " << result.explanation;
    ASSERT_FALSE(result.inconclusive);
  }
  EXPECT_GT(violations, 100);  // the generator must exercise both answers
  EXPECT_LT(violations, 2900);
}

TEST(LinearizabilityTest, RandomLinearizableHistoriesPassAndStaleCorruptionsFail) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    std::vector<Operation> history = GenerateHistory(seed, 4, 60, 2);
    const CheckResult result = CheckLinearizable(history);
    EXPECT_TRUE(result.linearizable) << "seed " << seed << ": " << result.explanation;
    EXPECT_FALSE(result.inconclusive) << "seed " << seed;

    const std::optional<uint64_t> corrupted = CorruptWithStaleRead(&history, seed % 2 == 0);
    ASSERT_TRUE(corrupted.has_value()) << "seed " << seed;
    const CheckResult bad = CheckLinearizable(history);
    EXPECT_FALSE(bad.linearizable) << "seed " << seed << ": corrupted op " << *corrupted;
    EXPECT_FALSE(bad.inconclusive) << "seed " << seed;
    EXPECT_EQ(bad.key, history[*corrupted].key) << "seed " << seed;
    // Every read before the corrupted one is consistent, so bisection must single it out.
    EXPECT_TRUE(Contains(bad.window, *corrupted)) << "seed " << seed << ": " << bad.explanation;
    EXPECT_NE(bad.explanation.find("op " + std::to_string(*corrupted) + " (client"),
              std::string::npos)
        << "seed " << seed << ": " << bad.explanation;
  }
}

TEST(LinearizabilityTest, ManyConcurrentClientsFinish) {
  std::vector<Operation> history = GenerateHistory(42, 8, 250, 3);
  const CheckResult result = CheckLinearizable(history);
  EXPECT_TRUE(result.linearizable) << result.explanation;
  EXPECT_FALSE(result.inconclusive) << result.explanation;

  // Refuting is the expensive direction: every configuration before the stale read is explored.
  ASSERT_TRUE(CorruptWithStaleRead(&history, true).has_value());
  const CheckResult bad = CheckLinearizable(history);
  EXPECT_FALSE(bad.linearizable);
  EXPECT_FALSE(bad.inconclusive) << bad.explanation;
}

}  // namespace
}  // namespace raftkv::check

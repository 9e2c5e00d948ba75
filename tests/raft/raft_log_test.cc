// RaftLog against a plain vector of entries: random appends (payloads from empty to larger than a
// storage chunk), truncations and hand-offs, with every entry, term lookup and slice compared
// after each step.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/rng.h"
#include "raft/raft_log.h"

namespace raftkv::raft {
namespace {

std::string Payload(Rng& rng, LogIndex index) {
  // Mostly small, sometimes empty (NO-OP), sometimes past the 1 MiB chunk size. The bytes differ
  // from one call to the next, so an entry appended again after a truncation is told apart.
  const uint64_t roll = rng.Below(100);
  const size_t size = roll < 10 ? 0 : roll < 97 ? rng.Below(300) : (1 << 20) + rng.Below(1 << 19);
  std::string data(size, static_cast<char>('a' + rng.Below(26)));
  if (!data.empty()) data.front() = static_cast<char>(index % 251);
  if (data.size() > 1) data.back() = static_cast<char>(rng.Below(256));
  return data;
}

// What Slice(from, max_entries, max_bytes) must return: at least one entry, then more while both
// caps hold.
std::vector<Entry> ExpectedSlice(const std::vector<Entry>& model, LogIndex from, size_t max_entries,
                                 size_t max_bytes) {
  std::vector<Entry> out;
  size_t bytes = 0;
  for (LogIndex index = from; index <= model.size(); ++index) {
    const size_t size = model[index - 1].data.size();
    if (!out.empty() && (out.size() >= max_entries || bytes + size > max_bytes)) break;
    bytes += size;
    out.push_back(model[index - 1]);
  }
  return out;
}

void ExpectSame(const RaftLog& log, const std::vector<Entry>& model) {
  ASSERT_EQ(log.LastIndex(), model.size());
  for (LogIndex index = 1; index <= model.size(); ++index) {
    ASSERT_EQ(log.At(index), model[index - 1]) << "index " << index;
    ASSERT_EQ(log.TermAt(index), model[index - 1].term);
  }
  EXPECT_EQ(log.LastTerm(), model.empty() ? 0 : model.back().term);
}

TEST(RaftLog, MatchesAPlainVectorThroughAppendsAndTruncations) {
  Rng rng(20261201);
  std::vector<Entry> recovered;
  for (LogIndex index = 1; index <= 40; ++index) {
    recovered.push_back(Entry{1 + index / 10, index, EntryType::kCommand, Payload(rng, index)});
  }
  RaftLog log(recovered);
  std::vector<Entry> model = recovered;
  ExpectSame(log, model);
  Term term = model.back().term;
  for (int step = 0; step < 400; ++step) {
    if (rng.Chance(0.15) && !model.empty()) {
      const LogIndex from = 1 + rng.Below(model.size());
      log.TruncateFrom(from);
      model.resize(from - 1);
      ++term;  // a new leader's entries follow a truncation
    } else {
      const int count = static_cast<int>(rng.Between(1, 8));
      for (int i = 0; i < count; ++i) {
        const LogIndex index = model.size() + 1;
        Entry entry{term, index, rng.Chance(0.1) ? EntryType::kNoop : EntryType::kCommand,
                    Payload(rng, index)};
        if (entry.type == EntryType::kNoop) entry.data.clear();
        log.Append(entry);
        model.push_back(entry);
      }
    }
    if (rng.Chance(0.3)) {
      (void)log.TakeTruncation();
      const LogIndex first_unsent = log.HandedOutIndex() + 1;
      const std::vector<Entry> unsent = log.TakeUnsent();
      ASSERT_EQ(unsent.size(), model.size() + 1 - first_unsent);
      for (size_t i = 0; i < unsent.size(); ++i) ASSERT_EQ(unsent[i], model[first_unsent - 1 + i]);
      log.MarkHandedOutStable();
      EXPECT_EQ(log.StableIndex(), model.size());
    }
    ExpectSame(log, model);
    if (!model.empty()) {
      const LogIndex from = 1 + rng.Below(model.size());
      ASSERT_EQ(log.Slice(from, 16, 4096), ExpectedSlice(model, from, 16, 4096));
      const std::optional<LogIndex> last = log.LastIndexOfTerm(model[from - 1].term);
      ASSERT_TRUE(last.has_value());
      EXPECT_EQ(model[*last - 1].term, model[from - 1].term);
      EXPECT_TRUE(*last == model.size() || model[*last].term != model[from - 1].term);
    }
  }
}

TEST(RaftLog, TruncatesAtTheStartAndAtAnOversizedEntry) {
  const std::string big((1 << 20) + 5, 'b');
  RaftLog log;
  log.Append(Entry{1, 1, EntryType::kCommand, "one"});
  log.Append(Entry{1, 2, EntryType::kCommand, big});  // its own chunk
  log.Append(Entry{1, 3, EntryType::kCommand, "three"});
  log.TruncateFrom(2);
  log.Append(Entry{2, 2, EntryType::kCommand, "two'"});
  log.Append(Entry{2, 3, EntryType::kCommand, big + "!"});
  EXPECT_EQ(log.At(1).data, "one");
  EXPECT_EQ(log.At(2), (Entry{2, 2, EntryType::kCommand, "two'"}));
  EXPECT_EQ(log.At(3).data, big + "!");
  log.TruncateFrom(1);
  EXPECT_EQ(log.LastIndex(), 0u);
  EXPECT_EQ(log.LastTerm(), 0u);
  EXPECT_FALSE(log.LastIndexOfTerm(1).has_value());
  log.Append(Entry{3, 1, EntryType::kNoop, ""});
  EXPECT_EQ(log.At(1), (Entry{3, 1, EntryType::kNoop, ""}));
  EXPECT_FALSE(log.LastIndexOfTerm(2).has_value()) << "no entry of term 2 is left";
  EXPECT_EQ(log.LastIndexOfTerm(3), std::optional<LogIndex>(1));
}

TEST(RaftLog, HandsOutOnlyWhatIsNew) {
  RaftLog log;
  log.Append(Entry{1, 1, EntryType::kNoop, ""});
  log.Append(Entry{1, 2, EntryType::kCommand, "x"});
  std::vector<Entry> unsent = log.TakeUnsent();
  ASSERT_EQ(unsent.size(), 2u);
  EXPECT_EQ(unsent[1].data, "x");
  EXPECT_TRUE(log.TakeUnsent().empty());
  log.MarkHandedOutStable();
  EXPECT_EQ(log.StableIndex(), 2u);
  log.TruncateFrom(2);
  EXPECT_EQ(log.StableIndex(), 1u);
  EXPECT_EQ(log.TakeTruncation(), std::optional<LogIndex>(2));
  log.Append(Entry{2, 2, EntryType::kCommand, "y"});
  unsent = log.TakeUnsent();
  ASSERT_EQ(unsent.size(), 1u);
  EXPECT_EQ(unsent[0], (Entry{2, 2, EntryType::kCommand, "y"}));
}

}  // namespace
}  // namespace raftkv::raft

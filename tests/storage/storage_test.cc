#include <gtest/gtest.h>

#include <stdlib.h>
#include "tests/common/temp_dir.h"

#include <filesystem>
#include <fstream>

#include "common/escape.h"
#include "common/rng.h"
#include "kv/command.h"
#include "kv/command_text.h"
#include "storage/file_util.h"
#include "storage/log_file.h"
#include "storage/metadata_file.h"

namespace raftkv::storage {
namespace {

// The node's: logs.txt as raftkv writes it.
const EntryCodec kCodec{&kv::FormatCommandText, &kv::ParseCommandText};

using raft::Entry;
using raft::EntryType;

using raftkv::testing::TempDir;

std::string RandomBytes(Rng& rng, size_t max_length) {
  std::string out;
  for (uint64_t n = rng.Below(max_length + 1); n > 0; --n) {
    // Favour the troublesome bytes: space, newline, '%', NUL, high bytes.
    static constexpr char kNasty[] = {' ', '\n', '%', '\0', '\r', '\t', '\xff', '#'};
    out.push_back(rng.Chance(0.3) ? kNasty[rng.Below(sizeof kNasty)] : char(rng.Below(256)));
  }
  return out;
}

Entry Set(LogIndex index, Term term, std::string key, std::string value, uint64_t client = 0,
          uint64_t sequence = 0) {
  return Entry{term, index, EntryType::kCommand,
               kv::EncodeSet({std::move(key), std::move(value), client, sequence})};
}

std::string FileBytes(const std::string& path) { return *ReadWholeFile(path); }

// logs.txt as written by the given writes (each one Append), lines with their checksums.
std::string Written(const std::vector<std::vector<Entry>>& writes) {
  std::string text;
  for (const std::vector<Entry>& write : writes) {
    for (size_t i = 0; i < write.size(); ++i)
      text += *FormatRecord(write[i], i == 0, kCodec) + "\n";
  }
  return text;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(Escape, RoundTripsRandomByteStrings) {
  Rng rng(11);
  for (int i = 0; i < 5000; ++i) {
    const std::string raw = RandomBytes(rng, 64);
    const std::string token = Escape(raw);
    EXPECT_EQ(token.find_first_of(" \n\r\t"), std::string::npos);
    ASSERT_FALSE(token.empty());
    auto back = Unescape(token);
    ASSERT_TRUE(back.ok()) << token;
    EXPECT_EQ(*back, raw);
  }
}

TEST(Escape, PlainWordsStayAsTheyAre) {
  EXPECT_EQ(Escape("Jaggu"), "Jaggu");
  EXPECT_EQ(Escape("name1"), "name1");
  EXPECT_EQ(Escape("hello world"), "hello%20world");
  EXPECT_EQ(Escape("100%"), "100%25");
  EXPECT_EQ(Escape(""), "%");
}

TEST(Escape, RejectsDamagedTokens) {
  for (const char* bad : {"%G1", "%4", "a%", "%%", ""}) EXPECT_FALSE(Unescape(bad).ok()) << bad;
}

TEST(LogLine, MatchesTheSeedExamples) {
  EXPECT_EQ(*FormatEntryLine(Entry{0, 1, EntryType::kNoop, {}}, kCodec), "NO-OP 0");
  EXPECT_EQ(*FormatEntryLine(Set(2, 0, "name1", "Jaggu"), kCodec), "SET name1 Jaggu 0");
  EXPECT_EQ(*FormatEntryLine(Set(3, 4, "k", "", 77, 9), kCodec), "SET k % client=77:9 4");
  EXPECT_EQ(*FormatEntryLine(Entry{4, 5, EntryType::kCommand,
                                   kv::EncodeOpenSession({1764644645123, 100000, 600000})},
                             kCodec),
            "OPEN-SESSION time=1764644645123 max=100000 idle=600000 4");
  // A SET written before OPEN-SESSION existed keeps its form and its meaning.
  auto legacy = ParseEntryLine("SET k v session=8121:3 2", 7, kCodec);
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  EXPECT_EQ(*FormatEntryLine(*legacy, kCodec), "SET k v session=8121:3 2");
  EXPECT_EQ(std::get<kv::SetCommand>(*kv::DecodeCommand(legacy->data)),
            (kv::SetCommand{"k", "v", 8121, 3, /*legacy_session=*/true}));
}

TEST(LogLine, ParsesWhatItFormats) {
  Rng rng(3);
  for (int i = 0; i < 1000; ++i) {
    // client_id 0 means "no session", whose sequence number is meaningless and not stored.
    const uint64_t client = rng.Below(3) * rng.Next();
    const uint64_t sequence = client == 0 ? 0 : rng.Below(1000);
    Entry entry = rng.Chance(0.2) ? Entry{rng.Below(100), 5, EntryType::kNoop, {}}
                                  : Set(5, rng.Below(100), RandomBytes(rng, 20),
                                        RandomBytes(rng, 50), client, sequence);
    if (rng.Chance(0.1)) {
      entry.data = kv::EncodeOpenSession({rng.Next(), rng.Next(), rng.Next()});
      entry.type = EntryType::kCommand;
    }
    auto line = FormatEntryLine(entry, kCodec);
    ASSERT_TRUE(line.ok());
    auto parsed = ParseEntryLine(*line, 5, kCodec);
    ASSERT_TRUE(parsed.ok()) << *line << ": " << parsed.status();
    EXPECT_EQ(*parsed, entry) << *line;
  }
  for (const char* bad :
       {"SET a b", "SET a b c d e f", "NOOP 1", "SET a b x", "NO-OP 1 2", "SET a b session=0:1 1",
        "SET a b client=0:1 1", "SET a b sess=1:1 1", "SET a%2 b 1", "OPEN-SESSION 1",
        "OPEN-SESSION time=1 max=2 1", "OPEN-SESSION time=1 max=2 idle=x 1",
        "OPEN-SESSION idle=1 max=2 time=3 1", ""}) {
    EXPECT_FALSE(ParseEntryLine(bad, 1, kCodec).ok()) << bad;
  }
}

TEST(LogFile, PersistsAndRecovers) {
  TempDir dir;
  std::vector<Entry> entries = {Entry{1, 1, EntryType::kNoop, {}}, Set(2, 1, "a b", "x\ny", 5, 1),
                                Set(3, 2, "%", "", 0, 0)};
  {
    LogFile::Recovered recovered;
    auto log = LogFile::Open(dir.path(), &recovered, kCodec);
    ASSERT_TRUE(log.ok()) << log.status();
    EXPECT_TRUE(recovered.entries.empty());
    ASSERT_TRUE((*log)->Append(entries).ok());
    ASSERT_TRUE((*log)->Sync().ok());
  }
  EXPECT_EQ(FileBytes(dir.path() + "/logs.txt"),
            "NO-OP 1 index=1 crc=3c1561fe\nSET a%20b x%0Ay client=5:1 1 crc=ff657fbf\n"
            "SET %25 % 2 crc=9ce0c00a\n");
  LogFile::Recovered recovered;
  auto log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(recovered.entries, entries);
  EXPECT_TRUE(recovered.warnings.empty());
  EXPECT_EQ((*log)->LastIndex(), 3u);
}

TEST(LogFile, TornTailIsDroppedWithAWarning) {
  TempDir dir;
  WriteBytes(dir.path() + "/logs.txt", "NO-OP 1\nSET a b 1\nSET c d");
  LogFile::Recovered recovered;
  auto log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(recovered.entries.size(), 2u);
  ASSERT_EQ(recovered.warnings.size(), 1u);
  EXPECT_NE(recovered.warnings[0].find("logs.txt:3"), std::string::npos);
  // The torn bytes are gone, and new entries start on a clean line.
  ASSERT_TRUE((*log)->Append({Set(3, 1, "e", "f")}).ok());
  ASSERT_TRUE((*log)->Sync().ok());
  log->reset();
  // (A file written before checksums takes checksummed lines after its own.)
  EXPECT_EQ(FileBytes(dir.path() + "/logs.txt"),
            "NO-OP 1\nSET a b 1\n" + Written({{Set(3, 1, "e", "f")}}));
}

TEST(LogFile, RunsPreallocatedAndClosesAsPlainText) {
  TempDir dir;
  const std::string path = dir.path() + "/logs.txt";
  LogFile::Recovered recovered;
  auto log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE((*log)->Append({Entry{1, 1, EntryType::kNoop, {}}, Set(2, 1, "a", "b")}).ok());
  ASSERT_TRUE((*log)->Sync().ok());
  // While open, the file is grown ahead of the entries: text, then zero bytes.
  const std::string running = FileBytes(path);
  const std::string text = Written({{Entry{1, 1, EntryType::kNoop, {}}, Set(2, 1, "a", "b")}});
  ASSERT_EQ(running.size(), LogFile::kPreallocateBytes);
  EXPECT_EQ(running.substr(0, text.size()), text);
  EXPECT_EQ(running.find_first_not_of('\0', text.size()), std::string::npos);
  // An append that crosses the preallocated end grows it by another step.
  const std::string big(LogFile::kPreallocateBytes, 'v');
  ASSERT_TRUE((*log)->Append({Set(3, 1, "big", big)}).ok());
  EXPECT_EQ(FileBytes(path).size(), 2 * LogFile::kPreallocateBytes);
  // Truncation cuts the file: zero bytes stay only past the entries.
  ASSERT_TRUE((*log)->TruncateFrom(3).ok());
  ASSERT_TRUE((*log)->Append({Set(3, 2, "c", "d")}).ok());
  log->reset();
  EXPECT_EQ(FileBytes(path), text + Written({{Set(3, 2, "c", "d")}}));
}

TEST(LogFile, ZeroTailLeftByACrashIsDropped) {
  TempDir dir;
  const std::string path = dir.path() + "/logs.txt";
  const std::string first = Written({{Entry{1, 1, EntryType::kNoop, {}}, Set(2, 1, "a", "b")}});
  // A crash while running leaves the preallocated tail (silently dropped) ...
  WriteBytes(path, first + std::string(4096, '\0'));
  {
    LogFile::Recovered recovered;
    auto log = LogFile::Open(dir.path(), &recovered, kCodec);
    ASSERT_TRUE(log.ok()) << log.status();
    EXPECT_EQ(recovered.entries.size(), 2u);
    EXPECT_TRUE(recovered.warnings.empty());
  }
  EXPECT_EQ(FileBytes(path), first);
  // ... or blocks of the last write that reached the disk before an earlier block of it: never
  // synced, so dropped with a warning, the intact line after the hole too.
  const std::string last = Written({{Set(3, 1, "c", "d"), Set(4, 1, "e", "f")}});
  WriteBytes(path, first + last.substr(0, 5) + std::string(100, '\0') + last.substr(5));
  LogFile::Recovered recovered;
  auto log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(recovered.entries.size(), 2u);
  ASSERT_EQ(recovered.warnings.size(), 1u);
  EXPECT_NE(recovered.warnings[0].find("logs.txt:3: dropped"), std::string::npos)
      << recovered.warnings[0];
  log->reset();
  EXPECT_EQ(FileBytes(path), first);
}

// Recovery reads logs.txt in 1 MiB pieces: lines that cross a piece's end, a line longer than a
// piece, and a torn tail that does, come out as parsing the whole text gives them; through a sink
// the entries come in order, after the base, and Recovered holds none.
TEST(LogFile, ReadingInPiecesGivesWhatTheWholeTextGives) {
  TempDir dir;
  const std::string path = dir.path() + "/logs.txt";
  std::vector<std::vector<Entry>> writes;
  LogIndex index = 0;
  for (int w = 0; w < 400; ++w) {
    std::vector<Entry> write;
    for (int i = 0; i < 50; ++i, ++index) {
      write.push_back(
          Set(index + 1, 1, "key" + std::to_string(index), std::string(index % 97, 'v')));
    }
    writes.push_back(std::move(write));
  }
  writes.push_back({Set(++index, 2, "big", std::string((1 << 20) + 3000, 'b'))});
  writes.push_back({Set(++index, 2, "after", "big")});
  const std::string intact = Written(writes);
  ASSERT_GT(intact.size(), 2u << 20);
  const std::string torn_write = Written({{Set(index + 1, 2, "torn", std::string(5000, 't'))}});
  for (const std::string& text :
       {intact, intact + std::string(3 << 20, '\0'),
        intact + torn_write.substr(0, 3000) + std::string((1 << 20) + 17, '\0')}) {
    WriteBytes(path, text);
    auto whole = LogFile::Parse(text, path, kCodec);
    ASSERT_TRUE(whole.ok()) << whole.status();
    LogIndex base = 99;
    std::vector<Entry> sunk;
    const LogFile::EntrySink sink{[&](LogIndex b, Term) { base = b; },
                                  [&](Entry entry) { sunk.push_back(std::move(entry)); }};
    auto read = LogFile::Read(dir.path(), kCodec, PosixEnv(), &sink);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(base, 0u);
    EXPECT_TRUE(read->entries.empty());
    EXPECT_EQ(sunk, whole->entries);
    EXPECT_EQ(sunk.size(), index);
    EXPECT_EQ(read->line_ends, whole->line_ends);
    EXPECT_EQ(read->warnings, whole->warnings);
    EXPECT_EQ(read->file_bytes, text.size());
  }
  // Damage in the middle, found past the first piece, is refused the same way.
  std::string damaged = intact;
  damaged[(1 << 20) + 100] = '\0';
  WriteBytes(path, damaged);
  auto whole = LogFile::Parse(damaged, path, kCodec);
  auto read = LogFile::Read(dir.path(), kCodec);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status(), whole.status());
}

// Damage followed by an intact write is not a torn tail: the node refuses to start, says where
// and what to do, and changes nothing (defect: one NUL byte mid-file used to drop every later
// line as a "torn tail", and acknowledged writes with them).
TEST(LogFile, DamageFollowedByAnIntactWriteIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/logs.txt";
  const std::string text = Written({{Entry{1, 1, EntryType::kNoop, {}}, Set(2, 1, "k1", "v1")},
                                    {Set(3, 1, "k2", "v2")},
                                    {Set(4, 1, "k3", "v3"), Set(5, 1, "k4", "v4")}});
  const size_t line2 = text.find("SET k1");
  const std::string nul = text.substr(0, line2 + 4) + '\0' + text.substr(line2 + 5);
  WriteBytes(path, nul);
  LogFile::Recovered recovered;
  auto log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(log.status().message().find("logs.txt:2: damaged"), std::string::npos) << log.status();
  EXPECT_NE(log.status().message().find("line 3 after it holds an intact entry 3"),
            std::string::npos)
      << log.status();
  EXPECT_EQ(FileBytes(path), nul) << "nothing may be cut";
  // Zero bytes inside the last write only are what a crash leaves: dropped, with a warning.
  const size_t line5 = text.find("SET k4");
  WriteBytes(path, text.substr(0, line5 + 4) + '\0' + text.substr(line5 + 5));
  log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(recovered.entries.size(), 4u);
  ASSERT_EQ(recovered.warnings.size(), 1u);
  EXPECT_NE(recovered.warnings[0].find("logs.txt:5: dropped"), std::string::npos)
      << recovered.warnings[0];
}

// A whole line that fails its checksum — newline-terminated, no zero bytes — is never what a
// crash leaves (writes go only to fresh, zeroed space), so it is data loss even in the last write.
TEST(LogFile, AWholeLineFailingItsChecksumIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/logs.txt";
  const std::string text = Written({{Entry{1, 1, EntryType::kNoop, {}}, Set(2, 1, "k1", "v1")}});
  const size_t line2 = text.find("SET k1");
  const std::string flipped = text.substr(0, line2 + 7) + "w" + text.substr(line2 + 8);
  WriteBytes(path, flipped);
  LogFile::Recovered recovered;
  auto log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(log.status().message().find("logs.txt:2: checksum mismatch"), std::string::npos)
      << log.status();
  EXPECT_EQ(FileBytes(path), flipped);
}

// Keys and values may hold "index=" and "crc=": only whole trailing fields are read as such.
TEST(LogFile, FieldNamesInsideKeysAndValuesAreData) {
  TempDir dir;
  const std::vector<Entry> entries = {Entry{1, 1, EntryType::kNoop, {}},
                                      Set(2, 1, "index=5", "crc=deadbeef"),
                                      Set(3, 1, "a", "index=3")};
  {
    LogFile::Recovered recovered;
    auto log = LogFile::Open(dir.path(), &recovered, kCodec);
    ASSERT_TRUE((*log)->Append(entries).ok());
    ASSERT_TRUE((*log)->Sync().ok());
  }
  LogFile::Recovered recovered;
  auto log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(recovered.entries, entries);
  EXPECT_TRUE(recovered.warnings.empty());
  // The same in a file from before checksums.
  WriteBytes(dir.path() + "/logs.txt", "NO-OP 1\nSET k crc=deadbeef 1\nSET index=2 v 1\n");
  log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(recovered.entries.size(), 3u);
}

// A line moved to another index fails its checksum, which covers the index.
TEST(LogLine, ChecksumCoversTheIndex) {
  const std::string line = *FormatRecord(Set(7, 2, "k", "v"), false, kCodec);
  EXPECT_TRUE(ParseRecord(line, 7, false, kCodec).ok());
  EXPECT_FALSE(ParseRecord(line, 8, false, kCodec).ok());
  const std::string start = *FormatRecord(Set(7, 2, "k", "v"), true, kCodec);
  EXPECT_EQ(start.substr(0, start.find(" crc=")), "SET k v 2 index=7");
  auto anywhere = ParseRecord(start, std::nullopt, false, kCodec);
  ASSERT_TRUE(anywhere.ok());
  EXPECT_TRUE(anywhere->starts_write);
  EXPECT_EQ(anywhere->entry.index, 7u);
  EXPECT_FALSE(ParseRecord(start, 6, false, kCodec).ok()) << "index= disagrees with the position";
  EXPECT_FALSE(ParseRecord("SET k v 2", 7, false, kCodec).ok()) << "no checksum";
  EXPECT_TRUE(ParseRecord("SET k v 2", 7, true, kCodec).ok()) << "a line from before checksums";
}

TEST(LogFile, CorruptMiddleLineIsRefusedWithFileAndLine) {
  TempDir dir;
  const std::string original = "NO-OP 1\nSET a b\nSET c d 1\n";
  WriteBytes(dir.path() + "/logs.txt", original);
  LogFile::Recovered recovered;
  auto log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("logs.txt:2:"), std::string::npos) << log.status();
  EXPECT_EQ(FileBytes(dir.path() + "/logs.txt"), original) << "good data must not be cut";
  WriteBytes(dir.path() + "/logs.txt", "NO-OP 2\nNO-OP 1\n");
  EXPECT_NE(LogFile::Open(dir.path(), &recovered, kCodec).status().message().find("logs.txt:2:"),
            std::string::npos);
}

// A conflicting suffix is replaced: truncate, append, sync. A crash at any byte of that sequence
// must recover the kept prefix intact, followed by only whole lines.
TEST(LogFile, TruncationIsCrashSafeAtEveryStep) {
  TempDir dir;
  const std::vector<Entry> prefix = {Entry{1, 1, EntryType::kNoop, {}}, Set(2, 1, "k", "kept")};
  const std::vector<Entry> old_suffix = {Set(3, 1, "k", "old1"), Set(4, 1, "k", "old2")};
  const std::vector<Entry> new_suffix = {Set(3, 2, "k", "new1 with space"), Set(4, 2, "k", "new2")};
  std::string before, after;
  {
    LogFile::Recovered recovered;
    auto log = LogFile::Open(dir.path(), &recovered, kCodec);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append(prefix).ok());
    ASSERT_TRUE((*log)->Append(old_suffix).ok());
    ASSERT_TRUE((*log)->Sync().ok());
    before = FileBytes((*log)->path());
    ASSERT_TRUE((*log)->TruncateFrom(3).ok());
    ASSERT_TRUE((*log)->Append(new_suffix).ok());
    ASSERT_TRUE((*log)->Sync().ok());
    after = FileBytes((*log)->path());
  }
  const size_t prefix_bytes = before.find("SET k old1");
  // States a crash can leave: the old file (truncate not yet durable), or the new file cut at
  // any byte from the truncation point onwards, with or without the preallocated zero tail.
  const size_t text_end = std::min(after.find('\0'), after.size());
  std::vector<std::string> crash_states = {before};
  for (size_t cut = prefix_bytes; cut <= text_end; ++cut) {
    crash_states.push_back(after.substr(0, cut));
    crash_states.push_back(after.substr(0, cut) + std::string(64, '\0'));
  }
  for (const std::string& state : crash_states) {
    TempDir crashed;
    WriteBytes(crashed.path() + "/logs.txt", state);
    LogFile::Recovered recovered;
    auto log = LogFile::Open(crashed.path(), &recovered, kCodec);
    ASSERT_TRUE(log.ok()) << log.status() << " after a crash leaving " << state.size() << " bytes";
    ASSERT_GE(recovered.entries.size(), prefix.size());
    for (size_t i = 0; i < prefix.size(); ++i) EXPECT_EQ(recovered.entries[i], prefix[i]);
    for (size_t i = prefix.size(); i < recovered.entries.size(); ++i) {
      const Entry& got = recovered.entries[i];
      const Entry& expected_old = old_suffix[i - prefix.size()];
      const Entry& expected_new = new_suffix[i - prefix.size()];
      EXPECT_TRUE(got == expected_old || got == expected_new);
    }
  }
}

TEST(Metadata, SavesAtomicallyAndLoads) {
  TempDir dir;
  EXPECT_EQ(*LoadMetadata(dir.path()), raft::HardState{}) << "a fresh node starts at term 0";
  const raft::HardState state{7, 2, 41};
  ASSERT_TRUE(SaveMetadata(dir.path(), state).ok());
  EXPECT_EQ(*LoadMetadata(dir.path()), state);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/metadata.txt.tmp"));
  const std::string text = FileBytes(dir.path() + "/metadata.txt");
  EXPECT_NE(text.find("term 7\nvoted_for 2\ncommit_index 41\n"), std::string::npos) << text;
  ASSERT_TRUE(SaveMetadata(dir.path(), raft::HardState{8, kNoNode, 41}).ok());
  EXPECT_NE(FileBytes(dir.path() + "/metadata.txt").find("voted_for none"), std::string::npos);
  EXPECT_EQ(FileBytes(dir.path() + "/metadata.txt").find("rebuilt_at_term"), std::string::npos)
      << "written only after a rebuild";
  // After --rebuild: the term it was rebuilt in, until it catches up.
  const raft::HardState rebuilt{9, kNoNode, 0, 8};
  ASSERT_TRUE(SaveMetadata(dir.path(), rebuilt).ok());
  EXPECT_NE(FileBytes(dir.path() + "/metadata.txt").find("rebuilt_at_term 8\n"), std::string::npos);
  EXPECT_EQ(*LoadMetadata(dir.path()), rebuilt);
  WriteBytes(dir.path() + "/metadata.txt", "term 9\nvoted_for none\nrebuilt_at_term 0\n");
  EXPECT_TRUE(absl::IsDataLoss(LoadMetadata(dir.path()).status())) << "0 is never written";
}

TEST(Metadata, BadContentIsRefusedWithFileAndLine) {
  TempDir dir;
  for (const char* bad : {"term 5\ntrm 6\n", "term x\nvoted_for none\n", "term 1\nvoted_for -3\n",
                          "term 1\nterm 2\nvoted_for none\n", "voted_for none\n"}) {
    WriteBytes(dir.path() + "/metadata.txt", bad);
    auto loaded = LoadMetadata(dir.path());
    EXPECT_FALSE(loaded.ok()) << bad;
    EXPECT_NE(loaded.status().message().find("metadata.txt"), std::string::npos);
  }
}

}  // namespace
}  // namespace raftkv::storage

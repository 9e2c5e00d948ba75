// snapshot.txt framing, the kv lines inside it, and logs.txt after compaction (START line).
#include <gtest/gtest.h>

#include <fstream>

#include "kv/command_text.h"
#include "kv/kv_state_machine.h"
#include "storage/file_util.h"
#include "storage/log_file.h"
#include "storage/snapshot_file.h"
#include "tests/common/temp_dir.h"

namespace raftkv::storage {
namespace {

using raftkv::testing::TempDir;
const EntryCodec kCodec{&kv::FormatCommandText, &kv::ParseCommandText};

kv::KvStateMachine Sample() {
  kv::KvStateMachine kv;
  kv.ApplySet({"name1", "Jaggu", 0, 0, false}, 1);
  kv.ApplySet({"with space", std::string("nl\nzero\0", 8), 0, 0, false}, 2);
  kv.ApplyOpenSession({1000, 10, 60000}, 3);
  kv.ApplySet({"name1", "again", 3, 1, false}, 4);
  kv.ApplySet({"k", "v", 3, 3, false}, 5);  // out of order: 3 waits above 1
  return kv;
}

absl::StatusOr<SnapshotMeta> Write(const std::string& path, const kv::KvStateMachine& kv) {
  auto writer = SnapshotWriter::Create(PosixEnv(), path, {5, 2, 3, 0}, kv.SnapshotHeaderFields());
  if (!writer.ok()) return writer.status();
  absl::Status s = kv.WriteSnapshotLines([&](std::string_view l) { return (*writer)->AddLine(l); });
  if (!s.ok()) return s;
  absl::StatusOr<uint64_t> bytes = (*writer)->Finish();
  if (!bytes.ok()) return bytes.status();
  return SnapshotMeta{5, 2, 3, *bytes};
}

absl::StatusOr<std::unique_ptr<kv::KvStateMachine>> Load(const std::string& path,
                                                         SnapshotMeta* meta = nullptr) {
  kv::KvStateMachine::SnapshotLoader loader;
  absl::StatusOr<SnapshotMeta> read = ReadSnapshot(
      PosixEnv(), path, [&](std::string_view f) { return loader.Header(f); },
      [&](std::string_view l) { return loader.Line(l); });
  if (!read.ok()) return read.status();
  if (meta != nullptr) *meta = *read;
  return loader.Finish();
}

TEST(Snapshot, RoundTripsKeysVersionsAndSessions) {
  TempDir dir;
  const std::string path = dir.path() + "/snapshot.txt";
  const kv::KvStateMachine original = Sample();
  absl::StatusOr<SnapshotMeta> written = Write(path, original);
  ASSERT_TRUE(written.ok()) << written.status();
  SnapshotMeta meta;
  auto loaded = Load(path, &meta);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(meta, *written);
  kv::KvStateMachine& kv = **loaded;
  EXPECT_EQ(kv.Find("name1")->value, "again");
  EXPECT_EQ(kv.Find("name1")->version, 2u);
  EXPECT_EQ(kv.Find("with space")->value, std::string("nl\nzero\0", 8));
  EXPECT_EQ(kv.session_count(), 1u);
  EXPECT_EQ(kv.log_time_ms(), 1000u);
  // The session survived with what it applied: 1 and 3 are duplicates, 2 is new.
  EXPECT_EQ(kv.ApplySet({"k", "x", 3, 1, false}, 6), kv::ApplyOutcome::kDuplicate);
  EXPECT_EQ(kv.ApplySet({"k", "x", 3, 3, false}, 7), kv::ApplyOutcome::kDuplicate);
  EXPECT_EQ(kv.ApplySet({"k", "x", 3, 2, false}, 8), kv::ApplyOutcome::kApplied);
  // Writing the loaded state again gives the same bytes: every replica's file is alike.
  const std::string again = dir.path() + "/again.txt";
  kv::KvStateMachine copy = Sample();
  ASSERT_TRUE(Write(again, copy).ok());
  EXPECT_EQ(*ReadWholeFile(path), *ReadWholeFile(again));
}

TEST(Snapshot, DamageAnywhereIsRefusedWhole) {
  TempDir dir;
  const std::string path = dir.path() + "/snapshot.txt";
  ASSERT_TRUE(Write(path, Sample()).ok());
  const std::string good = *ReadWholeFile(path);
  auto put = [&](const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; };
  for (size_t at = 0; at < good.size(); ++at) {
    std::string bad = good;
    bad[at] ^= 0x20;
    put(bad);
    EXPECT_FALSE(Load(path).ok()) << "flipped byte " << at;
  }
  put(good.substr(0, good.size() - 1));
  EXPECT_FALSE(Load(path).ok()) << "cut short";
  put(good + "KEY extra x 1\n");
  EXPECT_FALSE(Load(path).ok()) << "bytes after END";
  put(good);
  EXPECT_TRUE(Load(path).ok());
}

raft::Entry Set(LogIndex index, Term term, const std::string& key) {
  return raft::Entry{term, index, raft::EntryType::kCommand,
                     kv::EncodeSet({key, "v", 0, 0, false})};
}

TEST(LogFileCompaction, RewriteKeepsTheTailWithAStartLineAndAppendsGoOn) {
  TempDir dir;
  LogFile::Recovered recovered;
  auto log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_TRUE(log.ok());
  std::vector<raft::Entry> entries;
  for (LogIndex i = 1; i <= 10; ++i)
    entries.push_back(Set(i, i < 6 ? 1 : 2, "k" + std::to_string(i)));
  ASSERT_TRUE((*log)->Append(entries).ok());
  ASSERT_TRUE((*log)->Sync().ok());
  ASSERT_TRUE((*log)->Rewrite(7, 2, 10).ok());
  EXPECT_EQ((*log)->BaseIndex(), 7u);
  EXPECT_EQ((*log)->LastIndex(), 10u);
  ASSERT_TRUE((*log)->Append({Set(11, 3, "k11")}).ok());
  ASSERT_TRUE((*log)->Sync().ok());
  ASSERT_TRUE((*log)->TruncateFrom(11).ok());
  ASSERT_TRUE((*log)->Append({Set(11, 4, "k11b")}).ok());
  ASSERT_TRUE((*log)->Sync().ok());
  log->reset();
  const std::string text = *ReadWholeFile(dir.path() + "/logs.txt");
  EXPECT_EQ(text.substr(0, 26), "START index=8 prev_term=2 ") << text;
  auto read = LogFile::Read(dir.path(), kCodec);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->base_index, 7u);
  EXPECT_EQ(read->base_term, 2u);
  ASSERT_EQ(read->entries.size(), 4u);
  EXPECT_EQ(read->entries.front().index, 8u);
  EXPECT_EQ(read->entries.back(), Set(11, 4, "k11b"));
  // A log superseded by a snapshot: nothing kept.
  auto reopened = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_TRUE(reopened.ok());
  ASSERT_TRUE((*reopened)->Rewrite(20, 5, 0).ok());
  EXPECT_EQ((*reopened)->LastIndex(), 20u);
  reopened->reset();
  read = LogFile::Read(dir.path(), kCodec);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->base_index, 20u);
  EXPECT_TRUE(read->entries.empty());
}

TEST(LogFileCompaction, ADamagedStartLineIsRefused) {
  TempDir dir;
  std::ofstream(dir.path() + "/logs.txt") << "START index=8 prev_term=2 crc=00000000\n";
  auto read = LogFile::Read(dir.path(), kCodec);
  EXPECT_FALSE(read.ok());
  EXPECT_TRUE(absl::IsDataLoss(read.status())) << read.status();
}

// Lines written before checksums existed stay readable after compaction keeps them.
TEST(LogFileCompaction, LinesFromBeforeChecksumsSurviveARewrite) {
  TempDir dir;
  std::ofstream(dir.path() + "/logs.txt") << "SET a 1 1\nSET b 2 1\nSET c 3 1\n";
  LogFile::Recovered recovered;
  auto log = LogFile::Open(dir.path(), &recovered, kCodec);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE((*log)->Append({Set(4, 2, "d")}).ok());
  ASSERT_TRUE((*log)->Sync().ok());
  ASSERT_TRUE((*log)->Rewrite(1, 1, 4).ok());
  log->reset();
  auto read = LogFile::Read(dir.path(), kCodec);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->base_index, 1u);
  EXPECT_EQ(read->entries.size(), 3u);
}

}  // namespace
}  // namespace raftkv::storage

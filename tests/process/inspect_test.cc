// raftkv-inspect run as a user would: valid, torn and damaged directories.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "kv/command_text.h"
#include "kv/kv_state_machine.h"
#include "storage/log_file.h"
#include "storage/metadata_file.h"
#include "storage/snapshot_file.h"

namespace {

struct Output {
  int exit_code;
  std::string text;
};

Output RunInspect(const std::string& args) {
  Output out{-1, ""};
  FILE* pipe = popen((std::string(RAFTKV_INSPECT_BINARY) + " " + args + " 2>&1").c_str(), "r");
  char buffer[4096];
  size_t got = 0;
  while ((got = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.text.append(buffer, got);
  const int status = pclose(pipe);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

class InspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/raftkv-inspect-XXXXXX";
    dir_ = mkdtemp(pattern);
    node_ = dir_ + "/logs_node_0";
    std::filesystem::create_directories(node_);
    Write("metadata.txt", "term 2\nvoted_for 0\ncommit_index 1\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(node_ + "/" + name, std::ios::trunc) << text;
  }
  std::string dir_, node_;
};

TEST_F(InspectTest, ValidDirectoryIsSummarised) {
  Write("logs.txt", "NO-OP 1\nSET name1 Jaggu session=5:1 1\nNO-OP 2\n");
  Output out = RunInspect(dir_);
  EXPECT_EQ(out.exit_code, 0) << out.text;
  EXPECT_NE(out.text.find("term 2, voted_for 0, commit_index 1"), std::string::npos) << out.text;
  EXPECT_NE(out.text.find("3 entries (2 NO-OP, 1 SET, 0 OPEN-SESSION), terms 1..2, 1 sessions"),
            std::string::npos)
      << out.text;
  EXPECT_NE(out.text.find("SET name1 Jaggu session=5:1 1"), std::string::npos);
}

TEST_F(InspectTest, TornTailIsAWarningAndNothingChanges) {
  const std::string torn = "NO-OP 1\nSET a b";
  Write("logs.txt", torn);
  Output out = RunInspect(node_);
  EXPECT_EQ(out.exit_code, 0) << out.text;
  EXPECT_NE(out.text.find("WARNING"), std::string::npos);
  std::ifstream file(node_ + "/logs.txt");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(file), {}), torn) << "inspect wrote";
}

TEST_F(InspectTest, DamageIsReportedWithFileAndLine) {
  Write("logs.txt", "NO-OP 1\nSET a\nNO-OP 2\n");
  Output out = RunInspect(node_);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.text.find("logs.txt:2:"), std::string::npos) << out.text;
  Write("logs.txt", "NO-OP 3\n");
  out = RunInspect(node_);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.text.find("newer than metadata.txt"), std::string::npos) << out.text;
  EXPECT_EQ(RunInspect("/nonexistent-raftkv").exit_code, 2);
}

// The node's recovery rules: fewer entries than the recorded commit index (in metadata written
// with a checksum, by a version that saves the commit index only after the log), or no logs.txt
// at all for a node that has run, is data loss, reported with what to do.
TEST_F(InspectTest, ALogShorterThanTheCommitIndexIsDataLoss) {
  Write("metadata.txt", raftkv::storage::FormatMetadata(raftkv::raft::HardState{2, 0, 3}));
  Write("logs.txt", "NO-OP 1\nNO-OP 2\n");
  Output out = RunInspect(node_);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.text.find("holds 2 entries, yet metadata.txt records 3 as committed"),
            std::string::npos)
      << out.text;
  std::filesystem::remove(node_ + "/logs.txt");
  out = RunInspect(node_);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.text.find("logs.txt is missing"), std::string::npos) << out.text;
  EXPECT_NE(out.text.find("start this one once with --rebuild"), std::string::npos) << out.text;
}

// A compacted directory: snapshot.txt is checked whole and summarised, the log is numbered from
// its START line, and a damaged snapshot is reported with its line.
TEST_F(InspectTest, ASnapshotAndACompactedLogAreCheckedAndSummarised) {
  namespace storage = raftkv::storage;
  raftkv::kv::KvStateMachine kv;
  kv.ApplySet({"greeting", "hello world", 0, 0, false}, 4);
  auto writer = storage::SnapshotWriter::Create(storage::PosixEnv(), node_ + "/snapshot.txt",
                                                {5, 2, 3, 0}, kv.SnapshotHeaderFields());
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(
      kv.WriteSnapshotLines([&](std::string_view l) { return (*writer)->AddLine(l); }).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  const storage::EntryCodec codec{&raftkv::kv::FormatCommandText, &raftkv::kv::ParseCommandText};
  {
    storage::LogFile::Recovered recovered;
    auto log = storage::LogFile::Open(node_, &recovered, codec);
    ASSERT_TRUE(log.ok());
    std::vector<raftkv::raft::Entry> entries;
    for (uint64_t i = 1; i <= 8; ++i) entries.push_back({2, i, raftkv::raft::EntryType::kNoop, {}});
    ASSERT_TRUE((*log)->Append(entries).ok());
    ASSERT_TRUE((*log)->Sync().ok());
    ASSERT_TRUE((*log)->Rewrite(3, 2, 8).ok());
  }
  Output out = RunInspect(node_ + " --all");
  EXPECT_EQ(out.exit_code, 0) << out.text;
  EXPECT_NE(out.text.find("snapshot.txt  up to index 5 (term 2), 1 keys, 0 sessions"),
            std::string::npos)
      << out.text;
  EXPECT_NE(out.text.find("KEY greeting hello%20world 1"), std::string::npos) << out.text;
  EXPECT_NE(out.text.find("5 entries from index 4"), std::string::npos) << out.text;
  EXPECT_NE(out.text.find("     8  NO-OP 2"), std::string::npos) << out.text;
  std::string bytes;
  {
    std::ifstream file(node_ + "/snapshot.txt");
    bytes.assign(std::istreambuf_iterator<char>(file), {});
  }
  bytes[bytes.find("hello")] = 'j';
  Write("snapshot.txt", bytes);
  out = RunInspect(node_);
  EXPECT_EQ(out.exit_code, 1) << out.text;
  EXPECT_NE(out.text.find("snapshot.txt:3: checksum mismatch"), std::string::npos) << out.text;
}

}  // namespace

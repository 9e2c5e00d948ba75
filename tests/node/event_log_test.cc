#include "node/event_log.h"

#include <gtest/gtest.h>

#include <stdlib.h>
#include "tests/common/temp_dir.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <utility>
#include <vector>

#include "storage/file_util.h"

namespace raftkv::node {
namespace {

using Kind = raft::Event::Kind;

std::string Render(Kind kind, NodeId peer = 2, Term term = 7,
                   Verbosity verbosity = Verbosity::kNormal) {
  return RenderEvent(1, raft::Event{kind, peer, term, Duration(0)}, verbosity).value_or("<none>");
}

// The statements operators grep for, exactly.
TEST(EventLog, StatementsAreVerbatim) {
  EXPECT_EQ(Render(Kind::kHeartbeatRound), "Leader 1 sending heartbeat & Renewing Lease");
  EXPECT_EQ(Render(Kind::kLeaseRenewalFailed), "Leader 1 lease renewal failed. Stepping Down.");
  EXPECT_EQ(Render(Kind::kWaitingForOldLease),
            "New Leader waiting for Old Leader Lease to timeout.");
  EXPECT_EQ(Render(Kind::kElectionTimeout), "Node 1 election timer timed out, Starting election.");
  EXPECT_EQ(Render(Kind::kBecameLeader), "Node 1 became the leader for term 7.");
  EXPECT_EQ(Render(Kind::kSteppedDown), "1 Stepping down");
  EXPECT_EQ(Render(Kind::kVoteGranted), "Vote granted for Node 2 in term 7.");
  EXPECT_EQ(Render(Kind::kVoteDenied), "Vote denied for Node 2 in term 7.");
  EXPECT_EQ(Render(Kind::kAppendAccepted), "Node 1 accepted AppendEntries RPC from 2.");
  EXPECT_EQ(Render(Kind::kAppendRejected), "Node 1 rejected AppendEntries RPC from 2.");
  EXPECT_EQ(RpcErrorLine(2), "Error occurred while sending RPC to Node 2.");
  EXPECT_EQ(ReceivedLine(0, "SET name1 Jaggu"),
            "Node 0 (leader) received an SET name1 Jaggu request.");
  EXPECT_EQ(CommittedLine(0, true, "SET a b"),
            "Node 0 (leader) committed the entry SET a b to the state machine.");
  EXPECT_EQ(CommittedLine(2, false, "NO-OP"),
            "Node 2 (follower) committed the entry NO-OP to the state machine.");
}

TEST(EventLog, QuietDropsOnlyPerHeartbeatLines) {
  EXPECT_EQ(Render(Kind::kHeartbeatRound, 2, 7, Verbosity::kQuiet), "<none>");
  EXPECT_EQ(Render(Kind::kAppendAccepted, 2, 7, Verbosity::kQuiet), "<none>");
  EXPECT_NE(Render(Kind::kAppendRejected, 2, 7, Verbosity::kQuiet), "<none>");
  EXPECT_NE(Render(Kind::kBecameLeader, 2, 7, Verbosity::kQuiet), "<none>");
}

using raftkv::testing::TempDir;

// minimal keeps what an operator needs to follow leadership, and nothing per request.
TEST(EventLog, MinimalDropsPerRequestAndPerHeartbeatLines) {
  EXPECT_EQ(Render(Kind::kHeartbeatRound, 2, 7, Verbosity::kMinimal), "<none>");
  EXPECT_EQ(Render(Kind::kAppendAccepted, 2, 7, Verbosity::kMinimal), "<none>");
  for (Kind kind : {Kind::kBecameLeader, Kind::kElectionTimeout, Kind::kLeaseRenewalFailed,
                    Kind::kSteppedDown, Kind::kWaitingForOldLease, Kind::kVoteGranted}) {
    EXPECT_NE(Render(kind, 2, 7, Verbosity::kMinimal), "<none>");
  }
  TempDir dir;
  for (Verbosity verbosity : {Verbosity::kMinimal, Verbosity::kQuiet, Verbosity::kNormal}) {
    EventLog::Options options;
    options.to_stdout = false;
    options.verbosity = verbosity;
    auto log = EventLog::Open(dir.path(), 0, options);
    ASSERT_TRUE(log.ok()) << log.status();
    EXPECT_EQ((*log)->RecordsRequests(), verbosity != Verbosity::kMinimal);
  }
}

TEST(EventLog, BuffersUntilFlushThenAppends) {
  TempDir dir;
  EventLog::Options options;
  options.to_stdout = false;
  options.timestamp = [] { return std::string("T"); };
  {
    auto log = EventLog::Open(dir.path(), 0, options);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->RecordEvent(raft::Event{Kind::kBecameLeader, 0, 3, Duration(0)});
    EXPECT_EQ(*storage::ReadWholeFile(dir.path() + "/dump.txt"), "") << "written before Flush";
    ASSERT_TRUE((*log)->Flush().ok());
    EXPECT_EQ(*storage::ReadWholeFile(dir.path() + "/dump.txt"),
              "T Node 0 became the leader for term 3.\n");
  }
  auto reopened = EventLog::Open(dir.path(), 0, options);
  ASSERT_TRUE(reopened.ok());
  (*reopened)->Record("again");
  ASSERT_TRUE((*reopened)->Flush().ok());
  EXPECT_EQ(*storage::ReadWholeFile(dir.path() + "/dump.txt"),
            "T Node 0 became the leader for term 3.\nT again\n")
      << "a restart appends, it does not truncate";
}

// A log of 4 KiB files without stdout, keeping `keep` rotated ones, stamping lines with `stamp`.
EventLog::Options SmallFiles(int keep, std::function<std::string()> stamp) {
  EventLog::Options options;
  options.to_stdout = false;
  options.max_bytes = 4096;
  options.keep_files = keep;
  options.timestamp = std::move(stamp);
  return options;
}

// Writes `lines` heartbeat lines, one Flush (one driver turn) each.
void WriteLines(EventLog& log, int lines) {
  for (int i = 0; i < lines; ++i) {
    log.RecordEvent(raft::Event{Kind::kHeartbeatRound, 0, 1, Duration(0)});
    ASSERT_TRUE(log.Flush().ok());
  }
}

// The files in `dir`, sorted, and their total size.
std::pair<std::vector<std::string>, uintmax_t> Files(const std::string& dir) {
  std::vector<std::string> names;
  uintmax_t total = 0;
  for (const auto& file : std::filesystem::directory_iterator(dir)) {
    names.push_back(file.path().filename().string());
    total += file.file_size();
  }
  std::sort(names.begin(), names.end());
  return {names, total};
}

TEST(EventLog, RotatesAtTheSizeCap) {
  TempDir dir;
  auto log = EventLog::Open(dir.path(), 0, SmallFiles(3, [] { return std::string("T"); }));
  ASSERT_TRUE(log.ok());
  WriteLines(**log, 1000);
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/dump.txt.1"));
  EXPECT_LE(std::filesystem::file_size(dir.path() + "/dump.txt"), 4096u + 64);
  EXPECT_LE(std::filesystem::file_size(dir.path() + "/dump.txt.1"), 4096u + 64);
}

// While the node runs, the event log keeps DUMP_KEEP_FILES rotated files and no more: the newest
// is .1, and the oldest go. Total size stays within (keep + 1) × max bytes however long it runs.
TEST(EventLog, KeepsTheConfiguredNumberOfRotatedFiles) {
  TempDir dir;
  int line = 0;
  auto log = EventLog::Open(dir.path(), 0,
                            SmallFiles(2, [&line] { return "line" + std::to_string(line++); }));
  ASSERT_TRUE(log.ok());
  WriteLines(**log, 2000);
  const auto [names, total] = Files(dir.path());
  EXPECT_EQ(names, (std::vector<std::string>{"dump.txt", "dump.txt.1", "dump.txt.2"}));
  EXPECT_LE(total, 3 * (4096u + 64));
  // Newest first: the last line written is in dump.txt, and .1 holds later lines than .2.
  const auto first_line = [&](const std::string& name) {
    std::ifstream in(dir.path() + "/" + name);
    std::string text;
    std::getline(in, text);
    return std::stoi(text.substr(4, text.find(' ') - 4));
  };
  EXPECT_GT(first_line("dump.txt"), first_line("dump.txt.1"));
  EXPECT_GT(first_line("dump.txt.1"), first_line("dump.txt.2"));
}

// A smaller DUMP_KEEP_FILES than last time: the surplus rotated files go at the next rotation.
TEST(EventLog, ALowerKeepCountDeletesTheSurplus) {
  TempDir dir;
  for (int n = 1; n <= 5; ++n) std::ofstream(dir.path() + "/dump.txt." + std::to_string(n)) << n;
  auto log = EventLog::Open(dir.path(), 0, SmallFiles(2, [] { return std::string("T"); }));
  ASSERT_TRUE(log.ok());
  WriteLines(**log, 200);
  EXPECT_EQ(Files(dir.path()).first,
            (std::vector<std::string>{"dump.txt", "dump.txt.1", "dump.txt.2"}));
}

}  // namespace
}  // namespace raftkv::node

// The client library against real raftkv-node processes: it keeps SET and GET working across a
// leader crash, applies a SET whose reply was lost exactly once, and keeps many calls in flight.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "raftkv/client.h"
#include "tests/process/process_cluster.h"

namespace raftkv {
namespace {

using client::Client;
using client::ClientOptions;

std::unique_ptr<Client> MakeClient(const ProcessCluster& cluster, ClientOptions options = {}) {
  options.addresses = cluster.addresses();
  options.deadline = milliseconds(15'000);
  options.rpc_timeout = milliseconds(500);
  auto client = Client::Create(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return std::move(*client);
}

// How many times logs.txt of `node` holds a SET of exactly this key and value.
int CountSetEntries(const ProcessCluster& cluster, int node, const std::string& key,
                    const std::string& value) {
  std::ifstream log(cluster.dir() + "/logs_node_" + std::to_string(node) + "/logs.txt");
  const std::string prefix = "SET " + key + " " + value + " client=";
  int count = 0;
  for (std::string line; std::getline(log, line);) count += line.rfind(prefix, 0) == 0 ? 1 : 0;
  return count;
}

TEST(ClientProcess, SetAndGetKeepWorkingAcrossALeaderCrash) {
  ProcessCluster cluster(3);
  const int first_leader = cluster.WaitForLeader();
  ASSERT_GE(first_leader, 0);
  std::unique_ptr<Client> client = MakeClient(cluster);

  std::map<std::string, std::string> written;
  int failures = 0;
  auto round = [&](int i) {
    const std::string key = "k" + std::to_string(i % 10);
    const std::string value = "v" + std::to_string(i);
    absl::Status set = client->Set(key, value);
    if (!set.ok()) {
      ++failures;
      ADD_FAILURE() << "SET " << key << ": " << set;
      return;
    }
    written[key] = value;
    absl::StatusOr<client::GetResult> got = client->Get(key);
    if (!got.ok() || got->value != value) {
      ++failures;
      ADD_FAILURE() << "GET " << key << ": " << (got.ok() ? got->value : got.status().ToString());
    }
  };
  for (int i = 0; i < 20; ++i) round(i);
  EXPECT_EQ(client->known_leader(), first_leader);

  cluster.Kill(first_leader, SIGKILL);
  for (int i = 20; i < 60; ++i) round(i);  // the first of these waits out the election
  EXPECT_EQ(failures, 0);
  EXPECT_NE(client->known_leader(), first_leader);

  // The old leader comes back as a follower and the data is all there.
  cluster.Start(first_leader);
  for (const auto& [key, value] : written) {
    absl::StatusOr<client::GetResult> got = client->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->value, value) << key;
  }
}

// The reply to a committed SET is lost; the client retries with the same sequence number. The
// retry reaches the log again (logs.txt holds the entry twice) but the state machine applies it
// once: the key's version, which counts applied SETs, stays 1. The second case loses the reply
// and the leader together, so the retry is deduplicated by a different node.
TEST(ClientProcess, ASetWhoseReplyIsLostIsAppliedOnce) {
  ProcessCluster cluster(3);
  ASSERT_GE(cluster.WaitForLeader(), 0);
  std::atomic<uint64_t> drop_sequence{0};
  std::atomic<bool> kill_leader_on_drop{false};
  std::atomic<int> dropped{0};
  ClientOptions options;
  ProcessCluster* cluster_ptr = &cluster;
  options.drop_set_reply_for_testing = [&, cluster_ptr](uint64_t sequence, int attempt) {
    if (sequence != drop_sequence.load() || attempt != 1) return false;
    ++dropped;
    if (kill_leader_on_drop.load()) cluster_ptr->Kill(cluster_ptr->WaitForLeader(), SIGKILL);
    return true;
  };
  std::unique_ptr<Client> client = MakeClient(cluster, std::move(options));

  ASSERT_TRUE(client->Set("opener", "x").ok());  // sequence 1
  drop_sequence = 2;
  ASSERT_TRUE(client->Set("lost-reply", "once").ok());
  EXPECT_EQ(dropped.load(), 1);
  absl::StatusOr<client::GetResult> got = client->Get("lost-reply");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->value, "once");
  EXPECT_EQ(got->version, 1u) << "the retried SET was applied twice";
  const int leader = client->known_leader();
  EXPECT_EQ(CountSetEntries(cluster, leader, "lost-reply", "once"), 2)
      << "the retry should have reached the log, to be deduplicated at apply";

  drop_sequence = 3;
  kill_leader_on_drop = true;
  ASSERT_TRUE(client->Set("lost-reply-and-leader", "once").ok());
  EXPECT_EQ(dropped.load(), 2);
  got = client->Get("lost-reply-and-leader");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version, 1u) << "the new leader applied the retried SET again";
  EXPECT_NE(client->known_leader(), leader);
  EXPECT_EQ(CountSetEntries(cluster, client->known_leader(), "lost-reply-and-leader", "once"), 2);
}

// The cluster evicts a session only after it idled past SESSION_IDLE_TIMEOUT, and only to make
// room. A SET whose session was evicted, and that was certainly never applied, goes again in a
// new session without the caller seeing anything; it is applied once.
TEST(ClientProcess, ASetWhoseSessionWasEvictedGoesAgainInANewSession) {
  ProcessCluster cluster(3, "[limits]\nMAX_SESSIONS = 1\nSESSION_IDLE_TIMEOUT = 1s\n");
  ASSERT_GE(cluster.WaitForLeader(), 0);
  std::unique_ptr<Client> client = MakeClient(cluster);
  ASSERT_TRUE(client->Set("k", "1").ok());
  // Another client wants a session: refused while ours counts as in use, granted once ours has
  // idled a second of log time (every OPEN-SESSION carries the log time).
  ServeClientArgs open;
  open.set_op(ServeClientArgs::OPEN_SESSION);
  uint64_t other = 0;
  for (int i = 0; i < 100 && other == 0; ++i) {
    std::optional<ServeClientReply> reply = cluster.Request(open, milliseconds(1000));
    if (reply && reply->success()) other = reply->client_id();
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_NE(other, 0u) << "the idle session was never evicted";
  // Our session is gone; the next SET finds out, opens a new one (evicting the other, idle now)
  // and goes again.
  std::this_thread::sleep_for(milliseconds(1100));
  const absl::Status set = client->Set("k", "2");
  ASSERT_TRUE(set.ok()) << set;
  auto got = client->Get("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->value, "2");
  EXPECT_EQ(got->version, 2u) << "each SET applied once";
  // Two sessions: the second SET went out in a new one.
  std::ifstream log(cluster.dir() + "/logs_node_" + std::to_string(client->known_leader()) +
                    "/logs.txt");
  std::map<std::string, std::string> session_of;  // value -> client id
  for (std::string line; std::getline(log, line);) {
    for (const char* value : {"1", "2"}) {
      const std::string prefix = std::string("SET k ") + value + " client=";
      if (line.rfind(prefix, 0) == 0) {
        session_of[value] = line.substr(prefix.size(), line.find(':') - prefix.size());
      }
    }
  }
  ASSERT_EQ(session_of.size(), 2u);
  EXPECT_NE(session_of["1"], session_of["2"]);
}

TEST(ClientProcess, ManyCallsInFlightFromManyThreads) {
  ProcessCluster cluster(3);
  ASSERT_GE(cluster.WaitForLeader(), 0);
  std::unique_ptr<Client> client = MakeClient(cluster);

  // 400 asynchronous SETs at once from one thread.
  constexpr int kAsync = 400;
  std::vector<std::promise<absl::Status>> done(kAsync);
  for (int i = 0; i < kAsync; ++i) {
    client->SetAsync("async" + std::to_string(i), std::to_string(i),
                     [&done, i](absl::Status status) { done[i].set_value(status); });
  }
  for (int i = 0; i < kAsync; ++i) EXPECT_TRUE(done[i].get_future().get().ok()) << i;

  // 4 threads of synchronous calls.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string key = "thread" + std::to_string(t) + "-" + std::to_string(i);
        if (!client->Set(key, key).ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);

  // Read everything back, asynchronously; every key was written once.
  std::vector<std::promise<absl::StatusOr<client::GetResult>>> reads(kAsync);
  for (int i = 0; i < kAsync; ++i) {
    client->GetAsync("async" + std::to_string(i),
                     [&reads, i](absl::StatusOr<client::GetResult> r) { reads[i].set_value(r); });
  }
  for (int i = 0; i < kAsync; ++i) {
    absl::StatusOr<client::GetResult> got = reads[i].get_future().get();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->value, std::to_string(i));
    EXPECT_EQ(got->version, 1u);
  }
  absl::StatusOr<client::GetResult> last = client->Get("thread3-24");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->value, "thread3-24");
}

TEST(ClientProcess, ErrorsSayWhatHappened) {
  // Nothing listens on these ports.
  auto client = Client::Create({.addresses = {"127.0.0.1:1", "127.0.0.1:2"},
                                .deadline = milliseconds(600),
                                .rpc_timeout = milliseconds(200)});
  ASSERT_TRUE(client.ok());
  absl::Status set = (*client)->Set("k", "v");
  EXPECT_EQ(set.code(), absl::StatusCode::kUnavailable) << set;
  EXPECT_NE(set.message().find("cluster unavailable"), std::string::npos) << set;
  EXPECT_EQ((*client)->Get("").status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(Client::Create({.addresses = {}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Client::Create({.addresses = {"nohost"}}).status().code(),
            absl::StatusCode::kInvalidArgument);

  ProcessCluster cluster(3);
  ASSERT_GE(cluster.WaitForLeader(), 0);
  std::unique_ptr<Client> real = MakeClient(cluster);
  absl::Status too_long = real->Set(std::string(5000, 'k'), "v");
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument) << too_long;
  EXPECT_NE(too_long.message().find("MAX_KEY_BYTES"), std::string::npos);

  // A majority down: SETs cannot commit, and the deadline error names the last reason.
  const int leader = cluster.WaitForLeader();
  cluster.Kill((leader + 1) % 3, SIGKILL);
  cluster.Kill((leader + 2) % 3, SIGKILL);
  absl::Status stuck = real->Set("k", "v", {.deadline = milliseconds(1500)});
  EXPECT_EQ(stuck.code(), absl::StatusCode::kDeadlineExceeded) << stuck;
  EXPECT_NE(stuck.message().find("may or may not have been applied"), std::string::npos) << stuck;
}

// Backup and restore (raftkv snapshot save / raftkv-node --restore): a backup taken from a live
// cluster while clients write holds every write acknowledged before it was asked for; a new
// cluster started from it serves each of them with its value, and takes writes of its own.
TEST(ClientProcess, ABackupTakenUnderLoadRestoresEveryAcknowledgedWrite) {
  const std::string backup =
      std::string(::testing::TempDir()) + "/raftkv-backup-" + std::to_string(getpid()) + ".txt";
  std::map<std::string, std::string> before;  // acknowledged before SaveSnapshot was called
  client::SnapshotInfo info;
  {
    ProcessCluster cluster(3, "[snapshot]\nENTRIES = 300\nKEEP_ENTRIES = 50\n");
    ASSERT_GE(cluster.WaitForLeader(), 0);
    std::unique_ptr<Client> client = MakeClient(cluster);
    std::mutex mu;
    std::map<std::string, std::string> acknowledged;
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w) {
      writers.emplace_back([&, w] {
        for (int i = 0; !stop.load(); ++i) {
          const std::string key = "w" + std::to_string(w) + "-" + std::to_string(i);
          const std::string value = "value of " + key;
          if (client->Set(key, value).ok()) {
            std::lock_guard<std::mutex> lock(mu);
            acknowledged[key] = value;
          }
        }
      });
    }
    std::this_thread::sleep_for(milliseconds(1500));
    {
      std::lock_guard<std::mutex> lock(mu);
      before = acknowledged;
    }
    // A generous deadline: the snapshot is written by a child at nice 19, which a loaded
    // machine (a sanitizer build beside other tests) can hold back for seconds.
    absl::StatusOr<client::SnapshotInfo> saved =
        client->SaveSnapshot(backup, {.deadline = milliseconds(60'000)});
    std::this_thread::sleep_for(milliseconds(300));  // the load goes on meanwhile and after
    stop.store(true);
    for (std::thread& writer : writers) writer.join();
    ASSERT_TRUE(saved.ok()) << saved.status();
    info = *saved;
    EXPECT_GT(before.size(), 200u) << "the load was too light to mean anything";
    EXPECT_GT(info.index, before.size());
    EXPECT_GT(info.bytes, 0u);
  }
  // A new cluster, of five nodes, from the backup alone (the old one is gone).
  ProcessCluster restored(5, "", {"--restore", backup});
  ASSERT_GE(restored.WaitForLeader(), 0);
  EXPECT_NE(restored.Output(0).find("restored " + backup), std::string::npos) << restored.Output(0);
  std::unique_ptr<Client> client = MakeClient(restored);
  for (const auto& [key, value] : before) {
    absl::StatusOr<client::GetResult> got = client->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->found) << key << " was acknowledged before the backup and is missing";
    EXPECT_EQ(got->value, value) << key;
  }
  EXPECT_TRUE(client->Set("after-restore", "yes").ok());
  // --restore on a directory that now holds a node's state is refused: nothing is overwritten.
  restored.Kill(0, SIGKILL);
  restored.Start(0, {"--restore", backup});
  for (int i = 0; i < 250 && !restored.Exited(0); ++i)
    std::this_thread::sleep_for(milliseconds(20));
  EXPECT_NE(restored.Output(0).find("already holds a node's state"), std::string::npos)
      << restored.Output(0);
  std::remove(backup.c_str());
}

}  // namespace
}  // namespace raftkv

// Real raftkv-node processes on 127.0.0.1, real gRPC, real files: elections, status, and no
// acknowledged write lost across kill -9 of the leader and of every node.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "raftkv.grpc.pb.h"
#include "storage/file_util.h"
#include "tests/process/process_cluster.h"

namespace raftkv {
namespace {

using std::chrono::milliseconds;

ServeClientArgs Set(const std::string& key, const std::string& value, uint64_t client,
                    uint64_t sequence) {
  ServeClientArgs args;
  args.set_op(ServeClientArgs::SET);
  args.set_key(key);
  args.set_value(value);
  args.set_client_id(client);
  args.set_sequence(sequence);
  return args;
}

ServeClientArgs Get(const std::string& key) {
  ServeClientArgs args;
  args.set_op(ServeClientArgs::GET);
  args.set_key(key);
  return args;
}

TEST(NodeProcess, ElectsOneLeaderAndReportsStatus) {
  ProcessCluster cluster(3);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  ASSERT_TRUE(cluster.Request(Set("name1", "Jaggu", 7, 1)));
  // Followers learn the commit index with the next heartbeat: poll until the cluster agrees.
  std::string last_view;
  bool agreed = false;
  for (int attempt = 0; attempt < 100 && !agreed; ++attempt) {
    int leaders = 0;
    std::set<uint64_t> commits;
    std::set<std::string> named_leaders;
    bool lease_held = false;
    last_view.clear();
    for (int id = 0; id < 3; ++id) {
      auto status = cluster.Status(id);
      if (!status) break;
      leaders += status->role() == "leader";
      lease_held |= status->role() == "leader" && status->lease_remaining_ms() > 0;
      commits.insert(status->commit_index());
      named_leaders.insert(status->leader_id());
      last_view += status->ShortDebugString() + "\n";
    }
    agreed = leaders == 1 && lease_held && commits.size() == 1 && named_leaders.size() == 1 &&
             *named_leaders.begin() == std::to_string(leader);
    if (!agreed) std::this_thread::sleep_for(milliseconds(30));
  }
  EXPECT_TRUE(agreed) << "one leader, holding its lease, equal commit indexes:\n" << last_view;
  const std::string dump =
      *storage::ReadWholeFile(cluster.dir() + "/logs_node_" + std::to_string(leader) + "/dump.txt");
  for (const char* statement :
       {"election timer timed out, Starting election.", "became the leader for term",
        "sending heartbeat & Renewing Lease", "(leader) received an SET name1 Jaggu request.",
        "(leader) committed the entry SET name1 Jaggu to the state machine."}) {
    EXPECT_NE(dump.find(statement), std::string::npos) << statement;
  }
  auto bad = cluster.Request(Set("", "v", 7, 2));
  ASSERT_TRUE(bad);
  EXPECT_FALSE(bad->success());
  EXPECT_NE(bad->error().find("key is empty"), std::string::npos);

  // SIGTERM stops a node cleanly: exit status 0, and its commit index is on disk.
  const int status = cluster.Kill(leader, SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal instead of exiting";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const std::string metadata = *storage::ReadWholeFile(cluster.dir() + "/logs_node_" +
                                                       std::to_string(leader) + "/metadata.txt");
  EXPECT_EQ(metadata.find("commit_index 0\n"), std::string::npos) << metadata;
}

TEST(NodeProcess, NoAcknowledgedWriteIsLostAcrossKillNine) {
  ProcessCluster cluster(3);
  ASSERT_GE(cluster.WaitForLeader(), 0);
  std::map<std::string, std::string> acknowledged;
  uint64_t sequence = 0;
  auto write = [&](int count) {
    for (int i = 0; i < count; ++i) {
      const std::string key = "k" + std::to_string(sequence);
      const std::string value = "v" + std::to_string(sequence);
      ++sequence;
      if (cluster.Request(Set(key, value, 99, sequence))) acknowledged[key] = value;
    }
  };
  write(30);
  // kill -9 the leader in the middle of the stream, keep writing, bring it back.
  const int leader = cluster.WaitForLeader();
  std::thread killer([&] {
    std::this_thread::sleep_for(milliseconds(30));
    cluster.Kill(leader, SIGKILL);
  });
  write(40);
  killer.join();
  cluster.Start(leader);
  write(20);
  // kill -9 everyone at once, restart everyone.
  for (int id = 0; id < 3; ++id) cluster.Kill(id, SIGKILL);
  for (int id = 0; id < 3; ++id) cluster.Start(id);
  ASSERT_GE(cluster.WaitForLeader(), 0);
  EXPECT_GE(acknowledged.size(), 80u) << "too few writes were acknowledged to prove anything";
  for (const auto& [key, value] : acknowledged) {
    auto got = cluster.Request(Get(key));
    ASSERT_TRUE(got) << key;
    EXPECT_TRUE(got->found()) << key << " was acknowledged and then lost";
    EXPECT_EQ(got->data(), value);
  }
}

}  // namespace
}  // namespace raftkv

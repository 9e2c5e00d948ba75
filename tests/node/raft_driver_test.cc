// Three RaftDrivers in one process, wired by an in-memory transport, with real files: the driver's
// persist/send/apply loop, client answers, restarts from disk.
#include "node/raft_driver.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include "storage/file_util.h"

namespace raftkv::node {
namespace {

using std::chrono::milliseconds;

class Cluster : public PeerTransport {
 public:
  explicit Cluster(int size) : size_(size), drivers_(size) {
    char pattern[] = "/tmp/raftkv-driver-XXXXXX";
    dir_ = mkdtemp(pattern);
    for (NodeId id = 0; id < size; ++id) Start(id);
  }
  ~Cluster() override {
    // Through Stop: the other drivers' threads still read drivers_ (under mu_) as they send.
    for (NodeId id = 0; id < size_; ++id) Stop(id);
    std::filesystem::remove_all(dir_);
  }

  void Start(NodeId id) {
    NodeConfig config;
    config.raft.id = id;
    config.raft.cluster_size = size_;
    config.raft.heartbeat_interval = milliseconds(20);
    config.raft.election_timeout_min = milliseconds(150);
    config.raft.lease_duration = milliseconds(100);
    config.data_dir = dir_;
    config.log_to_stdout = false;
    auto driver = RaftDriver::Start(config, this);
    ASSERT_TRUE(driver.ok()) << driver.status();
    std::lock_guard<std::mutex> lock(mu_);
    drivers_[id] = std::move(*driver);
  }
  void Stop(NodeId id) {
    std::unique_ptr<RaftDriver> driver;
    {
      std::lock_guard<std::mutex> lock(mu_);
      driver = std::move(drivers_[id]);
    }
    driver.reset();
  }

  void Send(const raft::Message& message) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (drivers_[message.to]) drivers_[message.to]->Deliver(message);
  }

  RaftDriver& driver(NodeId id) { return *drivers_[id]; }
  const std::string& dir() const { return dir_; }

  NodeId WaitForLeader() {
    for (int i = 0; i < 500; ++i) {
      for (NodeId id = 0; id < size_; ++id) {
        if (drivers_[id] && drivers_[id]->Status().role == raft::Role::kLeader) return id;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    ADD_FAILURE() << "no leader within 5 s";
    return 0;
  }

 private:
  int size_;
  std::string dir_;
  std::mutex mu_;
  std::vector<std::unique_ptr<RaftDriver>> drivers_;
};

ClientResult Call(std::function<void(ClientCallback)> start) {
  auto promise = std::make_shared<std::promise<ClientResult>>();
  auto future = promise->get_future();
  start([promise](const ClientResult& result) { promise->set_value(result); });
  EXPECT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  return future.get();
}

ClientResult SetOn(RaftDriver& driver, const std::string& key, const std::string& value,
                   uint64_t client = 0, uint64_t sequence = 0) {
  return Call([&](ClientCallback done) {
    driver.Set(kv::SetCommand{key, value, client, sequence}, std::move(done));
  });
}

ClientResult GetOn(RaftDriver& driver, const std::string& key) {
  // A new leader may still be waiting out the old lease: retry briefly, as a client would.
  ClientResult result;
  for (int i = 0; i < 100; ++i) {
    result = Call([&](ClientCallback done) { driver.Get(key, std::move(done)); });
    if (result.kind == ClientResult::Kind::kOk || result.reason == ClientResult::Reason::kNotLeader)
      break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return result;
}

TEST(RaftDriver, ReplicatesServesAndRecoversFromDisk) {
  Cluster cluster(3);
  NodeId leader = cluster.WaitForLeader();
  ASSERT_EQ(SetOn(cluster.driver(leader), "name1", "Jaggu").kind, ClientResult::Kind::kOk);
  const ClientResult opened =
      Call([&](ClientCallback done) { cluster.driver(leader).OpenSession(std::move(done)); });
  ASSERT_EQ(opened.kind, ClientResult::Kind::kOk) << opened.error;
  const uint64_t session = opened.client_id;  // the OPEN-SESSION entry's index
  EXPECT_EQ(session, 3u) << "NO-OP, SET name1, then the OPEN-SESSION";
  ASSERT_EQ(SetOn(cluster.driver(leader), "greeting", "hello world", session, 1).kind,
            ClientResult::Kind::kOk);
  ClientResult got = GetOn(cluster.driver(leader), "greeting");
  ASSERT_EQ(got.kind, ClientResult::Kind::kOk) << got.error;
  EXPECT_EQ(got.value->value, "hello world");

  // Followers redirect.
  const NodeId follower = (leader + 1) % 3;
  ClientResult redirected = GetOn(cluster.driver(follower), "greeting");
  EXPECT_EQ(redirected.kind, ClientResult::Kind::kRejected);
  EXPECT_EQ(redirected.error, "not leader");
  EXPECT_EQ(redirected.reason, ClientResult::Reason::kNotLeader);
  EXPECT_EQ(redirected.leader_hint, leader);
  ClientResult refused = SetOn(cluster.driver(follower), "x", "y");
  EXPECT_EQ(refused.kind, ClientResult::Kind::kRejected);
  EXPECT_EQ(refused.leader_hint, leader);

  // Bad input changes nothing.
  ClientResult empty_key = SetOn(cluster.driver(leader), "", "v");
  EXPECT_NE(empty_key.error.find("key is empty"), std::string::npos);
  EXPECT_EQ(empty_key.reason, ClientResult::Reason::kInvalidArgument);
  EXPECT_NE(SetOn(cluster.driver(leader), std::string(5000, 'k'), "v").error.find("MAX_KEY_BYTES"),
            std::string::npos);
  // Sequence 0 would read as "already applied" to the session's watermark: refused instead.
  const ClientResult zero = SetOn(cluster.driver(leader), "k", "v", session, 0);
  EXPECT_EQ(zero.reason, ClientResult::Reason::kInvalidArgument);
  EXPECT_NE(zero.error.find("start at 1"), std::string::npos) << zero.error;

  // A retried SET with the same (client, sequence) is applied once.
  ASSERT_EQ(SetOn(cluster.driver(leader), "greeting", "bye", session, 2).kind,
            ClientResult::Kind::kOk);
  ASSERT_EQ(SetOn(cluster.driver(leader), "greeting", "hello world", session, 1).kind,
            ClientResult::Kind::kOk);
  EXPECT_EQ(GetOn(cluster.driver(leader), "greeting").value->value, "bye");
  EXPECT_EQ(GetOn(cluster.driver(leader), "greeting").value->version, 2u);  // the retry: no-op

  // The files say what happened.
  const std::string leader_dir = cluster.dir() + "/logs_node_" + std::to_string(leader);
  const std::string logs = *storage::ReadWholeFile(leader_dir + "/logs.txt");
  EXPECT_NE(logs.find("SET name1 Jaggu "), std::string::npos) << logs;
  EXPECT_NE(logs.find("OPEN-SESSION time="), std::string::npos) << logs;
  EXPECT_NE(logs.find("SET greeting hello%20world client=3:1 "), std::string::npos) << logs;
  const std::string dump = *storage::ReadWholeFile(leader_dir + "/dump.txt");
  EXPECT_NE(dump.find("became the leader for term"), std::string::npos);
  EXPECT_NE(dump.find("(leader) received an SET name1 Jaggu request."), std::string::npos);
  EXPECT_NE(dump.find("(leader) committed the entry SET name1 Jaggu to the state machine."),
            std::string::npos);

  // Stop every node, start them again from their directories: nothing acknowledged is lost.
  for (NodeId id = 0; id < 3; ++id) cluster.Stop(id);
  // A clean stop records the commit index it reached.
  const std::string metadata = *storage::ReadWholeFile(leader_dir + "/metadata.txt");
  EXPECT_EQ(metadata.find("commit_index 0\n"), std::string::npos) << metadata;
  for (NodeId id = 0; id < 3; ++id) cluster.Start(id);
  leader = cluster.WaitForLeader();
  got = GetOn(cluster.driver(leader), "name1");
  ASSERT_EQ(got.kind, ClientResult::Kind::kOk) << got.error;
  EXPECT_EQ(got.value->value, "Jaggu");
  EXPECT_EQ(GetOn(cluster.driver(leader), "greeting").value->value, "bye");
  // The session table was rebuilt from the log: the old retry is still recognised.
  ASSERT_EQ(SetOn(cluster.driver(leader), "greeting", "hello world", session, 1).kind,
            ClientResult::Kind::kOk);
  EXPECT_EQ(GetOn(cluster.driver(leader), "greeting").value->value, "bye");
}

// GETs from many threads while SETs are applied: a read sees every SET acknowledged before it
// started and never goes back in time, and with a lease it is answered on the caller's thread
// (the fast path) rather than by the driver.
TEST(RaftDriver, LeaseReadsFromManyThreadsSeeEveryAcknowledgedWrite) {
  Cluster cluster(3);
  const NodeId leader = cluster.WaitForLeader();
  RaftDriver& driver = cluster.driver(leader);
  ASSERT_EQ(SetOn(driver, "n", "0").kind, ClientResult::Kind::kOk);
  ASSERT_EQ(GetOn(driver, "n").kind, ClientResult::Kind::kOk);

  std::atomic<int> acknowledged{0};
  std::atomic<bool> writing{true};
  std::atomic<int> on_caller_thread{0}, served{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&] {
      int last_seen = 0;
      while (writing.load()) {
        const int floor = acknowledged.load();
        const std::thread::id caller = std::this_thread::get_id();
        bool inline_answer = false;
        ClientResult result = Call([&](ClientCallback done) {
          driver.Get("n", [&, done](const ClientResult& answer) {
            inline_answer = std::this_thread::get_id() == caller;
            done(answer);
          });
        });
        if (result.kind != ClientResult::Kind::kOk) continue;  // e.g. a lease renewal was late
        ASSERT_TRUE(result.value.has_value());
        const int seen = std::stoi(result.value->value);
        EXPECT_GE(seen, floor) << "missed a SET acknowledged before the read began";
        EXPECT_GE(seen, last_seen) << "went back in time";
        last_seen = seen;
        ++served;
        if (inline_answer) ++on_caller_thread;
      }
    });
  }
  for (int i = 1; i <= 200; ++i) {
    ASSERT_EQ(SetOn(driver, "n", std::to_string(i)).kind, ClientResult::Kind::kOk);
    acknowledged.store(i);
  }
  writing.store(false);
  for (std::thread& reader : readers) reader.join();
  EXPECT_GT(served.load(), 0);
  EXPECT_GT(on_caller_thread.load(), 0) << "no GET took the lease fast path";
}

}  // namespace
}  // namespace raftkv::node

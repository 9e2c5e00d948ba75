// Real raftkv-node processes on 127.0.0.1, real gRPC, real files: elections, status, and no
// acknowledged write lost across kill -9 of the leader and of every node.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "raftkv.grpc.pb.h"
#include "storage/file_util.h"
#include "tests/process/process_cluster.h"

namespace raftkv {
namespace {

using std::chrono::milliseconds;

// SETs through one session of `cluster`, each with the next sequence, keeping what was
// acknowledged; then every acknowledged write must read back.
class AcknowledgedWrites {
 public:
  // `key_value` names the key and value of the write with a sequence.
  AcknowledgedWrites(ProcessCluster& cluster,
                     std::function<std::pair<std::string, std::string>(uint64_t)> key_value)
      : cluster_(cluster), key_value_(std::move(key_value)), session_(cluster.OpenSession()) {}

  void Write(int count) {
    for (int i = 0; i < count; ++i) {
      ++sequence_;
      auto [key, value] = key_value_(sequence_);
      if (cluster_.Request(Set(key, value, session_, sequence_))) acknowledged_[key] = value;
    }
  }
  size_t size() const { return acknowledged_.size(); }
  // Every acknowledged key is found with its value (a test failure otherwise).
  void ExpectAllReadable() {
    for (const auto& [key, value] : acknowledged_) {
      auto got = cluster_.Request(Get(key));
      ASSERT_TRUE(got) << key;
      EXPECT_TRUE(got->found()) << key << " was acknowledged and then lost";
      EXPECT_EQ(got->data(), value) << key;
    }
  }

 private:
  ProcessCluster& cluster_;
  std::function<std::pair<std::string, std::string>(uint64_t)> key_value_;
  uint64_t session_;
  uint64_t sequence_ = 0;
  std::map<std::string, std::string> acknowledged_;
};

std::pair<std::string, std::string> SmallWrite(uint64_t sequence) {
  return {"k" + std::to_string(sequence), "v" + std::to_string(sequence)};
}

TEST(NodeProcess, ElectsOneLeaderAndReportsStatus) {
  ProcessCluster cluster(3);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  ASSERT_TRUE(cluster.Request(Set("name1", "Jaggu", cluster.OpenSession(), 1)));
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
  AcknowledgedWrites writes(cluster, SmallWrite);
  writes.Write(30);
  // kill -9 the leader in the middle of the stream, keep writing, bring it back.
  const int leader = cluster.WaitForLeader();
  std::thread killer([&] {
    std::this_thread::sleep_for(milliseconds(30));
    cluster.Kill(leader, SIGKILL);
  });
  writes.Write(40);
  killer.join();
  cluster.Start(leader);
  writes.Write(20);
  // kill -9 everyone at once, restart everyone.
  for (int id = 0; id < 3; ++id) cluster.Kill(id, SIGKILL);
  for (int id = 0; id < 3; ++id) cluster.Start(id);
  ASSERT_GE(cluster.WaitForLeader(), 0);
  EXPECT_GE(writes.size(), 80u) << "too few writes were acknowledged to prove anything";
  writes.ExpectAllReadable();
}

// A follower that misses more than a snapshot's worth of writes comes back by InstallSnapshot
// (its leader compacted the entries it needs), in many chunks, keeps up with new writes after it,
// and then, as the only node with the newest log, leads and serves every acknowledged key.
TEST(NodeProcess, AFollowerBehindTheLeadersSnapshotCatchesUpByInstallSnapshot) {
  ProcessCluster cluster(3, "[snapshot]\nENTRIES = 50\nKEEP_ENTRIES = 10\nCHUNK_BYTES = 1KiB\n");
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  const int behind = (leader + 1) % 3;
  const int other = (leader + 2) % 3;
  cluster.Kill(behind, SIGKILL);
  AcknowledgedWrites writes(cluster, [](uint64_t sequence) {
    return std::make_pair("key" + std::to_string(sequence),
                          std::string(40, 'a' + sequence % 26) + std::to_string(sequence));
  });
  writes.Write(300);
  ASSERT_EQ(writes.size(), 300u);
  const std::string behind_dir = cluster.dir() + "/logs_node_" + std::to_string(behind);
  cluster.Start(behind);
  const uint64_t commit = cluster.Status(leader)->commit_index();
  bool caught_up = false;
  for (int attempt = 0; attempt < 500 && !caught_up; ++attempt) {
    std::optional<StatusReply> status = cluster.Status(behind);
    caught_up = status && status->last_applied() >= commit;
    if (!caught_up) std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_TRUE(caught_up) << "the follower did not catch up within 10 s";
  const std::string dump = *storage::ReadWholeFile(behind_dir + "/dump.txt");
  EXPECT_NE(dump.find("installed a snapshot from the leader"), std::string::npos) << dump;
  EXPECT_TRUE(std::filesystem::exists(behind_dir + "/snapshot.txt"));
  // Its log goes on after the snapshot: with the other follower down, every write needs it.
  cluster.Kill(other, SIGKILL);
  writes.Write(20);
  EXPECT_EQ(writes.size(), 320u);
  EXPECT_EQ(storage::ReadWholeFile(behind_dir + "/logs.txt")->substr(0, 6), "START ");
  // Only it holds those 20: it must lead, from its snapshot and log.
  cluster.Kill(leader, SIGKILL);
  cluster.Start(other);
  ASSERT_EQ(cluster.WaitForLeader(), behind);
  writes.ExpectAllReadable();
}

// Damaged files on 2 of 3 nodes (a NUL byte in the middle of one logs.txt, another deleted):
// those nodes refuse to start, saying where and what to do, and the cluster never answers a GET
// with a missing or wrong acknowledged value. (Defect: the NUL byte dropped every later line as a
// "torn tail" and the deleted log started empty; acknowledged writes were lost for good.)
TEST(NodeProcess, DamagedLogsOnTwoNodesAreRefusedAndNothingIsLost) {
  ProcessCluster cluster(3);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  std::map<std::string, std::string> acknowledged;
  const uint64_t session = cluster.OpenSession();
  for (uint64_t i = 1; i <= 50; ++i) {
    const std::string key = "k" + std::to_string(i);
    if (cluster.Request(Set(key, "v" + std::to_string(i), session, i)))
      acknowledged[key] = "v" + std::to_string(i);
  }
  ASSERT_EQ(acknowledged.size(), 50u);
  for (int id = 0; id < 3; ++id) cluster.Kill(id, SIGTERM);
  const int nul_node = (leader + 1) % 3;
  const int deleted_node = (leader + 2) % 3;
  const auto dir = [&](int id) { return cluster.dir() + "/logs_node_" + std::to_string(id); };
  {
    std::fstream file(dir(nul_node) + "/logs.txt", std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(0, std::ios::end);
    const std::streamoff size = file.tellg();
    ASSERT_GT(size, 1000);
    file.seekp(size / 2);
    file.put('\0');
  }
  ASSERT_TRUE(std::filesystem::remove(dir(deleted_node) + "/logs.txt"));
  for (int id = 0; id < 3; ++id) cluster.Start(id);
  std::optional<int> nul_exit, deleted_exit;
  for (int i = 0; i < 250 && !(nul_exit && deleted_exit); ++i) {
    std::this_thread::sleep_for(milliseconds(20));
    if (!nul_exit) nul_exit = cluster.Exited(nul_node);
    if (!deleted_exit) deleted_exit = cluster.Exited(deleted_node);
  }
  ASSERT_TRUE(nul_exit && deleted_exit) << "nodes with damaged logs must refuse to start";
  EXPECT_TRUE(WIFEXITED(*nul_exit) && WEXITSTATUS(*nul_exit) != 0);
  EXPECT_TRUE(WIFEXITED(*deleted_exit) && WEXITSTATUS(*deleted_exit) != 0);
  EXPECT_NE(cluster.Output(nul_node).find("logs.txt:"), std::string::npos)
      << cluster.Output(nul_node);
  EXPECT_NE(cluster.Output(nul_node).find("--rebuild"), std::string::npos);
  EXPECT_NE(cluster.Output(deleted_node).find("logs.txt is missing"), std::string::npos)
      << cluster.Output(deleted_node);
  // The intact node alone cannot serve; whatever it answers must be right.
  int answered = 0;
  for (const auto& [key, value] : acknowledged) {
    if (auto got = cluster.Request(Get(key), milliseconds(100))) {
      ++answered;
      EXPECT_TRUE(got->found()) << key << " was acknowledged and then lost";
      EXPECT_EQ(got->data(), value);
    }
  }
  EXPECT_EQ(answered, 0) << "one node of three cannot hold a lease";
  EXPECT_TRUE(cluster.running(leader)) << cluster.Output(leader);
  // The damaged files are as they were: the refusal changed nothing.
  EXPECT_FALSE(std::filesystem::exists(dir(deleted_node) + "/logs.txt"));
}

// --rebuild: a follower whose logs.txt was damaged refuses to start; started once with --rebuild it
// discards its log and snapshot, comes back a term ahead (the leader steps down once), catches up
// by InstallSnapshot, and votes again: the cluster then survives losing the node that led.
TEST(NodeProcess, ADamagedFollowerIsRebuiltAndCatchesUpFromTheLeader) {
  ProcessCluster cluster(3, "[snapshot]\nENTRIES = 50\nKEEP_ENTRIES = 10\nCHUNK_BYTES = 1KiB\n");
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  AcknowledgedWrites writes(cluster, SmallWrite);
  writes.Write(120);
  const int damaged = (leader + 1) % 3;
  const std::string dir = cluster.dir() + "/logs_node_" + std::to_string(damaged);
  cluster.Kill(damaged, SIGTERM);
  {
    std::fstream file(dir + "/logs.txt", std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(0, std::ios::end);
    const std::streamoff size = file.tellg();
    ASSERT_GT(size, 200);
    file.seekp(size / 2);
    file.put('\0');
  }
  writes.Write(60);  // the others go on; the leader compacts past what the damaged node had
  cluster.Start(damaged);
  const std::optional<int> exited = cluster.WaitForExit(damaged, milliseconds(5000));
  ASSERT_TRUE(exited) << "a damaged log must be refused";
  ASSERT_NE(cluster.Output(damaged).find("--rebuild"), std::string::npos)
      << cluster.Output(damaged);

  cluster.Start(damaged, {"--rebuild"});
  const std::string dump_path = dir + "/dump.txt";
  bool rebuilt = false;
  for (int i = 0; i < 500 && !rebuilt; ++i) {
    std::this_thread::sleep_for(milliseconds(20));
    rebuilt = storage::ReadWholeFile(dump_path).value_or("").find("caught up after its rebuild") !=
              std::string::npos;
  }
  ASSERT_TRUE(rebuilt) << "no end of the rebuild within 10 s:\n" << cluster.Output(damaged);
  EXPECT_NE(cluster.Output(damaged).find("rebuilt " + dir), std::string::npos);
  EXPECT_NE(storage::ReadWholeFile(dump_path)->find("installed a snapshot from the leader"),
            std::string::npos);
  writes.Write(10);
  // Its vote counts again: without the node that led at first, the other two elect a leader.
  const int now_leading = cluster.WaitForLeader();
  cluster.Kill(now_leading, SIGKILL);
  const int next = cluster.WaitForLeader();
  ASSERT_GE(next, 0);
  EXPECT_NE(next, now_leading);
  writes.ExpectAllReadable();
  EXPECT_EQ(writes.size(), 190u);
}

// A client that sends requests on ServeClientStream and never reads the answers (here GETs of a
// 1 MB value: each small request asks for a large answer): the node stops reading its requests
// once 8 MiB of answers wait, and cuts it off past 64 MiB, dropping them. (Defect: the reply queue
// had no bound, and such a client grew the leader from 48 MiB to 4.6 GiB in 10 s.) The node stays
// within a bounded memory and keeps serving others.
TEST(NodeProcess, AStreamClientThatNeverReadsIsCutOffAndCostsBoundedMemory) {
  ProcessCluster cluster(3);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  ASSERT_TRUE(cluster.Request(Set("big", std::string(1'000'000, 'b'), 0, 0)));
  ASSERT_TRUE(cluster.Request(Set("small", "s", 0, 0)));
  const int64_t before = RssKib(cluster.pid(leader));
  auto stub = KV::NewStub(
      grpc::CreateChannel(cluster.addresses()[leader], grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto stream = stub->ServeClientStream(&context);
  std::atomic<int> batches_written{0};
  std::thread writer([&] {
    for (int batch = 0; batch < 50; ++batch) {
      if (!stream->Write(NumberedBatch(batch, 100, Get("big")))) return;  // cut off
      ++batches_written;
    }
  });
  int64_t peak = 0;
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    peak = std::max(peak, RssKib(cluster.pid(leader)));
  }
  // Others are served meanwhile.
  auto got = cluster.Request(Get("small"));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data(), "s");
  context.TryCancel();  // whatever state the stream is in, end it now
  writer.join();
  const grpc::Status status = stream->Finish();
  EXPECT_FALSE(status.ok());
  std::printf(
      "leader RSS %lld KiB before, peak %lld KiB while the client did not read; %d of 50 "
      "batches of 100 GETs written; stream ended: %d %s\n",
      static_cast<long long>(before), static_cast<long long>(peak), batches_written.load(),
      static_cast<int>(status.error_code()), status.error_message().c_str());
  // 64 MiB of answers at most, a batch being written, and the allocator's slack. (Before the
  // bound: gigabytes, the node reading on and queueing 100 MB of answers per batch.) A sanitizer's
  // allocator keeps freed blocks a while (ASan's quarantine: 256 MiB), the answers among them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr int64_t kBoundKib = 512 * 1024;
#else
  constexpr int64_t kBoundKib = 128 * 1024;
#endif
  EXPECT_LT(peak - before, kBoundKib) << "KiB";
  EXPECT_TRUE(cluster.running(leader));
  EXPECT_TRUE(cluster.Request(Get("small")));
}

// ServeClientStream as docs/api.md describes it: a batch of requests, answered by id (in any
// order), each with the reply the unary call would give; the node finishes the stream cleanly
// once the client has closed its side and everything is answered.
TEST(NodeProcess, ServeClientStreamAnswersABatchById) {
  ProcessCluster cluster(3);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  ASSERT_TRUE(cluster.Request(Get("warm-up")));  // the leader has applied its NO-OP
  auto stub = KV::NewStub(
      grpc::CreateChannel(cluster.addresses()[leader], grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + milliseconds(5000));
  auto stream = stub->ServeClientStream(&context);
  ClientRequestBatch batch;
  const uint64_t session = cluster.OpenSession();
  const std::vector<ServeClientArgs> requests = {
      Set("s", "one", session, 1), Set("", "v", session, 2), Set("s", "two", session, 3)};
  for (size_t i = 0; i < requests.size(); ++i) {
    StreamedRequest* request = batch.add_requests();
    request->set_id(100 + i);
    *request->mutable_args() = requests[i];
    request->set_timeout_ms(2000);
  }
  ASSERT_TRUE(stream->Write(batch));
  std::map<uint64_t, ServeClientReply> replies;
  ClientReplyBatch incoming;
  while (replies.size() < requests.size() && stream->Read(&incoming)) {
    for (const StreamedReply& reply : incoming.replies()) replies[reply.id()] = reply.reply();
  }
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_TRUE(replies[100].success());
  EXPECT_EQ(replies[101].error_code(), ServeClientReply::INVALID_ARGUMENT);
  EXPECT_TRUE(replies[102].success());
  // Two more batches on the same stream: a retry of sequence 1, which is recognised as applied
  // and changes nothing, then a GET that sees both SETs.
  batch.Clear();
  StreamedRequest* retry = batch.add_requests();
  retry->set_id(7);
  *retry->mutable_args() = Set("s", "one", session, 1);
  ASSERT_TRUE(stream->Write(batch));
  ASSERT_TRUE(stream->Read(&incoming));
  ASSERT_EQ(incoming.replies_size(), 1);
  EXPECT_EQ(incoming.replies(0).id(), 7u);
  EXPECT_TRUE(incoming.replies(0).reply().success());
  batch.Clear();
  StreamedRequest* get = batch.add_requests();
  get->set_id(8);
  *get->mutable_args() = Get("s");
  ASSERT_TRUE(stream->Write(batch));
  ASSERT_TRUE(stream->Read(&incoming));
  ASSERT_EQ(incoming.replies_size(), 1);
  EXPECT_EQ(incoming.replies(0).reply().data(), "two");
  EXPECT_EQ(incoming.replies(0).reply().version(), 2u);
  ASSERT_TRUE(stream->WritesDone());
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();

  // A follower answers NOT_LEADER on the stream too, with the leader's id.
  const int follower = (leader + 1) % 3;
  auto follower_stub = KV::NewStub(
      grpc::CreateChannel(cluster.addresses()[follower], grpc::InsecureChannelCredentials()));
  grpc::ClientContext follower_context;
  follower_context.set_deadline(std::chrono::system_clock::now() + milliseconds(5000));
  auto follower_stream = follower_stub->ServeClientStream(&follower_context);
  ASSERT_TRUE(follower_stream->Write(batch));
  ASSERT_TRUE(follower_stream->Read(&incoming));
  ASSERT_EQ(incoming.replies_size(), 1);
  EXPECT_EQ(incoming.replies(0).reply().error_code(), ServeClientReply::NOT_LEADER);
  EXPECT_EQ(incoming.replies(0).reply().leader_id(), std::to_string(leader));
  ASSERT_TRUE(follower_stream->WritesDone());
  EXPECT_TRUE(follower_stream->Finish().ok());
}

// The leader's AppendEntries stream, spoken raw: responses come back in the order sent, and a
// request that makes no sense ends the stream with INVALID_ARGUMENT and the reason.
TEST(NodeProcess, AppendEntriesStreamAnswersInOrderAndRefusesNonsense) {
  ProcessCluster cluster(3);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  const int follower = (leader + 1) % 3;
  auto stub = Raft::NewStub(
      grpc::CreateChannel(cluster.addresses()[follower], grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + milliseconds(5000));
  auto stream = stub->AppendEntriesStream(&context);
  // Term 0 is older than any elected term, so the follower refuses both and changes nothing.
  AppendEntriesBatch batch;
  for (int64_t sent_at : {111, 222}) {
    AppendEntriesRequest* request = batch.add_requests();
    request->set_term(0);
    request->set_leader_id(leader);
    request->set_receiver_id(follower);
    request->set_sent_at_ns(sent_at);
  }
  ASSERT_TRUE(stream->Write(batch));
  std::vector<AppendEntriesResponse> responses;
  AppendEntriesResponseBatch incoming;
  while (responses.size() < 2 && stream->Read(&incoming)) {
    responses.insert(responses.end(), incoming.responses().begin(), incoming.responses().end());
  }
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[0].echoed_sent_at_ns(), 111);
  EXPECT_EQ(responses[1].echoed_sent_at_ns(), 222);
  for (const AppendEntriesResponse& response : responses) {
    EXPECT_FALSE(response.success());
    EXPECT_GE(response.term(), 1u);
    EXPECT_EQ(response.follower_id(), follower);
  }
  batch.mutable_requests(0)->set_receiver_id((follower + 1) % 3);  // meant for another node
  ASSERT_TRUE(stream->Write(batch));
  while (stream->Read(&incoming)) {
  }
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("meant for node"), std::string::npos)
      << status.error_message();
  // The cluster is unharmed.
  EXPECT_TRUE(cluster.Request(Set("after", "nonsense", 0, 0)));
}

// Defect 5 over the wire: a session exists only once the cluster opened it (so a retry cannot
// re-create an evicted one and apply twice), and a sequence far ahead of the session is refused
// instead of turning every later SET into a silent "duplicate".
TEST(NodeProcess, SessionsComeFromTheClusterAndCannotBeAbused) {
  ProcessCluster cluster(3);
  ASSERT_GE(cluster.WaitForLeader(), 0);
  // A client inventing its id (as clients of earlier versions did) is told to open a session.
  auto invented = cluster.Request(Set("x", "never", 424242, 1));
  ASSERT_TRUE(invented);
  EXPECT_EQ(invented->error_code(), ServeClientReply::INVALID_ARGUMENT) << invented->error();
  EXPECT_NE(invented->error().find("OPEN_SESSION"), std::string::npos) << invented->error();
  const uint64_t session = cluster.OpenSession();
  const uint64_t other = cluster.OpenSession();
  EXPECT_NE(session, other);
  ASSERT_TRUE(cluster.Request(Set("x", "a", session, 1)));
  auto far = cluster.Request(Set("x", "huge", session, ~uint64_t{0}));
  ASSERT_TRUE(far);
  EXPECT_EQ(far->error_code(), ServeClientReply::INVALID_ARGUMENT) << far->error();
  EXPECT_NE(far->error().find("4096"), std::string::npos) << far->error();
  auto next = cluster.Request(Set("x", "b", session, 2));
  ASSERT_TRUE(next && next->success());
  auto retry = cluster.Request(Set("x", "a", session, 1));  // a late retry: deduplicated
  ASSERT_TRUE(retry && retry->success());
  auto read = cluster.Request(Get("x"));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->data(), "b");
  EXPECT_EQ(read->version(), 2u) << "x=a and x=b applied once each; nothing else";
  ServeClientArgs bad_op;
  bad_op.set_op(static_cast<ServeClientArgs::Op>(9));
  bad_op.set_key("x");
  auto refused = cluster.Request(bad_op);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->error_code(), ServeClientReply::INVALID_ARGUMENT) << refused->error();
}

// Runs one more raftkv-node as node `id` of `cluster` with `data_dir`, and waits (up to 10 s) for
// it to exit; returns its wait status and what it printed.
std::pair<int, std::string> RunExtraNode(ProcessCluster& cluster, int id,
                                         const std::string& data_dir,
                                         std::vector<std::string> extra_args = {}) {
  const std::string out = cluster.dir() + "/extra.out";
  std::filesystem::remove(out);  // one run's output each
  const pid_t pid = cluster.Spawn(id, data_dir, extra_args, out);
  int status = -1;
  for (int i = 0; i < 500; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(milliseconds(20));
    if (i == 499) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
  std::ifstream file(out);
  return {status, std::string(std::istreambuf_iterator<char>(file), {})};
}

// One process per node directory, and per listening address: a second node started on either
// refuses to start, says why, and the first one keeps serving (before, the second bound the
// same port beside the first, and the first died renaming metadata.txt).
TEST(NodeProcess, ASecondProcessOnTheSameDirectoryOrPortRefusesToStart) {
  ProcessCluster cluster(3);
  ASSERT_GE(cluster.WaitForLeader(), 0);
  // (With fault injection, which a node announces first thing in its dump.txt: the refused one
  // must not get that far into the running node's directory.)
  auto [same_dir, same_dir_out] =
      RunExtraNode(cluster, 0, cluster.dir(), {"--test-clock-rate", "1.01"});
  EXPECT_TRUE(WIFEXITED(same_dir) && WEXITSTATUS(same_dir) != 0) << same_dir_out;
  EXPECT_NE(same_dir_out.find("is in use by another process (pid "), std::string::npos)
      << same_dir_out;
  EXPECT_EQ(storage::ReadWholeFile(cluster.dir() + "/logs_node_0/dump.txt")->find("TESTING"),
            std::string::npos);
  // A symlink to the node's directory is the same directory.
  const std::string linked = cluster.dir() + "/linked";
  std::filesystem::create_directories(linked);
  std::filesystem::create_directory_symlink(cluster.dir() + "/logs_node_1",
                                            linked + "/logs_node_1");
  auto [symlinked, symlinked_out] = RunExtraNode(cluster, 1, linked);
  EXPECT_TRUE(WIFEXITED(symlinked) && WEXITSTATUS(symlinked) != 0) << symlinked_out;
  EXPECT_NE(symlinked_out.find("is in use by another process"), std::string::npos) << symlinked_out;
  // Its own directory but node 2's address: the port is taken.
  auto [same_port, same_port_out] = RunExtraNode(cluster, 2, cluster.dir() + "/elsewhere");
  EXPECT_TRUE(WIFEXITED(same_port) && WEXITSTATUS(same_port) != 0) << same_port_out;
  EXPECT_NE(same_port_out.find("cannot listen on"), std::string::npos) << same_port_out;
  // The cluster never noticed.
  for (int id = 0; id < 3; ++id) EXPECT_FALSE(cluster.Exited(id).has_value()) << "node " << id;
  EXPECT_TRUE(cluster.Request(Set("after", "intruders", 0, 0)));
}

// A forged RequestVote with term 2^64-1, or an AppendEntries asking for a lease of 10^15 ns, is
// refused with INVALID_ARGUMENT at the boundary: the term would wrap at the next election (every
// node aborting, then crash-looping), the lease would overflow the candidate's wait.
TEST(NodeProcess, AbsurdTermsAndLeasesAreRefusedAndTheClusterServes) {
  ProcessCluster cluster(3);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  const int follower = (leader + 1) % 3;
  auto stub = Raft::NewStub(
      grpc::CreateChannel(cluster.addresses()[follower], grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds(5000));
    RequestVoteRequest vote;
    vote.set_term(~uint64_t{0});
    vote.set_candidate_id((follower + 1) % 3);
    vote.set_receiver_id(follower);
    vote.set_last_log_index(1'000'000);
    vote.set_last_log_term(1'000'000);
    RequestVoteResponse response;
    const grpc::Status status = stub->RequestVote(&context, vote, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("term"), std::string::npos) << status.error_message();
  }
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds(5000));
    AppendEntriesRequest append;
    append.set_term(1);
    append.set_leader_id(leader);
    append.set_receiver_id(follower);
    append.set_lease_duration_ns(1'000'000'000'000'000);
    AppendEntriesResponse response;
    const grpc::Status status = stub->AppendEntries(&context, append, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("lease_duration_ns"), std::string::npos)
        << status.error_message();
  }
  {
    // An entry whose payload no node could apply: it used to be accepted, and to stop the
    // follower once committed.
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds(5000));
    AppendEntriesRequest append;
    append.set_term(cluster.Status(follower)->term());
    append.set_leader_id(leader);
    append.set_receiver_id(follower);
    append.set_prev_log_index(0);
    LogEntry* entry = append.add_entries();
    entry->set_term(append.term());
    entry->set_index(1);
    entry->set_type(LogEntry::COMMAND);
    entry->set_data("garbage");
    AppendEntriesResponse response;
    const grpc::Status status = stub->AppendEntries(&context, append, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("not a well-formed command"), std::string::npos)
        << status.error_message();
  }
  // The cluster is unharmed, and the follower is still at a sane term.
  EXPECT_TRUE(cluster.Request(Set("after", "forgery", 0, 0)));
  EXPECT_FALSE(cluster.Exited(follower).has_value());
  const int now_leader = cluster.WaitForLeader();
  ASSERT_GE(now_leader, 0);
}

// SIGTERM ends the node's open streams itself, once the driver has answered every request, and
// says why: a client learns to go elsewhere instead of seeing its stream cut at gRPC's shutdown
// deadline. The node exits cleanly with a follower's AppendEntries stream open too.
TEST(NodeProcess, SigtermEndsOpenStreamsSayingWhy) {
  ProcessCluster cluster(3);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  ASSERT_TRUE(cluster.Request(Get("warm-up")));
  auto stub = KV::NewStub(
      grpc::CreateChannel(cluster.addresses()[leader], grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + milliseconds(10000));
  auto stream = stub->ServeClientStream(&context);
  ClientRequestBatch batch;
  StreamedRequest* request = batch.add_requests();
  request->set_id(1);
  *request->mutable_args() = Get("k");
  ASSERT_TRUE(stream->Write(batch));
  ClientReplyBatch incoming;
  ASSERT_TRUE(stream->Read(&incoming));  // the stream is open and served

  // A follower first (the leader's AppendEntries stream is open to it), then the leader.
  for (const int node : {(leader + 1) % 3, leader}) {
    const int wait_status = cluster.Kill(node, SIGTERM);
    EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) << "node " << node;
  }
  while (stream->Read(&incoming)) {
  }
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("shutting down"), std::string::npos)
      << status.error_message();
}

}  // namespace
}  // namespace raftkv

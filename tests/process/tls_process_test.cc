// Mutual TLS end to end, with real processes and certificates from scripts/make-certs: the
// cluster serves clients that present a certificate from its CA (the library and the CLI); a
// client or a "peer" without one, or with one from another CA, is refused and changes nothing;
// node ids are bound to certificate names; and forged peer messages sent over an authenticated
// connection are refused with INVALID_ARGUMENT while the cluster keeps every acknowledged write.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "kv/command.h"
#include "raftkv.grpc.pb.h"
#include "raftkv/client.h"
#include "rpc/tls.h"
#include "storage/file_util.h"
#include "tests/process/process_cluster.h"

namespace raftkv {
namespace {

using std::chrono::milliseconds;

// Runs a shell command; returns its exit status and its output (stdout and stderr).
std::pair<int, std::string> Shell(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// Two certificate authorities from scripts/make-certs: the cluster's, and a stranger's.
class Certificates {
 public:
  Certificates() {
    // The refused handshakes this test makes on purpose are not worth a line each.
    rpc::ReportTlsRefusalsOnce("tls_process_test", /*report_refusals=*/false);
    char pattern[] = "/tmp/raftkv-certs-XXXXXX";
    dir_ = mkdtemp(pattern);
    for (const char* which : {"cluster", "other"}) {
      auto [status, output] = Shell(std::string(RAFTKV_SOURCE_DIR) + "/scripts/make-certs " + dir_ +
                                    "/" + which + " 3");
      EXPECT_EQ(status, 0) << output;
    }
  }
  ~Certificates() { std::filesystem::remove_all(dir_); }

  std::string File(const std::string& ca, const std::string& name) const {
    return dir_ + "/" + ca + "/" + name;
  }
  // config.ini's [tls] for the cluster's nodes.
  std::string NodeConfig() const {
    return "[tls]\nCA_FILE = " + File("cluster", "ca.crt") +
           "\nCERT_FILE = " + File("cluster", "node{id}.crt") +
           "\nKEY_FILE = " + File("cluster", "node{id}.key") + "\n";
  }
  // Credentials trusting `ca`'s CA and presenting `name`.crt (signed by `ca`); no `name`: none.
  std::shared_ptr<grpc::ChannelCredentials> Credentials(const std::string& ca,
                                                        const std::string& name = "") const {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = *storage::ReadWholeFile(File(ca, "ca.crt"));
    if (!name.empty()) {
      options.pem_cert_chain = *storage::ReadWholeFile(File(ca, name + ".crt"));
      options.pem_private_key = *storage::ReadWholeFile(File(ca, name + ".key"));
    }
    return grpc::SslCredentials(options);
  }
  client::TlsOptions ClientTls(const std::string& ca) const {
    return {File(ca, "ca.crt"), File(ca, "client.crt"), File(ca, "client.key")};
  }

 private:
  std::string dir_;
};

grpc::Status SendAppend(const std::string& address,
                        const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                        const AppendEntriesRequest& request) {
  auto stub = Raft::NewStub(grpc::CreateChannel(address, credentials));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + milliseconds(3000));
  AppendEntriesResponse response;
  return stub->AppendEntries(&context, request, &response);
}

// The first forgery: an AppendEntries in the follower's current term, naming the real
// leader, with made-up entries at the next indexes (a well-formed SET of "forged").
AppendEntriesRequest ForgedAppend(const StatusReply& follower, int leader, int follower_id) {
  AppendEntriesRequest append;
  append.set_term(follower.term());
  append.set_leader_id(leader);
  append.set_receiver_id(follower_id);
  append.set_prev_log_index(follower.last_log_index());
  append.set_prev_log_term(follower.term());
  append.set_leader_commit(follower.commit_index() + 1);
  LogEntry* entry = append.add_entries();
  entry->set_term(follower.term());
  entry->set_index(follower.last_log_index() + 1);
  entry->set_type(LogEntry::COMMAND);
  entry->set_data(kv::EncodeSet({"forged", "value", 0, 0}));
  return append;
}

int Count(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

std::string Join(const std::vector<std::string>& addresses) {
  std::string joined;
  for (const std::string& address : addresses) joined += (joined.empty() ? "" : ",") + address;
  return joined;
}

TEST(TlsCluster, ServesCertifiedClientsAndRefusesEveryoneElse) {
  Certificates certs;
  ProcessCluster cluster(3, certs.NodeConfig(), {}, certs.Credentials("cluster", "client"));
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  ASSERT_TRUE(cluster.Request(Set("before", "tls", 0, 0)));

  // The client library with the cluster's certificates works.
  client::ClientOptions options;
  options.addresses = cluster.addresses();
  options.tls = certs.ClientTls("cluster");
  auto good = client::Client::Create(options);
  ASSERT_TRUE(good.ok()) << good.status();
  ASSERT_TRUE((*good)->Set("library", "with certificates").ok());
  EXPECT_EQ((*good)->Get("library")->value, "with certificates");

  // The CLI, with flags and with the RAFTKV_* environment variables.
  const std::string cli = std::string(RAFTKV_CLI_BINARY) + " --nodes " + Join(cluster.addresses());
  auto [set_status, set_output] =
      Shell(cli + " --cacert " + certs.File("cluster", "ca.crt") + " --cert " +
            certs.File("cluster", "client.crt") + " --key " + certs.File("cluster", "client.key") +
            " set cli-key hello");
  EXPECT_EQ(set_status, 0) << set_output;
  auto [get_status, get_output] =
      Shell("RAFTKV_CACERT=" + certs.File("cluster", "ca.crt") +
            " RAFTKV_CERT=" + certs.File("cluster", "client.crt") +
            " RAFTKV_KEY=" + certs.File("cluster", "client.key") + " " + cli + " get cli-key");
  EXPECT_EQ(get_status, 0) << get_output;
  EXPECT_EQ(get_output, "hello\n");

  // A client without certificates, or with another CA's, is refused with a message saying so.
  options.deadline = milliseconds(1500);
  options.tls = {};
  auto plaintext = client::Client::Create(options);
  ASSERT_TRUE(plaintext.ok());
  absl::Status refused = (*plaintext)->Set("plaintext", "x");
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_NE(refused.message().find("--cacert"), std::string::npos) << refused;
  options.tls = certs.ClientTls("other");
  auto stranger = client::Client::Create(options);
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  refused = (*stranger)->Set("stranger", "x");
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_NE(refused.message().find("TLS handshake failed"), std::string::npos) << refused;
  auto [cli_status, cli_output] = Shell(cli + " --timeout 1500ms set cli-plaintext x");
  EXPECT_EQ(cli_status, 1) << cli_output;
  EXPECT_NE(cli_output.find("--cacert"), std::string::npos) << cli_output;

  // A client certificate presented against a bad key is refused before any connection.
  options.tls = certs.ClientTls("cluster");
  options.tls.key_file = certs.File("other", "client.key");
  auto mismatched = client::Client::Create(options);
  EXPECT_EQ(mismatched.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatched.status().message().find("is not the key of the certificate"),
            std::string::npos)
      << mismatched.status();

  // The forged AppendEntries, over every connection that is not the leader's own.
  const int follower = (leader + 1) % 3;
  const int bystander = (leader + 2) % 3;
  const std::string target = cluster.addresses()[follower];
  std::optional<StatusReply> before = cluster.Status(follower);
  ASSERT_TRUE(before.has_value());
  const AppendEntriesRequest forged = ForgedAppend(*before, leader, follower);
  grpc::Status status = SendAppend(target, grpc::InsecureChannelCredentials(), forged);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  status = SendAppend(target, certs.Credentials("other", "node" + std::to_string(leader)), forged);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  // Trusting the cluster's CA but presenting the other CA's certificate for the leader's name.
  grpc::SslCredentialsOptions mixed;
  mixed.pem_root_certs = *storage::ReadWholeFile(certs.File("cluster", "ca.crt"));
  mixed.pem_cert_chain = *storage::ReadWholeFile(certs.File("other", "node0.crt"));
  mixed.pem_private_key = *storage::ReadWholeFile(certs.File("other", "node0.key"));
  status = SendAppend(target, grpc::SslCredentials(mixed), forged);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  // The cluster's own certificates, but not the leader's: a client's, and another node's.
  status = SendAppend(target, certs.Credentials("cluster", "client"), forged);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  status =
      SendAppend(target, certs.Credentials("cluster", "node" + std::to_string(bystander)), forged);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_NE(status.error_message().find("node" + std::to_string(leader)), std::string::npos)
      << status.error_message();

  // Every other Raft call is bound the same way: another node's certificate cannot speak for the
  // leader, and a client's cannot even open the AppendEntries stream.
  {
    auto stub = Raft::NewStub(grpc::CreateChannel(
        target, certs.Credentials("cluster", "node" + std::to_string(bystander))));
    auto deadline = [] { return std::chrono::system_clock::now() + milliseconds(3000); };
    grpc::ClientContext vote_context;
    vote_context.set_deadline(deadline());
    RequestVoteRequest vote;
    vote.set_term(before->term() + 1);
    vote.set_candidate_id(leader);
    vote.set_receiver_id(follower);
    RequestVoteResponse vote_response;
    status = stub->RequestVote(&vote_context, vote, &vote_response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    grpc::ClientContext snapshot_context;
    snapshot_context.set_deadline(deadline());
    InstallSnapshotRequest chunk;
    chunk.set_term(before->term());
    chunk.set_leader_id(leader);
    chunk.set_receiver_id(follower);
    chunk.set_snapshot_index(before->commit_index() + 100);
    chunk.set_snapshot_term(before->term());
    chunk.set_snapshot_nodes(3);
    chunk.set_snapshot_bytes(4);
    chunk.set_data("abcd");
    chunk.set_done(true);
    Delivered delivered;
    status = stub->InstallSnapshot(&snapshot_context, chunk, &delivered);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    grpc::ClientContext reply_context;
    reply_context.set_deadline(deadline());
    InstallSnapshotResponse snapshot_reply;
    snapshot_reply.set_term(before->term());
    snapshot_reply.set_follower_id(leader);
    snapshot_reply.set_receiver_id(follower);
    status = stub->InstallSnapshotReply(&reply_context, snapshot_reply, &delivered);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    grpc::ClientContext stream_context;
    stream_context.set_deadline(deadline());
    auto stream = stub->AppendEntriesStream(&stream_context);
    AppendEntriesBatch batch;
    *batch.add_requests() = forged;
    stream->Write(batch);
    AppendEntriesResponseBatch responses;
    while (stream->Read(&responses)) {
    }
    status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    auto client_stub =
        Raft::NewStub(grpc::CreateChannel(target, certs.Credentials("cluster", "client")));
    grpc::ClientContext client_context;
    client_context.set_deadline(deadline());
    auto client_stream = client_stub->AppendEntriesStream(&client_context);
    while (client_stream->Read(&responses)) {
    }
    status = client_stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  }

  // None of it had an effect: the real leader's next entries are the ones kept and applied.
  ASSERT_TRUE(cluster.Request(Set("after", "forgeries", 0, 0)));
  std::optional<ServeClientReply> forged_key = cluster.Request(Get("forged"));
  ASSERT_TRUE(forged_key.has_value());
  EXPECT_FALSE(forged_key->found());
  EXPECT_EQ(cluster.Request(Get("before"))->data(), "tls");
  EXPECT_EQ((*good)->Get("library")->value, "with certificates");
  for (int id = 0; id < 3; ++id) EXPECT_FALSE(cluster.Exited(id).has_value()) << "node " << id;

  // Each node said once, not per attempt, why it refused (the plaintext client above tried many
  // times against each node).
  int nodes_that_said_so = 0;
  for (int id = 0; id < 3; ++id) {
    const std::string output = cluster.Output(id);
    const int said = Count(output, "TLS: refused a connection: the other side speaks plaintext");
    EXPECT_LE(said, 1) << output;
    nodes_that_said_so += said;
    EXPECT_EQ(Count(output, "Handshake failed"), 0) << output;  // gRPC's per-attempt line
  }
  EXPECT_GE(nodes_that_said_so, 1);
}

// Each forged message of the issue, sent with the sender's own certificate (so authenticated, as
// the node it names), is refused with INVALID_ARGUMENT at the boundary; the cluster keeps serving
// and keeps every acknowledged write.
TEST(TlsCluster, ForgedMessagesOverAnAuthenticatedConnectionAreRefused) {
  Certificates certs;
  ProcessCluster cluster(3, certs.NodeConfig(), {}, certs.Credentials("cluster", "client"));
  const int first = cluster.WaitForLeader();
  ASSERT_GE(first, 0);
  std::vector<std::pair<std::string, std::string>> acknowledged;
  const uint64_t session = cluster.OpenSession();
  for (uint64_t i = 1; i <= 5; ++i) {
    const std::string key = "k" + std::to_string(i);
    if (cluster.Request(Set(key, "v" + std::to_string(i), session, i))) {
      acknowledged.emplace_back(key, "v" + std::to_string(i));
    }
  }
  ASSERT_EQ(acknowledged.size(), 5u);
  // A second term, so that the committed entries are older than the current term.
  cluster.Kill(first, SIGKILL);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  cluster.Start(first);
  const int follower = 3 - first - leader;
  std::optional<StatusReply> status_before = cluster.Status(follower);
  ASSERT_TRUE(status_before.has_value());
  const std::string target = cluster.addresses()[follower];
  const auto as_leader = certs.Credentials("cluster", "node" + std::to_string(leader));

  // An entry in the current term at index 1, which the follower committed in the first term.
  // (Sent again if an election on a loaded machine changed the term in between: a request from
  // an older term is refused as stale, before its entries are looked at.)
  grpc::Status status;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::optional<StatusReply> now = cluster.Status(follower);
    ASSERT_TRUE(now.has_value());
    AppendEntriesRequest conflicting;
    conflicting.set_term(now->term());
    conflicting.set_leader_id(leader);
    conflicting.set_receiver_id(follower);
    conflicting.set_prev_log_index(0);
    conflicting.set_leader_commit(now->commit_index());
    LogEntry* entry = conflicting.add_entries();
    entry->set_term(now->term());
    entry->set_index(1);
    entry->set_type(LogEntry::COMMAND);
    entry->set_data(kv::EncodeSet({"forged", "value", 0, 0}));
    status = SendAppend(target, as_leader, conflicting);
    if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) break;
  }
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("committed"), std::string::npos) << status.error_message();

  // A payload no node could apply, in a higher term with a leader_commit covering it.
  AppendEntriesRequest garbage = ForgedAppend(*status_before, leader, follower);
  garbage.set_term(status_before->term() + 1000);
  garbage.mutable_entries(0)->set_term(status_before->term() + 1000);
  garbage.mutable_entries(0)->set_data("garbage");
  status = SendAppend(target, as_leader, garbage);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();

  // An absurd lease.
  AppendEntriesRequest lease = ForgedAppend(*status_before, leader, follower);
  lease.clear_entries();
  lease.set_lease_duration_ns(1'000'000'000'000'000);
  status = SendAppend(target, as_leader, lease);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();

  // An absurd term, from a candidate authenticated as itself.
  {
    const int candidate = first;
    auto stub = Raft::NewStub(grpc::CreateChannel(
        target, certs.Credentials("cluster", "node" + std::to_string(candidate))));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds(3000));
    RequestVoteRequest vote;
    vote.set_term(~uint64_t{0});
    vote.set_candidate_id(candidate);
    vote.set_receiver_id(follower);
    vote.set_last_log_index(1'000'000);
    vote.set_last_log_term(1'000'000);
    RequestVoteResponse response;
    status = stub->RequestVote(&context, vote, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  }

  // The follower is where it was, and nothing acknowledged is lost.
  std::optional<StatusReply> status_after = cluster.Status(follower);
  ASSERT_TRUE(status_after.has_value());
  EXPECT_LT(status_after->term(), status_before->term() + 1000) << "the forged term was refused";
  ASSERT_TRUE(cluster.Request(Set("after", "forgeries", session, 6)));
  for (const auto& [key, value] : acknowledged) {
    std::optional<ServeClientReply> reply = cluster.Request(Get(key));
    ASSERT_TRUE(reply.has_value()) << key;
    EXPECT_EQ(reply->data(), value) << key;
  }
  EXPECT_FALSE(cluster.Request(Get("forged"))->found());
  for (int id = 0; id < 3; ++id) EXPECT_FALSE(cluster.Exited(id).has_value()) << "node " << id;
}

// Counts the Raft calls that reach it, and answers none of them usefully.
class ImpostorRaft final : public Raft::Service {
 public:
  grpc::Status RequestVote(grpc::ServerContext*, const RequestVoteRequest* request,
                           RequestVoteResponse* response) override {
    ++calls;
    response->set_term(request->term());
    response->set_voter_id(2);
    response->set_vote_granted(true);
    return grpc::Status::OK;
  }
  grpc::Status AppendEntriesStream(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<AppendEntriesResponseBatch, AppendEntriesBatch>* stream) override {
    ++calls;
    AppendEntriesBatch batch;
    while (stream->Read(&batch)) {
    }
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};
};

// A server at node 2's address presenting a certificate of the cluster's CA, valid for the
// address, but node 0's: the nodes refuse to talk to it, since they check that the certificate
// at node i's address names "node<i>" (without that check it would get their votes requests and
// AppendEntries, and could answer them as node 2).
TEST(TlsCluster, AServerAtANodesAddressWithAnotherNodesCertificateGetsNoRaftCall) {
  Certificates certs;
  ProcessCluster cluster(3, certs.NodeConfig(), {}, certs.Credentials("cluster", "client"));
  cluster.Kill(2, SIGKILL);
  ImpostorRaft impostor;
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = *storage::ReadWholeFile(certs.File("cluster", "ca.crt"));
  options.pem_key_cert_pairs.push_back(
      {*storage::ReadWholeFile(certs.File("cluster", "node0.key")),
       *storage::ReadWholeFile(certs.File("cluster", "node0.crt"))});
  grpc::ServerBuilder builder;
  builder.AddListeningPort(cluster.addresses()[2], grpc::SslServerCredentials(options));
  builder.RegisterService(&impostor);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  // Nodes 0 and 1 elect a leader and replicate to each other, and try node 2 all the while.
  ASSERT_GE(cluster.WaitForLeader(), 0);
  ASSERT_TRUE(cluster.Request(Set("with", "two", 0, 0)));
  std::this_thread::sleep_for(milliseconds(1000));
  EXPECT_EQ(impostor.calls.load(), 0);
  server->Shutdown();
}

// A node whose certificate is not named for it refuses to start, saying so.
TEST(TlsCluster, ANodeWithAnotherNodesCertificateRefusesToStart) {
  Certificates certs;
  ProcessCluster cluster(1,
                         "[tls]\nCA_FILE = " + certs.File("cluster", "ca.crt") +
                             "\nCERT_FILE = " + certs.File("cluster", "node1.crt") +
                             "\nKEY_FILE = " + certs.File("cluster", "node1.key") + "\n",
                         {}, certs.Credentials("cluster", "client"));
  const std::optional<int> exited = cluster.WaitForExit(0, milliseconds(5000));
  ASSERT_TRUE(exited.has_value()) << cluster.Output(0);
  EXPECT_NE(cluster.Output(0).find("needs one named \"node0\""), std::string::npos)
      << cluster.Output(0);
}

}  // namespace
}  // namespace raftkv

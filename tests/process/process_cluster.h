// ProcessCluster: real raftkv-node processes on 127.0.0.1 for tests, each in its own data
// directory under one temporary directory, with kill/restart and a status probe.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "raftkv.grpc.pb.h"

namespace raftkv {

using std::chrono::milliseconds;

// Requests as a client sends them.
inline ServeClientArgs Set(const std::string& key, const std::string& value, uint64_t client,
                           uint64_t sequence) {
  ServeClientArgs args;
  args.set_op(ServeClientArgs::SET);
  args.set_key(key);
  args.set_value(value);
  args.set_client_id(client);
  args.set_sequence(sequence);
  return args;
}

inline ServeClientArgs Get(const std::string& key) {
  ServeClientArgs args;
  args.set_op(ServeClientArgs::GET);
  args.set_key(key);
  return args;
}

// Batch `batch` of a client that streams `size` requests at a time, each `args`, with ids
// numbered on from the batches before.
inline ClientRequestBatch NumberedBatch(int batch, int size, const ServeClientArgs& args) {
  ClientRequestBatch requests;
  for (int i = 0; i < size; ++i) {
    StreamedRequest* request = requests.add_requests();
    request->set_id(static_cast<uint64_t>(batch) * size + i);
    *request->mutable_args() = args;
  }
  return requests;
}

// A process's resident memory, in KiB (-1 if it is gone).
inline int64_t RssKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

class ProcessCluster {
 public:
  // `extra_config` is appended to every node's config.ini; `first_start_args` go to each node's
  // first start only (e.g. --restore FILE); `credentials` are the test's own to reach the nodes
  // (plaintext by default; a client certificate when extra_config sets [tls]).
  explicit ProcessCluster(int size, const std::string& extra_config = "",
                          const std::vector<std::string>& first_start_args = {},
                          std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr)
      : size_(size),
        pids_(size, -1),
        credentials_(credentials ? credentials : grpc::InsecureChannelCredentials()) {
    char pattern[] = "/tmp/raftkv-process-XXXXXX";
    dir_ = mkdtemp(pattern);
    // Below Linux's ephemeral range (32768+), so no outgoing connection can hold a node's port.
    const int base = 12000 + static_cast<int>(getpid() % 1000) * 10;
    for (int i = 0; i < size; ++i) addresses_.push_back("127.0.0.1:" + std::to_string(base + i));
    std::ofstream(dir_ + "/config.ini") << "[raft]\nHEARTBEAT_INTERVAL = 20ms\n"
                                           "ELECTION_TIMEOUT_MIN = 300ms\nLEASE_DURATION = 200ms\n"
                                           "[logging]\nSTDOUT = false\n"
                                        << extra_config;
    for (int i = 0; i < size; ++i) {
      stubs_.push_back(KV::NewStub(grpc::CreateChannel(addresses_[i], credentials_)));
    }
    for (int i = 0; i < size; ++i) Start(i, first_start_args);
  }
  ~ProcessCluster() {
    for (int i = 0; i < size_; ++i) Kill(i, SIGKILL);
    std::filesystem::remove_all(dir_);
  }

  void Start(int id, const std::vector<std::string>& extra_args = {}) {
    pids_[id] = Spawn(id, dir_, extra_args, dir_ + "/node" + std::to_string(id) + ".out");
  }
  // Starts a raftkv-node process as node `id` of this cluster with `data_dir` and `extra_args`,
  // its stdout and stderr appended to `output`; returns its pid. Start uses it; tests may run
  // more (e.g. a second process on a node's directory) and wait for them themselves.
  pid_t Spawn(int id, const std::string& data_dir, const std::vector<std::string>& extra_args,
              const std::string& output) const {
    std::fflush(nullptr);  // or the child's freopen writes out a copy of our buffered output
    const pid_t pid = fork();
    if (pid == 0) {
      std::vector<std::string> args = {RAFTKV_NODE_BINARY, std::to_string(id)};
      args.insert(args.end(), addresses_.begin(), addresses_.end());
      args.insert(args.end(), {"--config", config_path(), "--data-dir", data_dir});
      args.insert(args.end(), extra_args.begin(), extra_args.end());
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      freopen(output.c_str(), "a", stdout);
      dup2(fileno(stdout), fileno(stderr));  // start-up errors land in the same file
      prctl(PR_SET_PDEATHSIG, SIGKILL);      // no orphaned nodes if the test dies
      execv(argv[0], argv.data());
      _exit(127);
    }
    return pid;
  }
  // The node's exit status if it has exited (it is then no longer running), else nullopt.
  std::optional<int> Exited(int id) {
    if (pids_[id] <= 0) return std::nullopt;
    int status = 0;
    if (waitpid(pids_[id], &status, WNOHANG) != pids_[id]) return std::nullopt;
    pids_[id] = -1;
    return status;
  }
  // Waits up to `limit` for node `id` to exit; its exit status, or nullopt if it still runs.
  std::optional<int> WaitForExit(int id, milliseconds limit) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    std::optional<int> exited = Exited(id);
    while (!exited && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(milliseconds(20));
      exited = Exited(id);
    }
    return exited;
  }
  std::string Output(int id) const {
    std::ifstream file(dir_ + "/node" + std::to_string(id) + ".out");
    return std::string(std::istreambuf_iterator<char>(file), {});
  }
  // Returns the wait status.
  int Kill(int id, int signal) {
    if (pids_[id] <= 0) return -1;
    kill(pids_[id], signal);
    int status = 0;
    waitpid(pids_[id], &status, 0);
    pids_[id] = -1;
    return status;
  }

  pid_t pid(int id) const { return pids_[id]; }

  std::optional<StatusReply> Status(int id) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds(500));
    StatusReply reply;
    // A fresh channel per probe: one created before the node listened would sit in gRPC's
    // reconnect backoff for seconds after the node came up.
    auto stub = KV::NewStub(grpc::CreateChannel(addresses_[id], credentials_));
    if (!stub->Status(&context, StatusArgs(), &reply).ok()) return std::nullopt;
    return reply;
  }

  int WaitForLeader() {
    for (int attempt = 0; attempt < 300; ++attempt) {
      for (int id = 0; id < size_; ++id) {
        if (pids_[id] <= 0) continue;
        if (auto status = Status(id); status && status->role() == "leader") return id;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    ADD_FAILURE() << "no leader within 6 s";
    return -1;
  }

  // A client as the real one will behave: follow hints, retry (same sequence) until the deadline.
  std::optional<ServeClientReply> Request(ServeClientArgs args,
                                          milliseconds budget = milliseconds(10000)) {
    const auto deadline = std::chrono::steady_clock::now() + budget;
    int target = guess_;
    while (std::chrono::steady_clock::now() < deadline) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + milliseconds(1000));
      ServeClientReply reply;
      grpc::Status status = stubs_[target]->ServeClient(&context, args, &reply);
      if (status.ok() && reply.success()) {
        guess_ = target;
        return reply;
      }
      if (status.ok() && !reply.leader_id().empty() && reply.error() == "not leader") {
        target = std::stoi(reply.leader_id());
      } else {
        // Refusals that no retry changes.
        if (status.ok() && (reply.error_code() == ServeClientReply::INVALID_ARGUMENT ||
                            reply.error_code() == ServeClientReply::SESSION_EXPIRED)) {
          return reply;
        }
        if (!status.ok() || reply.leader_id().empty()) target = (target + 1) % size_;
        std::this_thread::sleep_for(milliseconds(20));
      }
    }
    return std::nullopt;
  }

  // Opens a client session (OPEN_SESSION) and returns its id, or 0 if none could be opened.
  uint64_t OpenSession() {
    ServeClientArgs args;
    args.set_op(ServeClientArgs::OPEN_SESSION);
    std::optional<ServeClientReply> reply = Request(args);
    EXPECT_TRUE(reply && reply->client_id() != 0) << "no session could be opened";
    return reply ? reply->client_id() : 0;
  }

  const std::string& dir() const { return dir_; }
  const std::vector<std::string>& addresses() const { return addresses_; }
  std::string config_path() const { return dir_ + "/config.ini"; }
  int size() const { return size_; }
  bool running(int id) const { return pids_[id] > 0; }

 private:
  int size_;
  std::string dir_;
  std::vector<std::string> addresses_;
  std::vector<pid_t> pids_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::vector<std::unique_ptr<KV::Stub>> stubs_;
  int guess_ = 0;
};

}  // namespace raftkv

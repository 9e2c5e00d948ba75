#include "tests/chaos/chaos_cluster.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

namespace raftkv::chaos {

ChaosCluster::ChaosCluster(ClusterOptions options)
    : options_(std::move(options)),
      pids_(options_.nodes, -1),
      paused_(options_.nodes, false),
      slow_(options_.nodes, false),
      proxies_(options_.nodes) {
  for (int i = 0; i < options_.nodes; ++i) {
    client_addresses_.push_back(Address(options_.base_port + i));
    proxies_[i].resize(options_.nodes);
  }
  std::ofstream(options_.dir + "/config.ini") << options_.config_text;
}

ChaosCluster::~ChaosCluster() {
  for (int i = 0; i < options_.nodes; ++i) {
    if (paused_[i] && pids_[i] > 0) kill(pids_[i], SIGCONT);
    Kill(i);
  }
}

absl::Status ChaosCluster::StartAll() {
  for (int from = 0; from < options_.nodes; ++from) {
    for (int to = 0; to < options_.nodes; ++to) {
      if (from == to) continue;
      absl::StatusOr<std::unique_ptr<TcpProxy>> proxy =
          TcpProxy::Start(ProxyPort(from, to), options_.base_port + to);
      if (!proxy.ok()) return proxy.status();
      proxies_[from][to] = std::move(*proxy);
    }
  }
  for (int i = 0; i < options_.nodes; ++i) {
    if (absl::Status status = Start(i); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status ChaosCluster::Start(int node) {
  if (pids_[node] > 0) return absl::OkStatus();
  // Node i's view of the cluster: itself at its real address, every peer behind the proxy i→peer.
  std::vector<std::string> args = {options_.node_binary, std::to_string(node)};
  for (int peer = 0; peer < options_.nodes; ++peer) {
    args.push_back(peer == node ? client_addresses_[node] : Address(ProxyPort(node, peer)));
  }
  const double rate = options_.clock_rates.empty() ? 1.0 : options_.clock_rates[node];
  args.insert(args.end(), {"--config", options_.dir + "/config.ini", "--data-dir", options_.dir,
                           "--test-clock-rate", std::to_string(rate), "--test-fsync-delay",
                           options_.fsync_delay, "--test-inject-bug", options_.injected_bug});
  const std::string output = options_.dir + "/node" + std::to_string(node) + ".out";
  std::fflush(nullptr);  // or the child's freopen writes out a copy of our buffered output
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphaned nodes if the harness dies
    if (std::freopen(output.c_str(), "a", stdout) == nullptr) _exit(126);
    if (std::freopen(output.c_str(), "a", stderr) == nullptr) _exit(126);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pids_[node] = pid;
  paused_[node] = false;
  slow_[node] = false;
  return absl::OkStatus();
}

void ChaosCluster::Kill(int node) {
  if (pids_[node] <= 0) return;
  kill(pids_[node], SIGKILL);
  waitpid(pids_[node], nullptr, 0);
  pids_[node] = -1;
  paused_[node] = false;
}

void ChaosCluster::Pause(int node) {
  if (pids_[node] <= 0 || paused_[node]) return;
  kill(pids_[node], SIGSTOP);
  paused_[node] = true;
}

void ChaosCluster::Resume(int node) {
  if (pids_[node] <= 0 || !paused_[node]) return;
  kill(pids_[node], SIGCONT);
  paused_[node] = false;
}

void ChaosCluster::SetSlowDisk(int node, bool slow) {
  if (pids_[node] <= 0) return;
  kill(pids_[node], slow ? SIGUSR1 : SIGUSR2);
  slow_[node] = slow;
}

void ChaosCluster::SetLink(int from, int to, bool cut) {
  if (from != to) proxies_[from][to]->SetCut(cut);
}

void ChaosCluster::SetLinkDelay(int from, int to, std::chrono::milliseconds delay) {
  if (from != to) proxies_[from][to]->SetDelay(delay);
}

void ChaosCluster::Partition(const std::vector<std::vector<int>>& groups) {
  std::vector<int> group_of(options_.nodes, -1);
  for (size_t g = 0; g < groups.size(); ++g) {
    for (int node : groups[g]) group_of[node] = static_cast<int>(g);
  }
  for (int from = 0; from < options_.nodes; ++from) {
    for (int to = 0; to < options_.nodes; ++to) {
      const bool together = group_of[from] >= 0 && group_of[from] == group_of[to];
      SetLink(from, to, !together);
    }
  }
}

void ChaosCluster::HealNetwork() {
  for (int from = 0; from < options_.nodes; ++from) {
    for (int to = 0; to < options_.nodes; ++to) {
      SetLink(from, to, false);
      SetLinkDelay(from, to, std::chrono::milliseconds(0));
    }
  }
}

absl::Status ChaosCluster::HealAll() {
  HealNetwork();
  for (int i = 0; i < options_.nodes; ++i) {
    Resume(i);
    if (slow_[i]) SetSlowDisk(i, false);
    if (absl::Status status = Start(i); !status.ok()) return status;
  }
  return absl::OkStatus();
}

std::optional<StatusReply> ChaosCluster::NodeStatus(int node, int timeout_ms) {
  if (pids_[node] <= 0 || paused_[node]) return std::nullopt;
  // A fresh channel per probe: a long-lived one created before the node listened would sit in
  // gRPC's reconnect backoff for seconds after the node came up.
  auto stub =
      KV::NewStub(grpc::CreateChannel(client_addresses_[node], grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  StatusReply reply;
  if (!stub->Status(&context, StatusArgs(), &reply).ok()) return std::nullopt;
  return reply;
}

std::optional<LeaderInfo> ChaosCluster::Leader(int timeout_ms) {
  std::optional<LeaderInfo> best;
  for (int i = 0; i < options_.nodes; ++i) {
    std::optional<StatusReply> reply = NodeStatus(i, timeout_ms);
    if (reply && reply->role() == "leader" && (!best || reply->term() > best->term)) {
      best = LeaderInfo{i, reply->term()};
    }
  }
  return best;
}

std::optional<LeaderInfo> ChaosCluster::WaitForLeader(int timeout_ms) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < give_up) {
    if (std::optional<LeaderInfo> leader = Leader(); leader) return leader;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return std::nullopt;
}

std::vector<std::string> ChaosCluster::ReapUnexpectedExits() {
  std::vector<std::string> exits;
  for (int i = 0; i < options_.nodes; ++i) {
    if (pids_[i] <= 0) continue;
    int status = 0;
    if (waitpid(pids_[i], &status, WNOHANG) != pids_[i]) continue;
    exits.push_back("node " + std::to_string(i) + " exited by itself (" +
                    (WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status))
                                       : "signal " + std::to_string(WTERMSIG(status))) +
                    "; see " + options_.dir + "/node" + std::to_string(i) + ".out)");
    pids_[i] = -1;
    paused_[i] = false;
  }
  return exits;
}

std::string ChaosCluster::DumpPath(int node) const {
  return options_.dir + "/logs_node_" + std::to_string(node) + "/dump.txt";
}

}  // namespace raftkv::chaos

// ChaosCluster: N raftkv-node processes on loopback for the fault tests, each with its own data
// directory, wired to each other through TcpProxy links the nemesis can cut, and reachable by
// clients directly (so a partitioned old leader is still reachable by clients — the case that
// catches stale lease reads). Nodes can be killed (SIGKILL), restarted, paused (SIGSTOP),
// resumed, and given a slow disk (SIGUSR1/SIGUSR2 with --test-fsync-delay).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "raftkv.grpc.pb.h"
#include "tests/chaos/tcp_proxy.h"

namespace raftkv::chaos {

struct ClusterOptions {
  int nodes = 3;
  int base_port = 0;  // node i listens on base_port + i; proxies use base_port + 100 + 10 i + j
  std::string node_binary;
  std::string dir;                  // one directory for config.ini, node data and node output
  std::string config_text;          // config.ini for every node
  std::vector<double> clock_rates;  // per node; empty: 1.0
  std::string fsync_delay = "0ms";  // the slow disk's delay (switched on per node at run time)
  std::string injected_bug = "none";
};

struct LeaderInfo {
  int id = -1;
  uint64_t term = 0;
};

class ChaosCluster {
 public:
  explicit ChaosCluster(ClusterOptions options);
  ~ChaosCluster();  // kills every node, closes every proxy

  absl::Status StartAll();
  absl::Status Start(int node);
  void Kill(int node);  // SIGKILL and reap
  void Pause(int node);
  void Resume(int node);
  void SetSlowDisk(int node, bool slow);

  // Cuts (or heals) the link that carries everything `from` sends to `to`.
  void SetLink(int from, int to, bool cut);
  // Delays everything `from` sends to `to` (0: no delay).
  void SetLinkDelay(int from, int to, std::chrono::milliseconds delay);
  // Nodes can talk only within their own group; a node in no group is cut from everyone.
  void Partition(const std::vector<std::vector<int>>& groups);
  void HealNetwork();
  // Everything back: network healed, paused nodes resumed, dead nodes restarted, disks fast.
  absl::Status HealAll();

  // One node's Status, or nullopt when it does not answer within `timeout_ms`.
  std::optional<StatusReply> NodeStatus(int node, int timeout_ms = 300);
  // The node that says it is leader with the highest term, asking every running, unpaused node.
  std::optional<LeaderInfo> Leader(int timeout_ms = 300);
  std::optional<LeaderInfo> WaitForLeader(int timeout_ms);

  int size() const { return options_.nodes; }
  bool running(int node) const { return pids_[node] > 0; }
  bool paused(int node) const { return paused_[node]; }
  const std::vector<std::string>& client_addresses() const { return client_addresses_; }
  std::string DumpPath(int node) const;
  // Nodes that exited although no one killed them (a crash, or a port taken): a node that dies
  // by itself is a failure, and faults aimed at it would silently do nothing. Reaps them.
  std::vector<std::string> ReapUnexpectedExits();

 private:
  std::string Address(int port) const { return "127.0.0.1:" + std::to_string(port); }
  int ProxyPort(int from, int to) const { return options_.base_port + 100 + 10 * from + to; }

  ClusterOptions options_;
  std::vector<std::string> client_addresses_;
  std::vector<pid_t> pids_;
  std::vector<bool> paused_;
  std::vector<bool> slow_;
  // proxies_[from][to]; null on the diagonal.
  std::vector<std::vector<std::unique_ptr<TcpProxy>>> proxies_;
};

}  // namespace raftkv::chaos

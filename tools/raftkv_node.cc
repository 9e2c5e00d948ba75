// raftkv-node: one node of a raftkv cluster.
//
//   raftkv-node <node_id> <addr0> <addr1> ... [--config config.ini] [--data-dir DIR]
//   raftkv-node <node_id> --config config.ini      (addresses from its [cluster] NODES)
//
// Node ids are positions in the address list; this node listens on its own address and serves
// both the peer service (Raft) and the client service (KV). SIGTERM or SIGINT stops it cleanly.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/address.h"
#include "config/node_config.h"
#include "node/node_dir.h"
#include "rpc/accept_gate.h"
#include "rpc/node_server.h"
#include "rpc/tls.h"

namespace {

using raftkv::config::NodeConfig;

int Fail(const std::string& message) {
  std::fprintf(stderr, "raftkv-node: %s\n", message.c_str());
  return 1;
}

int Run(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex lock inside gRPC also feeds a global
  // deadlock-detection graph, a cost on every lock; we rely on TSan for that instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  raftkv::rpc::ReportTlsRefusalsOnce("raftkv-node");
  CLI::App app{"raftkv-node: one node of a raftkv cluster (Raft with leader leases)"};
  int node_id = -1;
  std::vector<std::string> addresses;
  std::string config_path;
  std::string data_dir;
  app.add_option("node_id", node_id, "this node's position in the address list (0..N-1)")
      ->required();
  app.add_option("addresses", addresses,
                 "every node's host:port, in node-id order (default: [cluster] NODES of --config)");
  app.add_option("--config", config_path, "config.ini to read (default: built-in defaults)");
  app.add_option("--data-dir", data_dir, "overrides [storage] DATA_DIR");
  std::string metrics_listen;
  app.add_option("--metrics-listen", metrics_listen,
                 "HOST:PORT where this node serves /metrics (Prometheus), /health and /status "
                 "over HTTP (overrides this node's entry in [metrics] LISTEN)");
  bool rebuild = false;
  std::string restore_file;
  app.add_flag("--rebuild", rebuild,
               "discard this node's log and snapshot (refused or damaged), keeping its term and "
               "vote, and catch up from the leader; once, by hand (README, Recovery)");
  app.add_option("--restore", restore_file,
                 "start a new cluster from a backup (raftkv snapshot save FILE): this node's "
                 "directory must be empty; restore every node from the same file")
      ->excludes("--rebuild");
  // Fault injection for the process-level fault tests; never for production use.
  double clock_rate = 1.0;
  std::string fsync_delay_text = "0ms", injected_bug_name = "none";
  bool slow_disk_at_start = false;
  const std::string testing = "Testing only (fault injection)";
  app.add_option("--test-clock-rate", clock_rate,
                 "run this node's clock at RATE times real time (drift tests)")
      ->group(testing);
  app.add_option("--test-fsync-delay", fsync_delay_text,
                 "sleep this long before every fsync while the slow disk is on (SIGUSR1 on, "
                 "SIGUSR2 off)")
      ->group(testing);
  app.add_flag("--test-slow-disk", slow_disk_at_start, "start with the slow disk on")
      ->group(testing);
  app.add_option("--test-inject-bug", injected_bug_name,
                 "switch on a deliberate bug in the consensus core, to show the tests catch it: "
                 "read-without-lease, skip-old-lease-wait, skip-noop-before-read, "
                 "forget-to-persist-vote, commit-old-term-by-count")
      ->group(testing);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  NodeConfig config;
  if (!config_path.empty()) {
    absl::StatusOr<NodeConfig> loaded = raftkv::config::LoadNodeConfig(config_path);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    config = *loaded;
  }
  if (addresses.empty()) addresses = config.nodes;
  if (addresses.empty()) {
    return Fail(
        "no node addresses: list them after the node id, or set [cluster] NODES in the "
        "file given with --config");
  }
  for (const std::string& address : addresses) {
    if (absl::Status status = raftkv::CheckAddress(address); !status.ok()) {
      return Fail(std::string(status.message()));
    }
  }
  if (node_id < 0 || node_id >= static_cast<int>(addresses.size())) {
    return Fail("node_id " + std::to_string(node_id) + " is not a position in the list of " +
                std::to_string(addresses.size()) + " addresses (valid: 0.." +
                std::to_string(addresses.size() - 1) + ")");
  }
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (!(clock_rate > 0.5 && clock_rate < 2.0))
    return Fail("--test-clock-rate: give 0.5 < RATE < 2");
  config.testing.clock_rate = clock_rate;
  absl::StatusOr<raftkv::Duration> fsync_delay = raftkv::config::ParseDuration(fsync_delay_text);
  if (!fsync_delay.ok())
    return Fail("--test-fsync-delay: " + std::string(fsync_delay.status().message()));
  config.testing.fsync_delay = *fsync_delay;
  config.testing.slow_disk_at_start = slow_disk_at_start;
  bool known_bug = false;
  config.raft.injected_bug = raftkv::raft::ParseInjectedBug(injected_bug_name, &known_bug);
  if (!known_bug) return Fail("--test-inject-bug: unknown bug '" + injected_bug_name + "'");
  config.raft.id = node_id;
  config.raft.cluster_size = static_cast<int>(addresses.size());
  if (absl::Status status = raftkv::config::ValidateNodeConfig(config); !status.ok()) {
    return Fail(std::string(status.message()));
  }

  if (rebuild || !restore_file.empty()) {
    absl::StatusOr<std::string> done =
        rebuild ? raftkv::node::RebuildNodeDir(raftkv::storage::PosixEnv(), config.node_dir(),
                                               config.raft.cluster_size)
                : raftkv::node::RestoreNodeDir(raftkv::storage::PosixEnv(), config.node_dir(),
                                               restore_file, config.raft.cluster_size);
    if (!done.ok()) return Fail(std::string(done.status().message()));
    std::fprintf(stdout, "raftkv-node %d: %s\n", node_id, done->c_str());
  }

  // Signals are taken by this thread alone (sigwait below), so block them before any other
  // thread starts: every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  if (config.testing.fsync_delay.count() > 0) {
    sigaddset(&signals, SIGUSR1);
    sigaddset(&signals, SIGUSR2);
  }
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Before the server listens: the open-file limit raised, the connection cap armed.
  const raftkv::rpc::AcceptGateReport gate = raftkv::rpc::ArmAcceptGate(config.max_connections);
  if (!gate.warning.empty())
    std::fprintf(stderr, "raftkv-node: warning: %s\n", gate.warning.c_str());

  if (metrics_listen.empty()) metrics_listen = config.node_metrics_listen();
  absl::StatusOr<std::unique_ptr<raftkv::rpc::NodeServer>> node =
      raftkv::rpc::NodeServer::Start(config, addresses, metrics_listen);
  if (!node.ok()) return Fail(std::string(node.status().message()));
  std::fprintf(stdout,
               "raftkv-node %d listening on %s, data in %s/logs_node_%d, up to %lld connections "
               "(open-file limit %lld)\n",
               node_id, addresses[node_id].c_str(), config.data_dir.c_str(), node_id,
               static_cast<long long>(gate.max_connections),
               static_cast<long long>(gate.soft_limit));
  if (!metrics_listen.empty()) {
    std::fprintf(stdout, "raftkv-node %d: metrics at http://%s/metrics, health at /health\n",
                 node_id, metrics_listen.c_str());
  }
  std::fflush(stdout);

  int received = 0;
  while (sigwait(&signals, &received) == 0 && (received == SIGUSR1 || received == SIGUSR2)) {
    (*node)->SetSlowDisk(received == SIGUSR1);
  }
  std::fprintf(stdout, "raftkv-node %d: %s, shutting down\n", node_id,
               received == SIGTERM ? "SIGTERM" : "SIGINT");
  (*node)->Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    return Fail(std::string("unexpected error: ") + error.what());
  }
}

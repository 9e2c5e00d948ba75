// MetricsServer: a node's HTTP endpoint for operators, on an address of its own
// (--metrics-listen HOST:PORT, or [metrics] LISTEN): Prometheus metrics at /metrics, a health
// check at /health for load balancers and alerting, and /status as JSON (what `raftkv status`
// shows for this node). HttpEndpoint serves it on a thread of its own; each request asks the
// driver for the node's status (a mailbox round trip, never the hot path), and answers 503 if the
// driver does not answer within 2 s.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "node/raft_driver.h"
#include "rpc/http_endpoint.h"
#include "rpc/request_metrics.h"

namespace raftkv::rpc {

// What the gRPC layer counts, read when a scrape comes.
struct ServingCounts {
  int64_t client_streams = 0;    // ServeClientStream calls open now
  int64_t connections_open = 0;  // inbound connections open now (clients' and peers')
  int64_t connections_shed = 0;  // closed at accept past MAX_CONNECTIONS (accept_gate.h)
  RequestMetrics::Snapshot requests;
};

// Health as /health reports it: the node is part of a cluster with a known leader, and has
// applied what it knows committed (within `max_apply_lag` entries).
struct Health {
  bool healthy = false;
  std::string reason;  // why not, or a summary when healthy
};
Health JudgeHealth(const node::NodeStatus& status, int64_t max_apply_lag);

// The /metrics body for `status` and `counts`.
std::string MetricsText(const node::NodeStatus& status, const ServingCounts& counts,
                        const std::string& address);
// Where each node serves /metrics, /health and /status: what the dashboard polls.
struct MetricsPlan {
  std::string node_address;  // this node's gRPC address
  // Every node's gRPC address by id: where the dashboard finds a node whose metrics address
  // listens on every interface (0.0.0.0:51051 says the port, not the host).
  std::vector<std::string> node_addresses;
  // Every node's metrics address by id ("" where unknown: this node's own is always known).
  std::vector<std::string> metrics_addresses;
};

// The /status body (docs/api.md): what `raftkv status` shows of the node, with its peers' progress
// (a leader), its requests and their latency, its recent events and where every node's metrics
// are, for the dashboard.
std::string StatusJson(const node::NodeStatus& status, const ServingCounts& counts,
                       const MetricsPlan& plan);

class MetricsServer {
 public:
  // Listens on `listen` (host:port) at once (an error if it cannot: the port taken, a bad host).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, node::RaftDriver* driver, MetricsPlan plan,
      std::function<ServingCounts(bool with_connections)> counts);
  ~MetricsServer();  // Stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  // Stops listening; the request in progress, if any, ends within 2 s. Idempotent.
  void Stop();

  static constexpr int64_t kMaxApplyLag = 1000;  // entries committed but not applied, for /health

 private:
  MetricsServer() = default;
  std::unique_ptr<HttpEndpoint> endpoint_;
};

}  // namespace raftkv::rpc

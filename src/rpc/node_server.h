// NodeServer: one running raftkv node as a process serves it — the driver thread with its replica
// and files, the gRPC transport to its peers, and the Raft and KV services on its listening
// address — started in the order that lets each part reach the next, and stopped in the order
// that lets every request in progress be answered (Stop). raftkv-node (tools/raftkv_node.cc) is
// this plus its command line and signals.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/node_config.h"
#include "node/raft_driver.h"
#include "rpc/grpc_transport.h"
#include "rpc/metrics_server.h"
#include "rpc/services.h"

namespace raftkv::rpc {

class NodeServer {
 public:
  // `config` must be valid (config::ValidateNodeConfig) with raft.id and raft.cluster_size set;
  // `addresses` are every node's host:port in node-id order; `metrics_listen`, if not empty,
  // where this node serves /metrics, /health and /status.
  static absl::StatusOr<std::unique_ptr<NodeServer>> Start(
      const config::NodeConfig& config, const std::vector<std::string>& addresses,
      const std::string& metrics_listen = "");
  ~NodeServer();  // Stop()
  NodeServer(const NodeServer&) = delete;
  NodeServer& operator=(const NodeServer&) = delete;

  // Stops the driver first (it answers every pending request — "outcome unknown" for SETs not yet
  // known — and closes the files; later requests are refused at once), so that the gRPC server,
  // which waits for every call in progress, can shut down (open streams are ended first: their
  // clients would hold them open); then stops sending. Idempotent.
  void Stop();
  // Test-only (TestingOptions::fsync_delay): switches the slow disk on or off.
  void SetSlowDisk(bool slow) { driver_->SetSlowDisk(slow); }

 private:
  NodeServer() = default;

  std::unique_ptr<GrpcTransport> transport_;
  std::unique_ptr<node::RaftDriver> driver_;
  std::unique_ptr<RaftService> raft_service_;
  std::unique_ptr<KvService> kv_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsServer> metrics_;  // null without a metrics address
  bool stopped_ = false;
};

}  // namespace raftkv::rpc

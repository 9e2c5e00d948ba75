#include "rpc/node_server.h"

#include "rpc/accept_gate.h"
#include "rpc/tls.h"

namespace raftkv::rpc {

absl::StatusOr<std::unique_ptr<NodeServer>> NodeServer::Start(
    const config::NodeConfig& config, const std::vector<std::string>& addresses,
    const std::string& metrics_listen) {
  const NodeId id = config.raft.id;
  if (id < 0 || static_cast<size_t>(id) >= addresses.size() ||
      static_cast<size_t>(config.raft.cluster_size) != addresses.size()) {
    return absl::InvalidArgumentError(
        "node " + std::to_string(id) + " of a cluster of " +
        std::to_string(config.raft.cluster_size) + " with " + std::to_string(addresses.size()) +
        " addresses: the id must be a position in the list, and the list the whole cluster");
  }
  std::optional<TlsMaterial> tls;
  if (config.tls.any()) {
    const TlsFiles files = config.node_tls();
    absl::StatusOr<TlsMaterial> loaded = LoadTls(files, /*for_client=*/false);
    if (!loaded.ok()) return loaded.status();
    // Its peers would refuse every message otherwise (tls.h): say so now, not per message there.
    if (loaded->common_name != NodeCertificateName(id) ||
        !CertificateValidFor(*loaded, NodeCertificateName(id))) {
      return absl::InvalidArgumentError(
          "[tls] CERT_FILE: " + files.cert_file + " is a certificate for \"" + loaded->common_name +
          "\", but node " + std::to_string(id) + " needs one named \"" + NodeCertificateName(id) +
          "\", as its common name and among its subject alternative names (scripts/make-certs "
          "issues node<i>.crt for node i)");
    }
    tls = std::move(*loaded);
  }
  auto server = std::unique_ptr<NodeServer>(new NodeServer());
  // A peer RPC gets as long as the shortest election timeout: an answer later than that is of no
  // use to the election or the lease it would serve.
  server->transport_ = std::make_unique<GrpcTransport>(
      id, addresses, config.raft.election_timeout_min, MakeChannelCredentials(tls),
      /*verify_peer_names=*/tls.has_value());
  absl::StatusOr<std::unique_ptr<node::RaftDriver>> driver =
      node::RaftDriver::Start(config, server->transport_.get());
  if (!driver.ok()) return driver.status();  // ~NodeServer stops what did start
  server->driver_ = std::move(*driver);
  server->transport_->SetDriver(server->driver_.get());
  server->raft_service_ =
      std::make_unique<RaftService>(server->driver_.get(), id, config.raft.cluster_size,
                                    /*bind_senders_to_certificates=*/tls.has_value());
  server->kv_service_ = std::make_unique<KvService>(
      server->driver_.get(), addresses, std::chrono::seconds(5),
      static_cast<size_t>(config.max_streams), config.max_requests_per_stream);
  grpc::ServerBuilder builder;
  // A port another process listens on is refused, not shared (gRPC sets SO_REUSEPORT by default,
  // which let a second node with the same address start beside the first).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // [limits]: a connection that never finishes its handshake, or holds no call for long, is
  // closed (with MAX_CONNECTIONS, enforced at accept: rpc/accept_gate.h); one connection may
  // have at most so many calls in flight (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: the client
  // waits for one to end before it starts another).
  const auto millis = [](Duration duration) {
    return static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(duration).count());
  };
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             millis(config.handshake_timeout));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             millis(config.connection_idle_timeout));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(config.max_calls_per_connection));
  int bound_port = 0;
  builder.AddListeningPort(addresses[static_cast<size_t>(id)], MakeServerCredentials(tls),
                           &bound_port);
  builder.RegisterService(server->raft_service_.get());
  builder.RegisterService(server->kv_service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || bound_port == 0) {
    server->Stop();
    return absl::UnavailableError("cannot listen on " + addresses[static_cast<size_t>(id)] +
                                  " (is the address right, and the port free?)");
  }
  if (!metrics_listen.empty()) {
    KvService* kv = server->kv_service_.get();
    // The dashboard polls every node: where the others serve comes from [metrics] LISTEN
    // (unknown, and left out, when only --metrics-listen named this node's).
    MetricsPlan plan{addresses[static_cast<size_t>(id)], addresses, config.metrics_listen};
    plan.metrics_addresses.resize(addresses.size());
    plan.metrics_addresses[static_cast<size_t>(id)] = metrics_listen;
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics = MetricsServer::Start(
        metrics_listen, server->driver_.get(), std::move(plan),
        [kv, bound_port](bool with_connections) {
          // Counting connections walks /proc/self/fd: only for /metrics.
          return ServingCounts{static_cast<int64_t>(kv->OpenStreams()),
                               with_connections ? CountInboundConnections(bound_port) : 0,
                               ConnectionsShed(), kv->Requests()};
        });
    if (!metrics.ok()) {
      server->Stop();
      return metrics.status();
    }
    server->metrics_ = std::move(*metrics);
  }
  return server;
}

NodeServer::~NodeServer() { Stop(); }

void NodeServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (metrics_ != nullptr) metrics_->Stop();  // its requests ask the driver
  // Any part may be missing when Start failed half-way.
  if (driver_ != nullptr) driver_->Stop();
  if (raft_service_ != nullptr) raft_service_->CloseStreams();
  if (kv_service_ != nullptr) kv_service_->CloseStreams();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (transport_ != nullptr) transport_->Shutdown();  // its callbacks reach the driver
}

}  // namespace raftkv::rpc

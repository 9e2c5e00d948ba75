// PeerTransport over gRPC: each request the core sends (AppendEntries, RequestVote) becomes an
// asynchronous unary call (gRPC's callback API) with a deadline; the response is decoded and
// delivered to the driver. Nothing blocks the driver thread: a slow or dead peer only fills its
// own bounded in-flight budget, beyond which messages are dropped (Raft tolerates loss, and the
// next heartbeat retries). Failures are reported to the driver, which logs them without flooding.
// Channels reconnect with gRPC's exponential backoff.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "raftkv.grpc.pb.h"
#include "server/raft_driver.h"

namespace raftkv::server {

class GrpcTransport : public PeerTransport {
 public:
  GrpcTransport(NodeId self, const std::vector<std::string>& addresses, Duration rpc_timeout);
  ~GrpcTransport() override;

  void SetDriver(RaftDriver* driver) { driver_.store(driver); }
  void Send(const raft::Message& message) override;
  // Stops sending and waits (bounded) for calls in flight, whose callbacks touch the driver.
  void Shutdown();

  static constexpr int kMaxInflightPerPeer = 256;

 private:
  struct Peer {
    std::unique_ptr<Raft::Stub> stub;
    std::atomic<int> inflight{0};
  };
  template <typename Request, typename Response>
  void Call(NodeId peer, Request request);

  NodeId self_;
  int cluster_size_;
  Duration rpc_timeout_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::atomic<RaftDriver*> driver_{nullptr};
  std::atomic<bool> stopping_{false};
};

}  // namespace raftkv::server

// PeerTransport over gRPC. AppendEntries goes to each follower over one long-lived stream
// (Raft.AppendEntriesStream): requests queued while a write is in flight leave together, and the
// responses come back in batches. RequestVote, rare, is a unary call with a deadline. Nothing
// blocks the driver thread: a slow or dead peer only fills its own bounded queue, beyond which
// messages are dropped (Raft tolerates loss, and the next heartbeat retries). A stream that gets
// no response for an RPC timeout while requests wait (a frozen peer, a dead connection) is
// cancelled and replaced at the next send, as a unary call would have timed out. Failures are
// reported to the driver, which logs them without flooding. Channels reconnect with gRPC's
// exponential backoff. InstallSnapshot chunks and their replies are one-way unary calls,
// acknowledged empty at once (the core bounds the chunks in flight; the reply to a chunk comes as a
// call of its own).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"
#include "node/raft_driver.h"
#include "raftkv.grpc.pb.h"
#include "rpc/batch_stream.h"

namespace raftkv::rpc {

using node::PeerTransport;
using node::RaftDriver;

class GrpcTransport : public PeerTransport {
 public:
  // `credentials`: how to reach the peers (plaintext, or mutual TLS: rpc/tls.h). With
  // `verify_peer_names` (TLS), the connection to node i is accepted only if its certificate is
  // valid for the name "node<i>".
  GrpcTransport(NodeId self, const std::vector<std::string>& addresses, Duration rpc_timeout,
                const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                bool verify_peer_names);
  ~GrpcTransport() override;

  void SetDriver(RaftDriver* driver) { driver_.store(driver); }
  void Send(const raft::Message& message) override;
  // Stops sending and waits (bounded) for calls in flight, whose callbacks touch the driver.
  void Shutdown();

  static constexpr int kMaxInflightPerPeer = 256;   // unary calls
  static constexpr size_t kMaxQueuedPerPeer = 256;  // AppendEntries waiting on a stream's write

 private:
  using AppendStream = ClientBatchStream<AppendEntriesBatch, AppendEntriesResponseBatch>;
  struct Peer {
    std::unique_ptr<Raft::Stub> stub;
    std::atomic<int> inflight{0};
    Mutex mu;
    std::shared_ptr<AppendStream> stream ABSL_GUARDED_BY(mu);  // null: none open
    // Since when requests have waited on `stream` with no response; nullopt: none waiting.
    std::optional<std::chrono::steady_clock::time_point> unanswered_since ABSL_GUARDED_BY(mu);
  };
  void SendAppend(NodeId to, AppendEntriesRequest request);
  void OnResponses(NodeId from, const AppendEntriesResponseBatch& batch);
  void OnStreamEnded(NodeId peer, const AppendStream* stream, const grpc::Status& status);
  void CallRequestVote(NodeId to, RequestVoteRequest request);
  // A one-way call: `start(stub, context, request, response, done)` makes it; a failure is
  // reported to the driver, success says nothing.
  template <typename Request, typename Start>
  void CallOneWay(NodeId to, Request request, Start start);
  // The driver, unless there is none yet or the transport is stopping.
  RaftDriver* LiveDriver() const;
  // A decoded response goes to the driver; a failure (of the call or the decoding) is reported.
  void DeliverOrReport(NodeId from, absl::StatusOr<raft::Message> reply);

  NodeId self_;
  int cluster_size_;
  Duration rpc_timeout_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::atomic<RaftDriver*> driver_{nullptr};
  std::atomic<bool> stopping_{false};
  Mutex streams_mu_;
  CondVar streams_ended_;
  int live_streams_ ABSL_GUARDED_BY(streams_mu_) = 0;
};

}  // namespace raftkv::rpc

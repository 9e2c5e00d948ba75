// The gRPC services of a node: `Raft` for peers and `KV` for clients (proto/raftkv.proto).
//
// Both use gRPC's callback API: a handler hands the request to the RaftDriver and returns at once;
// the driver's answer finishes the call (on the driver thread, or on the handler's own thread for
// a GET served from the lease and for refusals). No gRPC thread ever blocks waiting for the
// consensus core, so many requests can be in flight on a handful of threads.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "node/raft_driver.h"
#include "raftkv.grpc.pb.h"
#include "rpc/batch_stream.h"
#include "rpc/request_metrics.h"

namespace raftkv::rpc {

using node::AnswerBy;
using node::ClientCallback;
using node::ClientResult;
using node::NodeStatus;
using node::RaftDriver;

class RaftService final : public Raft::CallbackService {
 public:
  // `bind_senders_to_certificates` (with mutual TLS): a message from node i is accepted only over
  // a connection whose certificate is named "node<i>" (rpc/tls.h); others get PERMISSION_DENIED.
  RaftService(RaftDriver* driver, NodeId self, int cluster_size, bool bind_senders_to_certificates);
  grpc::ServerUnaryReactor* AppendEntries(grpc::CallbackServerContext* context,
                                          const AppendEntriesRequest* request,
                                          AppendEntriesResponse* response) override;
  grpc::ServerUnaryReactor* RequestVote(grpc::CallbackServerContext* context,
                                        const RequestVoteRequest* request,
                                        RequestVoteResponse* response) override;
  // One-way messages (InstallSnapshot): decoded, handed to the driver, acknowledged at once.
  grpc::ServerUnaryReactor* InstallSnapshot(grpc::CallbackServerContext* context,
                                            const InstallSnapshotRequest* request,
                                            Delivered* response) override;
  grpc::ServerUnaryReactor* InstallSnapshotReply(grpc::CallbackServerContext* context,
                                                 const InstallSnapshotResponse* request,
                                                 Delivered* response) override;
  grpc::ServerBidiReactor<AppendEntriesBatch, AppendEntriesResponseBatch>* AppendEntriesStream(
      grpc::CallbackServerContext* context) override;
  // Ends every AppendEntries stream (and refuses new ones) once the driver has stopped, so the
  // server's shutdown need not wait for the leaders to hang up.
  void CloseStreams();

 private:
  class AppendStreamReactor;
  // Decodes a one-way message and hands it to the driver.
  template <typename Request>
  grpc::ServerUnaryReactor* Deliver(grpc::CallbackServerContext* context, const Request& request);
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* context, const Request& request,
                                    Response* response);
  // The message a peer's request carries, decoded and from the node its certificate names; or
  // the refusal to finish the call with (InvalidArgument, PermissionDenied).
  template <typename Request>
  absl::StatusOr<raft::Message> Admit(const Request& request, const std::string& common_name) const;
  // The caller's certificate name when senders are bound to certificates, else "".
  std::string CallerName(const grpc::ServerContextBase& context) const;

  RaftDriver* driver_;
  NodeId self_;
  int cluster_size_;
  bool bind_senders_to_certificates_;
  // A leader keeps one stream to each follower, and replaces a stalled one: a few per peer.
  StreamRegistry streams_{16 * static_cast<size_t>(cluster_size_)};
};

class KvService final : public KV::CallbackService {
 public:
  // `max_wait`: the longest a request waits for its outcome before the node answers "outcome
  // unknown" (SET) or "retry" (GET); a client's shorter RPC deadline shortens it.
  // `max_streams`: ServeClientStream calls open at once; `max_requests_per_stream`: requests of
  // one stream waiting for their answers ([limits] MAX_STREAMS, MAX_REQUESTS_PER_STREAM).
  KvService(RaftDriver* driver, std::vector<std::string> addresses, Duration max_wait,
            size_t max_streams, int64_t max_requests_per_stream);
  grpc::ServerUnaryReactor* ServeClient(grpc::CallbackServerContext* context,
                                        const ServeClientArgs* request,
                                        ServeClientReply* reply) override;
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* context, const StatusArgs* request,
                                   StatusReply* reply) override;
  grpc::ServerBidiReactor<ClientRequestBatch, ClientReplyBatch>* ServeClientStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerWriteReactor<SnapshotPiece>* SaveSnapshot(grpc::CallbackServerContext* context,
                                                        const SaveSnapshotArgs* request) override;
  // Ends every client stream (and refuses new ones) once the driver has stopped and so answered
  // every request: the clients move to another node instead of holding the shutdown up.
  void CloseStreams();
  // ServeClientStream calls open now (for /metrics).
  size_t OpenStreams() { return streams_.size(); }
  // The requests answered so far, by operation and outcome, with their latencies (for /metrics).
  RequestMetrics::Snapshot Requests() const { return requests_.Take(); }

 private:
  class StreamReactor;
  class SnapshotReactor;
  void Dispatch(const ServeClientArgs& request, AnswerBy answer_by, ClientCallback done);

  RaftDriver* driver_;
  std::vector<std::string> addresses_;
  Duration max_wait_;
  StreamRegistry streams_;
  int64_t max_requests_per_stream_;
  // SaveSnapshot calls in progress (each holds the file open and a piece of it): at most
  // kMaxSnapshotStreams, more are refused with RETRY_LATER.
  static constexpr int kMaxSnapshotStreams = 4;
  std::atomic<int> snapshot_streams_{0};
  RequestMetrics requests_;
};

}  // namespace raftkv::rpc

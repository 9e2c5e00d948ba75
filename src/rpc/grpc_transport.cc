#include "rpc/grpc_transport.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "rpc/grpc_callback_pin.h"
#include "rpc/proto_convert.h"
#include "rpc/tls.h"

namespace raftkv::rpc {

GrpcTransport::GrpcTransport(NodeId self, const std::vector<std::string>& addresses,
                             Duration rpc_timeout,
                             const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                             bool verify_peer_names)
    : self_(self), cluster_size_(static_cast<int>(addresses.size())), rpc_timeout_(rpc_timeout) {
  PinGrpcCallbackQueue();
  for (NodeId id = 0; id < cluster_size_; ++id) {
    auto peer = std::make_unique<Peer>();
    if (id != self) {
      grpc::ChannelArguments args;
      // With TLS, the peer must prove it is node `id`: its certificate must name "node<id>"
      // (scripts/make-certs puts it among the subject alternative names), not merely the host
      // of its address, which every node's certificate may share.
      if (verify_peer_names) args.SetSslTargetNameOverride(NodeCertificateName(id));
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
      peer->stub = Raft::NewStub(grpc::CreateCustomChannel(addresses[id], credentials, args));
    }
    peers_.push_back(std::move(peer));
  }
}

GrpcTransport::~GrpcTransport() { Shutdown(); }

void GrpcTransport::Shutdown() {
  stopping_.store(true);
  for (const auto& peer : peers_) {
    std::shared_ptr<AppendStream> stream;
    {
      MutexLock lock(&peer->mu);
      stream = std::move(peer->stream);
    }
    if (stream) stream->Cancel();
  }
  const auto give_up =
      std::chrono::steady_clock::now() + 2 * rpc_timeout_ + std::chrono::seconds(1);
  {
    // Each stream's last act touches this object: wait for them all.
    MutexLock lock(&streams_mu_);
    while (live_streams_ > 0) streams_ended_.wait(streams_mu_);
  }
  for (const auto& peer : peers_) {
    while (peer->inflight.load() > 0 && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

void GrpcTransport::Send(const raft::Message& message) {
  if (stopping_.load() || message.to < 0 || message.to >= cluster_size_ || message.to == self_) {
    return;
  }
  if (std::holds_alternative<raft::AppendEntries>(message.body)) {
    SendAppend(message.to, EncodeAppendEntries(message));
  } else if (std::holds_alternative<raft::RequestVote>(message.body)) {
    CallRequestVote(message.to, EncodeRequestVote(message));
  } else if (std::holds_alternative<raft::InstallSnapshot>(message.body)) {
    CallOneWay(message.to, EncodeInstallSnapshot(message),
               [](Raft::Stub* stub, grpc::ClientContext* context,
                  const InstallSnapshotRequest* request, Delivered* response, auto done) {
                 stub->async()->InstallSnapshot(context, request, response, std::move(done));
               });
  } else if (std::holds_alternative<raft::InstallSnapshotReply>(message.body)) {
    CallOneWay(message.to, EncodeInstallSnapshotReply(message),
               [](Raft::Stub* stub, grpc::ClientContext* context,
                  const InstallSnapshotResponse* request, Delivered* response, auto done) {
                 stub->async()->InstallSnapshotReply(context, request, response, std::move(done));
               });
  }
  // Replies travel back on the stream or call their request came by (RaftDriver pairs them).
}

void GrpcTransport::SendAppend(NodeId to, AppendEntriesRequest request) {
  Peer& peer = *peers_[to];
  const auto now = std::chrono::steady_clock::now();
  std::shared_ptr<AppendStream> stream;
  std::shared_ptr<AppendStream> stalled;
  bool created = false;
  {
    MutexLock lock(&peer.mu);
    if (stopping_.load()) return;
    if (peer.stream && peer.unanswered_since && now - *peer.unanswered_since > rpc_timeout_) {
      stalled = std::move(peer.stream);  // OnStreamEnded reports it
    }
    if (!peer.stream) {
      peer.stream = AppendStream::Create(
          [&peer](grpc::ClientContext* context, AppendStream* reactor) {
            peer.stub->async()->AppendEntriesStream(context, reactor);
          },
          [this, to](const AppendEntriesResponseBatch& batch) { OnResponses(to, batch); },
          [this, to](const AppendStream* ended, const grpc::Status& status) {
            OnStreamEnded(to, ended, status);
          });
      peer.unanswered_since.reset();
      created = true;
      MutexLock streams_lock(&streams_mu_);
      ++live_streams_;
    }
    stream = peer.stream;
    if (!peer.unanswered_since) peer.unanswered_since = now;
  }
  if (stalled) stalled->Cancel();
  // Dropped if the stream broke just now (the next send opens another) or the peer is not keeping
  // up; either way the core sends again.
  stream->Enqueue(
      [&request](AppendEntriesBatch* batch) {
        AppendEntriesRequest* queued = batch->add_requests();
        *queued = std::move(request);
        return queued->ByteSizeLong();
      },
      kMaxQueuedPerPeer);
  if (created) stream->Begin();
}

void GrpcTransport::OnResponses(NodeId from, const AppendEntriesResponseBatch& batch) {
  {
    Peer& peer = *peers_[from];
    MutexLock lock(&peer.mu);
    peer.unanswered_since.reset();
  }
  for (const AppendEntriesResponse& response : batch.responses()) {
    DeliverOrReport(from, Decode(response, self_, cluster_size_));
  }
}

void GrpcTransport::OnStreamEnded(NodeId peer_id, const AppendStream* stream,
                                  const grpc::Status& status) {
  {
    Peer& peer = *peers_[peer_id];
    MutexLock lock(&peer.mu);
    if (peer.stream.get() == stream) peer.stream.reset();
  }
  if (RaftDriver* driver = LiveDriver(); driver != nullptr && !status.ok()) {
    driver->ReportPeerError(peer_id);
  }
  MutexLock lock(&streams_mu_);
  if (--live_streams_ == 0) streams_ended_.notify_all();
}

RaftDriver* GrpcTransport::LiveDriver() const {
  return stopping_.load() ? nullptr : driver_.load();
}

void GrpcTransport::DeliverOrReport(NodeId from, absl::StatusOr<raft::Message> reply) {
  RaftDriver* driver = LiveDriver();
  if (driver == nullptr) return;
  // A reply speaks only for the node that was called: one naming another sender (a vote "from"
  // a third node) is a forgery, and would count twice toward a quorum.
  if (reply.ok() && reply->from != from) {
    reply = absl::InvalidArgumentError("a reply from node " + std::to_string(from) +
                                       " names node " + std::to_string(reply->from));
  }
  if (reply.ok()) {
    driver->Deliver(std::move(*reply));
  } else {
    driver->ReportPeerError(from);
  }
}

void GrpcTransport::CallRequestVote(NodeId to, RequestVoteRequest request) {
  Peer& peer = *peers_[to];
  if (peer.inflight.fetch_add(1) >= kMaxInflightPerPeer) {
    peer.inflight.fetch_sub(1);
    return;  // the peer is not keeping up: drop; the election timer will retry
  }
  struct State {
    grpc::ClientContext context;
    RequestVoteRequest request;
    RequestVoteResponse response;
  };
  auto* state = new State;
  state->request = std::move(request);
  state->context.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::duration_cast<std::chrono::microseconds>(rpc_timeout_));
  peer.stub->async()->RequestVote(
      &state->context, &state->request, &state->response, [this, to, state](grpc::Status status) {
        DeliverOrReport(to, status.ok() ? Decode(state->response, self_, cluster_size_)
                                        : absl::UnavailableError(status.error_message()));
        delete state;
        peers_[to]->inflight.fetch_sub(1);
      });
}

template <typename Request, typename Start>
void GrpcTransport::CallOneWay(NodeId to, Request request, Start start) {
  Peer& peer = *peers_[to];
  if (peer.inflight.fetch_add(1) >= kMaxInflightPerPeer) {
    peer.inflight.fetch_sub(1);
    return;  // the peer is not keeping up: drop; the leader resends what is not acknowledged
  }
  struct State {
    grpc::ClientContext context;
    Request request;
    Delivered response;
  };
  auto* state = new State;
  state->request = std::move(request);
  state->context.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::duration_cast<std::chrono::microseconds>(rpc_timeout_));
  start(peer.stub.get(), &state->context, &state->request, &state->response,
        std::function<void(grpc::Status)>([this, to, state](grpc::Status status) {
          if (!status.ok()) {
            if (RaftDriver* driver = LiveDriver()) driver->ReportPeerError(to);
          }
          delete state;
          peers_[to]->inflight.fetch_sub(1);
        }));
}

}  // namespace raftkv::rpc

#include "server/grpc_transport.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "common/grpc_callback_pin.h"
#include "server/proto_convert.h"

namespace raftkv::server {

GrpcTransport::GrpcTransport(NodeId self, const std::vector<std::string>& addresses,
                             Duration rpc_timeout)
    : self_(self), cluster_size_(static_cast<int>(addresses.size())), rpc_timeout_(rpc_timeout) {
  PinGrpcCallbackQueue();
  for (NodeId id = 0; id < cluster_size_; ++id) {
    auto peer = std::make_unique<Peer>();
    if (id != self) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
      peer->stub = Raft::NewStub(
          grpc::CreateCustomChannel(addresses[id], grpc::InsecureChannelCredentials(), args));
    }
    peers_.push_back(std::move(peer));
  }
}

GrpcTransport::~GrpcTransport() { Shutdown(); }

void GrpcTransport::Shutdown() {
  stopping_.store(true);
  const auto give_up =
      std::chrono::steady_clock::now() + 2 * rpc_timeout_ + std::chrono::seconds(1);
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
    Call<AppendEntriesRequest, AppendEntriesResponse>(message.to, EncodeAppendEntries(message));
  } else if (std::holds_alternative<raft::RequestVote>(message.body)) {
    Call<RequestVoteRequest, RequestVoteResponse>(message.to, EncodeRequestVote(message));
  }
  // Replies travel as RPC responses (RaftDriver pairs them with their requests).
}

template <typename Request, typename Response>
void GrpcTransport::Call(NodeId to, Request request) {
  Peer& peer = *peers_[to];
  if (peer.inflight.fetch_add(1) >= kMaxInflightPerPeer) {
    peer.inflight.fetch_sub(1);
    return;  // the peer is not keeping up: drop; heartbeats will retry
  }
  struct State {
    grpc::ClientContext context;
    Request request;
    Response response;
  };
  auto* state = new State;
  state->request = std::move(request);
  state->context.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::duration_cast<std::chrono::microseconds>(rpc_timeout_));
  auto done = [this, to, state](grpc::Status status) {
    RaftDriver* driver = driver_.load();
    if (driver != nullptr && !stopping_.load()) {
      if (!status.ok()) {
        driver->ReportPeerError(to);
      } else if (absl::StatusOr<raft::Message> reply =
                     Decode(state->response, self_, cluster_size_);
                 reply.ok()) {
        driver->Deliver(std::move(*reply));
      } else {
        driver->ReportPeerError(to);
      }
    }
    delete state;
    peers_[to]->inflight.fetch_sub(1);
  };
  if constexpr (std::is_same_v<Request, AppendEntriesRequest>) {
    peer.stub->async()->AppendEntries(&state->context, &state->request, &state->response, done);
  } else {
    peer.stub->async()->RequestVote(&state->context, &state->request, &state->response, done);
  }
}

}  // namespace raftkv::server

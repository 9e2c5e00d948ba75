#include "server/services.h"

#include <algorithm>
#include <chrono>

#include "server/proto_convert.h"

namespace raftkv::server {
namespace {

ServeClientReply::ErrorCode ToErrorCode(ClientResult::Reason reason) {
  switch (reason) {
    case ClientResult::Reason::kNone:
      return ServeClientReply::NONE;
    case ClientResult::Reason::kNotLeader:
      return ServeClientReply::NOT_LEADER;
    case ClientResult::Reason::kRetryLater:
      return ServeClientReply::RETRY_LATER;
    case ClientResult::Reason::kInvalidArgument:
      return ServeClientReply::INVALID_ARGUMENT;
    case ClientResult::Reason::kSessionExpired:
      return ServeClientReply::SESSION_EXPIRED;
    case ClientResult::Reason::kShuttingDown:
      return ServeClientReply::SHUTTING_DOWN;
  }
  return ServeClientReply::NONE;
}

grpc::Status ToReply(const ClientResult& result, const std::vector<std::string>& addresses,
                     ServeClientReply* reply) {
  if (result.kind == ClientResult::Kind::kUnknown) {
    // A SET may still commit: never claim it failed.
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "outcome unknown: " + result.error);
  }
  reply->set_success(result.kind == ClientResult::Kind::kOk);
  reply->set_error(result.error);
  reply->set_error_code(ToErrorCode(result.reason));
  if (result.value) {
    reply->set_found(true);
    reply->set_data(result.value->value);
    reply->set_version(result.value->version);
  }
  if (result.leader_hint != kNoNode) {
    reply->set_leader_id(std::to_string(result.leader_hint));
    reply->set_leader_address(addresses[static_cast<size_t>(result.leader_hint)]);
  }
  return grpc::Status::OK;
}

void EncodeReply(const raft::Message& answer, AppendEntriesResponse* response) {
  *response = EncodeAppendEntriesReply(answer);
}
void EncodeReply(const raft::Message& answer, RequestVoteResponse* response) {
  *response = EncodeRequestVoteReply(answer);
}

}  // namespace

RaftService::RaftService(RaftDriver* driver, NodeId self, int cluster_size)
    : driver_(driver), self_(self), cluster_size_(cluster_size) {}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* RaftService::Forward(grpc::CallbackServerContext* context,
                                               const Request& request, Response* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<raft::Message> message = Decode(request, self_, cluster_size_);
  if (!message.ok()) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(message.status().message())));
    return reactor;
  }
  // The core answers every request it steps exactly once, and the driver answers nullopt for any
  // it did not step before stopping, so the call always finishes.
  driver_->HandlePeerRequest(
      std::move(*message), [reactor, response](std::optional<raft::Message> answer) {
        if (!answer) {
          reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "node shutting down"));
          return;
        }
        EncodeReply(*answer, response);
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* RaftService::AppendEntries(grpc::CallbackServerContext* context,
                                                     const AppendEntriesRequest* request,
                                                     AppendEntriesResponse* response) {
  return Forward(context, *request, response);
}

grpc::ServerUnaryReactor* RaftService::RequestVote(grpc::CallbackServerContext* context,
                                                   const RequestVoteRequest* request,
                                                   RequestVoteResponse* response) {
  return Forward(context, *request, response);
}

KvService::KvService(RaftDriver* driver, std::vector<std::string> addresses, Duration max_wait)
    : driver_(driver), addresses_(std::move(addresses)), max_wait_(max_wait) {}

grpc::ServerUnaryReactor* KvService::ServeClient(grpc::CallbackServerContext* context,
                                                 const ServeClientArgs* request,
                                                 ServeClientReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Answer "outcome unknown" a little before the client's own deadline, so the client learns that
  // this node is alive and still leader, rather than take it for unreachable.
  const auto client_budget = context->deadline() - std::chrono::system_clock::now();
  const Duration wait = std::clamp(std::chrono::duration_cast<Duration>(client_budget / 10 * 9),
                                   Duration(0), max_wait_);
  const AnswerBy answer_by = std::chrono::steady_clock::now() + wait;
  ClientCallback done = [this, reactor, reply](const ClientResult& result) {
    reactor->Finish(ToReply(result, addresses_, reply));
  };
  if (request->op() == ServeClientArgs::SET) {
    driver_->Set(
        kv::SetCommand{request->key(), request->value(), request->client_id(), request->sequence()},
        std::move(done), answer_by);
  } else {
    driver_->Get(request->key(), std::move(done), answer_by);
  }
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Status(grpc::CallbackServerContext* context, const StatusArgs*,
                                            StatusReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  driver_->Status([reactor, reply](const NodeStatus& status) {
    reply->set_node_id(std::to_string(status.id));
    reply->set_role(raft::RoleName(status.role));
    reply->set_term(status.term);
    reply->set_leader_id(status.leader == kNoNode ? "" : std::to_string(status.leader));
    reply->set_commit_index(status.commit_index);
    reply->set_last_applied(status.last_applied);
    reply->set_last_log_index(status.last_log_index);
    reply->set_lease_remaining_ms(ToMillis(status.lease_remaining));
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

}  // namespace raftkv::server

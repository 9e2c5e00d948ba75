#include "server/services.h"

#include <algorithm>
#include <chrono>
#include <future>

#include "server/proto_convert.h"

namespace raftkv::server {
namespace {

template <typename T>
std::optional<T> WaitFor(std::future<T>& future, Duration timeout) {
  if (future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return future.get();
}

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

}  // namespace

RaftService::RaftService(RaftDriver* driver, NodeId self, int cluster_size, Duration timeout)
    : driver_(driver), self_(self), cluster_size_(cluster_size), timeout_(timeout) {}

template <typename Request>
grpc::Status RaftService::Forward(const Request& request, std::optional<raft::Message>* reply) {
  absl::StatusOr<raft::Message> message = Decode(request, self_, cluster_size_);
  if (!message.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        std::string(message.status().message()));
  }
  auto promise = std::make_shared<std::promise<std::optional<raft::Message>>>();
  auto future = promise->get_future();
  driver_->HandlePeerRequest(std::move(*message), [promise](std::optional<raft::Message> answer) {
    promise->set_value(std::move(answer));
  });
  std::optional<std::optional<raft::Message>> answer = WaitFor(future, timeout_);
  if (!answer || !answer->has_value()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "node busy or shutting down");
  }
  *reply = std::move(*answer);
  return grpc::Status::OK;
}

grpc::Status RaftService::AppendEntries(grpc::ServerContext*, const AppendEntriesRequest* request,
                                        AppendEntriesResponse* response) {
  std::optional<raft::Message> reply;
  grpc::Status status = Forward(*request, &reply);
  if (status.ok()) *response = EncodeAppendEntriesReply(*reply);
  return status;
}

grpc::Status RaftService::RequestVote(grpc::ServerContext*, const RequestVoteRequest* request,
                                      RequestVoteResponse* response) {
  std::optional<raft::Message> reply;
  grpc::Status status = Forward(*request, &reply);
  if (status.ok()) *response = EncodeRequestVoteReply(*reply);
  return status;
}

KvService::KvService(RaftDriver* driver, std::vector<std::string> addresses, Duration timeout)
    : driver_(driver), addresses_(std::move(addresses)), timeout_(timeout) {}

grpc::Status KvService::ServeClient(grpc::ServerContext* context, const ServeClientArgs* request,
                                    ServeClientReply* reply) {
  auto promise = std::make_shared<std::promise<ClientResult>>();
  auto future = promise->get_future();
  ClientCallback done = [promise](const ClientResult& result) { promise->set_value(result); };
  const bool is_set = request->op() == ServeClientArgs::SET;
  if (is_set) {
    driver_->Set(
        kv::SetCommand{request->key(), request->value(), request->client_id(), request->sequence()},
        std::move(done));
  } else {
    driver_->Get(request->key(), std::move(done));
  }
  // Answer "outcome unknown" a little before the client's own deadline, so the client learns that
  // this node is alive and still leader, rather than take it for unreachable.
  const auto client_budget = context->deadline() - std::chrono::system_clock::now();
  const Duration wait = std::clamp(std::chrono::duration_cast<Duration>(client_budget / 10 * 9),
                                   Duration(0), timeout_);
  std::optional<ClientResult> result = WaitFor(future, wait);
  if (!result) {
    // A SET may still commit: never claim it failed.
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        is_set ? "timed out; outcome unknown, retry with the same sequence" : "timed out; retry");
  }
  if (result->kind == ClientResult::Kind::kUnknown) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "outcome unknown: " + result->error);
  }
  reply->set_success(result->kind == ClientResult::Kind::kOk);
  reply->set_error(result->error);
  reply->set_error_code(ToErrorCode(result->reason));
  if (result->value) {
    reply->set_found(true);
    reply->set_data(result->value->value);
    reply->set_version(result->value->version);
  }
  if (result->leader_hint != kNoNode) {
    reply->set_leader_id(std::to_string(result->leader_hint));
    reply->set_leader_address(addresses_[static_cast<size_t>(result->leader_hint)]);
  }
  return grpc::Status::OK;
}

grpc::Status KvService::Status(grpc::ServerContext*, const StatusArgs*, StatusReply* reply) {
  const NodeStatus status = driver_->Status();
  reply->set_node_id(std::to_string(status.id));
  reply->set_role(raft::RoleName(status.role));
  reply->set_term(status.term);
  reply->set_leader_id(status.leader == kNoNode ? "" : std::to_string(status.leader));
  reply->set_commit_index(status.commit_index);
  reply->set_last_applied(status.last_applied);
  reply->set_last_log_index(status.last_log_index);
  reply->set_lease_remaining_ms(ToMillis(status.lease_remaining));
  return grpc::Status::OK;
}

}  // namespace raftkv::server

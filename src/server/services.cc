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

// Fills `reply` from `result`; an "outcome unknown" is an error code here (the stream's way).
void FillReply(const ClientResult& result, const std::vector<std::string>& addresses,
               ServeClientReply* reply) {
  reply->set_success(result.kind == ClientResult::Kind::kOk);
  reply->set_error(result.error);
  // A SET may still commit: never claim it failed.
  reply->set_error_code(result.kind == ClientResult::Kind::kUnknown
                            ? ServeClientReply::OUTCOME_UNKNOWN
                            : ToErrorCode(result.reason));
  if (result.value) {
    reply->set_found(true);
    reply->set_data(result.value->value);
    reply->set_version(result.value->version);
  }
  if (result.leader_hint != kNoNode) {
    reply->set_leader_id(std::to_string(result.leader_hint));
    reply->set_leader_address(addresses[static_cast<size_t>(result.leader_hint)]);
  }
}

// The unary call says "outcome unknown" with a gRPC status, as it always has.
grpc::Status ToReply(const ClientResult& result, const std::vector<std::string>& addresses,
                     ServeClientReply* reply) {
  if (result.kind == ClientResult::Kind::kUnknown) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "outcome unknown: " + result.error);
  }
  FillReply(result, addresses, reply);
  return grpc::Status::OK;
}

// Answer "outcome unknown" a little before the client's own deadline (`budget` from now), so the
// client learns that this node is alive and still leader, rather than take it for unreachable.
AnswerBy AnswerByFor(Duration budget, Duration max_wait) {
  const Duration wait = std::clamp(budget / 10 * 9, Duration(0), max_wait);
  return std::chrono::steady_clock::now() + wait;
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

void KvService::Dispatch(const ServeClientArgs& request, AnswerBy answer_by, ClientCallback done) {
  if (request.op() == ServeClientArgs::SET) {
    driver_->Set(
        kv::SetCommand{request.key(), request.value(), request.client_id(), request.sequence()},
        std::move(done), answer_by);
  } else {
    driver_->Get(request.key(), std::move(done), answer_by);
  }
}

grpc::ServerUnaryReactor* KvService::ServeClient(grpc::CallbackServerContext* context,
                                                 const ServeClientArgs* request,
                                                 ServeClientReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const auto budget =
      std::chrono::duration_cast<Duration>(context->deadline() - std::chrono::system_clock::now());
  Dispatch(*request, AnswerByFor(budget, max_wait_),
           [this, reactor, reply](const ClientResult& result) {
             reactor->Finish(ToReply(result, addresses_, reply));
           });
  return reactor;
}

// One ServeClientStream: reads batches of requests, hands each to the driver, and writes the
// answers back in batches. One write is in flight at a time; answers that come meanwhile gather in
// `outbox_` and leave together in the next write, so the busier the stream, the fuller the batch.
// The stream finishes once the client has stopped sending and every request read is answered
// (the driver answers each exactly once, by its AnswerBy at the latest), so no answer callback
// can outlive the reactor.
class KvService::StreamReactor final
    : public grpc::ServerBidiReactor<ClientRequestBatch, ClientReplyBatch> {
 public:
  explicit StreamReactor(KvService* service) : service_(service) { StartRead(&incoming_); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side, or the stream broke
      bool finish = false;
      {
        MutexLock lock(&mu_);
        reading_ = false;
        finish = DoneWithEverything();
      }
      if (finish) Finish(grpc::Status::OK);
      return;
    }
    {
      MutexLock lock(&mu_);
      unanswered_ += incoming_.requests_size();
      dispatching_ = true;  // answers given inline (lease GETs) wait for the batch's end
    }
    for (StreamedRequest& request : *incoming_.mutable_requests()) {
      const Duration budget = request.timeout_ms() > 0
                                  ? Duration(std::chrono::milliseconds(request.timeout_ms()))
                                  : service_->max_wait_;
      const uint64_t id = request.id();
      service_->Dispatch(request.args(), AnswerByFor(budget, service_->max_wait_),
                         [this, id](const ClientResult& result) { Answer(id, result); });
    }
    incoming_.Clear();
    bool start = false;
    {
      MutexLock lock(&mu_);
      dispatching_ = false;
      start = TakeOutboxForWrite();
    }
    if (start) StartWrite(&sending_);
    StartRead(&incoming_);
  }

  void OnWriteDone(bool ok) override {
    bool more = false;
    bool finish = false;
    {
      MutexLock lock(&mu_);
      sending_.Clear();
      if (!ok) broken_ = true;  // the client is gone: later answers have no one to go to
      writing_ = false;
      more = TakeOutboxForWrite();
      if (!more) finish = DoneWithEverything();
    }
    if (more) StartWrite(&sending_);
    if (finish) Finish(grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  // Called by the driver (or inline, for a GET served from the lease), on any thread.
  void Answer(uint64_t id, const ClientResult& result) {
    bool start = false;
    bool finish = false;
    {
      MutexLock lock(&mu_);
      --unanswered_;
      if (!broken_) {
        StreamedReply* reply = outbox_.add_replies();
        reply->set_id(id);
        FillReply(result, service_->addresses_, reply->mutable_reply());
        start = TakeOutboxForWrite();
      }
      finish = DoneWithEverything();
    }
    // Outside mu_: gRPC may run a reaction (even OnDone) before these return.
    if (start) StartWrite(&sending_);
    if (finish) Finish(grpc::Status::OK);
  }

  // Moves the outbox into `sending_` when a write may start (the caller starts it, outside mu_):
  // none in flight, the stream not broken, and no batch being dispatched (its end writes).
  bool TakeOutboxForWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || broken_ || dispatching_ || outbox_.replies_size() == 0) return false;
    writing_ = true;
    sending_.Swap(&outbox_);
    return true;
  }

  // True exactly once: when the stream may finish (the caller then calls Finish, outside mu_).
  bool DoneWithEverything() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || unanswered_ > 0 || writing_ || finished_) return false;
    finished_ = true;
    return true;
  }

  KvService* const service_;
  ClientRequestBatch incoming_;  // touched only by the read reactions, one at a time
  Mutex mu_;
  ClientReplyBatch outbox_ ABSL_GUARDED_BY(mu_);
  ClientReplyBatch sending_;  // owned by the write in flight while writing_
  int64_t unanswered_ ABSL_GUARDED_BY(mu_) = 0;
  bool reading_ ABSL_GUARDED_BY(mu_) = true;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool dispatching_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

grpc::ServerBidiReactor<ClientRequestBatch, ClientReplyBatch>* KvService::ServeClientStream(
    grpc::CallbackServerContext*) {
  return new StreamReactor(this);
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

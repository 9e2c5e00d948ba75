#include "rpc/services.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <type_traits>

#include "absl/container/inlined_vector.h"
#include "rpc/proto_convert.h"
#include "rpc/tls.h"
#include "storage/snapshot_file.h"

namespace raftkv::rpc {
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
    case ClientResult::Reason::kTooManySessions:
      return ServeClientReply::TOO_MANY_SESSIONS;
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
  if (result.client_id != 0) reply->set_client_id(result.client_id);
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

// The same refusal in gRPC's terms (the two sets of codes are numbered alike).
grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// The core's answer as the call's response, or the status that refuses the request instead.
grpc::Status EncodeReply(const raft::Message& answer, AppendEntriesResponse* response) {
  if (const auto* reply = std::get_if<raft::AppendEntriesReply>(&answer.body);
      reply != nullptr && reply->impossible) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "no correct leader sends this: an entry conflicting with one this node "
                        "has committed (Raft §5.4.3), or a second leader in a term whose leader "
                        "this node knows (§5.2)");
  }
  *response = EncodeAppendEntriesReply(answer);
  return grpc::Status::OK;
}
grpc::Status EncodeReply(const raft::Message& answer, RequestVoteResponse* response) {
  *response = EncodeRequestVoteReply(answer);
  return grpc::Status::OK;
}

}  // namespace

RaftService::RaftService(RaftDriver* driver, NodeId self, int cluster_size,
                         bool bind_senders_to_certificates)
    : driver_(driver),
      self_(self),
      cluster_size_(cluster_size),
      bind_senders_to_certificates_(bind_senders_to_certificates) {}

template <typename Request>
absl::StatusOr<raft::Message> RaftService::Admit(const Request& request,
                                                 const std::string& common_name) const {
  absl::StatusOr<raft::Message> message = Decode(request, self_, cluster_size_);
  if (!message.ok()) return absl::InvalidArgumentError(message.status().message());
  if (bind_senders_to_certificates_) {
    if (grpc::Status sender = CheckSender(common_name, message->from); !sender.ok()) {
      return absl::PermissionDeniedError(sender.error_message());
    }
  }
  return message;
}

std::string RaftService::CallerName(const grpc::ServerContextBase& context) const {
  return bind_senders_to_certificates_ ? PeerCommonName(context) : "";
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* RaftService::Forward(grpc::CallbackServerContext* context,
                                               const Request& request, Response* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<raft::Message> message = Admit(request, CallerName(*context));
  if (!message.ok()) {
    reactor->Finish(ToGrpcStatus(message.status()));
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
        reactor->Finish(EncodeReply(*answer, response));
      });
  return reactor;
}

template <typename Request>
grpc::ServerUnaryReactor* RaftService::Deliver(grpc::CallbackServerContext* context,
                                               const Request& request) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<raft::Message> message = Admit(request, CallerName(*context));
  if (!message.ok()) {
    reactor->Finish(ToGrpcStatus(message.status()));
    return reactor;
  }
  driver_->Deliver(std::move(*message));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RaftService::InstallSnapshot(grpc::CallbackServerContext* context,
                                                       const InstallSnapshotRequest* request,
                                                       Delivered*) {
  return Deliver(context, *request);
}

grpc::ServerUnaryReactor* RaftService::InstallSnapshotReply(grpc::CallbackServerContext* context,
                                                            const InstallSnapshotResponse* request,
                                                            Delivered*) {
  return Deliver(context, *request);
}

grpc::ServerUnaryReactor* RaftService::AppendEntries(grpc::CallbackServerContext* context,
                                                     const AppendEntriesRequest* request,
                                                     AppendEntriesResponse* response) {
  return Forward(context, *request, response);
}

// One AppendEntriesStream: each request is stepped by the driver like a unary AppendEntries, and
// its response joins the response batches. The core answers a peer's requests in the order it
// stepped them, so the responses come back in the order the requests were sent.
class RaftService::AppendStreamReactor final
    : public ServerBatchStream<AppendEntriesBatch, AppendEntriesResponseBatch> {
 public:
  AppendStreamReactor(RaftService* service, grpc::CallbackServerContext* context)
      // A leader sends at most MAX_INFLIGHT_APPENDS unanswered requests per follower.
      : ServerBatchStream(&service->streams_, context, /*max_unanswered=*/4096),
        service_(service),
        common_name_(service->CallerName(*context)) {
    // Only a peer may hold one of the few stream slots: a client certificate is refused before
    // it takes one (else idle streams could fill them and keep the leader out).
    if (service->bind_senders_to_certificates_) {
      const std::optional<NodeId> peer = NodeOfCertificate(common_name_, service->cluster_size_);
      if (!peer || *peer == service->self_) {
        Refuse(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                            "AppendEntriesStream is for the cluster's nodes: certificate \"" +
                                common_name_ + "\" is not another node's"));
        return;
      }
    }
    StartReading();
  }

 private:
  void Dispatch(AppendEntriesBatch& batch) override {
    for (const AppendEntriesRequest& request : batch.requests()) {
      absl::StatusOr<raft::Message> message = service_->Admit(request, common_name_);
      if (!message.ok()) {
        // A peer that sends nonsense, or speaks for another node, is misconfigured or not ours:
        // say why and stop listening.
        Stop(ToGrpcStatus(message.status()));
        return;
      }
      ExpectAnswers(1);
      service_->driver_->HandlePeerRequest(
          std::move(*message), [this](std::optional<raft::Message> answer) {
            if (!answer) {  // the driver stopped before stepping it: the leader will retry
              AnswerNothing();
              return;
            }
            Answer([&](AppendEntriesResponseBatch* responses) {
              AppendEntriesResponse* response = responses->add_responses();
              *response = EncodeAppendEntriesReply(*answer);
              return response->ByteSizeLong();
            });
          });
    }
  }

  RaftService* const service_;
  const std::string common_name_;  // the leader's certificate's (with TLS)
};

grpc::ServerBidiReactor<AppendEntriesBatch, AppendEntriesResponseBatch>*
RaftService::AppendEntriesStream(grpc::CallbackServerContext* context) {
  return new AppendStreamReactor(this, context);
}

void RaftService::CloseStreams() {
  streams_.CloseAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the node is shutting down"));
}

void KvService::CloseStreams() {
  streams_.CloseAll(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "the node is shutting down; send to another node"));
}

grpc::ServerUnaryReactor* RaftService::RequestVote(grpc::CallbackServerContext* context,
                                                   const RequestVoteRequest* request,
                                                   RequestVoteResponse* response) {
  return Forward(context, *request, response);
}

KvService::KvService(RaftDriver* driver, std::vector<std::string> addresses, Duration max_wait,
                     size_t max_streams, int64_t max_requests_per_stream)
    : driver_(driver),
      addresses_(std::move(addresses)),
      max_wait_(max_wait),
      streams_(max_streams),
      max_requests_per_stream_(max_requests_per_stream) {}

void KvService::Dispatch(const ServeClientArgs& request, AnswerBy answer_by, ClientCallback done) {
  switch (request.op()) {
    case ServeClientArgs::SET:
      return driver_->Set(
          kv::SetCommand{request.key(), request.value(), request.client_id(), request.sequence()},
          std::move(done), answer_by);
    case ServeClientArgs::GET:
      return driver_->Get(request.key(), std::move(done), answer_by);
    case ServeClientArgs::OPEN_SESSION:
      return driver_->OpenSession(std::move(done), answer_by);
    default:
      return done(ClientResult::Rejected(ClientResult::Reason::kInvalidArgument,
                                         "invalid argument: unknown op " +
                                             std::to_string(request.op()) +
                                             " (GET = 0, SET = 1, OPEN_SESSION = 2)",
                                         kNoNode));
  }
}

grpc::ServerUnaryReactor* KvService::ServeClient(grpc::CallbackServerContext* context,
                                                 const ServeClientArgs* request,
                                                 ServeClientReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const auto budget =
      std::chrono::duration_cast<Duration>(context->deadline() - std::chrono::system_clock::now());
  const RequestMetrics::Op op = RequestMetrics::OpOf(request->op());
  const auto arrived = std::chrono::steady_clock::now();
  Dispatch(*request, AnswerByFor(budget, max_wait_),
           [this, reactor, reply, op, arrived](const ClientResult& result) {
             requests_.Record(op, result, std::chrono::steady_clock::now() - arrived);
             reactor->Finish(ToReply(result, addresses_, reply));
           });
  return reactor;
}

// One ServeClientStream: each request goes to the driver, and its answer into the reply batches
// (rpc/batch_stream.h). The driver answers each request exactly once, by its AnswerBy at the
// latest, so the stream always gets to finish.
class KvService::StreamReactor final
    : public ServerBatchStream<ClientRequestBatch, ClientReplyBatch> {
 public:
  StreamReactor(KvService* service, grpc::CallbackServerContext* context)
      : ServerBatchStream(&service->streams_, context, service->max_requests_per_stream_),
        service_(service) {
    StartReading();
  }

 private:
  // What the answers of one batch share: the stream, when the batch arrived, and each request's
  // id and operation. Allocated per batch, not per request (one allocation, a second past four
  // requests): an answer's callback captures the record and an index, two words that
  // std::function holds without allocating. The last answer frees it.
  struct BatchRecord {
    StreamReactor* stream;
    std::chrono::steady_clock::time_point arrived;  // one clock reading for the batch
    std::atomic<int> unanswered;
    struct Request {
      uint64_t id;
      RequestMetrics::Op op;
    };
    absl::InlinedVector<Request, 4> requests;
  };

  void Dispatch(ClientRequestBatch& batch) override {
    const int count = batch.requests_size();
    ExpectAnswers(count);
    if (count == 0) return;
    // Filled whole before the first dispatch: a refusal is answered within Dispatch.
    auto* record = new BatchRecord{this, std::chrono::steady_clock::now(), count, {}};
    record->requests.reserve(static_cast<size_t>(count));
    for (const StreamedRequest& request : batch.requests()) {
      record->requests.push_back({request.id(), RequestMetrics::OpOf(request.args().op())});
    }
    uint32_t index = 0;
    for (const StreamedRequest& request : batch.requests()) {
      const Duration budget = request.timeout_ms() > 0
                                  ? Duration(std::chrono::milliseconds(request.timeout_ms()))
                                  : service_->max_wait_;
      auto answer = [record, index](const ClientResult& result) {
        AnswerOne(record, index, result);
      };
      // What libstdc++'s std::function stores in place (_Any_data: two words, trivially copied).
      static_assert(sizeof(answer) <= 2 * sizeof(void*) &&
                    std::is_trivially_copyable_v<decltype(answer)>);
      service_->Dispatch(request.args(), AnswerByFor(budget, service_->max_wait_), answer);
      ++index;
    }
  }

  static void AnswerOne(BatchRecord* record, uint32_t index, const ClientResult& result) {
    const BatchRecord::Request request = record->requests[index];
    StreamReactor* const stream = record->stream;
    stream->service_->requests_.Record(request.op, result,
                                       std::chrono::steady_clock::now() - record->arrived);
    stream->Answer([&](ClientReplyBatch* replies) {
      StreamedReply* reply = replies->add_replies();
      reply->set_id(request.id);
      FillReply(result, stream->service_->addresses_, reply->mutable_reply());
      return reply->ByteSizeLong();
    });
    // The stream may be gone once its last answer is in; the record is ours until the count says.
    if (record->unanswered.fetch_sub(1, std::memory_order_acq_rel) == 1) delete record;
  }

  KvService* const service_;
};

grpc::ServerBidiReactor<ClientRequestBatch, ClientReplyBatch>* KvService::ServeClientStream(
    grpc::CallbackServerContext* context) {
  return new StreamReactor(this, context);
}

// One SaveSnapshot: asks the driver for a snapshot that holds every acknowledged write, then
// streams the file, one piece per write, reading the next piece only once the last was sent (a
// slow reader holds one piece of memory, not the file). The file is opened once: a newer snapshot
// renamed over it meanwhile does not disturb the one being sent, whose own header names it.
class KvService::SnapshotReactor final : public grpc::ServerWriteReactor<SnapshotPiece> {
 public:
  static constexpr size_t kPieceBytes = 256 << 10;

  SnapshotReactor(KvService* service, Duration budget) : service_(service) {
    if (service_->snapshot_streams_.fetch_add(1) >= kMaxSnapshotStreams) {
      Answered(ClientResult::Rejected(ClientResult::Reason::kRetryLater,
                                      "too many backups in progress on this node (at most " +
                                          std::to_string(kMaxSnapshotStreams) + "); retry later",
                                      kNoNode));
      return;
    }
    service_->driver_->SaveSnapshot([this](const ClientResult& result) { Answered(result); },
                                    AnswerByFor(budget, std::chrono::seconds(60)));
  }
  ~SnapshotReactor() override {
    if (fd_ >= 0) close(fd_);
  }

 private:
  // The driver's answer, on its thread (or at once, for a refusal). Opened here: the driver
  // renames snapshots only on this thread, so nothing can replace the file between the answer
  // and this open, and the file is the one the answer names. The first message says which; the
  // bytes are read on gRPC's threads (OnWriteDone), never on the driver's.
  void Answered(const ClientResult& result) {
    if (result.kind != ClientResult::Kind::kOk || !result.snapshot) {
      SnapshotPiece refusal;
      ServeClientReply reply;
      FillReply(result, service_->addresses_, &reply);
      refusal.set_error_code(reply.error_code() == ServeClientReply::NONE
                                 ? ServeClientReply::RETRY_LATER
                                 : reply.error_code());
      refusal.set_error(reply.error());
      refusal.set_leader_id(reply.leader_id());
      refusal.set_leader_address(reply.leader_address());
      piece_ = std::move(refusal);
      StartWriteAndFinish(&piece_, grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
    const std::string path = service_->driver_->snapshot_path();
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return Fail("cannot open " + path + ": " + std::strerror(errno));
    struct stat info;
    if (fstat(fd_, &info) != 0 || info.st_size <= 0) {
      return Fail("cannot size " + path + ": " + std::strerror(errno));
    }
    total_ = static_cast<uint64_t>(info.st_size);
    piece_.Clear();
    piece_.set_index(result.snapshot->index);
    piece_.set_term(result.snapshot->term);
    piece_.set_total_bytes(total_);
    StartWrite(&piece_);
  }

  // Reads the next piece into piece_; false (and the call failed) on error.
  bool ReadPiece() {
    piece_.Clear();
    std::string* data = piece_.mutable_data();
    data->resize(static_cast<size_t>(std::min<uint64_t>(kPieceBytes, total_ - sent_)));
    size_t got = 0;
    while (got < data->size()) {
      const ssize_t n =
          pread(fd_, data->data() + got, data->size() - got, static_cast<off_t>(sent_ + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        Fail(std::string("cannot read the snapshot: ") +
             (n < 0 ? std::strerror(errno) : "the file is shorter than it was"));
        return false;
      }
      got += static_cast<size_t>(n);
    }
    return true;
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::CANCELLED);  // the client went away
    if (!ReadPiece()) return;
    sent_ += piece_.data().size();
    if (sent_ >= total_) {
      StartWriteAndFinish(&piece_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&piece_);
    }
  }

  void Fail(const std::string& why) { Finish(grpc::Status(grpc::StatusCode::INTERNAL, why)); }

  void OnDone() override {
    service_->snapshot_streams_.fetch_sub(1);
    delete this;
  }

  KvService* const service_;
  int fd_ = -1;
  uint64_t total_ = 0;
  uint64_t sent_ = 0;  // bytes handed to gRPC so far
  SnapshotPiece piece_;
};

grpc::ServerWriteReactor<SnapshotPiece>* KvService::SaveSnapshot(
    grpc::CallbackServerContext* context, const SaveSnapshotArgs* request) {
  const Duration budget = request->timeout_ms() > 0
                              ? Duration(std::chrono::milliseconds(request->timeout_ms()))
                              : std::chrono::duration_cast<Duration>(
                                    context->deadline() - std::chrono::system_clock::now());
  return new SnapshotReactor(this, budget);
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

}  // namespace raftkv::rpc

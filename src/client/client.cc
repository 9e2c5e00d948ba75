#include "raftkv/client.h"

#include <grpcpp/grpcpp.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/request_stream.h"
#include "client/retry_timer.h"
#include "client/session.h"
#include "common/address.h"
#include "common/mutex.h"
#include "kv/kv_state_machine.h"
#include "raftkv.grpc.pb.h"
#include "rpc/grpc_callback_pin.h"
#include "rpc/tls.h"
#include "storage/snapshot_file.h"

namespace raftkv::client {
namespace {

using Clock = std::chrono::steady_clock;

TlsFiles FilesOf(const TlsOptions& tls) { return {tls.ca_file, tls.cert_file, tls.key_file}; }

std::string FormatMillis(Millis duration) {
  if (duration.count() % 1000 == 0) return absl::StrCat(duration.count() / 1000, "s");
  return absl::StrCat(duration.count(), "ms");
}

// What a successful operation returns: a GET's result, or an OPEN_SESSION's new session.
struct Answer {
  GetResult get;
  uint64_t client_id = 0;
};

// One GET, SET or OPEN_SESSION from its start to its answer, across all its attempts.
struct Operation {
  ServeClientArgs request;
  Clock::time_point deadline;
  Millis deadline_length;
  std::function<void(absl::Status, Answer)> done;
  SessionTicket ticket;  // SET only

  int attempts = 0;
  int target = -1;
  int failures_in_a_row = 0;  // drives the backoff
  int redirects_in_a_row = 0;
  bool any_node_answered = false;
  // SET: an attempt ended without an answer (or "outcome unknown"), so it may have been applied.
  bool maybe_applied = false;
  std::string last_error;

  bool is_set() const { return request.op() == ServeClientArgs::SET; }
  bool is_open() const { return request.op() == ServeClientArgs::OPEN_SESSION; }
};

}  // namespace

class Client::Impl {
 public:
  Impl(ClientOptions options, const std::shared_ptr<grpc::ChannelCredentials>& credentials)
      : options_(std::move(options)),
        // An open is sent from the timer thread: never inside the session call that asked for it.
        session_(kv::KvStateMachine::kSequenceWindow,
                 [this] { timer_.At(Clock::now(), [this] { OpenSession(); }); }),
        random_(std::random_device{}()) {
    grpc::ChannelArguments args;
    // Reconnect quickly to a node that comes back: failover should not wait on gRPC's default
    // backoff of up to two minutes.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    for (const std::string& address : options_.addresses) {
      auto channel = grpc::CreateCustomChannel(address, credentials, args);
      stubs_.push_back(KV::NewStub(channel));
      streams_.push_back(std::make_unique<RequestStream>(channel, &timer_));
    }
    next_node_ = static_cast<int>(random_() % stubs_.size());
  }

  ~Impl() {
    shutting_down_.store(true);
    // Requests in flight end now, as cancelled, and their calls with them (Attempt sees
    // shutting_down_); the streams close while the timer, which they use, still runs.
    for (const auto& stream : streams_) stream->Close();
    timer_.Stop();  // calls waiting to retry finish now, as cancelled
    MutexLock lock(&mu_);
    while (operations_ > 0) idle_.wait(mu_);
  }

  void Start(ServeClientArgs request, CallOptions call,
             std::function<void(absl::Status, Answer)> done) {
    auto op = std::make_shared<Operation>();
    op->request = std::move(request);
    op->deadline_length = call.deadline.value_or(options_.deadline);
    op->deadline = Clock::now() + op->deadline_length;
    op->done = std::move(done);
    {
      MutexLock lock(&mu_);
      ++operations_;
    }
    if (op->request.key().empty() && !op->is_open()) {
      // Answered from the timer thread, as every callback is: never inline on the caller's.
      timer_.At(Clock::now(),
                [this, op] { Finish(op, absl::InvalidArgumentError("the key is empty")); });
      return;
    }
    if (!op->is_set()) return Attempt(op);
    AcquireTicket(op);
  }

  std::vector<NodeStatus> ClusterStatus(Millis timeout);
  absl::StatusOr<SnapshotInfo> SaveSnapshot(const std::string& path, CallOptions call);
  int known_leader() const { return leader_.load(); }
  const std::vector<std::string>& addresses() const { return options_.addresses; }

 private:
  // Gives the SET a ticket of the session and attempts it, now or once the session has room.
  void AcquireTicket(const std::shared_ptr<Operation>& op) {
    uint64_t queued_id = 0;
    // A queued SET starts from the timer thread, not inside the Release that made room: starting
    // it there could finish it there (deadline passed) and release the next, and so on, one stack
    // frame per queued SET.
    std::optional<SessionTicket> ticket = session_.Acquire(
        [this, op](SessionTicket later) {
          TakeTicket(*op, later);
          timer_.At(Clock::now(), [this, op] { Attempt(op); });
        },
        &queued_id);
    if (ticket) {
      TakeTicket(*op, *ticket);
      return Attempt(op);
    }
    // Still queued at its deadline: withdraw it, certainly never sent.
    timer_.At(op->deadline, [this, op, queued_id] {
      if (!session_.Cancel(queued_id)) return;
      if (shutting_down_.load()) {  // the timer runs everything at once when it stops
        return Finish(op, absl::CancelledError("the client was shut down before the SET was sent"));
      }
      Finish(op, QueuedTooLong(*op));
    });
  }

  // Why a SET that never left the queue failed: no session could be opened, or earlier SETs of
  // this client held the window until the deadline.
  absl::Status QueuedTooLong(const Operation& op) {
    if (!op.maybe_applied && session_.client_id() == 0) {
      MutexLock lock(&mu_);
      if (!open_answered_) {
        return absl::UnavailableError(absl::StrCat(
            "cluster unavailable: no node answered within ", FormatMillis(op.deadline_length),
            " (opening a client session; last error: ", open_error_.empty() ? "none" : open_error_,
            "). ", UnreachableHint(open_error_)));
      }
      return absl::DeadlineExceededError(absl::StrCat(
          "no client session could be opened within ", FormatMillis(op.deadline_length),
          " (last reason: ", open_error_, "); the SET was never sent and was not applied"));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "the SET waited for earlier SETs of this client until its deadline and was never sent",
        op.maybe_applied ? "; an earlier attempt of it may have been applied"
                         : "; it was not applied"));
  }

  // Sends an OPEN_SESSION for the session (ClientSession's `open`).
  void OpenSession() {
    if (shutting_down_.load()) return session_.OpenFailed(/*retry=*/false);
    {
      MutexLock lock(&mu_);
      open_answered_ = false;
      open_error_.clear();
    }
    ServeClientArgs request;
    request.set_op(ServeClientArgs::OPEN_SESSION);
    Start(std::move(request), {}, [this](absl::Status status, Answer answer) {
      if (status.ok() && answer.client_id != 0) return session_.Opened(answer.client_id);
      {
        MutexLock lock(&mu_);
        open_answered_ = open_answered_ || !absl::IsUnavailable(status);
        open_error_ = status.ok() ? "the node answered without a session id (is it a raftkv "
                                    "node from before sessions were opened by the cluster?)"
                                  : std::string(status.message());
      }
      // Tried again while SETs wait, after a pause: never in a tight loop.
      timer_.At(Clock::now() + options_.backoff_max,
                [this] { session_.OpenFailed(/*retry=*/!shutting_down_.load()); });
    });
  }
  static void TakeTicket(Operation& op, SessionTicket ticket) {
    op.ticket = ticket;
    op.request.set_client_id(ticket.client_id);
    op.request.set_sequence(ticket.sequence);
  }

  void Attempt(const std::shared_ptr<Operation>& op) {
    if (shutting_down_.load()) {
      return Finish(op, absl::CancelledError("the client was shut down before the call finished"));
    }
    const Clock::time_point now = Clock::now();
    if (now >= op->deadline) return Finish(op, DeadlineError(*op));
    op->target = PickTarget(op->target);
    ++op->attempts;
    const auto rpc_budget = std::max(
        Millis(1), std::min(std::chrono::ceil<Millis>(op->deadline - now), options_.rpc_timeout));
    streams_[static_cast<size_t>(op->target)]->Send(
        op->request, rpc_budget,
        [this, op](const grpc::Status& status, const ServeClientReply& reply) {
          OnReply(op, status, reply);
        });
  }

  // `reply` is meaningful only when `status` is OK.
  void OnReply(const std::shared_ptr<Operation>& op, const grpc::Status& status,
               const ServeClientReply& reply) {
    const int target = op->target;
    const std::string who =
        absl::StrCat("node ", target, " (", options_.addresses[static_cast<size_t>(target)], ")");
    if (!status.ok()) {  // the stream broke, or no reply within the RPC timeout
      op->last_error = absl::StrCat(who, ": ", status.error_message());
      op->maybe_applied = true;
      ForgetLeader(target);
      return RetryLater(op, -1);
    }
    op->any_node_answered = true;
    if (reply.success()) {
      if (op->is_set() && options_.drop_set_reply_for_testing &&
          options_.drop_set_reply_for_testing(op->request.sequence(), op->attempts)) {
        op->last_error = absl::StrCat(who, ": reply dropped by the test's fault injection");
        op->maybe_applied = true;
        return RetryLater(op, target);
      }
      NoteLeader(target);
      Answer answer;
      answer.get.found = reply.found();
      answer.get.value = reply.data();
      answer.get.version = reply.version();
      answer.client_id = reply.client_id();
      return Finish(op, absl::OkStatus(), std::move(answer));
    }
    op->last_error = absl::StrCat(who, ": ", reply.error());
    switch (reply.error_code()) {
      case ServeClientReply::OUTCOME_UNKNOWN:
        // The node proposed the SET but could not commit it in time, most likely because it has
        // lost its majority. Retry (same sequence) elsewhere: a node that is still leader is
        // found again through the others' hints.
        op->maybe_applied = true;
        ForgetLeader(target);
        return RetryLater(op, -1);
      case ServeClientReply::INVALID_ARGUMENT:
        return Finish(op, absl::InvalidArgumentError(reply.error()));
      case ServeClientReply::SESSION_EXPIRED:
        if (!op->maybe_applied) {
          // No attempt of this SET can have been applied: it goes again, in a new session.
          session_.Release(op->ticket, ClientSession::Outcome::kExpired);
          op->ticket = {};
          return AcquireTicket(op);
        }
        return Finish(
            op,
            absl::AbortedError("the cluster no longer knows this client's session (it idled past "
                               "SESSION_IDLE_TIMEOUT and was evicted), so whether the SET was "
                               "applied is unknown; later calls use a new session"),
            {}, ClientSession::Outcome::kExpired);
      case ServeClientReply::TOO_MANY_SESSIONS:
        NoteLeader(target);
        return RetryLater(op, target);
      case ServeClientReply::RETRY_LATER:
        NoteLeader(target);
        return RetryLater(op, target);
      case ServeClientReply::NOT_LEADER:
      case ServeClientReply::SHUTTING_DOWN:
      default: {
        ForgetLeader(target);
        const int hint = ParseNodeId(reply.leader_id());
        // Follow a fresh hint at once; after a few redirects without success (hints racing an
        // election) fall back to backing off.
        if (hint >= 0 && hint != target && op->redirects_in_a_row < 3) {
          NoteLeader(hint);
          ++op->redirects_in_a_row;
          op->target = hint;
          return Attempt(op);
        }
        return RetryLater(op, hint >= 0 && hint != target ? hint : -1);
      }
    }
  }

  // Waits (exponential backoff, equal jitter) and tries again, at `next_target` or, for -1, at
  // the leader if one is known and otherwise at the next node in turn.
  void RetryLater(const std::shared_ptr<Operation>& op, int next_target) {
    op->redirects_in_a_row = 0;
    if (op->is_open()) {  // for the SETs waiting on it, should they give up first
      MutexLock lock(&mu_);
      open_answered_ = open_answered_ || op->any_node_answered;
      open_error_ = op->last_error;
    }
    const int exponent = std::min(op->failures_in_a_row++, 16);
    const int64_t ceiling = std::min<int64_t>(
        options_.backoff_max.count(), options_.backoff_initial.count() * (int64_t{1} << exponent));
    int64_t wait_ms = ceiling / 2;
    {
      MutexLock lock(&mu_);
      wait_ms += static_cast<int64_t>(random_() % static_cast<uint64_t>(ceiling / 2 + 1));
    }
    // Never sleep past the deadline: the attempt then reports it.
    const Clock::time_point when = std::min(op->deadline, Clock::now() + Millis(wait_ms));
    op->target = next_target;
    timer_.At(when, [this, op] { Attempt(op); });
  }

  int PickTarget(int requested) {
    if (requested >= 0) return requested;
    const int leader = leader_.load();
    if (leader >= 0) return leader;
    MutexLock lock(&mu_);
    next_node_ = (next_node_ + 1) % static_cast<int>(stubs_.size());
    return next_node_;
  }

  int ParseNodeId(const std::string& text) const {
    int id = -1;
    if (text.empty() ||
        std::from_chars(text.data(), text.data() + text.size(), id).ptr !=
            text.data() + text.size() ||
        id < 0 || id >= static_cast<int>(stubs_.size())) {
      return -1;
    }
    return id;
  }

  void NoteLeader(int id) { leader_.store(id); }
  void ForgetLeader(int id) {
    int expected = id;
    leader_.compare_exchange_strong(expected, -1);
  }

  // What to check when no node answered, from the last error seen.
  std::string UnreachableHint(const std::string& last_error) const {
    const bool tls = FilesOf(options_.tls).any();
    if (absl::StrContains(last_error, "andshake")) {
      return tls ? "The TLS handshake failed: the nodes must run with [tls] and certificates "
                   "signed by the CA given (--cacert), which must also have signed this "
                   "client's certificate (--cert)."
                 : "The TLS handshake failed.";
    }
    if (!tls && absl::StrContains(last_error, "Socket closed")) {
      return "Check the addresses and that the nodes are running; if the cluster uses TLS, give "
             "--cacert/--cert/--key (ClientOptions::tls).";
    }
    return "Check the addresses and that the nodes are running.";
  }

  absl::Status DeadlineError(const Operation& op) const {
    const std::string tried = absl::StrCat(op.attempts, " attempt", op.attempts == 1 ? "" : "s");
    if (!op.any_node_answered) {
      return absl::UnavailableError(absl::StrCat(
          "cluster unavailable: no node answered within ", FormatMillis(op.deadline_length), " (",
          tried, "; last error: ", op.last_error.empty() ? "none" : op.last_error, "). ",
          UnreachableHint(op.last_error)));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "no success within ", FormatMillis(op.deadline_length), " (", tried, "); last reason: ",
        op.last_error, op.is_set() ? ". The SET may or may not have been applied." : ""));
  }

  void Finish(const std::shared_ptr<Operation>& op, absl::Status status, Answer result = {},
              std::optional<ClientSession::Outcome> outcome = std::nullopt) {
    if (op->is_set() && op->ticket.sequence != 0) {
      session_.Release(op->ticket,
                       outcome.value_or(status.ok() ? ClientSession::Outcome::kApplied
                                                    : ClientSession::Outcome::kUnknown));
    }
    op->done(std::move(status), std::move(result));
    op->done = nullptr;  // the callback may own resources the caller wants released now
    MutexLock lock(&mu_);
    if (--operations_ == 0) idle_.notify_all();
  }

  const ClientOptions options_;
  std::vector<std::unique_ptr<KV::Stub>> stubs_;  // for Status
  ClientSession session_;
  std::atomic<int> leader_{-1};
  std::atomic<bool> shutting_down_{false};

  Mutex mu_;
  CondVar idle_;
  int64_t operations_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 random_ ABSL_GUARDED_BY(mu_);
  int next_node_ ABSL_GUARDED_BY(mu_) = 0;
  // The OPEN_SESSION in progress, as far as SETs waiting for it need to know.
  bool open_answered_ ABSL_GUARDED_BY(mu_) = false;
  std::string open_error_ ABSL_GUARDED_BY(mu_);

  RetryTimer timer_;  // stopped (in ~Impl) before anything it calls back into goes away
  std::vector<std::unique_ptr<RequestStream>> streams_;  // GET and SET, one per node
};

std::vector<NodeStatus> Client::Impl::ClusterStatus(Millis timeout) {
  struct Query {
    grpc::ClientContext context;
    StatusArgs args;
    StatusReply reply;
    std::promise<grpc::Status> done;
  };
  // Shared with the callbacks: one may still be inside set_value when its future is ready.
  std::vector<std::shared_ptr<Query>> queries;
  const auto deadline = std::chrono::system_clock::now() + timeout;
  for (size_t id = 0; id < stubs_.size(); ++id) {
    auto query = std::make_shared<Query>();
    query->context.set_deadline(deadline);
    stubs_[id]->async()->Status(&query->context, &query->args, &query->reply,
                                [query](grpc::Status status) { query->done.set_value(status); });
    queries.push_back(std::move(query));
  }
  std::vector<NodeStatus> nodes;
  for (size_t id = 0; id < queries.size(); ++id) {
    NodeStatus node;
    node.id = static_cast<int>(id);
    node.address = options_.addresses[id];
    const grpc::Status status = queries[id]->done.get_future().get();
    if (!status.ok()) {
      node.error = absl::UnavailableError(status.error_message());
    } else {
      const StatusReply& reply = queries[id]->reply;
      node.role = reply.role();
      node.term = reply.term();
      node.leader = ParseNodeId(reply.leader_id());
      node.commit_index = reply.commit_index();
      node.last_applied = reply.last_applied();
      node.last_log_index = reply.last_log_index();
      node.lease_remaining_ms = reply.lease_remaining_ms();
      if (node.role == "leader") NoteLeader(node.id);
    }
    nodes.push_back(std::move(node));
  }
  return nodes;
}

namespace {

// Receives one SaveSnapshot call from `stub` into `out`; sets *leader_id to the leader a node
// names when it refuses.
absl::StatusOr<SnapshotInfo> FetchSnapshot(KV::Stub& stub, Clock::time_point deadline,
                                           std::FILE* out, std::string* leader_id) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + (deadline - Clock::now()));
  SaveSnapshotArgs args;
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  args.set_timeout_ms(static_cast<uint32_t>(std::clamp<int64_t>(left, 1, UINT32_MAX)));
  std::unique_ptr<grpc::ClientReader<SnapshotPiece>> reader = stub.SaveSnapshot(&context, args);
  SnapshotPiece piece;
  SnapshotInfo info;
  bool first = true;
  uint64_t received = 0;
  std::string refusal;
  while (reader->Read(&piece)) {
    if (first && piece.error_code() != ServeClientReply::NONE) {
      refusal = piece.error();
      *leader_id = piece.leader_id();
      continue;
    }
    if (first) {
      info.index = piece.index();
      info.term = piece.term();
      info.bytes = piece.total_bytes();
    }
    first = false;
    const std::string& data = piece.data();
    if (received + data.size() > info.bytes) {
      context.TryCancel();
      reader->Finish();
      return absl::DataLossError("the node sent more bytes than the snapshot's size");
    }
    if (std::fwrite(data.data(), 1, data.size(), out) != data.size()) {
      context.TryCancel();
      reader->Finish();
      return absl::UnavailableError(std::string("cannot write the backup: ") +
                                    std::strerror(errno));
    }
    received += data.size();
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  if (!refusal.empty()) return absl::FailedPreconditionError(refusal);
  if (first || received != info.bytes) {
    return absl::UnavailableError("the snapshot ended after " + std::to_string(received) + " of " +
                                  std::to_string(info.bytes) + " bytes");
  }
  return info;
}

}  // namespace

absl::StatusOr<SnapshotInfo> Client::Impl::SaveSnapshot(const std::string& path, CallOptions call) {
  const Clock::time_point deadline = Clock::now() + call.deadline.value_or(options_.deadline);
  const std::string part = path + ".part";
  absl::Status last = absl::UnavailableError("no node answered");
  const int known = leader_.load();
  int target = known >= 0 ? known : 0;
  int redirects_in_a_row = 0;
  for (int attempt = 0; Clock::now() < deadline; ++attempt) {
    std::FILE* out = std::fopen(part.c_str(), "wb");
    if (out == nullptr) {
      return absl::InvalidArgumentError("cannot create " + part + ": " + std::strerror(errno));
    }
    std::string leader_id;
    absl::StatusOr<SnapshotInfo> info =
        FetchSnapshot(*stubs_[static_cast<size_t>(target)], deadline, out, &leader_id);
    const int redirect = ParseNodeId(leader_id);
    const bool synced = std::fflush(out) == 0 && fsync(fileno(out)) == 0;
    std::fclose(out);
    if (info.ok() && !synced) {
      info = absl::UnavailableError("cannot write " + part + ": " + std::strerror(errno));
    }
    if (info.ok()) {
      // Checked whole before it takes the name: checksum, line count, and every line loaded as a
      // node would load it (a file --restore would refuse is no backup).
      kv::KvStateMachine::SnapshotLoader loader;
      absl::StatusOr<raftkv::storage::SnapshotMeta> meta = raftkv::storage::ReadSnapshot(
          raftkv::storage::PosixEnv(), part,
          [&](std::string_view fields) { return loader.Header(fields); },
          [&](std::string_view line) { return loader.Line(line); });
      if (meta.ok()) {
        if (absl::StatusOr<std::unique_ptr<kv::KvStateMachine>> loaded = loader.Finish();
            !loaded.ok()) {
          meta = loaded.status();
        }
      }
      if (!meta.ok()) {
        info = meta.status();
      } else if (meta->index != info->index || meta->term != info->term) {
        info = absl::DataLossError("the file received names another snapshot than announced");
      }
    }
    if (info.ok()) {
      if (std::rename(part.c_str(), path.c_str()) != 0) {
        return absl::UnavailableError("cannot rename " + part + " to " + path + ": " +
                                      std::strerror(errno));
      }
      info->node = target;
      NoteLeader(target);
      return info;
    }
    std::remove(part.c_str());
    last = info.status();
    // To the leader named, else the next node. A pause when the leader itself asked to retry
    // later, and once every node was tried, so a cluster without a leader is not hammered.
    // Hints that name each other (stale on both nodes) are followed three times in a row at most.
    const int nodes = static_cast<int>(stubs_.size());
    const bool follow = redirect >= 0 && redirect != target && redirects_in_a_row < 3;
    redirects_in_a_row = follow ? redirects_in_a_row + 1 : 0;
    const bool pause = !follow && (redirect >= 0 || attempt % nodes == nodes - 1);
    target = follow ? redirect : redirect == target ? target : (target + 1) % nodes;
    if (pause) std::this_thread::sleep_for(options_.backoff_max);
  }
  return absl::DeadlineExceededError("no snapshot before the deadline; last: " +
                                     std::string(last.message()));
}

absl::StatusOr<SnapshotInfo> Client::SaveSnapshot(const std::string& path, CallOptions options) {
  return impl_->SaveSnapshot(path, options);
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  PinGrpcCallbackQueue();
  if (options.addresses.empty()) {
    return absl::InvalidArgumentError("no node addresses given: expected host:port,host:port,…");
  }
  for (const std::string& address : options.addresses) {
    if (absl::Status status = CheckAddress(address); !status.ok()) return status;
  }
  const Millis zero{0};
  if (options.deadline <= zero || options.rpc_timeout <= zero || options.backoff_initial <= zero ||
      options.backoff_max < options.backoff_initial) {
    return absl::InvalidArgumentError(
        "deadline, rpc_timeout and backoff_initial must be positive, and backoff_max at least "
        "backoff_initial");
  }
  std::optional<rpc::TlsMaterial> tls;
  const TlsFiles files = FilesOf(options.tls);
  if (files.any()) {
    absl::StatusOr<rpc::TlsMaterial> loaded = rpc::LoadTls(files, /*for_client=*/true);
    if (!loaded.ok()) return loaded.status();
    tls = std::move(*loaded);
  }
  return std::unique_ptr<Client>(
      new Client(std::make_unique<Impl>(std::move(options), rpc::MakeChannelCredentials(tls))));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

void Client::SetAsync(std::string_view key, std::string_view value,
                      std::function<void(absl::Status)> done, CallOptions options) {
  ServeClientArgs request;
  request.set_op(ServeClientArgs::SET);
  request.set_key(std::string(key));
  request.set_value(std::string(value));
  impl_->Start(std::move(request), options,
               [done = std::move(done)](absl::Status status, Answer) { done(std::move(status)); });
}

void Client::GetAsync(std::string_view key, std::function<void(absl::StatusOr<GetResult>)> done,
                      CallOptions options) {
  ServeClientArgs request;
  request.set_op(ServeClientArgs::GET);
  request.set_key(std::string(key));
  impl_->Start(std::move(request), options,
               [done = std::move(done)](absl::Status status, Answer answer) {
                 if (status.ok()) {
                   done(std::move(answer.get));
                 } else {
                   done(std::move(status));
                 }
               });
}

absl::Status Client::Set(std::string_view key, std::string_view value, CallOptions options) {
  // Shared: the callback may still be inside set_value when get() returns here.
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> future = promise->get_future();
  SetAsync(
      key, value, [promise](absl::Status status) { promise->set_value(std::move(status)); },
      options);
  return future.get();
}

absl::StatusOr<GetResult> Client::Get(std::string_view key, CallOptions options) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<GetResult>>>();
  std::future<absl::StatusOr<GetResult>> future = promise->get_future();
  GetAsync(
      key, [promise](absl::StatusOr<GetResult> result) { promise->set_value(std::move(result)); },
      options);
  return future.get();
}

std::vector<NodeStatus> Client::ClusterStatus(Millis timeout) {
  return impl_->ClusterStatus(timeout);
}
int Client::known_leader() const { return impl_->known_leader(); }
const std::vector<std::string>& Client::addresses() const { return impl_->addresses(); }

}  // namespace raftkv::client

#include "client/request_stream.h"

#include <utility>
#include <vector>

namespace raftkv::client {

// One ServeClientStream call.
//
// Lifetime: the call owns itself (`self_`) until OnDone, and RequestStream::Send holds a
// shared_ptr while it enqueues, so the object outlives every use. gRPC
// forbids starting an operation after OnDone; OnDone cannot come while the hold is on, and the hold
// is removed only once the read side has ended (`closed_`, after which Enqueue starts nothing) and
// no Enqueue is between its check and its StartWrite (`senders_`).
class RequestStream::Call final
    : public grpc::ClientBidiReactor<ClientRequestBatch, ClientReplyBatch> {
 public:
  // Binds a new call; nothing is sent until StartCall(), which the caller runs outside its own
  // lock, because gRPC may run reactions (even OnDone) inside it. Enqueue may come first: gRPC
  // holds writes started before StartCall until then.
  static std::shared_ptr<Call> Create(RequestStream* owner, KV::Stub* stub) {
    auto call = std::shared_ptr<Call>(new Call(owner));
    call->self_ = call;
    stub->async()->ServeClientStream(&call->context_, call.get());
    call->StartRead(&call->incoming_);
    call->AddHold();  // for the writes Enqueue starts from outside the reactions
    return call;
  }

  void Begin() { StartCall(); }

  // Queues a request; starts a write unless one is in flight (which then takes it along). A
  // request queued on a call that has ended is failed by the owner's OnCallEnded.
  void Enqueue(uint64_t id, const ServeClientArgs& args, uint32_t timeout_ms) {
    {
      MutexLock lock(&mu_);
      if (closed_) return;
      StreamedRequest* request = outbox_.add_requests();
      request->set_id(id);
      *request->mutable_args() = args;
      request->set_timeout_ms(timeout_ms);
      if (writing_) return;
      writing_ = true;
      sending_.Swap(&outbox_);
      ++senders_;
    }
    // Outside mu_: gRPC may run reactions inline before StartWrite returns.
    StartWrite(&sending_);
    bool release = false;
    {
      MutexLock lock(&mu_);
      --senders_;
      release = MayReleaseHold();
    }
    if (release) RemoveHold();
  }

  void Cancel() { context_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    bool more = false;
    {
      MutexLock lock(&mu_);
      sending_.Clear();
      // A failed write means the stream is over: its requests fail in OnDone.
      more = ok && !closed_ && outbox_.requests_size() > 0;
      if (more) {
        sending_.Swap(&outbox_);
      } else {
        writing_ = false;
      }
    }
    if (more) StartWrite(&sending_);
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      owner_->OnReplies(incoming_);
      incoming_.Clear();
      StartRead(&incoming_);
      return;
    }
    bool release = false;
    {
      MutexLock lock(&mu_);
      closed_ = true;  // the stream is over
      release = MayReleaseHold();
    }
    if (release) RemoveHold();
  }

  void OnDone(const grpc::Status& status) override {
    owner_->OnCallEnded(this, status);
    self_.reset();  // may destroy this
  }

 private:
  explicit Call(RequestStream* owner) : owner_(owner) {}

  bool MayReleaseHold() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!closed_ || senders_ > 0 || hold_released_) return false;
    hold_released_ = true;
    return true;
  }

  RequestStream* const owner_;
  std::shared_ptr<Call> self_;
  grpc::ClientContext context_;
  ClientReplyBatch incoming_;  // touched only by the read reactions, one at a time
  Mutex mu_;
  ClientRequestBatch outbox_ ABSL_GUARDED_BY(mu_);
  ClientRequestBatch sending_;  // owned by the write in flight while writing_
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int senders_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
};

RequestStream::RequestStream(std::shared_ptr<grpc::Channel> channel, RetryTimer* timer)
    : stub_(KV::NewStub(std::move(channel))), timer_(timer) {}

RequestStream::~RequestStream() {
  Close();
  // The expiry sweep, seeing closing_, disarms itself within kExpirySweep: it must not run after
  // this object is gone.
  MutexLock lock(&mu_);
  while (sweep_armed_) ended_.wait(mu_);
}

void RequestStream::Close() {
  std::shared_ptr<Call> call;
  {
    MutexLock lock(&mu_);
    closing_ = true;
    call = call_;
  }
  if (call) call->Cancel();
  call.reset();
  MutexLock lock(&mu_);
  while (live_calls_ > 0) ended_.wait(mu_);  // each call fails its requests as it ends
}

void RequestStream::Send(const ServeClientArgs& args, std::chrono::milliseconds timeout,
                         Callback done) {
  std::shared_ptr<Call> call;
  uint64_t id = 0;
  bool arm_sweep = false;
  bool created = false;
  {
    MutexLock lock(&mu_);
    if (!closing_) {
      if (!call_) {
        call_ = Call::Create(this, stub_.get());
        ++live_calls_;
        created = true;
      }
      call = call_;
      id = next_id_++;
      pending_.emplace(id,
                       Pending{call.get(), RetryTimer::Clock::now() + timeout, std::move(done)});
      arm_sweep = !sweep_armed_;
      sweep_armed_ = true;
    }
  }
  if (!call) {
    timer_->At(RetryTimer::Clock::now(), [done = std::move(done)] {
      done(grpc::Status(grpc::StatusCode::CANCELLED, "the client is shutting down"), {});
    });
    return;
  }
  call->Enqueue(id, args, static_cast<uint32_t>(timeout.count()));
  if (created) call->Begin();
  if (arm_sweep) timer_->At(RetryTimer::Clock::now() + kExpirySweep, [this] { SweepExpired(); });
}

void RequestStream::OnReplies(const ClientReplyBatch& batch) {
  std::vector<std::pair<Callback, const ServeClientReply*>> answered;
  answered.reserve(static_cast<size_t>(batch.replies_size()));
  {
    MutexLock lock(&mu_);
    for (const StreamedReply& reply : batch.replies()) {
      auto it = pending_.find(reply.id());
      if (it == pending_.end()) continue;  // expired meanwhile: its caller has moved on
      answered.emplace_back(std::move(it->second.done), &reply.reply());
      pending_.erase(it);
    }
  }
  for (auto& [done, reply] : answered) done(grpc::Status::OK, *reply);
}

void RequestStream::OnCallEnded(const Call* call, const grpc::Status& status) {
  std::vector<Callback> failed;
  {
    MutexLock lock(&mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.call == call) {
        failed.push_back(std::move(it->second.done));
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    if (call_.get() == call) call_.reset();
  }
  // A stream the node closed while requests were in flight counts as a broken one.
  const grpc::Status why =
      status.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "the node closed the stream")
                  : status;
  for (Callback& done : failed) done(why, {});
  MutexLock lock(&mu_);
  if (--live_calls_ == 0) ended_.notify_all();
}

void RequestStream::SweepExpired() {
  std::vector<Callback> expired;
  bool rearm = false;
  {
    MutexLock lock(&mu_);
    const auto now = RetryTimer::Clock::now();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.deadline <= now) {
        expired.push_back(std::move(it->second.done));
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    rearm = !pending_.empty() && !closing_;
    sweep_armed_ = rearm;
    if (!rearm) ended_.notify_all();
  }
  for (Callback& done : expired) {
    done(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no reply within the RPC timeout"), {});
  }
  if (rearm) timer_->At(RetryTimer::Clock::now() + kExpirySweep, [this] { SweepExpired(); });
}

}  // namespace raftkv::client

#include "client/request_stream.h"

#include <utility>
#include <vector>

namespace raftkv::client {

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
        call_ = Call::Create(
            [this](grpc::ClientContext* context, Call* reactor) {
              stub_->async()->ServeClientStream(context, reactor);
            },
            [this](const ClientReplyBatch& batch) { OnReplies(batch); },
            [this](const Call* ended, const grpc::Status& status) { OnCallEnded(ended, status); });
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
  // A request queued on a call that has ended is failed by OnCallEnded.
  call->Enqueue([&](ClientRequestBatch* batch) {
    StreamedRequest* request = batch->add_requests();
    request->set_id(id);
    *request->mutable_args() = args;
    request->set_timeout_ms(static_cast<uint32_t>(timeout.count()));
    return request->ByteSizeLong();
  });
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

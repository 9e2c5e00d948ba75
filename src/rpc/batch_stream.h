// Batching over gRPC bidirectional streams, for both ends: the client library's request stream
// and the node's answers to it, the leader's AppendEntries stream and the follower's responses.
//
// The scheme is the same on every end. One write is in flight at a time; items queued meanwhile
// gather in an outbox and leave together in the next write, so no timer waits for a batch to fill
// and the busier the stream, the fuller each message. An outbox batch is closed to new items once
// it holds kBatchSoftLimitBytes, so a message stays within gRPC's 4 MiB default receive limit
// (one item may still exceed the soft limit: a batch holds at most one item past it).
//
// Locking: each stream has its own mutex, never held while calling into gRPC (gRPC may run a
// reaction, even OnDone, inside StartWrite or Finish) or into the owner's callbacks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_callback.h>
#include <grpcpp/support/server_callback.h>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"

namespace raftkv {

inline constexpr size_t kBatchSoftLimitBytes = 1 << 20;

// The outbox: a queue of batches, each closed to new items once it reaches the soft limit.
template <typename Batch>
class BatchOutbox {
 public:
  // `fill` adds one item to the batch it is given and returns the item's encoded size.
  template <typename Fill>
  void Add(const Fill& fill) {
    if (batches_.empty() || open_bytes_ >= kBatchSoftLimitBytes) {
      batches_.emplace_back();
      batch_bytes_.push_back(0);
      open_bytes_ = 0;
    }
    const size_t added = fill(&batches_.back());
    open_bytes_ += added;
    batch_bytes_.back() += added;
    bytes_ += added;
    ++items_;
  }
  bool empty() const { return batches_.empty(); }
  size_t items() const { return items_; }
  size_t bytes() const { return bytes_; }  // of every batch queued
  // Moves the oldest batch into `out` (which must be empty); returns its encoded size.
  size_t TakeFront(Batch* out) {
    out->Swap(&batches_.front());
    batches_.pop_front();
    const size_t taken = batch_bytes_.front();
    batch_bytes_.pop_front();
    bytes_ -= taken;
    if (batches_.empty()) {
      open_bytes_ = 0;
      items_ = 0;
    }
    return taken;
  }
  void Clear() {
    batches_.clear();
    batch_bytes_.clear();
    open_bytes_ = bytes_ = items_ = 0;
  }

 private:
  std::deque<Batch> batches_;
  std::deque<size_t> batch_bytes_;  // batch_bytes_[i]: the encoded size of batches_[i]
  size_t bytes_ = 0;                // their sum
  size_t open_bytes_ = 0;           // of the last (open) batch
  size_t items_ = 0;  // queued since the outbox was last empty: a bound, not an exact count
};

// The client end: one stream call. The call owns itself until OnDone; whoever holds the
// shared_ptr Create returned may enqueue at any time, and OnDone cannot come while it does.
//
// Lifetime: gRPC forbids starting an operation after OnDone. A hold (AddHold) keeps OnDone away
// until the read side has ended (`closed_`, after which Enqueue starts nothing) and no Enqueue is
// between its check and its StartWrite (`senders_`).
template <typename OutBatch, typename InBatch>
class ClientBatchStream final : public grpc::ClientBidiReactor<OutBatch, InBatch> {
 public:
  // Each batch read, on gRPC's threads, one at a time.
  using BatchFn = std::function<void(const InBatch&)>;
  // Once, when the call has ended; the last thing the stream does.
  using EndFn = std::function<void(const ClientBatchStream*, const grpc::Status&)>;

  // `bind(context, reactor)` binds the call (e.g. stub->async()->Method(context, reactor)).
  // Nothing is sent until Begin(), which the caller runs outside its own locks: gRPC may run
  // reactions (even OnDone) inside it. Enqueue may come first: gRPC holds writes until then.
  template <typename Bind>
  static std::shared_ptr<ClientBatchStream> Create(const Bind& bind, BatchFn on_batch,
                                                   EndFn on_end) {
    auto call = std::shared_ptr<ClientBatchStream>(
        new ClientBatchStream(std::move(on_batch), std::move(on_end)));
    call->self_ = call;
    bind(&call->context_, call.get());
    call->StartRead(&call->incoming_);
    call->AddHold();  // for the writes Enqueue starts from outside the reactions
    return call;
  }

  void Begin() { this->StartCall(); }
  void Cancel() { context_.TryCancel(); }

  // Queues one item (`fill` as in BatchOutbox::Add) and starts a write unless one is in flight.
  // The item is dropped if the call is over (its owner learns that in OnDone) or `max_queued`
  // items wait already.
  template <typename Fill>
  void Enqueue(const Fill& fill, size_t max_queued = std::numeric_limits<size_t>::max()) {
    {
      MutexLock lock(&mu_);
      if (closed_ || outbox_.items() >= max_queued) return;
      outbox_.Add(fill);
      if (writing_) return;
      writing_ = true;
      outbox_.TakeFront(&sending_);
      ++senders_;
    }
    this->StartWrite(&sending_);
    bool release = false;
    {
      MutexLock lock(&mu_);
      --senders_;
      release = MayReleaseHold();
    }
    if (release) this->RemoveHold();
  }

  void OnWriteDone(bool ok) override {
    bool more = false;
    {
      MutexLock lock(&mu_);
      sending_.Clear();
      // A failed write means the stream is over (OnDone follows).
      more = ok && !closed_ && !outbox_.empty();
      if (more) {
        outbox_.TakeFront(&sending_);
      } else {
        writing_ = false;
      }
    }
    if (more) this->StartWrite(&sending_);
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      on_batch_(incoming_);
      incoming_.Clear();
      this->StartRead(&incoming_);
      return;
    }
    bool release = false;
    {
      MutexLock lock(&mu_);
      closed_ = true;  // the stream is over
      release = MayReleaseHold();
    }
    if (release) this->RemoveHold();
  }

  void OnDone(const grpc::Status& status) override {
    on_end_(this, status);
    self_.reset();  // may destroy this
  }

 private:
  ClientBatchStream(BatchFn on_batch, EndFn on_end)
      : on_batch_(std::move(on_batch)), on_end_(std::move(on_end)) {}

  bool MayReleaseHold() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!closed_ || senders_ > 0 || hold_released_) return false;
    hold_released_ = true;
    return true;
  }

  const BatchFn on_batch_;
  const EndFn on_end_;
  std::shared_ptr<ClientBatchStream> self_;
  grpc::ClientContext context_;
  InBatch incoming_;  // touched only by the read reactions, one at a time
  Mutex mu_;
  BatchOutbox<OutBatch> outbox_ ABSL_GUARDED_BY(mu_);
  OutBatch sending_;  // owned by the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int senders_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
};

// What a server needs to end its streams when it shuts down, rather than wait for each client to
// hang up (gRPC's Server::Shutdown waits for every call in progress).
class ClosableStream {
 public:
  // Ends the stream with `status` as soon as the answers promised are given and written. Returns
  // true if the caller must then call FinishNow() (outside any lock): the stream was idle.
  virtual bool Close(grpc::Status status) = 0;
  virtual void FinishNow() = 0;

 protected:
  ~ClosableStream() = default;
};

class StreamRegistry {
 public:
  // At most `max_streams` open at once ([limits] MAX_STREAMS for the clients' streams).
  explicit StreamRegistry(size_t max_streams) : max_streams_(max_streams) {}
  // OK, or why the stream is to close itself at once: UNAVAILABLE once CloseAll has run,
  // RESOURCE_EXHAUSTED when max_streams are open.
  grpc::Status Add(ClosableStream* stream) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (closed_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the node is shutting down");
    if (streams_.size() >= max_streams_) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "this node serves its limit of " + std::to_string(max_streams_) +
                              " streams ([limits] MAX_STREAMS); retry later or use another node");
    }
    streams_.insert(stream);
    return grpc::Status::OK;
  }
  size_t size() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return streams_.size();
  }
  void Remove(ClosableStream* stream) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    streams_.erase(stream);
  }
  // Closes every stream, and every later one as it opens.
  void CloseAll(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<ClosableStream*> to_finish;
    {
      MutexLock lock(&mu_);
      closed_ = true;
      for (ClosableStream* stream : streams_) {
        if (stream->Close(status)) to_finish.push_back(stream);
      }
    }
    // Safe outside mu_: a stream this call must finish cannot reach OnDone (and leave the
    // registry) before its Finish.
    for (ClosableStream* stream : to_finish) stream->FinishNow();
  }

 private:
  const size_t max_streams_;
  Mutex mu_;
  std::set<ClosableStream*> streams_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// The server end: reads batches, hands each to Dispatch, and writes the answers back in batches.
// A subclass's constructor calls StartReading() last (a read may complete at once, and Dispatch is
// the subclass's).
//
// Flow control: answers wait in the outbox while the client does not read them. Once they hold
// kThrottleBytes, no further request is read (the client's writes then block in gRPC's flow
// control) until they drain below half of it. Answers to requests read already may still grow it:
// past kCutOffBytes the client is cut off (RESOURCE_EXHAUSTED, or the call cancelled if a write
// to it is stuck) and what was queued is dropped, so a client that never reads costs at most that
// much memory. Dispatch calls ExpectAnswers for every answer it promises and then each of
// those gets exactly one Answer or AnswerNothing, from any thread. The stream finishes once the
// client has stopped sending (or Stop / Close was called) and every promised answer is given, so
// no answer can outlive the reactor.
template <typename InBatch, typename OutBatch>
class ServerBatchStream : public grpc::ServerBidiReactor<InBatch, OutBatch>, public ClosableStream {
 public:
  static constexpr size_t kThrottleBytes = 8 << 20;
  static constexpr size_t kCutOffBytes = 64 << 20;

  bool Close(grpc::Status status) final ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    StopLocked(std::move(status));
    reading_ = false;  // no more requests are taken; a read still pending ends with ok=false
    return DoneWithEverything();
  }
  void FinishNow() final { this->Finish(final_status_); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side, or the stream broke or was finished
      bool finish = false;
      {
        MutexLock lock(&mu_);
        reading_ = false;
        finish = DoneWithEverything();
      }
      if (finish) FinishNow();
      return;
    }
    {
      MutexLock lock(&mu_);
      // Closed while this read was pending: the requests are not taken (their senders see the
      // stream end without an answer, which for them is "outcome unknown").
      if (stopped_) return;
      dispatching_ = true;  // answers given inline wait for the batch's end, to leave together
    }
    Dispatch(incoming_);
    incoming_.Clear();
    bool start = false;
    bool read_on = false;
    bool finish = false;
    {
      MutexLock lock(&mu_);
      dispatching_ = false;
      start = TakeOutboxForWrite();
      read_on = !stopped_;
      if (!read_on) {
        reading_ = false;
        finish = DoneWithEverything();
      } else if (!broken_ && (QueuedBytes() >= kThrottleBytes || unanswered_ >= max_unanswered_)) {
        // The client is not reading its answers, or has too many requests waiting for theirs:
        // read on once they drain.
        read_on = false;
        read_paused_ = true;
      }
    }
    if (start) this->StartWrite(&sending_);
    if (read_on) this->StartRead(&incoming_);
    if (finish) FinishNow();
  }

  void OnWriteDone(bool ok) override {
    bool more = false;
    bool finish = false;
    bool resume = false;
    {
      MutexLock lock(&mu_);
      sending_.Clear();
      writing_ = false;
      if (!ok) {
        // The client is gone: later answers have no one to go to, and a read paused for it
        // would never be resumed, nor end.
        broken_ = true;
        outbox_.Clear();
        if (read_paused_) {
          read_paused_ = false;
          reading_ = false;
        }
      }
      more = TakeOutboxForWrite();
      if (MayResumeLocked()) {
        read_paused_ = false;
        resume = true;
      }
      if (!more && !resume) finish = DoneWithEverything();
    }
    if (more) this->StartWrite(&sending_);
    if (resume) this->StartRead(&incoming_);
    if (finish) FinishNow();
  }

  void OnDone() override {
    if (registry_ != nullptr) registry_->Remove(this);
    delete this;
  }

 protected:
  // `registry` (may be null) lets the server close the stream when it shuts down; `context` is the
  // call's, to cancel it when the client is cut off.
  // At most `max_unanswered` requests of this stream wait for their answers at once ([limits]
  // MAX_REQUESTS_PER_STREAM): past it, no further request is read until half are answered.
  ServerBatchStream(StreamRegistry* registry, grpc::CallbackServerContext* context,
                    int64_t max_unanswered)
      : registry_(registry), context_(context), max_unanswered_(max_unanswered) {}
  virtual ~ServerBatchStream() = default;

  void StartReading() {
    if (registry_ != nullptr) {
      if (grpc::Status refused = registry_->Add(this); !refused.ok()) return Refuse(refused);
    }
    this->StartRead(&incoming_);
  }
  // Instead of StartReading: ends the call at once with `status`, reading nothing.
  void Refuse(grpc::Status status) {
    registry_ = nullptr;  // not in it: OnDone must not remove it
    if (Close(std::move(status))) FinishNow();
  }

  // Called in a read reaction, one batch at a time.
  virtual void Dispatch(InBatch& batch) = 0;

  void ExpectAnswers(int64_t count) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    unanswered_ += count;
  }
  // One promised answer: `fill` as in BatchOutbox::Add, run under the stream's lock.
  template <typename Fill>
  void Answer(const Fill& fill) ABSL_LOCKS_EXCLUDED(mu_) {
    Answered([&] {
      if (!broken_) outbox_.Add(fill);
    });
  }
  void AnswerNothing() ABSL_LOCKS_EXCLUDED(mu_) {
    Answered([] {});
  }
  // Reads no further requests (called from Dispatch): the stream finishes with `status` once the
  // answers already promised are given.
  void Stop(grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    StopLocked(std::move(status));
  }

 private:
  template <typename Record>
  void Answered(const Record& record) {
    bool start = false;
    bool finish = false;
    bool cancel = false;
    bool resume = false;
    {
      MutexLock lock(&mu_);
      --unanswered_;
      record();
      if (!broken_ && QueuedBytes() > kCutOffBytes) {
        // A write in flight to a client that does not read never completes, and Finish may not
        // overtake it: the call is cancelled (the client sees CANCELLED). Otherwise the stream
        // finishes as usual, RESOURCE_EXHAUSTED. Until TryCancel has returned, the stream may
        // not finish (and be deleted) under it.
        cancel = writing_;
        cancelling_ = cancel;
        CutOffLocked();
      }
      start = TakeOutboxForWrite();
      // Reads paused for the unanswered requests resume here when no write will (OnWriteDone
      // does it otherwise): answers that add nothing to write (AnswerNothing) drain them too.
      // Not inside a gRPC reaction here, so nothing else keeps the stream alive until StartRead
      // returns: `starting_read_` holds it from finishing meanwhile (as cancelling_ does).
      if (!start && !writing_ && MayResumeLocked()) {
        read_paused_ = false;
        starting_read_ = true;
        resume = true;
      }
      finish = !resume && DoneWithEverything();
    }
    if (resume) {
      this->StartRead(&incoming_);
      MutexLock lock(&mu_);
      starting_read_ = false;
      finish = DoneWithEverything();
    }
    if (cancel) {
      context_->TryCancel();
      MutexLock lock(&mu_);
      cancelling_ = false;
      finish = DoneWithEverything();
    }
    if (start) this->StartWrite(&sending_);
    if (finish) FinishNow();
  }

  // The answers queued and in flight, in encoded bytes.
  size_t QueuedBytes() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outbox_.bytes() + (writing_ ? sending_bytes_ : 0);
  }

  // Ends a stream whose client does not read: its answers are dropped, no further request is
  // read, and it finishes RESOURCE_EXHAUSTED once the answers promised are given.
  void CutOffLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    broken_ = true;
    outbox_.Clear();
    StopLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            "more than " + std::to_string(kCutOffBytes >> 20) +
                                " MiB of answers waited for this client to read them; read "
                                "your replies, or keep fewer requests in flight"));
    reading_ = false;  // a read still pending ends with ok=false (the call is cancelled)
    read_paused_ = false;
  }

  // A paused read may start again: the answers waiting have drained to half the limits.
  bool MayResumeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return read_paused_ && !stopped_ && !broken_ && QueuedBytes() < kThrottleBytes / 2 &&
           unanswered_ <= max_unanswered_ / 2;
  }

  void StopLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Once finished_ is set, FinishNow may be reading final_status_ outside the lock.
    if (stopped_ || finished_) return;
    stopped_ = true;
    final_status_ = std::move(status);
  }

  // Moves the oldest outbox batch into `sending_` when a write may start (the caller starts it,
  // outside mu_): none in flight, the stream not broken, and no batch being dispatched.
  bool TakeOutboxForWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || broken_ || dispatching_ || outbox_.empty()) return false;
    writing_ = true;
    sending_bytes_ = outbox_.TakeFront(&sending_);
    return true;
  }

  // True exactly once: when the stream may finish (the caller then calls Finish, outside mu_).
  bool DoneWithEverything() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || dispatching_ || unanswered_ > 0 || writing_ || cancelling_ || starting_read_ ||
        finished_) {
      return false;
    }
    if (!broken_ && !outbox_.empty()) return false;  // answers still to write
    finished_ = true;
    return true;
  }

  StreamRegistry* registry_;  // null once refused by it
  grpc::CallbackServerContext* const context_;
  const int64_t max_unanswered_;
  InBatch incoming_;  // touched only by the read reactions, one at a time
  Mutex mu_;
  BatchOutbox<OutBatch> outbox_ ABSL_GUARDED_BY(mu_);
  OutBatch sending_;                               // owned by the write in flight while writing_
  size_t sending_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // its encoded size
  // No read is pending because the answers hold kThrottleBytes, or max_unanswered_ requests wait
  // for theirs (OnWriteDone reads on).
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelling_ ABSL_GUARDED_BY(mu_) = false;     // a cut-off's TryCancel is under way
  bool starting_read_ ABSL_GUARDED_BY(mu_) = false;  // Answered's StartRead is under way
  int64_t unanswered_ ABSL_GUARDED_BY(mu_) = 0;
  bool reading_ ABSL_GUARDED_BY(mu_) = true;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool dispatching_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // Written at most once, under mu_ and before finished_ is set; read by the one FinishNow after.
  grpc::Status final_status_ = grpc::Status::OK;
};

}  // namespace raftkv

// RequestStream: many ServeClient requests in flight to one node over one ServeClientStream.
//
// A unary gRPC call costs both ends a call set-up, headers and a syscall or two per request; on a
// stream, requests sent while the previous write is still in flight leave together in one message,
// and the node answers in batches the same way. Under load that is most of the CPU a small request
// costs (docs/benchmarks.md). With one request at a time it is a plain round trip.
//
// Each request gets exactly one callback: the node's reply, or a gRPC status when the stream
// broke (UNAVAILABLE, the stream's own status) or the request's timeout passed (DEADLINE_EXCEEDED;
// checked every kExpirySweep, so a frozen node cannot hold a request much past its timeout). A
// broken stream is replaced by a new one at the next Send. Callbacks run on gRPC's or the timer's
// threads and never under the stream's lock; gRPC may complete an earlier request inside a Send.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include <grpcpp/channel.h>

#include "absl/base/thread_annotations.h"
#include "client/retry_timer.h"
#include "common/mutex.h"
#include "raftkv.grpc.pb.h"
#include "rpc/batch_stream.h"

namespace raftkv::client {

class RequestStream {
 public:
  using Callback = std::function<void(const grpc::Status&, const ServeClientReply&)>;
  static constexpr std::chrono::milliseconds kExpirySweep{20};

  // `timer` (not owned) runs the expiry sweeps; it must keep running until Close() has returned
  // (a stopped RetryTimer runs callbacks inline, and a sweep would then re-arm itself at once).
  RequestStream(std::shared_ptr<grpc::Channel> channel, RetryTimer* timer);
  // Close(), then waits for the expiry sweep to stand down.
  ~RequestStream();
  // Cancels the stream and waits for it to end: requests in flight fail with CANCELLED, and so
  // does every later Send.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);
  RequestStream(const RequestStream&) = delete;
  RequestStream& operator=(const RequestStream&) = delete;

  void Send(const ServeClientArgs& args, std::chrono::milliseconds timeout, Callback done)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Call = ClientBatchStream<ClientRequestBatch, ClientReplyBatch>;
  struct Pending {
    const Call* call;  // the stream it was sent on (identity only)
    RetryTimer::Clock::time_point deadline;
    Callback done;
  };

  void OnReplies(const ClientReplyBatch& batch) ABSL_LOCKS_EXCLUDED(mu_);
  void OnCallEnded(const Call* call, const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void SweepExpired() ABSL_LOCKS_EXCLUDED(mu_);

  std::unique_ptr<KV::Stub> stub_;
  RetryTimer* const timer_;
  Mutex mu_;
  CondVar ended_;
  // The stream new requests go to; null: none yet, or it ended.
  std::shared_ptr<Call> call_ ABSL_GUARDED_BY(mu_);
  int live_calls_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);
  bool sweep_armed_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace raftkv::client

#include "rpc/request_metrics.h"

namespace raftkv::rpc {

size_t RequestMetrics::OutcomeOf(const node::ClientResult& result) {
  using Kind = node::ClientResult::Kind;
  using Reason = node::ClientResult::Reason;
  if (result.kind == Kind::kOk) return 0;
  if (result.kind == Kind::kUnknown) return 7;
  switch (result.reason) {
    case Reason::kNotLeader:
      return 1;
    case Reason::kRetryLater:
      return 2;
    case Reason::kInvalidArgument:
      return 3;
    case Reason::kSessionExpired:
      return 4;
    case Reason::kTooManySessions:
      return 5;
    case Reason::kShuttingDown:
      return 6;
    case Reason::kNone:
      break;
  }
  return 2;  // a refusal without a reason: the client retries it, as RETRY_LATER
}

RequestMetrics::Snapshot RequestMetrics::Take() const {
  Snapshot snapshot;
  for (size_t op = 0; op < kOpNames.size(); ++op) {
    for (size_t outcome = 0; outcome < kOutcomeNames.size(); ++outcome) {
      snapshot.counts[op][outcome] = counts_[op][outcome].load(std::memory_order_relaxed);
    }
    snapshot.latency[op] = latency_[op].Snapshot();
  }
  return snapshot;
}

}  // namespace raftkv::rpc

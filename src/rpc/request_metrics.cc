#include "rpc/request_metrics.h"

namespace raftkv::rpc {

RequestMetrics::Outcome RequestMetrics::OutcomeOf(const node::ClientResult& result) {
  using Kind = node::ClientResult::Kind;
  using Reason = node::ClientResult::Reason;
  if (result.kind == Kind::kOk) return Outcome::kOk;
  if (result.kind == Kind::kUnknown) return Outcome::kOutcomeUnknown;
  switch (result.reason) {
    case Reason::kNotLeader:
      return Outcome::kNotLeader;
    case Reason::kRetryLater:
      return Outcome::kRetryLater;
    case Reason::kInvalidArgument:
      return Outcome::kInvalidArgument;
    case Reason::kSessionExpired:
      return Outcome::kSessionExpired;
    case Reason::kTooManySessions:
      return Outcome::kTooManySessions;
    case Reason::kShuttingDown:
      return Outcome::kShuttingDown;
    case Reason::kNone:
      break;
  }
  return Outcome::kRetryLater;  // a refusal without a reason: the client retries it, as RETRY_LATER
}

size_t RequestMetrics::ThreadShard() {
  static std::atomic<size_t> next{0};
  thread_local const size_t shard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shard;
}

RequestMetrics::Snapshot RequestMetrics::Take() const {
  Snapshot snapshot;
  for (size_t op = 0; op < kOpNames.size(); ++op) {
    for (const Shard& shard : shards_) {
      for (size_t outcome = 0; outcome < kOutcomeNames.size(); ++outcome) {
        snapshot.counts[op][outcome] += shard.counts[op][outcome].load(std::memory_order_relaxed);
      }
      snapshot.latency[op].Add(shard.latency[op].Snapshot());
    }
  }
  return snapshot;
}

}  // namespace raftkv::rpc

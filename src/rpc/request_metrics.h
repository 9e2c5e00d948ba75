// Client requests as the KV service answered them: counts by operation and outcome, and latency
// histograms by operation, from the request's arrival to its answer. Recorded on whichever thread
// answers (a gRPC thread for lease reads and refusals, the driver's for the rest), so everything
// here is a relaxed atomic: no lock on the request path. The atomics are sharded by thread, each
// shard on cache lines of its own, so that threads answering on different cores do not pass the
// same lines back and forth for every request; a snapshot sums the shards.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "node/replica.h"
#include "obs/histogram.h"

namespace raftkv::rpc {

class RequestMetrics {
 public:
  // The operations, as raftkv_requests_total's `op` label spells them.
  enum class Op : uint8_t { kGet, kSet, kOpenSession, kUnknown };
  static constexpr std::array<const char*, 4> kOpNames = {"get", "set", "open_session", "unknown"};
  // The outcomes: the reply's error code. kOutcomeNames spells them for the `outcome` label.
  enum class Outcome : uint8_t {
    kOk,
    kNotLeader,
    kRetryLater,
    kInvalidArgument,
    kSessionExpired,
    kTooManySessions,
    kShuttingDown,
    kOutcomeUnknown,
  };
  static constexpr std::array<const char*, 8> kOutcomeNames = {"ok",
                                                               "not_leader",
                                                               "retry_later",
                                                               "invalid_argument",
                                                               "session_expired",
                                                               "too_many_sessions",
                                                               "shutting_down",
                                                               "outcome_unknown"};
  static_assert(static_cast<size_t>(Outcome::kOutcomeUnknown) + 1 == kOutcomeNames.size());

  // The ServeClientArgs op number (GET = 0, SET = 1, OPEN_SESSION = 2) as an Op.
  static Op OpOf(int op) { return op >= 0 && op <= 2 ? static_cast<Op>(op) : Op::kUnknown; }
  static Outcome OutcomeOf(const node::ClientResult& result);

  void Record(Op op, const node::ClientResult& result, std::chrono::nanoseconds took) {
    const size_t o = static_cast<size_t>(op);
    Shard& shard = shards_[ThreadShard()];
    shard.counts[o][static_cast<size_t>(OutcomeOf(result))].fetch_add(1, std::memory_order_relaxed);
    shard.latency[o].Observe(took);
  }

  struct Snapshot {
    std::array<std::array<uint64_t, kOutcomeNames.size()>, kOpNames.size()> counts{};
    std::array<obs::HistogramSnapshot, kOpNames.size()> latency;
  };
  Snapshot Take() const;

  // Threads get shards round-robin as they first record; more threads than shards share some.
  static constexpr size_t kShards = 8;

 private:
  struct alignas(64) Shard {
    std::array<std::array<std::atomic<uint64_t>, kOutcomeNames.size()>, kOpNames.size()> counts{};
    std::array<obs::Histogram, kOpNames.size()> latency;
  };
  static size_t ThreadShard();

  std::array<Shard, kShards> shards_;
};

}  // namespace raftkv::rpc

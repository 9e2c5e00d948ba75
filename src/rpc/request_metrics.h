// Client requests as the KV service answered them: counts by operation and outcome, and latency
// histograms by operation, from the request's arrival to its answer. Recorded on whichever thread
// answers (a gRPC thread for lease reads and refusals, the driver's for the rest), so everything
// here is a relaxed atomic: no lock on the request path.
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
    counts_[o][static_cast<size_t>(OutcomeOf(result))].fetch_add(1, std::memory_order_relaxed);
    latency_[o].Observe(took);
  }

  struct Snapshot {
    std::array<std::array<uint64_t, kOutcomeNames.size()>, kOpNames.size()> counts{};
    std::array<obs::HistogramSnapshot, kOpNames.size()> latency;
  };
  Snapshot Take() const;

 private:
  std::array<std::array<std::atomic<uint64_t>, kOutcomeNames.size()>, kOpNames.size()> counts_{};
  std::array<obs::Histogram, kOpNames.size()> latency_;
};

}  // namespace raftkv::rpc

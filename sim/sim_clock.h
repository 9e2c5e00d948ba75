// A simulated monotonic clock: local = offset + rate × real. Rates stay within
// [1 - max_clock_drift, 1 + max_clock_drift] of real time, the bound the lease relies on. It keeps
// running while its node is paused or crashed, as CLOCK_MONOTONIC does across SIGSTOP.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/types.h"

namespace raftkv::sim {

class SimClock {
 public:
  SimClock() = default;
  SimClock(double rate, int64_t offset_ns) : rate_(rate), offset_ns_(offset_ns) {}

  TimePoint Local(int64_t real_ns) const {
    return TimePoint(Duration(
        offset_ns_ + static_cast<int64_t>(std::floor(rate_ * static_cast<double>(real_ns)))));
  }

  // The earliest real instant at which this clock reads at least `local`.
  int64_t RealWhenLocalReaches(TimePoint local) const {
    if (local == TimePoint::max()) return INT64_MAX;
    const double target = static_cast<double>(local.time_since_epoch().count() - offset_ns_);
    auto real = static_cast<int64_t>(std::ceil(target / rate_));
    while (real > 0 && Local(real - 1) >= local) --real;
    while (Local(real) < local) ++real;
    return real;
  }

  double rate() const { return rate_; }

 private:
  double rate_ = 1.0;
  int64_t offset_ns_ = 0;
};

}  // namespace raftkv::sim

// A latency histogram with fixed buckets, cheap enough for the request path: Observe is a bucket
// search over a dozen bounds and two relaxed atomic adds, with no lock and no allocation.
// Readers take a Snapshot, which is what /metrics prints (obs/prometheus.h). The count is the sum
// of the buckets, so a snapshot is always a well-formed histogram; one taken while observations
// land may hold an observation's bucket without its share of the sum (or the reverse), which the
// next scrape makes good.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

namespace raftkv::obs {

struct HistogramSnapshot {
  std::vector<double> bounds;        // upper bounds in seconds, increasing
  std::vector<uint64_t> cumulative;  // observations at most bounds[i]
  uint64_t count = 0;                // all observations (+Inf)
  double sum_seconds = 0;

  // Adds `other`'s observations (same bounds, or this one empty).
  void Add(const HistogramSnapshot& other) {
    if (bounds.empty()) {
      *this = other;
      return;
    }
    for (size_t i = 0; i < cumulative.size() && i < other.cumulative.size(); ++i) {
      cumulative[i] += other.cumulative[i];
    }
    count += other.count;
    sum_seconds += other.sum_seconds;
  }
};

class Histogram {
 public:
  // 50 µs to 10 s: a lease read answered from memory lands in the first buckets, a commit on a
  // slow disk in the middle, a request that waited out an election near the end.
  static constexpr std::array<double, 17> kBounds = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};

  void Observe(std::chrono::nanoseconds duration) {
    const int64_t nanos = std::max<int64_t>(0, duration.count());
    const double seconds = static_cast<double>(nanos) * 1e-9;
    const size_t bucket = static_cast<size_t>(
        std::lower_bound(kBounds.begin(), kBounds.end(), seconds) - kBounds.begin());
    buckets_[bucket].fetch_add(1, std::memory_order_relaxed);  // kBounds.size(): +Inf only
    sum_nanos_.fetch_add(static_cast<uint64_t>(nanos), std::memory_order_relaxed);
  }

  HistogramSnapshot Snapshot() const {
    HistogramSnapshot snapshot;
    snapshot.bounds.assign(kBounds.begin(), kBounds.end());
    uint64_t running = 0;
    for (size_t i = 0; i < kBounds.size(); ++i) {
      running += buckets_[i].load(std::memory_order_relaxed);
      snapshot.cumulative.push_back(running);
    }
    snapshot.count = running + buckets_[kBounds.size()].load(std::memory_order_relaxed);
    snapshot.sum_seconds = static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) * 1e-9;
    return snapshot;
  }

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};  // not cumulative
  std::atomic<uint64_t> sum_nanos_{0};
};

}  // namespace raftkv::obs

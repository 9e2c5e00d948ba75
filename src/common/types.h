// Vocabulary types shared by every layer: node ids, terms, log indexes and time.
#pragma once

#include <chrono>
#include <cstdint>

namespace raftkv {

// A node's position in the cluster address list (0..N-1). kNoNode means "none".
using NodeId = int32_t;
inline constexpr NodeId kNoNode = -1;

// Raft term and log index (Figure 2). Index 0 is the empty prefix; real entries start at 1.
using Term = uint64_t;
using LogIndex = uint64_t;

// Monotonic time as nanoseconds since an arbitrary origin. The consensus core never reads a
// clock: every TimePoint it sees arrives as an argument (Tick, Step, Propose, ...), so the
// simulator can drive it with drifting, paused or jumping clocks.
using Duration = std::chrono::nanoseconds;
struct MonotonicOrigin {
  using rep = int64_t;
  using period = std::nano;
  using duration = Duration;
  using time_point = std::chrono::time_point<MonotonicOrigin, Duration>;
  static constexpr bool is_steady = true;
};
using TimePoint = MonotonicOrigin::time_point;

inline constexpr TimePoint kTimeZero{};

inline int64_t ToMillis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace raftkv

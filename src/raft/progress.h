// The leader's view of one follower (Figure 2 "volatile state on leaders", plus flow control).
#pragma once

#include <deque>

#include "common/types.h"

namespace raftkv::raft {

struct Progress {
  // kProbe: we do not know where the follower's log matches ours; send one AppendEntries at a
  // time and move next_index back on each rejection. kReplicate: the follower is known to match
  // up to match_index; stream entries optimistically with up to max_inflight_appends in flight.
  enum class Mode { kProbe, kReplicate };

  Mode mode = Mode::kProbe;
  LogIndex next_index = 1;
  LogIndex match_index = 0;

  // Replicate mode: last index of each AppendEntries in flight, oldest first, with send times.
  struct Inflight {
    LogIndex last_index;
    TimePoint sent_at;
  };
  std::deque<Inflight> inflight;
  // Probe mode: when the outstanding probe left (nullopt: none outstanding).
  std::optional<TimePoint> probe_sent_at;

  // The leader-clock send time of the newest AppendEntries this follower acknowledged in the
  // current term (success or not: either way it recorded our lease).
  // Invariant: leader_since <= *acked_sent_at <= now (an echo of a request sent before this node
  // became leader is never taken: the follower may have rejected it for its old term).
  std::optional<TimePoint> acked_sent_at;

  void BecomeProbe() {
    mode = Mode::kProbe;
    next_index = match_index + 1;
    inflight.clear();
    probe_sent_at.reset();
  }
};

}  // namespace raftkv::raft

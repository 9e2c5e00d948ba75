// The leader's view of one follower (Figure 2 "volatile state on leaders", plus flow control), as
// a small state machine whose transitions are its methods (etcd's tracker/progress.go is the
// model). Table tests: tests/raft/progress_test.cc.
//
//   kProbe ──Acknowledged (the logs match up to here)──▶ kReplicate
//     ▲                                                       │
//     └───── BackOff (a rejection) / BecomeProbe (stalled) ───┘
//   either ──the entries it needs were compacted (StartSnapshot)──▶ kSnapshot
//   kSnapshot ──SnapshotInstalled──▶ kReplicate
//
// Invariants: match_index < next_index; in kProbe nothing is in `inflight`; in kReplicate no probe
// is outstanding, and `inflight` holds the last indexes of the requests not yet acknowledged,
// increasing, each above match_index and below next_index.
#pragma once

#include <algorithm>
#include <deque>
#include <optional>

#include "common/types.h"
#include "raft/message.h"

namespace raftkv::raft {

struct Progress {
  // kProbe: we do not know where the follower's log matches ours; send one AppendEntries at a
  // time and move next_index back on each rejection. kReplicate: the follower is known to match
  // up to match_index; stream entries optimistically with up to max_inflight_appends in flight.
  // kSnapshot: the entries it needs next are compacted away; send our snapshot in chunks, at most
  // max_inflight_snapshot_chunks ahead of what it acknowledged (Raft §7).
  enum class Mode { kProbe, kReplicate, kSnapshot };

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

  // Snapshot mode: which snapshot, the bytes sent and acknowledged (held by the follower from
  // offset 0), and when the transfer last moved, to resend from `acked` if it stalls.
  // Invariant: snapshot_acked <= snapshot_sent <= snapshot.bytes.
  SnapshotMeta snapshot;
  uint64_t snapshot_sent = 0;
  uint64_t snapshot_acked = 0;
  TimePoint snapshot_moved_at{};
  TimePoint snapshot_reply_echo{};  // the newest chunk send time a reply echoed

  // Whether another AppendEntries carrying entries may leave now.
  bool CanSend(int max_inflight) const {
    return mode == Mode::kProbe ? !probe_sent_at : static_cast<int>(inflight.size()) < max_inflight;
  }
  // An AppendEntries from next_index up to `last_sent` left at `now`. A probe keeps next_index
  // (it moves when answered); a pipeline moves it past what was sent.
  void Sent(LogIndex last_sent, TimePoint now) {
    if (mode == Mode::kProbe) {
      probe_sent_at = now;
    } else {
      inflight.push_back(Inflight{last_sent, now});
      next_index = last_sent + 1;
    }
  }
  // The outstanding probe was answered (or superseded by a heartbeat): another may leave.
  void ProbeAnswered() { probe_sent_at.reset(); }

  // The follower's log matches ours up to `match`: frees the pipeline up to there, and a probe
  // that found the match point turns into a pipeline.
  void Acknowledged(LogIndex match) {
    match_index = std::max(match_index, match);
    next_index = std::max(next_index, match_index + 1);
    while (!inflight.empty() && inflight.front().last_index <= match_index) inflight.pop_front();
    if (mode == Mode::kProbe) {
      if (match_index + 1 >= next_index) {
        mode = Mode::kReplicate;
        inflight.clear();
      }
      probe_sent_at.reset();
    }
  }

  // Whether a rejection of the request whose prev_log_index was `rejected_prev` tells us anything:
  // not if we know the logs match beyond it, nor, while probing, if it answers an older probe.
  bool RejectionIsNews(LogIndex rejected_prev) const {
    if (rejected_prev < match_index) return false;
    return mode != Mode::kProbe || rejected_prev + 1 == next_index;
  }
  // After a rejection: probe again from `next` (never below what is known to match).
  void BackOff(LogIndex next) {
    BecomeProbe();
    next_index = std::max(next, match_index + 1);
  }

  // Whether the oldest request of the pipeline has gone unanswered for `patience`.
  bool Stalled(TimePoint now, Duration patience) const {
    return mode == Mode::kReplicate && !inflight.empty() &&
           now - inflight.front().sent_at >= patience;
  }
  void StartSnapshot(const SnapshotMeta& meta, TimePoint now) {
    mode = Mode::kSnapshot;
    inflight.clear();
    probe_sent_at.reset();
    snapshot = meta;
    snapshot_sent = snapshot_acked = 0;
    snapshot_moved_at = now;
    snapshot_reply_echo = TimePoint{};
  }
  // The follower holds `received` bytes of the snapshot, says a reply to the chunk sent at
  // `echoed_sent_at`. The same as before is no news (an answer to a heartbeat chunk, or to chunks
  // behind a lost one, which SnapshotStalled resends); less, in a reply newer than every one
  // before, means the follower started over: send from there. (Chunks and replies are separate
  // calls that may overtake each other: an older reply saying less is only late.)
  void SnapshotReceived(uint64_t received, TimePoint echoed_sent_at, TimePoint now) {
    received = std::min(received, snapshot.bytes);
    const bool newest = echoed_sent_at >= snapshot_reply_echo;
    snapshot_reply_echo = std::max(snapshot_reply_echo, echoed_sent_at);
    if (received > snapshot_acked) {
      snapshot_acked = received;
      snapshot_sent = std::max(snapshot_sent, received);
      snapshot_moved_at = now;
    } else if (received < snapshot_acked && newest) {
      snapshot_acked = received;
      snapshot_sent = received;
    }
  }
  // Chunks after what the follower acknowledged were lost (or it started over): send them again.
  void ResendSnapshotFromAcked(TimePoint now) {
    snapshot_sent = snapshot_acked;
    snapshot_moved_at = now;
  }
  // The follower installed a snapshot: its log matches ours up to `match`.
  void SnapshotInstalled(LogIndex match) {
    mode = Mode::kProbe;
    match_index = std::max(match_index, match);
    next_index = match_index + 1;
    Acknowledged(match);
  }
  bool SnapshotStalled(TimePoint now, Duration patience) const {
    return mode == Mode::kSnapshot && snapshot_sent > snapshot_acked &&
           now - snapshot_moved_at >= patience;
  }
  void BecomeProbe() {
    mode = Mode::kProbe;
    next_index = match_index + 1;
    inflight.clear();
    probe_sent_at.reset();
  }

  // The follower echoed the send time of one of our requests (success or not: either way it
  // recorded our lease). Taken only if sent while we lead and not from the future, and only
  // forward.
  void RecordAck(TimePoint echoed_sent_at, TimePoint leader_since, TimePoint now) {
    if (echoed_sent_at < leader_since || echoed_sent_at > now) return;
    if (!acked_sent_at || echoed_sent_at > *acked_sent_at) acked_sent_at = echoed_sent_at;
  }
};

inline const char* ProgressModeName(Progress::Mode mode) {
  switch (mode) {
    case Progress::Mode::kProbe:
      return "probe";
    case Progress::Mode::kReplicate:
      return "replicate";
    case Progress::Mode::kSnapshot:
      return "snapshot";
  }
  return "?";
}

}  // namespace raftkv::raft

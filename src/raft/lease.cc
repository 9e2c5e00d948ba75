// Leader lease arithmetic (Raft thesis §6.4.1, made explicit in time). All instants are on this
// node's own monotonic clock; docs/design.md argues the cross-node safety.
#include <algorithm>
#include <vector>

#include "raft/quorum.h"
#include "raft/raft_node.h"

namespace raftkv::raft {

void RaftNode::RecordFollowerLease(Duration lease_duration, TimePoint now) {
  // Never lowered: a later, shorter grant must not hide an earlier, longer one.
  known_lease_end_ = std::max(known_lease_end_, now + lease_duration);
}

Duration RaftNode::KnownLeaseRemaining(TimePoint now) const {
  TimePoint end = known_lease_end_;
  if (role_ == Role::kLeader) {
    if (std::optional<TimePoint> expiry = LeaseExpiry(now)) end = std::max(end, *expiry);
  }
  return end > now ? end - now : Duration(0);
}

std::optional<TimePoint> RaftNode::QuorumAckedSendTime(TimePoint now) const {
  // Our own acknowledgement is instantaneous; a peer's is the send time of the newest request it
  // answered in this term. The Majority()-th newest is the newest round a majority has seen.
  std::vector<TimePoint> acked{now};
  for (NodeId peer = 0; peer < config_.cluster_size; ++peer) {
    if (peer == config_.id) continue;
    if (progress_[peer].acked_sent_at) acked.push_back(*progress_[peer].acked_sent_at);
  }
  return QuorumValue(std::move(acked), config_.cluster_size);
}

std::optional<TimePoint> RaftNode::LeaseExpiry(TimePoint now) const {
  if (role_ != Role::kLeader) return std::nullopt;
  std::optional<TimePoint> base = QuorumAckedSendTime(now);
  if (!base) return std::nullopt;
  return *base + config_.LeaderLeaseDuration();
}

bool RaftNode::LeaseValid(TimePoint now) const {
  std::optional<TimePoint> expiry = LeaseExpiry(now);
  return expiry && now < *expiry;
}

bool RaftNode::OldLeasesExpired(TimePoint now) const { return now >= old_lease_wait_end_; }

Duration RaftNode::LeaseRemaining(TimePoint now) const {
  if (!OldLeasesExpired(now) || !LeaseValid(now)) return Duration(0);
  return *LeaseExpiry(now) - now;
}

std::optional<LeaseWindow> RaftNode::CurrentLeaseWindow() const {
  if (role_ != Role::kLeader) return std::nullopt;
  if (config_.Injected(InjectedBug::kReadWithoutLease)) {
    return LeaseWindow{last_now_, TimePoint::max()};
  }
  if (applied_index_ < noop_index_ && !config_.Injected(InjectedBug::kSkipNoopBeforeRead)) {
    return std::nullopt;
  }
  std::optional<TimePoint> expiry = LeaseExpiry(last_now_);
  if (!expiry) return std::nullopt;
  if (Majority() == 1) expiry = TimePoint::max();  // alone, no one else can ever lead
  const TimePoint from = std::max(old_lease_wait_end_, last_now_);
  if (from >= *expiry) return std::nullopt;
  return LeaseWindow{from, *expiry};
}

void RaftNode::CheckLeaseRenewal(TimePoint now) {
  if (Majority() == 1) return;
  // The read-without-lease bug models Raft without leases, where nothing makes a cut-off leader
  // give up until it hears of a higher term: it goes on serving reads, stale ones included.
  if (config_.Injected(InjectedBug::kReadWithoutLease)) return;
  // Measured from when we became leader until a majority first answers, then from the newest
  // round a majority acknowledged: a leader cut off from its majority steps down once its lease
  // can no longer be renewed, instead of lingering as a leader that can do nothing.
  TimePoint base = leader_since_;
  if (std::optional<TimePoint> acked = QuorumAckedSendTime(now)) base = std::max(base, *acked);
  if (now < base + config_.LeaderLeaseDuration()) return;
  Emit(Event::Kind::kLeaseRenewalFailed, config_.id, current_term_);
  BecomeFollower(current_term_, kNoNode, now);
}

}  // namespace raftkv::raft

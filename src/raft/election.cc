// Leader election (Raft §5.2, §5.4.1) and the lease hand-over carried by vote replies.
#include <algorithm>

#include "common/check.h"
#include "raft/raft_node.h"

namespace raftkv::raft {

void RaftNode::StartElection(TimePoint now) {
  if (current_term_ >= kMaxTerm) {
    // Only a forged term gets here (config.h). Going past kMaxTerm would make every peer ignore
    // us; wait instead, as a follower, for a correct leader of this term.
    ResetElectionTimer(now);
    return;
  }
  if (rebuilt_at_term_ > 0) {
    // Rebuilding (HardState::rebuilt_at_term): an empty log must not lead, nor ask for votes.
    ResetElectionTimer(now);
    return;
  }
  Emit(Event::Kind::kElectionTimeout, config_.id, current_term_ + 1);
  // §5.2: increment the term, vote for ourselves, reset the timer, ask everyone else.
  SetTerm(current_term_ + 1);
  voted_for_ = config_.id;
  role_ = Role::kCandidate;
  leader_id_ = kNoNode;
  votes_granted_ = {config_.id};
  // Whatever lease we ourselves know of must run out before we commit or serve as leader.
  old_lease_wait_end_ = known_lease_end_;
  ResetElectionTimer(now);
  for (NodeId peer = 0; peer < config_.cluster_size; ++peer) {
    if (peer == config_.id) continue;
    // Sent only after the new term and self-vote are durable (messages_after_persist): a crash
    // must not let us vote again in this term.
    Send(peer, RequestVote{log_.LastIndex(), log_.LastTerm()});
  }
  if (static_cast<int>(votes_granted_.size()) >= Majority()) BecomeLeader(now);
}

void RaftNode::HandleRequestVote(const Message& message, TimePoint now) {
  const auto& request = std::get<RequestVote>(message.body);
  bool granted = false;
  if (message.term == current_term_) {
    // §5.2: at most one vote per term, first come first served; §5.4.1: only for a candidate
    // whose log is at least as up to date as ours.
    const bool free_to_vote = voted_for_ == kNoNode || voted_for_ == message.from;
    const bool rebuilding =
        rebuilt_at_term_ > 0 && !config_.Injected(InjectedBug::kVoteWhileRebuilding);
    granted = free_to_vote && !rebuilding &&
              log_.IsUpToDate(request.last_log_index, request.last_log_term);
  }
  if (granted) {
    voted_for_ = message.from;
    ResetElectionTimer(now);
    Emit(Event::Kind::kVoteGranted, message.from, current_term_);
  } else {
    Emit(Event::Kind::kVoteDenied, message.from, message.term);
  }
  // Granted or not, tell the candidate how long a lease we know of may still run.
  Send(message.from, RequestVoteReply{granted, KnownLeaseRemaining(now)});
}

void RaftNode::HandleRequestVoteReply(const Message& message, TimePoint now) {
  if (role_ != Role::kCandidate || message.term != current_term_) return;  // stale
  const auto& reply = std::get<RequestVoteReply>(message.body);
  // The voter measured the remaining lease on its clock; we wait it out on ours, from receipt,
  // stretched for the worst relative drift of the two clocks.
  if (reply.old_lease_remaining.count() > 0) {
    old_lease_wait_end_ = std::max(old_lease_wait_end_,
                                   now + config_.InflateRemoteDuration(reply.old_lease_remaining));
  }
  if (!reply.granted) return;
  votes_granted_.insert(message.from);
  if (static_cast<int>(votes_granted_.size()) >= Majority()) BecomeLeader(now);
}

}  // namespace raftkv::raft

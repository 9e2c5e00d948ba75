// Log replication (Raft §5.3), commitment (§5.4.2), heartbeats and flow control.
#include <algorithm>
#include <vector>

#include "common/check.h"
#include "raft/quorum.h"
#include "raft/raft_node.h"

namespace raftkv::raft {

void RaftNode::BroadcastHeartbeat(TimePoint now) {
  next_heartbeat_at_ = now + config_.heartbeat_interval;
  Emit(Event::Kind::kHeartbeatRound, config_.id, current_term_);
  ExpireStalledAppends(now);
  for (NodeId peer = 0; peer < config_.cluster_size; ++peer) {
    if (peer == config_.id) continue;
    Progress& progress = progress_[peer];
    progress.ProbeAnswered();  // a probe that got no answer may go again with this round
    if (SendAppendsTo(peer, now)) continue;  // entries went out: they renew the lease too
    if (progress.mode == Progress::Mode::kSnapshot) {
      // An empty chunk at what the follower acknowledged: renews the lease, asks where it is.
      SendSnapshotChunk(peer, progress.snapshot_acked, 0, now);
      continue;
    }
    // A pure heartbeat checks the log only at match_index, which the follower is known to hold,
    // so it always succeeds and never disturbs entries still in flight behind it. (If we
    // compacted that entry away, it checks at index 0, which every log holds.)
    AppendEntries heartbeat;
    heartbeat.prev_log_index = log_.HasTermAt(progress.match_index) ? progress.match_index : 0;
    heartbeat.prev_log_term = log_.TermAt(heartbeat.prev_log_index);
    heartbeat.leader_commit = std::min(commit_index_, heartbeat.prev_log_index);
    heartbeat.lease_duration = config_.lease_duration;
    heartbeat.sent_at = now;
    Send(peer, std::move(heartbeat));
  }
}

void RaftNode::SendAppends(TimePoint now) {
  for (NodeId peer = 0; peer < config_.cluster_size; ++peer) {
    if (peer != config_.id) SendAppendsTo(peer, now);
  }
}

// Sends what flow control allows; returns whether anything was sent.
bool RaftNode::SendAppendsTo(NodeId peer, TimePoint now) {
  Progress& progress = progress_[peer];
  if (progress.mode != Progress::Mode::kSnapshot && progress.next_index <= log_.BaseIndex()) {
    // The entries it needs next are compacted away: only our snapshot can bring it up (§7).
    progress.StartSnapshot(snapshot_, now);
  }
  if (progress.mode == Progress::Mode::kSnapshot) return SendSnapshotChunks(peer, now);
  auto send_from = [&](LogIndex next) {
    AppendEntries request;
    request.prev_log_index = next - 1;
    request.prev_log_term = log_.TermAt(next - 1);
    if (next <= log_.LastIndex()) {
      request.entries =
          log_.Slice(next, config_.max_entries_per_append, config_.max_bytes_per_append);
    }
    const LogIndex last_sent = request.prev_log_index + request.entries.size();
    // The follower may commit only what it is sure matches us: up to the last entry sent.
    request.leader_commit = std::min(commit_index_, last_sent);
    request.lease_duration = config_.lease_duration;
    request.sent_at = now;
    Send(peer, std::move(request));
    return last_sent;
  };
  if (progress.mode == Progress::Mode::kProbe) {
    if (!progress.CanSend(config_.max_inflight_appends)) return false;  // one probe at a time
    progress.Sent(send_from(progress.next_index), now);  // a probe goes even with no entries
    return true;
  }
  bool sent = false;
  while (progress.mode == Progress::Mode::kReplicate &&
         progress.CanSend(config_.max_inflight_appends) &&
         progress.next_index <= log_.LastIndex()) {
    progress.Sent(send_from(progress.next_index), now);
    sent = true;
  }
  return sent;
}

void RaftNode::ExpireStalledAppends(TimePoint now) {
  // If the newest requests of a pipeline are lost, no rejection ever tells us: after a while
  // with no answer, fall back to probing from what we know matches.
  const Duration patience = config_.election_timeout_min / 2;
  for (NodeId peer = 0; peer < config_.cluster_size; ++peer) {
    if (peer == config_.id) continue;
    Progress& progress = progress_[peer];
    if (progress.Stalled(now, patience)) progress.BecomeProbe();
    // A transfer whose chunks or replies were lost resumes from what the follower holds. Its
    // chunks are large and each is a call with an RPC deadline of election_timeout_min: resend
    // only once those have run out, never on top of chunks still arriving.
    if (progress.SnapshotStalled(now, 2 * config_.election_timeout_min)) {
      progress.ResendSnapshotFromAcked(now);
    }
  }
}

bool RaftNode::ConflictsWithCommitted(const AppendEntries& request) const {
  if (!config_.Injected(InjectedBug::kNone)) return false;
  for (const Entry& entry : request.entries) {
    if (entry.index > commit_index_ || entry.index > log_.LastIndex()) break;
    if (entry.index < log_.BaseIndex()) continue;  // compacted: in the snapshot, committed
    if (log_.TermAt(entry.index) != entry.term) return true;
  }
  return false;
}

bool RaftNode::ClaimsSecondLeader(const Message& message) const {
  return config_.Injected(InjectedBug::kNone) && message.term == current_term_ &&
         leader_id_ != kNoNode && leader_id_ != message.from;
}

bool RaftNode::FollowLeader(const Message& message, Duration lease_duration, TimePoint now) {
  // §5.1: a stale leader; our reply's term makes it step down. Or two leaders in one term:
  // election safety is broken (only possible with an injected bug); refuse without touching
  // anything and let the simulator's checker report it.
  if (message.term < current_term_ || role_ == Role::kLeader) return false;
  // A second leader of a term whose leader we know: election safety (§5.2) says there is none,
  // so only a forged or broken peer claims it. Refused, nothing touched (it used to trip this
  // node's own invariant and abort it; fuzz_peer_message found it).
  if (ClaimsSecondLeader(message)) return false;
  if (role_ == Role::kCandidate || leader_id_ != message.from) {
    BecomeFollower(current_term_, message.from, now);
  }
  ResetElectionTimer(now);
  RecordFollowerLease(lease_duration, now);
  return true;
}

void RaftNode::HandleAppendEntries(const Message& message, TimePoint now) {
  const auto& request = std::get<AppendEntries>(message.body);
  AppendEntriesReply reply;
  reply.rejected_prev_index = request.prev_log_index;
  reply.echoed_sent_at = request.sent_at;
  if (!FollowLeader(message, request.lease_duration, now)) {
    if (message.term < current_term_)
      Emit(Event::Kind::kAppendRejected, message.from, message.term);
    reply.impossible = ClaimsSecondLeader(message);
    Send(message.from, reply);  // every request gets exactly one reply (the server pairs them)
    return;
  }

  // §5.3 consistency check: our log must contain prev_log_index with prev_log_term. Entries we
  // compacted are in our snapshot, so committed, so in every correct leader's log alike (§5.4.3):
  // a prev_log_index below our base matches, and entries up to the base are skipped below.
  if (request.prev_log_index > log_.LastIndex()) {
    reply.conflict_index = log_.LastIndex() + 1;
  } else if (log_.HasTermAt(request.prev_log_index) &&
             log_.TermAt(request.prev_log_index) != request.prev_log_term) {
    reply.conflict_term = log_.TermAt(request.prev_log_index);
    reply.conflict_index = log_.FirstIndexOfTermEndingAt(request.prev_log_index);
  } else if (ConflictsWithCommitted(request)) {
    // A committed entry never conflicts with a correct leader's (Leader Completeness, §5.4.3):
    // this request comes from a forged or broken peer. Refused whole, the log untouched; it is
    // another process's fault, so it must not stop this one (with injected bugs, the simulator's
    // checker is left to see what truncating would do).
    reply.impossible = true;
  } else {
    for (const Entry& entry : request.entries) {
      if (entry.index <= log_.BaseIndex()) continue;  // compacted, so committed: we have it
      if (entry.index <= log_.LastIndex()) {
        if (log_.TermAt(entry.index) == entry.term) continue;  // already have it (a duplicate)
        log_.TruncateFrom(entry.index);  // §5.3: a conflicting entry and all that follow it go
      }
      log_.Append(entry);
    }
    reply.success = true;
    reply.match_index = request.prev_log_index + request.entries.size();
    // Figure 2: commitIndex = min(leaderCommit, index of last new entry).
    const LogIndex new_commit = std::min(request.leader_commit, reply.match_index);
    if (new_commit > commit_index_) commit_index_ = new_commit;
    MaybeEndRebuild();
  }
  Emit(reply.success ? Event::Kind::kAppendAccepted : Event::Kind::kAppendRejected, message.from,
       message.term);
  Send(message.from, reply);  // after our log is durable (messages_after_persist)
}

void RaftNode::HandleAppendEntriesReply(const Message& message, TimePoint now) {
  if (role_ != Role::kLeader || message.term != current_term_) return;  // stale
  const auto& reply = std::get<AppendEntriesReply>(message.body);
  Progress& progress = progress_[message.from];
  // Only a request sent while we lead in this term can have given us a lease: an echo from
  // before (a rejection of a request of ours from an older term, answered in this one) cannot.
  progress.RecordAck(reply.echoed_sent_at, leader_since_, now);  // renews our lease (lease.cc)
  if (progress.mode == Progress::Mode::kSnapshot && !reply.success) {
    return;  // an answer to entries sent before the transfer began: only the snapshot helps now
  }
  if (reply.success) {
    if (reply.match_index > log_.LastIndex()) return;  // cannot be ours: ignore
    progress.Acknowledged(reply.match_index);
    MaybeAdvanceCommit(now);
    SendAppendsTo(message.from, now);
    return;
  }
  // Rejected. Replies to requests we have since superseded tell us nothing new, and a request of
  // ours never named an index past our log (only a forged reply does).
  if (reply.rejected_prev_index > log_.LastIndex()) return;
  if (!progress.RejectionIsNews(reply.rejected_prev_index)) return;
  LogIndex next = reply.conflict_index;
  if (reply.conflict_term != 0) {
    // Skip the follower's whole conflicting term, or up to our own last entry of that term.
    if (std::optional<LogIndex> ours = log_.LastIndexOfTerm(reply.conflict_term)) {
      next = *ours + 1;
    }
  }
  // Always move strictly backwards (BackOff keeps it above what is known to match).
  progress.BackOff(std::min(next, reply.rejected_prev_index));
  SendAppendsTo(message.from, now);
}

void RaftNode::MaybeAdvanceCommit(TimePoint now) {
  if (role_ != Role::kLeader) return;
  // No entry of ours commits while an earlier leader may still serve lease reads: its readers
  // would miss the write we would acknowledge.
  if (!OldLeasesExpired(now)) return;
  // We count ourselves only for what is durable on our own disk.
  std::vector<LogIndex> matches{log_.StableIndex()};
  for (NodeId peer = 0; peer < config_.cluster_size; ++peer) {
    if (peer != config_.id) matches.push_back(progress_[peer].match_index);
  }
  const LogIndex replicated = *QuorumValue(std::move(matches), config_.cluster_size);
  if (replicated <= commit_index_) return;
  // §5.4.2: only an entry of the current term commits by counting replicas; earlier entries
  // commit indirectly with it (Figure 8 shows why).
  if (log_.TermAt(replicated) != current_term_ &&
      !config_.Injected(InjectedBug::kCommitOldTermByCount)) {
    return;
  }
  commit_index_ = replicated;
}

}  // namespace raftkv::raft

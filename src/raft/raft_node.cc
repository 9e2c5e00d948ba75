// RaftNode: construction, the input entry points, role transitions and the Ready hand-off.
// Elections live in election.cc, replication in replication.cc, lease arithmetic in lease.cc.
#include "raft/raft_node.h"

#include <algorithm>

#include "common/check.h"

namespace raftkv::raft {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "unknown";
}

const char* MessageTypeName(const Message& message) {
  static constexpr const char* kNames[] = {"RequestVote",     "RequestVoteReply",
                                           "AppendEntries",   "AppendEntriesReply",
                                           "InstallSnapshot", "InstallSnapshotReply"};
  return kNames[message.body.index()];
}

absl::StatusOr<std::unique_ptr<RaftNode>> RaftNode::Create(const RaftConfig& config,
                                                           RecoveredState recovered, TimePoint now,
                                                           uint64_t rng_seed) {
  if (absl::Status status = config.Validate(); !status.ok()) return status;
  const HardState& hs = recovered.hard_state;
  if (hs.term > kMaxTerm) {
    return absl::DataLossError("recovered term " + std::to_string(hs.term) +
                               " is beyond any term a cluster reaches (" +
                               std::to_string(kMaxTerm) + "): metadata.txt is damaged");
  }
  const RaftLog& log = recovered.log;
  const LogIndex base = log.BaseIndex();
  if (log.LastTerm() > hs.term) {
    return absl::DataLossError("recovered log holds an entry of term " +
                               std::to_string(log.LastTerm()) + " beyond the current term " +
                               std::to_string(hs.term) + ": metadata is older than the log");
  }
  const SnapshotMeta& snapshot = recovered.snapshot;
  if (base > 0 && base > snapshot.index) {
    return absl::DataLossError("the log starts after index " + std::to_string(base) +
                               " but the snapshot covers only up to " +
                               std::to_string(snapshot.index) + ": entries in between are lost");
  }
  if (snapshot.index > 0) {
    if (!log.Holds(snapshot.index, snapshot.term)) {
      return absl::DataLossError("the log does not hold the snapshot's last entry (index " +
                                 std::to_string(snapshot.index) + ", term " +
                                 std::to_string(snapshot.term) + ")");
    }
    if (snapshot.term > hs.term) {
      return absl::DataLossError("the snapshot's term is beyond the current term in metadata.txt");
    }
  }
  if (hs.rebuilt_at_term > hs.term) {
    return absl::DataLossError("metadata.txt says the node was rebuilt in term " +
                               std::to_string(hs.rebuilt_at_term) + ", after its current term " +
                               std::to_string(hs.term) + ": the file is damaged");
  }
  if (hs.voted_for != kNoNode && (hs.voted_for < 0 || hs.voted_for >= config.cluster_size)) {
    return absl::DataLossError("recovered vote names node " + std::to_string(hs.voted_for) +
                               ", which is not in this cluster");
  }
  return std::unique_ptr<RaftNode>(new RaftNode(config, std::move(recovered), now, rng_seed));
}

RaftNode::RaftNode(const RaftConfig& config, RecoveredState recovered, TimePoint now,
                   uint64_t rng_seed)
    : config_(config),
      rng_(rng_seed),
      current_term_(recovered.hard_state.term),
      voted_for_(recovered.hard_state.voted_for),
      rebuilt_at_term_(recovered.hard_state.rebuilt_at_term),
      log_(std::move(recovered.log)),
      snapshot_(recovered.snapshot),
      last_now_(now),
      progress_(static_cast<size_t>(config.cluster_size)),
      last_persisted_hard_state_(recovered.hard_state) {
  // The recovered commit index is only a hint: never trust it beyond what the log holds. The
  // driver loaded the snapshot; the entries after it up to the commit index are re-applied.
  commit_index_ =
      std::max(std::min(recovered.hard_state.commit_index, log_.LastIndex()), snapshot_.index);
  applied_index_ = snapshot_.index;
  // A rebuilt node that crashed after catching up, before it could say so on disk: what it
  // recovered (a snapshot, a saved commit index) is committed, so it may end the rebuild now.
  MaybeEndRebuild();
  // Raft thesis §6.4.1 after a restart: we may have promised a lease to a leader just before the
  // crash, and we cannot know when, so assume a whole lease was granted just now.
  known_lease_end_ = now + config_.lease_duration;
  ResetElectionTimer(now);
  CheckInvariants();
}

void RaftNode::Tick(TimePoint now) {
  AcceptInput(now);
  if (role_ == Role::kLeader) {
    CheckLeaseRenewal(now);
  }
  if (role_ == Role::kLeader) {
    if (now >= next_heartbeat_at_) BroadcastHeartbeat(now);
    MaybeAdvanceCommit(now);  // the wait for old leases may just have ended
  } else if (now >= election_deadline_) {
    StartElection(now);
  }
  CheckInvariants();
}

void RaftNode::Step(const Message& message, TimePoint now) {
  AcceptInput(now);
  if (!WillAct(message)) return;  // misaddressed, or a term no correct node sends
  // §5.1: a higher term makes us a follower of that term. Only an AppendEntries tells us who
  // leads it; a vote request or a reply does not.
  if (message.term > current_term_) {
    const bool from_leader = std::holds_alternative<AppendEntries>(message.body) ||
                             std::holds_alternative<InstallSnapshot>(message.body);
    BecomeFollower(message.term, from_leader ? message.from : kNoNode, now);
  }
  std::visit(
      [&](const auto& body) {
        using Body = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<Body, RequestVote>) {
          HandleRequestVote(message, now);
        } else if constexpr (std::is_same_v<Body, RequestVoteReply>) {
          HandleRequestVoteReply(message, now);
        } else if constexpr (std::is_same_v<Body, AppendEntries>) {
          HandleAppendEntries(message, now);
        } else if constexpr (std::is_same_v<Body, AppendEntriesReply>) {
          HandleAppendEntriesReply(message, now);
        } else if constexpr (std::is_same_v<Body, InstallSnapshot>) {
          HandleInstallSnapshot(message, now);
        } else {
          HandleInstallSnapshotReply(message, now);
        }
      },
      message.body);
  CheckInvariants();
}

bool RaftNode::WillAct(const Message& message) const {
  return message.to == config_.id && message.from >= 0 && message.from < config_.cluster_size &&
         message.from != config_.id && message.term <= kMaxTerm &&
         message.term - std::min(message.term, current_term_) <= kMaxTermJump;
}

void RaftNode::MaybeEndRebuild() {
  if (rebuilt_at_term_ == 0 || !log_.HasTermAt(commit_index_)) return;
  if (log_.TermAt(commit_index_) <= rebuilt_at_term_) return;
  rebuilt_at_term_ = 0;  // persisted with the next Ready (until then, the node just waits longer)
  Emit(Event::Kind::kRebuildEnded, kNoNode, log_.TermAt(commit_index_));
}

void RaftNode::Campaign(TimePoint now) {
  AcceptInput(now);
  if (role_ != Role::kLeader) StartElection(now);
  CheckInvariants();
}

ProposeResult RaftNode::Propose(std::string command, TimePoint now) {
  AcceptInput(now);
  ProposeResult result;
  if (role_ != Role::kLeader) {
    result.leader_hint = leader_id_;
    return result;
  }
  const LogIndex index = log_.LastIndex() + 1;
  log_.Append(Entry{current_term_, index, EntryType::kCommand, std::move(command)});
  pending_broadcast_ = true;  // batched: sent when the driver next takes a Ready
  result.accepted = true;
  result.index = index;
  result.term = current_term_;
  return result;
}

LeaseReadResult RaftNode::LeaseRead(TimePoint now) const {
  LeaseReadResult result;
  result.leader_hint = leader_id_;
  if (role_ != Role::kLeader) {
    result.refusal = ReadRefusal::kNotLeader;
    return result;
  }
  result.read_index = commit_index_;
  if (config_.Injected(InjectedBug::kReadWithoutLease)) return result;
  if (!OldLeasesExpired(now)) {
    result.refusal = ReadRefusal::kWaitingForOldLease;
  } else if (!LeaseValid(now)) {
    result.refusal = ReadRefusal::kNoLease;
  } else if (applied_index_ < noop_index_ && !config_.Injected(InjectedBug::kSkipNoopBeforeRead)) {
    // Until our NO-OP is applied we may not know every committed entry (§8, thesis §6.4).
    result.refusal = ReadRefusal::kNoopNotApplied;
  }
  return result;
}

void RaftNode::AcceptInput(TimePoint now) {
  RAFTKV_CHECK(!ready_outstanding_, "input between TakeReady and Advance");
  RAFTKV_CHECK(!install_handed_out_, "input between Advance and SnapshotInstalled");
  RAFTKV_CHECK(now >= last_now_, "time must not go backwards");
  last_now_ = now;
}

void RaftNode::BecomeFollower(Term term, NodeId leader, TimePoint now) {
  const Role previous = role_;
  if (previous == Role::kLeader) {
    // We may have served reads until our lease's end: remember it, so that our vote replies make
    // the next leader wait it out (the "only one old lease remembered" pitfall).
    if (std::optional<TimePoint> expiry = LeaseExpiry(now)) {
      known_lease_end_ = std::max(known_lease_end_, *expiry);
    }
  }
  SetTerm(term);
  role_ = Role::kFollower;
  leader_id_ = leader;
  votes_granted_.clear();
  noop_index_ = 0;
  if (previous != Role::kFollower) {
    Emit(Event::Kind::kSteppedDown, config_.id, current_term_);
    ResetElectionTimer(now);
  }
}

void RaftNode::BecomeLeader(TimePoint now) {
  RAFTKV_CHECK(role_ == Role::kCandidate, "only a candidate can become leader");
  role_ = Role::kLeader;
  leader_id_ = config_.id;
  leader_since_ = now;
  if (config_.Injected(InjectedBug::kSkipOldLeaseWait)) old_lease_wait_end_ = now;
  for (Progress& progress : progress_) {
    progress = Progress{};
    progress.next_index = log_.LastIndex() + 1;
  }
  Emit(Event::Kind::kBecameLeader, config_.id, current_term_);
  if (old_lease_wait_end_ > now) {
    Emit(Event::Kind::kWaitingForOldLease, config_.id, current_term_, old_lease_wait_end_ - now);
  }
  // §8: a NO-OP of our own term lets us commit (and learn) everything earlier leaders committed.
  noop_index_ = log_.LastIndex() + 1;
  log_.Append(Entry{current_term_, noop_index_, EntryType::kNoop, {}});
  BroadcastHeartbeat(now);
  MaybeAdvanceCommit(now);
}

void RaftNode::ResetElectionTimer(TimePoint now) {
  // §5.2: randomized in [min, max] so that split votes are rare and resolve quickly.
  const int64_t low = config_.election_timeout_min.count();
  const int64_t high = config_.EffectiveElectionTimeoutMax().count();
  election_deadline_ = now + Duration(rng_.Between(low, high));
}

void RaftNode::SetTerm(Term term) {
  RAFTKV_CHECK(term >= current_term_, "the current term never decreases");
  // Terms come from peers only up to kMaxTerm (Step), and elections stop there (StartElection).
  RAFTKV_CHECK(term <= kMaxTerm, "the term never passes kMaxTerm, far below 2^64");
  if (term > current_term_) {
    current_term_ = term;
    voted_for_ = kNoNode;  // a new term: no vote cast in it yet (§5.2)
  }
}

void RaftNode::Send(NodeId to, MessageBody body) {
  // A leader's AppendEntries or snapshot chunk promises nothing about its own disk, so it may
  // leave before the leader's fsync (thesis §10.2.1). Everything else vouches for persisted state.
  const bool before_persist =
      std::holds_alternative<AppendEntries>(body) || std::holds_alternative<InstallSnapshot>(body);
  std::vector<Message>& queue = before_persist ? messages_ : messages_after_persist_;
  queue.push_back(Message{config_.id, to, current_term_, std::move(body)});
}

void RaftNode::Emit(Event::Kind kind, NodeId peer, Term term, Duration duration) {
  events_.push_back(Event{kind, peer, term, duration});
}

bool RaftNode::HasReady() const {
  const HardState durable = HardStateToPersist();
  const bool hard_state_changed =
      durable.term != last_persisted_hard_state_.term ||
      durable.voted_for != last_persisted_hard_state_.voted_for ||
      durable.rebuilt_at_term != last_persisted_hard_state_.rebuilt_at_term;
  const bool unapplied = applied_index_ < commit_index_;
  return hard_state_changed || pending_broadcast_ || log_.HandedOutIndex() != log_.LastIndex() ||
         !messages_.empty() || !messages_after_persist_.empty() || !events_.empty() || unapplied ||
         !chunks_to_write_.empty() || install_pending_;
}

Ready RaftNode::TakeReady() {
  RAFTKV_CHECK(!ready_outstanding_, "TakeReady twice without Advance");
  RAFTKV_CHECK(!install_handed_out_, "TakeReady before SnapshotInstalled");
  if (pending_broadcast_ && role_ == Role::kLeader) SendAppends(last_now_);
  if (install_pending_) MaybeDropOvertakenInstall();
  pending_broadcast_ = false;

  Ready ready;
  const HardState current = HardStateToPersist();
  if (current.term != last_persisted_hard_state_.term ||
      current.voted_for != last_persisted_hard_state_.voted_for ||
      current.rebuilt_at_term != last_persisted_hard_state_.rebuilt_at_term) {
    ready.hard_state = current;
  }
  ready.commit_index = commit_index_;
  ready.truncate_from = log_.TakeTruncation();
  ready.entries = log_.TakeUnsent();
  // Only entries durable on this node once this Ready is persisted may be applied; and about
  // kMaxCommittedBytesPerReady of them at a time, so that a long backlog (a restart replaying its
  // log, a follower catching up) is applied in bounded batches over several Readies instead of
  // being copied out of the compact log all at once.
  const LogIndex apply_limit = std::min(commit_index_, log_.HandedOutIndex());
  size_t committed_bytes = 0;
  for (LogIndex index = applied_index_ + 1;
       index <= apply_limit && committed_bytes < kMaxCommittedBytesPerReady; ++index) {
    ready.committed_entries.push_back(log_.At(index));
    committed_bytes += ready.committed_entries.back().data.size() + sizeof(Entry);
    applied_index_ = index;
  }
  ready.messages = std::move(messages_);
  ready.messages_after_persist = std::move(messages_after_persist_);
  ready.events = std::move(events_);
  ready.snapshot_chunks = std::move(chunks_to_write_);
  if (install_pending_) {
    ready.snapshot_to_install = std::get<InstallSnapshot>(install_pending_->body).snapshot;
    install_handed_out_ = true;
  }
  chunks_to_write_.clear();
  messages_.clear();
  messages_after_persist_.clear();
  events_.clear();
  ready_outstanding_ = true;
  return ready;
}

HardState RaftNode::HardStateToPersist() const {
  HardState state{current_term_, voted_for_, commit_index_, rebuilt_at_term_};
  // The injected bug keeps only self-votes: a vote for another node is lost in a crash.
  if (config_.Injected(InjectedBug::kForgetToPersistVote) && voted_for_ != config_.id) {
    state.voted_for = kNoNode;
  }
  return state;
}

void RaftNode::Advance(const Ready& ready) {
  RAFTKV_CHECK(ready_outstanding_, "Advance without TakeReady");
  ready_outstanding_ = false;
  log_.MarkHandedOutStable();
  if (ready.hard_state) last_persisted_hard_state_ = *ready.hard_state;
  // Our own log just became durable: as leader, we now count ourselves for those entries.
  if (role_ == Role::kLeader) MaybeAdvanceCommit(last_now_);
  CheckInvariants();
}

TimePoint RaftNode::NextDeadline() const {
  if (role_ != Role::kLeader) return election_deadline_;
  TimePoint deadline = next_heartbeat_at_;
  if (old_lease_wait_end_ > last_now_) deadline = std::min(deadline, old_lease_wait_end_);
  if (std::optional<TimePoint> expiry = LeaseExpiry(last_now_); expiry && *expiry > last_now_) {
    deadline = std::min(deadline, *expiry);
  }
  return deadline;
}

void RaftNode::CheckInvariants() {
  // Across time (LogCabin's checkDelta), against what the last check saw.
  InvariantSnapshot& last = last_checked_;
  RAFTKV_CHECK(current_term_ >= last.term, "the current term never decreases");
  RAFTKV_CHECK(commit_index_ >= last.commit_index, "the commit index never decreases");
  if (current_term_ == last.term) {
    RAFTKV_CHECK(last.voted_for == kNoNode || voted_for_ == last.voted_for,
                 "a vote, once cast in a term, never changes in it (§5.2)");
    // (Deliberate bugs that break election safety are left to the simulator's checker to report.)
    RAFTKV_CHECK(!config_.Injected(InjectedBug::kNone) || leader_id_ == kNoNode ||
                     last.leader == kNoNode || leader_id_ == last.leader,
                 "a term has at most one leader, so a node learns at most one (§5.2)");
  }
  last.term = current_term_;
  last.commit_index = commit_index_;
  last.voted_for = voted_for_;
  if (current_term_ != last.leader_term) {
    last.leader_term = current_term_;
    last.leader = kNoNode;
  }
  if (leader_id_ != kNoNode) last.leader = leader_id_;

  RAFTKV_CHECK(commit_index_ <= log_.LastIndex(), "commitIndex never exceeds the log");
  RAFTKV_CHECK(log_.BaseIndex() <= snapshot_.index && snapshot_.index <= applied_index_,
               "the log starts at or below the snapshot, which holds only applied entries");
  RAFTKV_CHECK(applied_index_ <= commit_index_, "lastApplied never exceeds commitIndex");
  RAFTKV_CHECK(log_.StableIndex() <= log_.LastIndex(), "the durable prefix lies inside the log");
  RAFTKV_CHECK((role_ == Role::kLeader) == (leader_id_ == config_.id),
               "a node names itself leader exactly when it is leader");
  RAFTKV_CHECK(role_ == Role::kFollower || voted_for_ == config_.id,
               "candidates and leaders voted for themselves in their term");
  RAFTKV_CHECK(role_ != Role::kLeader || noop_index_ >= 1, "a leader has appended its NO-OP");
}

}  // namespace raftkv::raft

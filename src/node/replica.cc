#include "node/replica.h"

#include <algorithm>
#include <cstdlib>

#include "kv/command.h"
#include "kv/command_text.h"
#include "storage/metadata_file.h"

namespace raftkv::node {
namespace {

// How often the replica looks for client requests past their answer_by.
constexpr Duration kOverdueSweep = std::chrono::milliseconds(10);
// How often, at the least, it asks whether the snapshot being written is done.
constexpr Duration kSnapshotPoll = std::chrono::milliseconds(20);

const char* RefusalText(raft::ReadRefusal refusal) {
  switch (refusal) {
    case raft::ReadRefusal::kNone:
      return "";
    case raft::ReadRefusal::kNotLeader:
      return "not leader";
    case raft::ReadRefusal::kWaitingForOldLease:
      return "new leader waiting for the old leader's lease to expire; retry shortly";
    case raft::ReadRefusal::kNoLease:
      return "leader without a valid lease; retry shortly";
    case raft::ReadRefusal::kNoopNotApplied:
      return "new leader still committing its first entry; retry shortly";
  }
  return "refused";
}

// Removes from `requests` (a map whose values have `answer_by` and `done`) every request due by
// `now`, answering each with `answer`.
template <typename Requests>
void AnswerDue(Requests& requests, TimePoint now, const ClientResult& answer) {
  for (auto it = requests.begin(); it != requests.end();) {
    if (it->second.answer_by > now) {
      ++it;
    } else {
      it->second.done(answer);
      it = requests.erase(it);
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Replica>> Replica::Open(ReplicaOptions options, storage::Env* env,
                                                       PeerTransport* transport, EventSink* events,
                                                       ReplicaObserver* observer, TimePoint now,
                                                       uint64_t rng_seed) {
  // One process per node directory: a second one would rename metadata.txt under the first.
  absl::StatusOr<std::unique_ptr<storage::DirLock>> lock =
      options.dir_locked_by_owner ? std::unique_ptr<storage::DirLock>() : env->LockDir(options.dir);
  if (!lock.ok()) return lock.status();
  // Both files are read and checked against each other, and the core built from them, before
  // anything is changed on disk.
  bool metadata_checksummed = false;
  absl::StatusOr<raft::HardState> hard_state =
      storage::LoadMetadata(options.dir, env, &metadata_checksummed);
  if (!hard_state.ok()) return hard_state.status();
  // The snapshot first: the state it holds, and what the log must hold after it. A damaged one
  // is refused whole (ReadSnapshot checks everything before the state is used).
  raft::SnapshotMeta snapshot;
  std::unique_ptr<kv::KvStateMachine> loaded;
  absl::StatusOr<LoadedSnapshot> own =
      LoadSnapshot(env, options.dir + "/" + storage::kSnapshotFile);
  if (own.ok()) {
    if (own->meta.cluster_size != options.raft.cluster_size) {
      return absl::FailedPreconditionError(
          options.dir + "/snapshot.txt was taken in a cluster of " +
          std::to_string(own->meta.cluster_size) + " nodes, this node is configured with " +
          std::to_string(options.raft.cluster_size) +
          ": start it with its own cluster's addresses");
    }
    snapshot = own->meta;
    loaded = std::move(own->kv);
  } else if (absl::IsDataLoss(own.status())) {
    return absl::DataLossError(
        std::string(own.status().message()) +
        " and was not loaded; the node changes nothing. If the other nodes hold a majority, start "
        "this one once with --rebuild: it discards its log and snapshot, comes back a term ahead "
        "of the one it may have voted in, and catches up from the leader (docs/file-formats.md, "
        "Recovery)");
  } else if (!absl::IsNotFound(own.status())) {
    return own.status();
  }
  // The log is read in pieces straight into the core's compact store: never the whole file in
  // memory, nor a second copy of the entries.
  raft::RaftLog entries;
  const storage::LogFile::EntrySink sink{
      [&entries](LogIndex base, Term term) { entries = raft::RaftLog(base, term, {}); },
      [&entries](raft::Entry entry) { entries.AppendRecovered(entry); }};
  absl::StatusOr<storage::LogFile::Recovered> recovered =
      storage::LogFile::Read(options.dir, kCommandCodec, env, &sink);
  if (!recovered.ok()) return recovered.status();
  // A crash between installing a leader's snapshot and cutting the log leaves a log that does not
  // hold the snapshot's entry: the snapshot supersedes all of it (Raft Figure 13, step 7).
  const bool log_superseded =
      raft::CompareLogToSnapshot(entries.BaseIndex(), entries.Holds(snapshot.index, snapshot.term),
                                 snapshot.index) == raft::LogVsSnapshot::kSuperseded;
  if (log_superseded) entries = raft::RaftLog(snapshot.index, snapshot.term, {});
  if (absl::Status status = storage::CheckLogAgainstMetadata(
          options.dir, *hard_state, entries.LastIndex(), recovered->missing, metadata_checksummed);
      !status.ok()) {
    return status;
  }
  raft::RecoveredState state{*hard_state, snapshot, std::move(entries)};
  absl::StatusOr<std::unique_ptr<raft::RaftNode>> core =
      raft::RaftNode::Create(options.raft, std::move(state), now, rng_seed);
  if (!core.ok()) {
    return absl::Status(core.status().code(),
                        options.dir + ": " + std::string(core.status().message()));
  }
  absl::StatusOr<std::unique_ptr<storage::LogFile>> log =
      storage::LogFile::Open(options.dir, *recovered, kCommandCodec, env);
  if (!log.ok()) return log.status();
  if (log_superseded) {
    if (absl::Status s = (*log)->Rewrite(snapshot.index, snapshot.term, 0); !s.ok()) return s;
  }
  // Leftovers of a snapshot being written or received, or of a log rewrite, when the node stopped.
  for (const std::string& leftover :
       {std::string(storage::kSnapshotFile) + ".tmp",
        std::string(storage::kSnapshotFile) + ".incoming", std::string("logs.txt.tmp")}) {
    if (absl::Status s = env->DeleteFile(options.dir + "/" + leftover); !s.ok()) {
      return s;
    }
  }
  if (options.raft.Injected(raft::InjectedBug::kOneSyncForCutAndAppend)) {
    (*log)->SyncTruncationsForTesting(false);
  }
  if (events != nullptr) {
    for (const std::string& warning : recovered->warnings) events->Record("WARNING " + warning);
  }
  // What metadata.txt holds, as far as it can be vouched for: a commit index from before
  // checksums may run past the log (the core clamps it), and must not be written back as is.
  raft::HardState saved = *hard_state;
  saved.commit_index = (*core)->commit_index();
  auto replica =
      std::unique_ptr<Replica>(new Replica(std::move(options), env, transport, events, observer,
                                           std::move(*log), std::move(*core), saved));
  replica->lock_ = std::move(*lock);
  replica->applied_log_time_at_ = now;
  if (loaded) {
    WriterLock kv_lock(&replica->kv_mu_);
    replica->kv_ = std::move(*loaded);
  }
  return replica;
}

Replica::Replica(ReplicaOptions options, storage::Env* env, PeerTransport* transport,
                 EventSink* events, ReplicaObserver* observer,
                 std::unique_ptr<storage::LogFile> log, std::unique_ptr<raft::RaftNode> core,
                 raft::HardState saved)
    : options_(std::move(options)),
      env_(env),
      transport_(transport),
      events_(events),
      observer_(observer),
      log_(std::move(log)),
      core_(std::move(core)),
      saved_(saved),
      snapshot_worker_(options_.snapshot_worker ? options_.snapshot_worker
                                                : std::make_shared<InlineSnapshotWorker>()) {}

void Replica::Record(const std::string& statement) {
  if (events_ != nullptr) events_->Record(statement);
}

// ---------------------------------------------------------------------------------------------
// Inputs

void Replica::Step(const raft::Message& message, TimePoint now) {
  if (failed_) return;
  core_->Step(message, now);
}

void Replica::StepRequest(const raft::Message& request, ReplyFn reply, TimePoint now) {
  // The core answers every request it acts on exactly once, in the order stepped per sender; one
  // it would ignore gets no reply, so it must not take a slot the next reply would fill.
  // InstallSnapshot travels as messages both ways (its answer comes a Ready later, once the file
  // is checked), so a chunk that came as an RPC is answered "no reply" and stepped as a message.
  const bool paired = std::holds_alternative<raft::AppendEntries>(request.body) ||
                      std::holds_alternative<raft::RequestVote>(request.body);
  if (failed_ || !core_->WillAct(request) || !paired) {
    reply(std::nullopt);
    if (!failed_ && !paired) core_->Step(request, now);
    return;
  }
  reply_slots_[request.from].push_back(std::move(reply));
  core_->Step(request, now);
}

void Replica::ReportPeerError(NodeId peer, TimePoint now) {
  TimePoint& last = last_peer_error_logged_[peer];
  if (last == TimePoint() || now - last >= std::chrono::seconds(1)) {
    last = now;
    if (events_ != nullptr) events_->RecordPeerError(peer);
  }
}

std::optional<std::string> Replica::Invalid(const kv::SetCommand& command) const {
  if (command.key.empty()) return "invalid argument: the key is empty";
  if (static_cast<int64_t>(command.key.size()) > options_.max_key_bytes) {
    return "invalid argument: the key is longer than MAX_KEY_BYTES (" +
           std::to_string(options_.max_key_bytes) + ")";
  }
  if (command.client_id != 0 && command.sequence == 0) {
    return "invalid argument: a session's sequence numbers start at 1";
  }
  if (command.client_id == 0 && command.sequence != 0) {
    return "invalid argument: a SET without a session (client_id 0) has no sequence; give 0";
  }
  if (static_cast<int64_t>(command.value.size()) > options_.max_value_bytes) {
    return "invalid argument: the value is longer than MAX_VALUE_BYTES (" +
           std::to_string(options_.max_value_bytes) + ")";
  }
  return std::nullopt;
}

void Replica::Set(kv::SetCommand command, ClientCallback done, TimePoint answer_by, TimePoint now) {
  if (failed_) return done(ClientResult::ShuttingDown());
  if (std::optional<std::string> invalid = Invalid(command)) {
    return done(ClientResult::Rejected(ClientResult::Reason::kInvalidArgument, *invalid,
                                       core_->leader_id()));
  }
  const bool record = events_ != nullptr && events_->RecordsRequests();
  Propose(kv::EncodeSet(command), record ? kv::OperationText(command) : "", std::move(done),
          answer_by, now);
}

void Replica::OpenSession(ClientCallback done, TimePoint answer_by, TimePoint now) {
  if (failed_) return done(ClientResult::ShuttingDown());
  const kv::OpenSessionCommand open{
      LogTimeForProposal(now), static_cast<uint64_t>(options_.max_sessions),
      static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(options_.session_idle_timeout)
              .count())};
  Propose(kv::EncodeOpenSession(open), "OPEN-SESSION", std::move(done), answer_by, now);
}

uint64_t Replica::LogTimeForProposal(TimePoint now) const {
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(now - applied_log_time_at_).count();
  ReaderLock lock(&kv_mu_);
  return kv_.log_time_ms() + static_cast<uint64_t>(std::max<int64_t>(0, elapsed));
}

void Replica::Propose(std::string payload, const std::string& operation, ClientCallback done,
                      TimePoint answer_by, TimePoint now) {
  const raft::ProposeResult proposal = core_->Propose(std::move(payload), now);
  if (!proposal.accepted) {
    return done(ClientResult::Rejected(ClientResult::Reason::kNotLeader, "not leader",
                                       proposal.leader_hint));
  }
  if (events_ != nullptr && events_->RecordsRequests()) events_->RecordReceived(operation);
  pending_sets_[proposal.index] = PendingSet{proposal.term, std::move(done), answer_by};
}

void Replica::Get(std::string key, ClientCallback done, TimePoint answer_by, TimePoint now) {
  if (failed_) return done(ClientResult::ShuttingDown());
  const raft::LeaseReadResult read = core_->LeaseRead(now);
  if (read.ok() && core_->applied_index() >= read.read_index) {
    ServeRead(key, done);
  } else if (read.ok()) {
    // Confirmed leader, but entries up to read_index are still being applied: answer once they
    // are. The state then served may include later entries too; those were committed after
    // this read arrived (no one else could commit while our lease held), so it stays
    // linearizable.
    waiting_reads_.emplace(read.read_index,
                           WaitingRead{std::move(key), std::move(done), answer_by});
  } else {
    const bool not_leader = read.refusal == raft::ReadRefusal::kNotLeader;
    done(ClientResult::Rejected(
        not_leader ? ClientResult::Reason::kNotLeader : ClientResult::Reason::kRetryLater,
        RefusalText(read.refusal), read.leader_hint));
  }
}

void Replica::SaveSnapshot(ClientCallback done, TimePoint answer_by, TimePoint now) {
  if (failed_) return done(ClientResult::ShuttingDown());
  // The lease read's rule: a leader whose lease holds has applied, or will apply up to
  // read_index, every write acknowledged before now by anyone.
  const raft::LeaseReadResult read = core_->LeaseRead(now);
  if (!read.ok()) {
    const bool not_leader = read.refusal == raft::ReadRefusal::kNotLeader;
    return done(ClientResult::Rejected(
        not_leader ? ClientResult::Reason::kNotLeader : ClientResult::Reason::kRetryLater,
        RefusalText(read.refusal), read.leader_hint));
  }
  if (core_->snapshot().index >= read.read_index) {
    ClientResult result = ClientResult::Ok(std::nullopt, options_.raft.id);
    result.snapshot = core_->snapshot();
    return done(result);
  }
  if (now < snapshot_retry_at_) {
    return done(ClientResult::Rejected(ClientResult::Reason::kRetryLater,
                                       "the last snapshot could not be written (" +
                                           snapshot_error_ +
                                           "); the node tries again within 10 s: retry then",
                                       core_->leader_id()));
  }
  if (snapshot_waiters_.size() >= kMaxSnapshotWaiters) {
    return done(ClientResult::Rejected(ClientResult::Reason::kRetryLater,
                                       "too many snapshot requests waiting; retry later",
                                       core_->leader_id()));
  }
  snapshot_waiters_.emplace(read.read_index, SnapshotWaiter{std::move(done), answer_by});
}

void Replica::FailSnapshotWaiters(const std::string& why) {
  AnswerDue(snapshot_waiters_, TimePoint::max(),
            ClientResult::Rejected(ClientResult::Reason::kRetryLater, why + "; retry",
                                   core_->leader_id()));
}

NodeStatus Replica::Status(TimePoint now) const {
  NodeStatus status{options_.raft.id,
                    core_->role(),
                    core_->term(),
                    core_->leader_id(),
                    core_->commit_index(),
                    core_->applied_index(),
                    core_->log().LastIndex(),
                    core_->LeaseRemaining(now),
                    counts_,
                    0,
                    {},
                    {},
                    {}};
  status.sessions = SessionCount();
  for (NodeId peer = 0; peer < options_.raft.cluster_size; ++peer) {
    const raft::Progress* progress = core_->progress(peer);
    if (progress == nullptr) continue;
    const LogIndex last = status.last_log_index;
    status.peers.push_back(PeerStatus{peer, progress->match_index,
                                      last - std::min(progress->match_index, last),
                                      raft::ProgressModeName(progress->mode)});
  }
  status.storage = storage_counts_;
  status.storage.bytes_appended = log_->appended_bytes();
  status.storage.log_sync = log_sync_seconds_.Snapshot();
  status.storage.snapshot_write = snapshot_write_seconds_.Snapshot();
  status.storage.snapshot_receive = snapshot_receive_seconds_.Snapshot();
  for (const auto& [at, text] : recent_events_) {
    status.recent_events.push_back(RecentEvent{now - at, text});
  }
  return status;
}

// ---------------------------------------------------------------------------------------------
// Turns

void Replica::Process(TimePoint now) {
  if (failed_) return;
  last_turn_ = now;
  core_->Tick(now);
  ProcessReadies(now);
  if (failed_) return;
  MaybeTakeSnapshot(now);
  if (failed_) return;
  PublishReadWindow();
  AnswerOverdue(now);
}

TimePoint Replica::NextWake() const {
  if (failed_) return TimePoint::max();
  const bool clients_waiting =
      !pending_sets_.empty() || !waiting_reads_.empty() || !snapshot_waiters_.empty();
  TimePoint wake = clients_waiting ? std::min(core_->NextDeadline(), next_overdue_sweep_)
                                   : core_->NextDeadline();
  // A snapshot being written is finished by the first turn after its worker is done.
  if (snapshot_writing_) wake = std::min(wake, last_turn_ + kSnapshotPoll);
  return wake;
}

void Replica::CountEvents(const raft::Ready& ready, TimePoint now) {
  const auto term = [this] { return " (term " + std::to_string(core_->term()) + ")"; };
  for (const raft::Event& event : ready.events) {
    switch (event.kind) {
      case raft::Event::Kind::kElectionTimeout:
        ++counts_.elections_started;
        RememberEvent(now, "election timeout: started an election" + term());
        break;
      case raft::Event::Kind::kBecameLeader:
        ++counts_.terms_led;
        RememberEvent(now, "became leader for term " + std::to_string(event.term));
        break;
      case raft::Event::Kind::kSteppedDown:
        ++counts_.step_downs;
        RememberEvent(now, "stepped down" + term());
        break;
      case raft::Event::Kind::kLeaseRenewalFailed:
        ++counts_.lease_renewals_failed;
        RememberEvent(now, "could not renew its lease: stepping down" + term());
        break;
      case raft::Event::Kind::kWaitingForOldLease:
        RememberEvent(now, "new leader waiting " + std::to_string(ToMillis(event.duration)) +
                               " ms for the old leader's lease to run out");
        break;
      default:
        break;
    }
  }
  const NodeId leader = core_->leader_id();
  if (leader != kNoNode && leader != last_known_leader_) {
    if (last_known_leader_ != kNoNode) ++counts_.leader_changes;
    last_known_leader_ = leader;
    RememberEvent(now, "leader is now node " + std::to_string(leader) + term());
  }
}

void Replica::RememberEvent(TimePoint now, std::string text) {
  if (recent_events_.size() == kRecentEvents) recent_events_.pop_front();
  recent_events_.emplace_back(now, std::move(text));
}

void Replica::ProcessReadies(TimePoint now) {
  while (!failed_ && core_->HasReady()) {
    raft::Ready ready = core_->TakeReady();
    if (observer_ != nullptr) observer_->OnReady(ready);
    CountEvents(ready, now);
    if (events_ != nullptr) {
      for (const raft::Event& event : ready.events) events_->RecordEvent(event);
    }
    FillSnapshotChunks(ready.messages);
    if (failed_) return;
    for (const raft::Message& message : ready.messages) transport_->Send(message);
    // Persist: vote and term first (§5.2), then the log; one fsync covers the whole batch.
    // The commit index that rides along is the one already saved, never this Ready's: the log
    // that would cover a newer one is not durable yet (and may still hold another term's entries
    // at those indexes, about to be cut). MaybeSaveCommitIndex records it once the log is synced.
    if (ready.hard_state) {
      raft::HardState state = *ready.hard_state;
      state.commit_index = options_.raft.Injected(raft::InjectedBug::kSaveCommitBeforeLogCut)
                               ? std::min(ready.commit_index, log_->LastIndex())
                               : saved_.commit_index;
      if (absl::Status s = storage::SaveMetadata(options_.dir, state, env_); !s.ok()) {
        return Fatal(s);
      }
      saved_ = state;
    }
    if (ready.truncate_from) {
      if (absl::Status s = log_->TruncateFrom(*ready.truncate_from); !s.ok()) return Fatal(s);
    }
    if (!ready.entries.empty()) {
      if (absl::Status s = log_->Append(ready.entries); !s.ok()) return Fatal(s);
      storage_counts_.entries_appended += ready.entries.size();
    }
    if (ready.truncate_from || !ready.entries.empty()) {
      const TimePoint before = Clock(now);
      if (absl::Status s = log_->Sync(); !s.ok()) return Fatal(s);
      log_sync_seconds_.Observe(Clock(now) - before);
    }
    WriteSnapshotChunks(ready.snapshot_chunks, now);
    if (failed_) return;
    if (observer_ != nullptr) observer_->OnPersisted(*core_);
    for (raft::Message& message : ready.messages_after_persist) {
      // A reply to a request that came as an RPC goes back as that RPC's response.
      // (InstallSnapshot travels as messages both ways, never as an RPC awaiting its answer: the
      // answer to a last chunk comes a Ready later, after the file was checked.)
      const bool is_reply = std::holds_alternative<raft::AppendEntriesReply>(message.body) ||
                            std::holds_alternative<raft::RequestVoteReply>(message.body);
      auto slots = reply_slots_.find(message.to);
      if (is_reply && slots != reply_slots_.end() && !slots->second.empty()) {
        ReplyFn reply = std::move(slots->second.front());
        slots->second.pop_front();
        reply(std::move(message));
      } else {
        transport_->Send(message);
      }
    }
    ApplyCommitted(ready.committed_entries, now);
    if (failed_) return;
    core_->Advance(ready);
    if (ready.snapshot_to_install) {
      InstallReceivedSnapshot(*ready.snapshot_to_install, now);
      if (failed_) return;
    }
    while (!waiting_reads_.empty() && waiting_reads_.begin()->first <= core_->applied_index()) {
      WaitingRead& read = waiting_reads_.begin()->second;
      ServeRead(read.key, read.done);
      waiting_reads_.erase(waiting_reads_.begin());
    }
  }
  if (core_->role() != raft::Role::kLeader && !pending_sets_.empty()) {
    FailPending("leadership lost before the outcome was known");
  }
  MaybeSaveCommitIndex(now, /*force=*/false);
}

void Replica::MaybeSaveCommitIndex(TimePoint now, bool force) {
  // Only what this node holds durably may be recorded as committed.
  const LogIndex commit = std::min(core_->commit_index(), log_->LastIndex());
  if (commit <= saved_.commit_index) return;
  if (!force && now - commit_saved_at_ < std::chrono::seconds(1)) return;
  raft::HardState state = saved_;
  state.commit_index = commit;
  if (absl::Status s = storage::SaveMetadata(options_.dir, state, env_); !s.ok()) return Fatal(s);
  saved_ = state;
  commit_saved_at_ = now;
}

void Replica::ApplyCommitted(const std::vector<raft::Entry>& entries, TimePoint now) {
  if (entries.empty()) return;
  // Decode outside the writer lock, so that fast-path readers wait only for the applying.
  std::vector<std::optional<kv::Command>> commands(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].type != raft::EntryType::kCommand) continue;
    absl::StatusOr<kv::Command> command = kv::DecodeCommand(entries[i].data);
    if (!command.ok()) return Fatal(command.status());
    commands[i] = std::move(*command);
  }
  std::vector<Applied> applied(entries.size());
  {
    // One writer lock for the batch: readers on the fast path wait at most one batch.
    WriterLock lock(&kv_mu_);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (!commands[i]) continue;
      if (const auto* set = std::get_if<kv::SetCommand>(&*commands[i])) {
        applied[i].set = kv_.ApplySet(*set, entries[i].index);
      } else {
        applied[i].open =
            kv_.ApplyOpenSession(std::get<kv::OpenSessionCommand>(*commands[i]), entries[i].index);
        applied_log_time_at_ = now;
      }
    }
  }
  const bool leader = core_->role() == raft::Role::kLeader;
  const bool record = events_ != nullptr && events_->RecordsRequests();
  for (size_t i = 0; i < entries.size(); ++i) {
    if (observer_ != nullptr) observer_->OnApplied(entries[i]);
    if (record) {
      events_->RecordCommitted(leader, commands[i] ? kv::OperationText(*commands[i]) : "NO-OP");
    }
    AnswerApplied(entries[i], applied[i]);
  }
}

void Replica::AnswerApplied(const raft::Entry& entry, const Applied& applied) {
  auto it = pending_sets_.find(entry.index);
  if (it == pending_sets_.end()) return;
  PendingSet pending = std::move(it->second);
  pending_sets_.erase(it);
  const NodeId self = options_.raft.id;
  if (entry.term != pending.term) {
    return pending.done(ClientResult::Unknown(
        "another leader's entry took this log position; outcome unknown, retry",
        core_->leader_id()));
  }
  if (applied.open) {
    if (*applied.open == kv::OpenOutcome::kOpened) {
      return pending.done(ClientResult::Opened(entry.index, self));
    }
    return pending.done(ClientResult::Rejected(
        ClientResult::Reason::kTooManySessions,
        "the cluster's session table is full of sessions used within the idle timeout; retry "
        "later, or send SETs without a session (client_id 0)",
        self));
  }
  switch (applied.set.value_or(kv::ApplyOutcome::kApplied)) {
    case kv::ApplyOutcome::kApplied:
    case kv::ApplyOutcome::kDuplicate:
      return pending.done(ClientResult::Ok(std::nullopt, self));
    case kv::ApplyOutcome::kSessionExpired:
      return pending.done(ClientResult::Rejected(
          ClientResult::Reason::kSessionExpired,
          "no such client session (never opened, or expired): open a new session", self));
    case kv::ApplyOutcome::kNeverOpened:
      return pending.done(ClientResult::Rejected(
          ClientResult::Reason::kInvalidArgument,
          "invalid argument: no session was ever opened with this client_id; open one with "
          "OPEN_SESSION first (docs/api.md), or send client_id 0 for no session",
          self));
    case kv::ApplyOutcome::kSequenceTooFar:
      return pending.done(ClientResult::Rejected(
          ClientResult::Reason::kInvalidArgument,
          "invalid argument: the sequence is more than 4096 above the session's highest applied "
          "one; number SETs consecutively, or open a new session",
          self));
  }
}

// ---------------------------------------------------------------------------------------------
// Reads

bool Replica::TryLeaseRead(const std::string& key, const ClientCallback& done) {
  std::optional<kv::StoredValue> value;
  {
    ReaderLock lock(&kv_mu_);
    if (!read_window_) return false;
    // Read the clock under the lock: the window was published at an owner time no later than
    // this reading, so `from` never refuses a read for a clock taken before the publication.
    const TimePoint now = options_.clock();
    if (now < read_window_->from || now >= read_window_->until) return false;
    // Linearizable: every SET acknowledged before this GET arrived is in kv_ (this leader applies
    // before it answers; earlier leaders' entries precede our applied NO-OP), and while the lease
    // holds no other node can commit anything.
    value = kv_.Find(key);
  }
  done(ClientResult::Ok(std::move(value), options_.raft.id));
  return true;
}

void Replica::ServeRead(const std::string& key, const ClientCallback& done) {
  std::optional<kv::StoredValue> value;
  {
    ReaderLock lock(&kv_mu_);
    value = kv_.Find(key);
  }
  done(ClientResult::Ok(std::move(value), options_.raft.id));
}

std::optional<kv::StoredValue> Replica::Find(const std::string& key) const {
  ReaderLock lock(&kv_mu_);
  return kv_.Find(key);
}

size_t Replica::SessionCount() const {
  ReaderLock lock(&kv_mu_);
  return kv_.session_count();
}

void Replica::PublishReadWindow() {
  std::optional<raft::LeaseWindow> window = core_->CurrentLeaseWindow();
  // Within one term a window only moves its end (`from` only tracks the owner's clock once the
  // old leases are out and the NO-OP applied), so the first `from` published stays right.
  const bool same = window.has_value() == published_window_.has_value() &&
                    published_term_ == core_->term() &&
                    (!window || window->until == published_window_->until);
  if (same) return;
  published_window_ = window;
  published_term_ = core_->term();
  WriterLock lock(&kv_mu_);
  read_window_ = window;
}

// ---------------------------------------------------------------------------------------------
// Answers nobody else gives

void Replica::AnswerOverdue(TimePoint now) {
  if (now < next_overdue_sweep_) return;
  next_overdue_sweep_ = now + kOverdueSweep;
  if (pending_sets_.empty() && waiting_reads_.empty() && snapshot_waiters_.empty()) return;
  // A SET may still commit (and is then applied once): never claim it failed.
  AnswerDue(pending_sets_, now,
            ClientResult::Unknown(
                "not committed before the client's deadline; retry with the same sequence",
                core_->leader_id()));
  AnswerDue(waiting_reads_, now,
            ClientResult::Rejected(ClientResult::Reason::kRetryLater,
                                   "state machine not caught up before the client's deadline; "
                                   "retry",
                                   core_->leader_id()));
  AnswerDue(snapshot_waiters_, now,
            ClientResult::Rejected(ClientResult::Reason::kRetryLater,
                                   "the snapshot was not written before the client's deadline; "
                                   "retry with a longer timeout",
                                   core_->leader_id()));
}

void Replica::FailPending(const std::string& why) {
  AnswerDue(pending_sets_, TimePoint::max(),
            ClientResult::Unknown(why + "; outcome unknown, retry", core_->leader_id()));
}

void Replica::Shutdown() {
  {
    WriterLock lock(&kv_mu_);
    read_window_.reset();
  }
  published_window_.reset();
  FailPending("node shutting down");
  AnswerDue(waiting_reads_, TimePoint::max(), ClientResult::ShuttingDown());
  AnswerDue(snapshot_waiters_, TimePoint::max(), ClientResult::ShuttingDown());
  // A snapshot still being written is abandoned; recovery deletes its file.
  snapshot_worker_->Cancel();
  snapshot_writing_.reset();
  for (auto& [peer, slots] : reply_slots_) {
    for (ReplyFn& reply : slots) reply(std::nullopt);
  }
  reply_slots_.clear();
  if (!failed_) MaybeSaveCommitIndex(TimePoint::max(), /*force=*/true);
}

void Replica::Fatal(const absl::Status& status) {
  // A node that cannot make its state durable must not go on acknowledging anything, nor serve
  // reads from a state it can no longer vouch for.
  Record("FATAL " + std::string(status.message()));
  failed_ = true;
  {
    WriterLock lock(&kv_mu_);
    read_window_.reset();
  }
  published_window_.reset();
  if (options_.on_fatal) {
    options_.on_fatal(status);
  } else {
    std::abort();
  }
}

}  // namespace raftkv::node

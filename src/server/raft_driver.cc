#include "server/raft_driver.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <random>

#include "storage/escape.h"
#include "storage/metadata_file.h"

namespace raftkv::server {
namespace {

// How often the driver looks for client requests past their AnswerBy.
constexpr auto kOverdueSweep = std::chrono::milliseconds(10);

// "SET key value", as in logs.txt without the session and term: the {entry operation} of dump.txt.
std::string SetText(const kv::SetCommand& command) {
  return "SET " + storage::Escape(command.key) + " " + storage::Escape(command.value);
}

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
void AnswerDue(Requests& requests, AnswerBy now, const ClientResult& answer) {
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

absl::StatusOr<std::unique_ptr<RaftDriver>> RaftDriver::Start(const NodeConfig& config,
                                                              PeerTransport* transport) {
  if (absl::Status status = ValidateNodeConfig(config); !status.ok()) return status;
  const std::string dir = config.data_dir + "/logs_node_" + std::to_string(config.raft.id);
  EventLog::Options log_options;
  log_options.verbosity = config.verbosity;
  log_options.to_stdout = config.log_to_stdout;
  log_options.max_bytes = config.dump_max_bytes;
  absl::StatusOr<std::unique_ptr<EventLog>> events =
      EventLog::Open(dir, config.raft.id, log_options);
  if (!events.ok()) return events.status();
  storage::LogFile::Recovered recovered;
  absl::StatusOr<std::unique_ptr<storage::LogFile>> log = storage::LogFile::Open(dir, &recovered);
  if (!log.ok()) return log.status();
  for (const std::string& warning : recovered.warnings) (*events)->Record("WARNING " + warning);
  absl::StatusOr<raft::HardState> hard_state = storage::LoadMetadata(dir);
  if (!hard_state.ok()) return hard_state.status();
  if (config.testing.any() || config.raft.injected_bug != raft::InjectedBug::kNone) {
    (*events)->Record("TESTING: fault injection on: clock rate " +
                      std::to_string(config.testing.clock_rate) + ", fsync delay " +
                      std::to_string(ToMillis(config.testing.fsync_delay)) + "ms" +
                      (config.testing.slow_disk_at_start ? " (from the start)" : " (on SIGUSR1)") +
                      ", injected bug " + raft::InjectedBugName(config.raft.injected_bug));
  }
  const NodeClock clock(config.testing.clock_rate);
  absl::StatusOr<std::unique_ptr<raft::RaftNode>> node = raft::RaftNode::Create(
      config.raft, raft::RecoveredState{*hard_state, std::move(recovered.entries)}, clock.Now(),
      std::random_device{}());
  if (!node.ok()) {
    return absl::Status(node.status().code(), dir + ": " + std::string(node.status().message()));
  }
  auto driver = std::unique_ptr<RaftDriver>(new RaftDriver(
      config, clock, transport, dir, std::move(*log), std::move(*events), std::move(*node)));
  driver->slow_disk_.store(config.testing.slow_disk_at_start);
  driver->saved_hard_state_ = *hard_state;
  driver->thread_ = std::thread([raw = driver.get()] { raw->Loop(); });
  return driver;
}

RaftDriver::RaftDriver(const NodeConfig& config, NodeClock clock, PeerTransport* transport,
                       std::string dir, std::unique_ptr<storage::LogFile> log,
                       std::unique_ptr<EventLog> events, std::unique_ptr<raft::RaftNode> node)
    : config_(config),
      clock_(clock),
      transport_(transport),
      dir_(std::move(dir)),
      log_(std::move(log)),
      events_(std::move(events)),
      node_(std::move(node)),
      kv_(static_cast<size_t>(config.max_sessions)) {}

RaftDriver::~RaftDriver() { Stop(); }

void RaftDriver::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void RaftDriver::Post(Input input) {
  bool wake = false;
  bool refused = false;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      refused = true;
    } else {
      mailbox_.push_back(std::move(input));
      // A busy driver takes the whole mailbox at its next turn: waking it would only cost a futex
      // call per request.
      wake = driver_waiting_;
    }
  }
  if (wake) wake_.notify_one();
  if (refused) AnswerWhileStopped(input);
}

void RaftDriver::AnswerWhileStopped(Input& input) {
  // Too late: answer requests at once rather than never (outside mu_: an answer finishes an RPC).
  if (auto* request = std::get_if<PeerRequest>(&input)) {
    request->reply(std::nullopt);
  } else if (auto* set = std::get_if<SetRequest>(&input)) {
    set->done(ClientResult::ShuttingDown());
  } else if (auto* get = std::get_if<GetRequest>(&input)) {
    get->done(ClientResult::ShuttingDown());
  } else if (auto* status = std::get_if<StatusRequest>(&input)) {
    status->done(ShutdownStatus());
  }
}

NodeStatus RaftDriver::ShutdownStatus() const {
  return NodeStatus{config_.raft.id, raft::Role::kFollower, 0, kNoNode, 0, 0, 0, Duration(0)};
}

void RaftDriver::Deliver(raft::Message message) { Post(std::move(message)); }
void RaftDriver::HandlePeerRequest(raft::Message request, ReplyFn reply) {
  Post(PeerRequest{std::move(request), std::move(reply)});
}
void RaftDriver::ReportPeerError(NodeId peer) { Post(PeerError{peer}); }
void RaftDriver::Set(kv::SetCommand command, ClientCallback done, AnswerBy answer_by) {
  Post(SetRequest{std::move(command), std::move(done), answer_by});
}
void RaftDriver::Get(std::string key, ClientCallback done, AnswerBy answer_by) {
  if (TryLeaseRead(key, done)) return;
  Post(GetRequest{std::move(key), std::move(done), answer_by});
}

bool RaftDriver::TryLeaseRead(const std::string& key, const ClientCallback& done) {
  std::optional<kv::StoredValue> value;
  {
    ReaderLock lock(&kv_mu_);
    if (!read_window_) return false;
    // Read the clock under the lock: the window was published at a driver time no later than
    // this reading, so `from` never refuses a read for a clock taken before the publication.
    const TimePoint now = Now();
    if (now < read_window_->from || now >= read_window_->until) return false;
    // Linearizable: every SET acknowledged before this GET arrived is in kv_ (this leader applies
    // before it answers; earlier leaders' entries precede our applied NO-OP), and while the lease
    // holds no other node can commit anything.
    value = kv_.Find(key);
  }
  done(ClientResult::Ok(std::move(value), config_.raft.id));
  return true;
}

NodeStatus RaftDriver::Status() {
  auto promise = std::make_shared<std::promise<NodeStatus>>();
  std::future<NodeStatus> future = promise->get_future();
  Status([promise](const NodeStatus& status) { promise->set_value(status); });
  if (future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    return ShutdownStatus();
  }
  return future.get();
}

void RaftDriver::Status(std::function<void(const NodeStatus&)> done) {
  Post(StatusRequest{std::move(done)});
}

void RaftDriver::Loop() {
  for (;;) {
    std::deque<Input> batch;
    {
      MutexLock lock(&mu_);
      // Sleep until there is work or the core's next timer is due (capped, to stay responsive).
      const Duration until_deadline = node_->NextDeadline() - Now();
      const auto timeout =
          std::clamp(until_deadline, Duration(0), Duration(std::chrono::milliseconds(100)));
      if (mailbox_.empty() && !stopping_ && timeout.count() > 0) {
        // Requests waiting for an answer also need the overdue sweep.
        const bool clients_waiting = !pending_.empty() || !waiting_reads_.empty();
        driver_waiting_ = true;
        wake_.wait_for(mu_, clients_waiting ? std::min<Duration>(timeout, kOverdueSweep) : timeout);
        driver_waiting_ = false;
      }
      batch.swap(mailbox_);
      if (stopping_ && batch.empty()) break;
    }
    const TimePoint now = Now();
    for (Input& input : batch) Handle(input, now);
    node_->Tick(Now());
    ProcessReady();
    PublishReadWindow();
    AnswerOverdue();
    if (absl::Status status = events_->Flush(); !status.ok()) {
      std::fprintf(stderr, "raftkv-node %d: %s\n", config_.raft.id,
                   std::string(status.message()).c_str());
    }
  }
  {
    WriterLock lock(&kv_mu_);
    read_window_.reset();
  }
  FailPending("node shutting down");
  AnswerDue(waiting_reads_, AnswerBy::max(), ClientResult::ShuttingDown());
  MaybeSaveCommitIndex(/*force=*/true);
  for (auto& [peer, slots] : reply_slots_) {
    for (ReplyFn& reply : slots) reply(std::nullopt);
  }
  reply_slots_.clear();
  (void)events_->Flush();
}

void RaftDriver::Handle(Input& input, TimePoint now) {
  if (auto* message = std::get_if<raft::Message>(&input)) {
    node_->Step(*message, now);
  } else if (auto* request = std::get_if<PeerRequest>(&input)) {
    reply_slots_[request->message.from].push_back(std::move(request->reply));
    node_->Step(request->message, now);
  } else if (auto* error = std::get_if<PeerError>(&input)) {
    TimePoint& last = last_peer_error_logged_[error->peer];
    if (last == TimePoint() || now - last >= std::chrono::seconds(1)) {
      last = now;
      events_->Record(RpcErrorLine(error->peer));
    }
  } else if (auto* set = std::get_if<SetRequest>(&input)) {
    const kv::SetCommand& command = set->command;
    std::string invalid;
    if (command.key.empty()) {
      invalid = "invalid argument: the key is empty";
    } else if (static_cast<int64_t>(command.key.size()) > config_.max_key_bytes) {
      invalid = "invalid argument: the key is longer than MAX_KEY_BYTES (" +
                std::to_string(config_.max_key_bytes) + ")";
    } else if (command.client_id != 0 && command.sequence == 0) {
      invalid = "invalid argument: a session's sequence numbers start at 1";
    } else if (static_cast<int64_t>(command.value.size()) > config_.max_value_bytes) {
      invalid = "invalid argument: the value is longer than MAX_VALUE_BYTES (" +
                std::to_string(config_.max_value_bytes) + ")";
    }
    if (!invalid.empty()) {
      set->done(ClientResult::Rejected(ClientResult::Reason::kInvalidArgument, invalid,
                                       node_->leader_id()));
      return;
    }
    raft::ProposeResult proposal = node_->Propose(kv::EncodeSet(command), now);
    if (!proposal.accepted) {
      set->done(ClientResult::Rejected(ClientResult::Reason::kNotLeader, "not leader",
                                       proposal.leader_hint));
      return;
    }
    if (events_->RecordsRequests())
      events_->Record(ReceivedLine(config_.raft.id, SetText(command)));
    pending_[proposal.index] = Pending{proposal.term, std::move(set->done), set->answer_by};
  } else if (auto* get = std::get_if<GetRequest>(&input)) {
    const raft::LeaseReadResult read = node_->LeaseRead(now);
    if (read.ok() && node_->applied_index() >= read.read_index) {
      ServeRead(get->key, get->done);
    } else if (read.ok()) {
      // Confirmed leader, but entries up to read_index are still being applied: answer once they
      // are. The state then served may include later entries too; those were committed after
      // this read arrived (no one else could commit while our lease held), so it stays
      // linearizable.
      waiting_reads_.emplace(read.read_index, std::move(*get));
    } else {
      const bool not_leader = read.refusal == raft::ReadRefusal::kNotLeader;
      get->done(ClientResult::Rejected(
          not_leader ? ClientResult::Reason::kNotLeader : ClientResult::Reason::kRetryLater,
          read.ok() ? "leader still applying; retry shortly" : RefusalText(read.refusal),
          read.leader_hint));
    }
  } else if (auto* status = std::get_if<StatusRequest>(&input)) {
    status->done(NodeStatus{config_.raft.id, node_->role(), node_->term(), node_->leader_id(),
                            node_->commit_index(), node_->applied_index(), node_->log().LastIndex(),
                            node_->LeaseRemaining(now)});
  }
}

void RaftDriver::ProcessReady() {
  while (node_->HasReady()) {
    raft::Ready ready = node_->TakeReady();
    for (const raft::Event& event : ready.events) events_->RecordEvent(event);
    for (const raft::Message& message : ready.messages) transport_->Send(message);
    // Persist: vote and term first (§5.2), then the log; one fsync covers the whole batch.
    if (ready.hard_state) {
      raft::HardState state = *ready.hard_state;
      state.commit_index = ready.commit_index;
      MaybeSlowDown();
      if (absl::Status s = storage::SaveMetadata(dir_, state); !s.ok()) return Fatal(s);
      saved_hard_state_ = state;
      commit_saved_at_ = Now();
    }
    if (ready.truncate_from) {
      if (absl::Status s = log_->TruncateFrom(*ready.truncate_from); !s.ok()) return Fatal(s);
    }
    if (!ready.entries.empty()) {
      if (absl::Status s = log_->Append(ready.entries); !s.ok()) return Fatal(s);
    }
    if (ready.truncate_from || !ready.entries.empty()) {
      MaybeSlowDown();
      if (absl::Status s = log_->Sync(); !s.ok()) return Fatal(s);
    }
    for (raft::Message& message : ready.messages_after_persist) {
      // A reply to a request that came as an RPC goes back as that RPC's response.
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
    ApplyCommitted(ready.committed_entries);
    node_->Advance(ready);
    while (!waiting_reads_.empty() && waiting_reads_.begin()->first <= node_->applied_index()) {
      GetRequest& get = waiting_reads_.begin()->second;
      ServeRead(get.key, get.done);
      waiting_reads_.erase(waiting_reads_.begin());
    }
  }
  if (node_->role() != raft::Role::kLeader && !pending_.empty()) {
    FailPending("leadership lost before the outcome was known");
  }
  MaybeSaveCommitIndex(/*force=*/false);
}

void RaftDriver::MaybeSaveCommitIndex(bool force) {
  // Only what this node holds durably may be recorded as committed.
  const LogIndex commit = std::min(node_->commit_index(), log_->LastIndex());
  if (commit <= saved_hard_state_.commit_index) return;
  if (!force && Now() - commit_saved_at_ < std::chrono::seconds(1)) return;
  raft::HardState state = saved_hard_state_;
  state.commit_index = commit;
  if (absl::Status s = storage::SaveMetadata(dir_, state); !s.ok()) return Fatal(s);
  saved_hard_state_ = state;
  commit_saved_at_ = Now();
}

void RaftDriver::ApplyCommitted(const std::vector<raft::Entry>& entries) {
  if (entries.empty()) return;
  // Decode outside the writer lock, so that fast-path readers wait only for the applying.
  std::vector<std::optional<kv::SetCommand>> commands(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].type != raft::EntryType::kCommand) continue;
    absl::StatusOr<kv::SetCommand> command = kv::DecodeSet(entries[i].data);
    if (!command.ok()) return Fatal(command.status());
    commands[i] = std::move(*command);
  }
  std::vector<kv::ApplyOutcome> outcomes(entries.size(), kv::ApplyOutcome::kApplied);
  {
    // One writer lock for the batch: readers on the fast path wait at most one batch.
    WriterLock lock(&kv_mu_);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (commands[i]) outcomes[i] = kv_.ApplySet(*commands[i], entries[i].index);
    }
  }
  const bool leader = node_->role() == raft::Role::kLeader;
  const bool record = events_->RecordsRequests();
  for (size_t i = 0; i < entries.size(); ++i) {
    if (record) {
      events_->Record(
          CommittedLine(config_.raft.id, leader, commands[i] ? SetText(*commands[i]) : "NO-OP"));
    }
    AnswerApplied(entries[i], outcomes[i]);
  }
}

void RaftDriver::AnswerApplied(const raft::Entry& entry, kv::ApplyOutcome outcome) {
  auto it = pending_.find(entry.index);
  if (it == pending_.end()) return;
  Pending pending = std::move(it->second);
  pending_.erase(it);
  if (entry.term != pending.term) {
    pending.done(ClientResult::Unknown(
        "another leader's entry took this log position; outcome unknown, retry",
        node_->leader_id()));
  } else if (outcome == kv::ApplyOutcome::kSessionExpired) {
    pending.done(ClientResult::Rejected(ClientResult::Reason::kSessionExpired,
                                        "client session expired; start a new session",
                                        config_.raft.id));
  } else {
    pending.done(ClientResult::Ok(std::nullopt, config_.raft.id));
  }
}

void RaftDriver::MaybeSlowDown() const {
  if (config_.testing.fsync_delay.count() > 0 && slow_disk_.load()) {
    std::this_thread::sleep_for(config_.testing.fsync_delay);
  }
}

void RaftDriver::ServeRead(const std::string& key, const ClientCallback& done) {
  std::optional<kv::StoredValue> value;
  {
    ReaderLock lock(&kv_mu_);
    value = kv_.Find(key);
  }
  done(ClientResult::Ok(std::move(value), config_.raft.id));
}

void RaftDriver::PublishReadWindow() {
  std::optional<raft::LeaseWindow> window = node_->CurrentLeaseWindow();
  // Within one term a window only moves its end (`from` only tracks the driver's clock once the
  // old leases are out and the NO-OP applied), so the first `from` published stays right.
  const bool same = window.has_value() == published_window_.has_value() &&
                    published_term_ == node_->term() &&
                    (!window || window->until == published_window_->until);
  if (same) return;
  published_window_ = window;
  published_term_ = node_->term();
  WriterLock lock(&kv_mu_);
  read_window_ = window;
}

void RaftDriver::AnswerOverdue() {
  const AnswerBy now = std::chrono::steady_clock::now();
  if (now < next_overdue_sweep_) return;
  next_overdue_sweep_ = now + kOverdueSweep;
  if (pending_.empty() && waiting_reads_.empty()) return;
  // A SET may still commit (and is then applied once): never claim it failed.
  AnswerDue(pending_, now,
            ClientResult::Unknown(
                "not committed before the client's deadline; retry with the same sequence",
                node_->leader_id()));
  AnswerDue(waiting_reads_, now,
            ClientResult::Rejected(ClientResult::Reason::kRetryLater,
                                   "state machine not caught up before the client's deadline; "
                                   "retry",
                                   node_->leader_id()));
}

void RaftDriver::FailPending(const std::string& why) {
  AnswerDue(pending_, AnswerBy::max(),
            ClientResult::Unknown(why + "; outcome unknown, retry", node_->leader_id()));
}

void RaftDriver::Fatal(const absl::Status& status) {
  // A node that cannot make its state durable must not go on acknowledging anything.
  events_->Record("FATAL " + std::string(status.message()));
  (void)events_->Flush();
  std::fprintf(stderr, "raftkv-node %d: fatal: %s\n", config_.raft.id,
               std::string(status.message()).c_str());
  std::abort();
}

}  // namespace raftkv::server

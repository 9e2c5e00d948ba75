// Replica: one raftkv node without threads, sockets or a clock of its own — the consensus core,
// its durable files, the key-value state machine, the client requests waiting on them and the
// lease-read fast path. It is written once and run by everyone: the server's driver thread
// (node/raft_driver.h) wraps it in a mailbox and locks, the simulator (sim/) runs thousands of
// seeded clusters of it on a disk that loses power. (TigerBeetle's replica, generic over its
// storage and message bus, is the model.)
//
// It talks to the world only through small interfaces: storage::Env (its files), PeerTransport
// (messages to peers), EventSink (what operators read in dump.txt), ReplicaObserver (the
// simulator's checkers) and a clock function read by the fast path alone; every other call is
// given its `now`.
//
// Work happens in turns: the owner feeds any number of inputs (Step, StepRequest, Set, Get, …),
// then calls Process(now), which ticks the core and carries out each Ready in the order ready.h
// prescribes — send, persist + fsync, send what depended on it, apply, advance — so one fsync
// covers everything that accumulated in the turn (group commit).
//
// Thread-safety: one owner thread makes every call, except TryLeaseRead, which any thread may
// call at any time (it takes kv_mu_ as a reader; the owner takes it as a writer only to apply
// entries and to publish the lease window).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "kv/command_text.h"
#include "kv/kv_state_machine.h"
#include "node/snapshot_worker.h"
#include "obs/histogram.h"
#include "raft/raft_node.h"
#include "storage/env.h"
#include "storage/log_file.h"
#include "storage/snapshot_file.h"

namespace raftkv::node {

// logs.txt writes commands as kv spells them (kv/command_text.h).
inline constexpr storage::EntryCodec kCommandCodec{&kv::FormatCommandText, &kv::ParseCommandText};

// A snapshot file read and checked whole, and the state it holds (shared with nothing yet).
struct LoadedSnapshot {
  raft::SnapshotMeta meta;
  std::unique_ptr<kv::KvStateMachine> kv;
};
// Writes `kv` to `path` as snapshot `meta` (storage/snapshot_file.h), synced; returns its size.
// `sessions` false leaves the session table out (only the deliberate bug snapshot-without-sessions
// asks for that).
absl::StatusOr<uint64_t> WriteSnapshot(storage::Env* env, const std::string& path,
                                       const raft::SnapshotMeta& meta, const kv::KvStateMachine& kv,
                                       bool sessions = true);
// Reads `path` (storage/snapshot_file.h) into a fresh state machine: DataLoss naming the file and
// line when it is damaged, NotFound when absent, another error when it cannot be read. `on_line`,
// if given, sees every line of state (raftkv-inspect --all prints them).
absl::StatusOr<LoadedSnapshot> LoadSnapshot(
    storage::Env* env, const std::string& path,
    const std::function<void(std::string_view line)>& on_line = nullptr);

// The answer to a client request.
struct ClientResult {
  enum class Kind {
    kOk,        // applied (SET) or read (GET)
    kRejected,  // certainly not applied: `reason` and `error` say why, `leader_hint` may help
    kUnknown,   // proposed, fate unknown (leadership lost or shutting down): retry same seq
  };
  enum class Reason {
    kNone,
    kNotLeader,
    kRetryLater,
    kInvalidArgument,
    kSessionExpired,
    kTooManySessions,
    kShuttingDown
  };
  static ClientResult Ok(std::optional<kv::StoredValue> value, NodeId self) {
    return {Kind::kOk, Reason::kNone, std::move(value), "", self};
  }
  static ClientResult Opened(uint64_t client_id, NodeId self) {
    ClientResult result = Ok(std::nullopt, self);
    result.client_id = client_id;
    return result;
  }
  static ClientResult Rejected(Reason reason, std::string error, NodeId leader_hint) {
    return {Kind::kRejected, reason, std::nullopt, std::move(error), leader_hint};
  }
  static ClientResult Unknown(std::string error, NodeId leader_hint) {
    return {Kind::kUnknown, Reason::kNone, std::nullopt, std::move(error), leader_hint};
  }
  static ClientResult ShuttingDown() {
    return Rejected(Reason::kShuttingDown, "node shutting down", kNoNode);
  }

  Kind kind = Kind::kRejected;
  Reason reason = Reason::kNone;
  std::optional<kv::StoredValue> value;  // GET of a present key
  std::string error;
  NodeId leader_hint = kNoNode;
  uint64_t client_id = 0;  // OpenSession: the new session's id
  // SaveSnapshot: the snapshot now in snapshot.txt (or a newer one), which holds every write
  // acknowledged before the request.
  std::optional<raft::SnapshotMeta> snapshot = std::nullopt;
};
using ClientCallback = std::function<void(const ClientResult&)>;
// The answer to a peer's request (RequestVote, AppendEntries) that came as an RPC: the core's
// reply once it may leave (after the fsync it depends on), or nullopt if the node stops first.
using ReplyFn = std::function<void(std::optional<raft::Message>)>;

// Counts of what the core reported since this replica started (for /metrics).
struct EventCounts {
  uint64_t elections_started = 0;      // election timeouts that started a candidacy
  uint64_t terms_led = 0;              // times this node became leader
  uint64_t step_downs = 0;             // a leader or candidate became follower
  uint64_t lease_renewals_failed = 0;  // a leader could not renew its lease (and stepped down)
  uint64_t leader_changes = 0;         // the leader this node knows of became another node
};

// What a leader knows of one follower's log (raft/progress.h).
struct PeerStatus {
  NodeId id;
  LogIndex match_index;  // the follower's log matches the leader's up to here
  LogIndex lag;          // entries of the leader's log it is not known to hold
  std::string mode;      // "probe", "replicate" or "snapshot"
};

// What the replica's files and snapshots did since it started (for /metrics). Durations come from
// ReplicaOptions::clock (the simulator's is virtual).
struct StorageCounts {
  uint64_t entries_appended = 0;    // entries written to logs.txt
  uint64_t bytes_appended = 0;      // their bytes in logs.txt (lines with newlines)
  obs::HistogramSnapshot log_sync;  // each fsync of logs.txt (one per batch of a Ready)
  uint64_t snapshots_taken = 0;
  uint64_t snapshot_failures = 0;           // snapshots that could not be written
  obs::HistogramSnapshot snapshot_write;    // from start to snapshot.txt durable
  uint64_t snapshots_installed = 0;         // received from a leader, checked and installed
  uint64_t snapshots_rejected = 0;          // received from a leader and failed their check
  obs::HistogramSnapshot snapshot_receive;  // first chunk received to installed
  uint64_t snapshot_sends_started = 0;  // InstallSnapshot transfers to followers begun (offset 0)
  uint64_t snapshot_bytes_sent = 0;     // chunk bytes sent to followers
};

// A notable event of the recent past, for the dashboard: elections, leadership, step-downs.
struct RecentEvent {
  Duration age;      // how long ago, by the node's clock
  std::string text;  // "became leader for term 3"
};

struct NodeStatus {
  NodeId id;
  raft::Role role;
  Term term;
  NodeId leader;
  LogIndex commit_index, last_applied, last_log_index;
  Duration lease_remaining;
  EventCounts counts;
  uint64_t sessions = 0;          // client sessions in the state machine
  std::vector<PeerStatus> peers;  // a leader's followers, by id; empty on other roles
  StorageCounts storage;
  std::vector<RecentEvent> recent_events;  // oldest first, at most Replica::kRecentEvents
};

// Delivers the core's messages to peers. Called on the owner thread; must not block on the
// network (queue and return).
class PeerTransport {
 public:
  virtual ~PeerTransport() = default;
  virtual void Send(const raft::Message& message) = 0;
};

// What operators read about the node (dump.txt in the server, the trace in the simulator).
// The wording is the sink's; `operation` is an entry as in logs.txt without its term ("SET k v",
// "NO-OP").
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void RecordEvent(const raft::Event& event) = 0;
  virtual void RecordReceived(const std::string& operation) = 0;
  virtual void RecordCommitted(bool leader, const std::string& operation) = 0;
  virtual void RecordPeerError(NodeId peer) = 0;
  virtual void Record(const std::string& statement) = 0;  // WARNING and FATAL lines
  // Whether the per-request lines (received, committed) are kept: the replica skips building them
  // otherwise.
  virtual bool RecordsRequests() const = 0;
};

// Hooks for the simulator's cross-node checkers; the server passes none.
class ReplicaObserver {
 public:
  virtual ~ReplicaObserver() = default;
  // A Ready taken from the core, before any of it is carried out.
  virtual void OnReady(const raft::Ready& ready) = 0;
  // The Ready's state is durable; its replies have not left and nothing has been applied.
  virtual void OnPersisted(const raft::RaftNode& core) = 0;
  virtual void OnApplied(const raft::Entry& entry) = 0;
  // The state machine was replaced by `installed`, a snapshot a leader sent.
  virtual void OnSnapshotInstalled(const raft::RaftNode& core,
                                   const raft::SnapshotMeta& installed) = 0;
};

struct ReplicaOptions {
  raft::RaftConfig raft;
  std::string dir;  // logs.txt and metadata.txt live here
  // The owner already holds `dir`'s lock (Env::LockDir): the server's driver takes it before it
  // opens dump.txt there. Otherwise the replica takes it itself.
  bool dir_locked_by_owner = false;
  int64_t max_key_bytes = 1024;
  int64_t max_value_bytes = 1 << 20;
  // What this node writes into the OPEN-SESSION entries it proposes as leader. Whatever they say
  // on other nodes, every replica applies each entry by the values in it (kv/command.h).
  int64_t max_sessions = 100'000;
  Duration session_idle_timeout = std::chrono::minutes(10);
  // Snapshots (config.ini [snapshot]): one is taken once this many entries were applied since the
  // last (0: never), and the log keeps this many entries before it for followers that lag a
  // little (they then catch up by entries, not by a whole snapshot).
  int64_t snapshot_entries = 0;
  int64_t snapshot_keep_entries = 5000;
  // Writes snapshot files outside the turn (node/snapshot_worker.h). Null: written within the
  // turn that starts it (InlineSnapshotWorker).
  std::shared_ptr<SnapshotWorker> snapshot_worker;
  // The node's monotonic clock, read by TryLeaseRead (from any thread).
  std::function<TimePoint()> clock;
  // Called when this node can no longer keep its own promises (a file it cannot write, a
  // committed entry it cannot decode). The server aborts the process; a replica whose handler
  // returns ignores every later input.
  std::function<void(const absl::Status&)> on_fatal;
};

class Replica {
 public:
  // Recovers the node from `options.dir` through `env`. `events` and `observer` may be null.
  static absl::StatusOr<std::unique_ptr<Replica>> Open(ReplicaOptions options, storage::Env* env,
                                                       PeerTransport* transport, EventSink* events,
                                                       ReplicaObserver* observer, TimePoint now,
                                                       uint64_t rng_seed);
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // ---- Inputs (owner thread). Each is followed, sooner or later, by Process(now). ----
  void Step(const raft::Message& message, TimePoint now);
  // A peer's request that came as an RPC: `reply` gets the core's answer (or nullopt).
  void StepRequest(const raft::Message& request, ReplyFn reply, TimePoint now);
  // The transport could not reach `peer`; recorded at most once a second per peer.
  void ReportPeerError(NodeId peer, TimePoint now);
  // `done` is called exactly once: at once when refused, else when the outcome is known, at
  // `answer_by` at the latest (then "outcome unknown" for a SET, "retry" for a GET), or at
  // Shutdown.
  void Set(kv::SetCommand command, ClientCallback done, TimePoint answer_by, TimePoint now);
  // Proposes an OPEN-SESSION entry; `done` gets the new session's id (ClientResult::client_id),
  // or kTooManySessions when the table is full of sessions in use. Answered like Set.
  void OpenSession(ClientCallback done, TimePoint answer_by, TimePoint now);
  // The slow path of a GET (after TryLeaseRead declined): refuses, redirects, serves, or waits for
  // the state machine to reach the read index.
  void Get(std::string key, ClientCallback done, TimePoint answer_by, TimePoint now);
  // Backup: answers `done` with a snapshot in snapshot.txt that holds every write acknowledged
  // before this call — the current one if it does, else one taken for it once the state machine
  // has applied the lease read index. Leader only (a follower may lag), like a GET; refused with
  // kRetryLater when kMaxSnapshotWaiters are already waiting.
  void SaveSnapshot(ClientCallback done, TimePoint answer_by, TimePoint now);
  static constexpr size_t kMaxSnapshotWaiters = 16;
  NodeStatus Status(TimePoint now) const ABSL_LOCKS_EXCLUDED(kv_mu_);
  static constexpr size_t kRecentEvents = 32;
  // Starts an election now (RaftNode::Campaign).
  void Campaign(TimePoint now) {
    if (!failed_) core_->Campaign(now);
  }

  // Ends a turn: ticks the core, carries out its Readies, publishes the lease window for the fast
  // path and answers requests past their answer_by.
  void Process(TimePoint now);
  // When Process must run next at the latest, if no input comes.
  TimePoint NextWake() const;
  // Answers everything still waiting (SETs "outcome unknown", GETs and peer requests "shutting
  // down"), stops serving the fast path and records the commit index. No input may follow.
  void Shutdown();

  // ---- The read fast path (any thread) ----
  // Answers `done` from the state machine and returns true if the published lease window covers
  // the clock's now; returns false (without calling `done`) otherwise.
  bool TryLeaseRead(const std::string& key, const ClientCallback& done) ABSL_LOCKS_EXCLUDED(kv_mu_);

  // ---- Observers (owner thread) ----
  const raft::RaftNode& core() const { return *core_; }
  // The window the fast path serves on, as published at the end of the last turn.
  std::optional<raft::LeaseWindow> published_window() const { return published_window_; }
  bool failed() const { return failed_; }
  // Test-only: the stored value of `key` (under the reader lock).
  std::optional<kv::StoredValue> Find(const std::string& key) const ABSL_LOCKS_EXCLUDED(kv_mu_);
  // The number of client sessions in the state machine (under the reader lock).
  size_t SessionCount() const ABSL_LOCKS_EXCLUDED(kv_mu_);

 private:
  struct PendingSet {
    Term term;
    ClientCallback done;
    TimePoint answer_by;
  };
  struct WaitingRead {
    std::string key;
    ClientCallback done;
    TimePoint answer_by;
  };

  Replica(ReplicaOptions options, storage::Env* env, PeerTransport* transport, EventSink* events,
          ReplicaObserver* observer, std::unique_ptr<storage::LogFile> log,
          std::unique_ptr<raft::RaftNode> core, raft::HardState saved);

  // Returns an error message when `command` must be refused before it reaches the log.
  std::optional<std::string> Invalid(const kv::SetCommand& command) const;
  void ProcessReadies(TimePoint now);
  // Adds a Ready's events, and a change of the known leader, to counts_ and recent_events_.
  void CountEvents(const raft::Ready& ready, TimePoint now);
  void RememberEvent(TimePoint now, std::string text);
  // Applies committed entries to kv_ under the writer lock, then answers their clients.
  void ApplyCommitted(const std::vector<raft::Entry>& entries, TimePoint now);
  // The log time (kv/kv_state_machine.h) an OPEN-SESSION proposed now carries.
  uint64_t LogTimeForProposal(TimePoint now) const ABSL_LOCKS_EXCLUDED(kv_mu_);
  // What applying an entry did, for the client waiting on it.
  struct Applied {
    std::optional<kv::ApplyOutcome> set;  // a SET
    std::optional<kv::OpenOutcome> open;  // an OPEN-SESSION
  };
  void AnswerApplied(const raft::Entry& entry, const Applied& applied);
  // Proposes `payload` for a client waiting on `done`; `operation` is for dump.txt.
  void Propose(std::string payload, const std::string& operation, ClientCallback done,
               TimePoint answer_by, TimePoint now);
  void ServeRead(const std::string& key, const ClientCallback& done) ABSL_LOCKS_EXCLUDED(kv_mu_);
  // Publishes core_->CurrentLeaseWindow() for the fast path when it changed.
  void PublishReadWindow() ABSL_LOCKS_EXCLUDED(kv_mu_);
  // Answers the client requests whose answer_by has passed (checked every kOverdueSweep).
  void AnswerOverdue(TimePoint now);
  void FailPending(const std::string& why);
  // The commit index rides along whenever term or vote are saved; between those, it is saved at
  // most once a second (and at shutdown): it is only a hint, so it is not worth an fsync per batch.
  void MaybeSaveCommitIndex(TimePoint now, bool force);
  void Fatal(const absl::Status& status);
  void Record(const std::string& statement);
  // The node's clock now, for measuring how long a step took; `fallback` without one.
  TimePoint Clock(TimePoint fallback) const { return options_.clock ? options_.clock() : fallback; }
  // Snapshots (node/replica_snapshot.cc).
  std::string SnapshotPath() const { return options_.dir + "/" + storage::kSnapshotFile; }
  // Finishes the snapshot being written once its worker is done; starts one once
  // snapshot_entries were applied since the last, or a SaveSnapshot waits for one.
  void MaybeTakeSnapshot(TimePoint now);
  void StartSnapshot(TimePoint now);
  // While a snapshot is written: stops the writer, as failed, once it seems stuck.
  void WatchSnapshotProgress(TimePoint now);
  void FinishSnapshot(absl::StatusOr<uint64_t> written, TimePoint now);
  // The worker's job: writes the state machine, as it is when the job starts, to
  // `snapshot.txt.tmp` and returns its size. Reads kv_ without the lock: the job runs either on
  // the owner (the only writer) or in a forked child (one thread).
  absl::StatusOr<uint64_t> WriteSnapshotFile(const raft::SnapshotMeta& meta,
                                             bool sessions) const ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // Answers the SaveSnapshot waiters that `taken` satisfies.
  void AnswerSnapshotWaiters(const raft::SnapshotMeta& taken);
  void FailSnapshotWaiters(const std::string& why);
  // Makes the written snapshot snapshot.txt and lets the log go up to it (minus the tail).
  void CompleteSnapshot(const raft::SnapshotMeta& meta);
  // Follower: writes received chunks; after Advance, checks and installs the snapshot.
  void WriteSnapshotChunks(const std::vector<raft::InstallSnapshot>& chunks, TimePoint now);
  void InstallReceivedSnapshot(const raft::SnapshotMeta& meta, TimePoint now);
  // Leader: fills the chunks of outgoing InstallSnapshot messages from snapshot.txt.
  void FillSnapshotChunks(std::vector<raft::Message>& messages);

  const ReplicaOptions options_;
  storage::Env* const env_;
  PeerTransport* const transport_;
  EventSink* const events_;          // may be null
  ReplicaObserver* const observer_;  // may be null

  std::unique_ptr<storage::DirLock> lock_;  // options_.dir is ours while this lives
  std::unique_ptr<storage::LogFile> log_;
  std::unique_ptr<raft::RaftNode> core_;
  std::map<LogIndex, PendingSet> pending_sets_;  // by log index; each of term pending.term
  // Lease reads waiting for the state machine to reach their read index.
  std::multimap<LogIndex, WaitingRead> waiting_reads_;
  std::map<NodeId, std::deque<ReplyFn>> reply_slots_;  // per peer, in the order stepped
  std::map<NodeId, TimePoint> last_peer_error_logged_;
  // What metadata.txt holds. Invariant: saved_.commit_index <= the durable log's last index.
  raft::HardState saved_;
  TimePoint commit_saved_at_{};
  TimePoint last_turn_{};  // the `now` of the last Process
  TimePoint next_overdue_sweep_{};
  // Log time advances, between the OPEN-SESSION entries that carry it, at the rate of the clock
  // of whoever proposes the next one: a leader stamps the log time it last applied plus the time
  // its own clock says has passed since. No wall clock is read, so clocks that disagree across
  // machines cannot make it jump; a restart or a lagging apply only makes it slower (sessions
  // then live longer, never shorter, than the idle timeout). This is when this node last applied
  // an OPEN-SESSION (the log time it brought is kv_.log_time_ms()), or started.
  TimePoint applied_log_time_at_{};
  EventCounts counts_;            // what Status reports (for /metrics)
  StorageCounts storage_counts_;  // its histograms are filled from the three below
  obs::Histogram log_sync_seconds_, snapshot_write_seconds_, snapshot_receive_seconds_;
  TimePoint receive_started_at_{};      // the first chunk of the snapshot in incoming_ arrived
  NodeId last_known_leader_ = kNoNode;  // the leader counts_.leader_changes last saw
  // Elections, leadership changes and step-downs, newest last; at most kRecentEvents.
  std::deque<std::pair<TimePoint, std::string>> recent_events_;
  bool failed_ = false;
  // The snapshot being received from a leader (snapshot.txt.incoming), open while chunks come.
  std::unique_ptr<storage::WritableFile> incoming_;
  std::shared_ptr<SnapshotWorker> snapshot_worker_;
  // The snapshot the worker is writing to snapshot.txt.tmp (its bytes are not known yet).
  // Invariant: nothing but the worker touches snapshot.txt.tmp while this is set.
  std::optional<raft::SnapshotMeta> snapshot_writing_;
  TimePoint snapshot_started_at_{};
  // The size of snapshot.txt.tmp at the last poll, and when it last changed.
  uint64_t snapshot_progress_bytes_ = 0;
  TimePoint snapshot_progress_at_{};
  Duration snapshot_start_pause_{};  // how long StartSnapshot held the turn
  // After a snapshot could not be written, the next try waits until then; why it failed.
  TimePoint snapshot_retry_at_{};
  std::string snapshot_error_;
  struct SnapshotWaiter {
    ClientCallback done;
    TimePoint answer_by;
  };
  // SaveSnapshot requests by the index their snapshot must reach; at most kMaxSnapshotWaiters.
  std::multimap<LogIndex, SnapshotWaiter> snapshot_waiters_;

  // Written by the owner only, read by it and by the fast path's callers.
  mutable SharedMutex kv_mu_;
  kv::KvStateMachine kv_ ABSL_GUARDED_BY(kv_mu_);
  // The interval of this node's clock in which the fast path may serve reads: the core's
  // CurrentLeaseWindow() as of the end of the last turn. Serving on it after the core has moved on
  // is still safe: a lease is a promise of a majority that no other leader commits before its
  // end, whatever this node's role by then (docs/design.md §4).
  std::optional<raft::LeaseWindow> read_window_ ABSL_GUARDED_BY(kv_mu_);
  // The owner's copy of what it published, to publish only on change.
  std::optional<raft::LeaseWindow> published_window_;
  Term published_term_ = 0;
};

}  // namespace raftkv::node

// RaftDriver: runs one node — the consensus core, its files, its state machine and its event
// log — on one thread, the only thread that touches any of them.
//
// Threading model: every other thread (gRPC handlers, the transport's callbacks) talks to the
// driver by posting to its mailbox (Deliver, Set, Get) and, for client requests, getting a
// callback when the answer is known. One exception, the read fast path: while this node holds a
// lease, Get() answers on the calling thread from the state machine, under a reader lock that the
// driver takes as a writer only to apply entries and to publish its lease window. The driver thread
// waits on the mailbox until the core's next deadline, processes everything posted, ticks the core,
// then carries out each Ready in the order ready.h prescribes: send, persist + fsync, send what
// depended on it, apply, advance. One fsync thus covers every entry and vote that accumulated in
// the batch (group commit).
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "kv/kv_state_machine.h"
#include "raft/raft_node.h"
#include "server/event_log.h"
#include "server/node_config.h"
#include "storage/log_file.h"

namespace raftkv::server {

// Delivers the core's messages to peers. Called on the driver thread; must not block on the
// network (queue and return).
class PeerTransport {
 public:
  virtual ~PeerTransport() = default;
  virtual void Send(const raft::Message& message) = 0;
};

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
    kShuttingDown
  };
  static ClientResult Ok(std::optional<kv::StoredValue> value, NodeId self) {
    return {Kind::kOk, Reason::kNone, std::move(value), "", self};
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
};
using ClientCallback = std::function<void(const ClientResult&)>;

// When a client request that has no outcome yet must be answered anyway ("outcome unknown" for a
// SET, "retry" for a GET), so that the client hears from a live node before its RPC deadline.
using AnswerBy = std::chrono::steady_clock::time_point;
inline constexpr AnswerBy kNoAnswerBy = AnswerBy::max();

struct NodeStatus {
  NodeId id;
  raft::Role role;
  Term term;
  NodeId leader;
  LogIndex commit_index, last_applied, last_log_index;
  Duration lease_remaining;
};

// The node's monotonic clock. Tests may make it run fast or slow (TestingOptions::clock_rate) to
// show the lease staying safe under any drift within MAX_CLOCK_DRIFT.
class NodeClock {
 public:
  explicit NodeClock(double rate = 1.0) : rate_(rate), start_(std::chrono::steady_clock::now()) {}
  TimePoint Now() const {
    const auto elapsed = std::chrono::steady_clock::now() - start_;
    const auto scaled = rate_ == 1.0 ? elapsed
                                     : std::chrono::steady_clock::duration(static_cast<int64_t>(
                                           static_cast<double>(elapsed.count()) * rate_));
    return TimePoint(std::chrono::duration_cast<Duration>(start_.time_since_epoch() + scaled));
  }

 private:
  double rate_;
  std::chrono::steady_clock::time_point start_;
};

class RaftDriver {
 public:
  // Recovers the node from `config.data_dir`/logs_node_<id>/ and starts its thread.
  static absl::StatusOr<std::unique_ptr<RaftDriver>> Start(const NodeConfig& config,
                                                           PeerTransport* transport);
  ~RaftDriver();  // stops the thread; pending client requests are answered kUnknown

  // Thread-safe entry points.
  void Deliver(raft::Message message);
  // A peer's request arriving as an RPC: `reply` gets the core's answer once it may leave (after
  // the fsync it depends on), or nullopt if the node stops first.
  using ReplyFn = std::function<void(std::optional<raft::Message>)>;
  void HandlePeerRequest(raft::Message request, ReplyFn reply);
  // The transport could not reach `peer`; logged to dump.txt at most once a second per peer.
  void ReportPeerError(NodeId peer);
  // `done` is called exactly once, on the driver thread or (Get's fast path, and requests refused
  // during shutdown) on the calling thread.
  void Set(kv::SetCommand command, ClientCallback done, AnswerBy answer_by = kNoAnswerBy);
  // Served on the calling thread when this node's published lease window covers now; otherwise
  // through the driver thread (which refuses, redirects or waits for the state machine).
  void Get(std::string key, ClientCallback done, AnswerBy answer_by = kNoAnswerBy);
  NodeStatus Status();  // blocks up to 5 s
  void Status(std::function<void(const NodeStatus&)> done);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Test-only (TestingOptions::fsync_delay): switches the slow disk on or off.
  void SetSlowDisk(bool slow) { slow_disk_.store(slow); }

 private:
  struct SetRequest {
    kv::SetCommand command;
    ClientCallback done;
    AnswerBy answer_by;
  };
  struct GetRequest {
    std::string key;
    ClientCallback done;
    AnswerBy answer_by;
  };
  struct StatusRequest {
    std::function<void(const NodeStatus&)> done;
  };
  struct PeerRequest {
    raft::Message message;
    ReplyFn reply;
  };
  struct PeerError {
    NodeId peer;
  };
  using Input =
      std::variant<raft::Message, PeerRequest, SetRequest, GetRequest, StatusRequest, PeerError>;
  struct Pending {
    Term term;
    ClientCallback done;
    AnswerBy answer_by;
  };

  RaftDriver(const NodeConfig& config, NodeClock clock, PeerTransport* transport, std::string dir,
             std::unique_ptr<storage::LogFile> log, std::unique_ptr<EventLog> events,
             std::unique_ptr<raft::RaftNode> node);
  void Post(Input input) ABSL_LOCKS_EXCLUDED(mu_);
  void AnswerWhileStopped(Input& input);
  // What Status reports when the driver is not running: a follower that knows nothing.
  NodeStatus ShutdownStatus() const;
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  void Handle(Input& input, TimePoint now);
  void ProcessReady();
  // Applies committed entries to kv_ under the writer lock, then answers their clients.
  void ApplyCommitted(const std::vector<raft::Entry>& entries);
  void AnswerApplied(const raft::Entry& entry, kv::ApplyOutcome outcome);
  // The fast path: answers from kv_ if the published lease window covers now.
  bool TryLeaseRead(const std::string& key, const ClientCallback& done) ABSL_LOCKS_EXCLUDED(kv_mu_);
  void ServeRead(const std::string& key, const ClientCallback& done) ABSL_LOCKS_EXCLUDED(kv_mu_);
  // Publishes node_->CurrentLeaseWindow() for the fast path when it changed.
  void PublishReadWindow() ABSL_LOCKS_EXCLUDED(kv_mu_);
  // Answers the client requests whose AnswerBy has passed (checked every kOverdueSweep).
  void AnswerOverdue();
  void FailPending(const std::string& why);
  // The commit index rides along whenever term or vote are saved; between those, it is saved at
  // most once a second (and at shutdown): it is only a hint, so it is not worth an fsync per batch.
  void MaybeSaveCommitIndex(bool force);
  void Fatal(const absl::Status& status);
  TimePoint Now() const { return clock_.Now(); }
  void MaybeSlowDown() const;  // the test-only slow disk

  const NodeConfig config_;
  const NodeClock clock_;
  PeerTransport* transport_;
  std::atomic<bool> slow_disk_{false};
  const std::string dir_;

  // Owned by the driver thread.
  std::unique_ptr<storage::LogFile> log_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<raft::RaftNode> node_;
  std::map<LogIndex, Pending> pending_;
  // Lease reads waiting for the state machine to reach their read index.
  std::multimap<LogIndex, GetRequest> waiting_reads_;
  std::map<NodeId, std::deque<ReplyFn>> reply_slots_;  // per peer, in the order stepped
  std::map<NodeId, TimePoint> last_peer_error_logged_;
  raft::HardState saved_hard_state_;
  TimePoint commit_saved_at_{};
  AnswerBy next_overdue_sweep_{};

  // Written by the driver thread only, read by it and by the fast path's callers.
  SharedMutex kv_mu_;
  kv::KvStateMachine kv_ ABSL_GUARDED_BY(kv_mu_);
  // The interval of this node's clock in which the fast path may serve reads: the core's
  // CurrentLeaseWindow() as of the driver's last batch. Serving on it after the core has moved on
  // is still safe: a lease is a promise of a majority that no other leader commits before its end,
  // whatever this node's role by then (docs/design.md §4).
  std::optional<raft::LeaseWindow> read_window_ ABSL_GUARDED_BY(kv_mu_);
  // The driver's copy of what it published, to publish only on change.
  std::optional<raft::LeaseWindow> published_window_;
  Term published_term_ = 0;

  Mutex mu_;
  CondVar wake_;
  std::deque<Input> mailbox_ ABSL_GUARDED_BY(mu_);
  bool driver_waiting_ ABSL_GUARDED_BY(mu_) = false;  // posters wake the driver only then
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace raftkv::server

// RaftDriver: runs one node — the consensus core, its files, its state machine and its event
// log — on one thread, the only thread that touches any of them.
//
// Threading model: every other thread (gRPC handlers, the transport's callbacks) talks to the
// driver by posting to its mailbox (Deliver, Set, Get) and, for client requests, getting a
// callback when the answer is known. The driver thread waits on the mailbox until the core's next
// deadline, processes everything posted, ticks the core, then carries out each Ready in the order
// ready.h prescribes: send, persist + fsync, send what depended on it, apply, advance. One fsync
// thus covers every entry and vote that accumulated in the batch (group commit).
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

  Kind kind = Kind::kRejected;
  Reason reason = Reason::kNone;
  std::optional<kv::StoredValue> value;  // GET of a present key
  std::string error;
  NodeId leader_hint = kNoNode;
};
using ClientCallback = std::function<void(const ClientResult&)>;

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
  void Set(kv::SetCommand command, ClientCallback done);
  void Get(std::string key, ClientCallback done);
  NodeStatus Status();
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Test-only (TestingOptions::fsync_delay): switches the slow disk on or off.
  void SetSlowDisk(bool slow) { slow_disk_.store(slow); }

 private:
  struct SetRequest {
    kv::SetCommand command;
    ClientCallback done;
  };
  struct GetRequest {
    std::string key;
    ClientCallback done;
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
  };

  RaftDriver(const NodeConfig& config, NodeClock clock, PeerTransport* transport, std::string dir,
             std::unique_ptr<storage::LogFile> log, std::unique_ptr<EventLog> events,
             std::unique_ptr<raft::RaftNode> node);
  void Post(Input input) ABSL_LOCKS_EXCLUDED(mu_);
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  void Handle(Input& input, TimePoint now);
  void ProcessReady();
  void Apply(const raft::Entry& entry);
  void ServeRead(const std::string& key, const ClientCallback& done);
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
  kv::KvStateMachine kv_;
  std::map<LogIndex, Pending> pending_;
  // Lease reads waiting for the state machine to reach their read index.
  std::multimap<LogIndex, GetRequest> waiting_reads_;
  std::map<NodeId, std::deque<ReplyFn>> reply_slots_;  // per peer, in the order stepped
  std::map<NodeId, TimePoint> last_peer_error_logged_;
  raft::HardState saved_hard_state_;
  TimePoint commit_saved_at_{};

  Mutex mu_;
  CondVar wake_;
  std::deque<Input> mailbox_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace raftkv::server

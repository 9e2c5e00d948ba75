// RaftDriver: runs one node's Replica (node/replica.h) on one thread, the only thread that touches
// it, and gives the rest of the process thread-safe entry points.
//
// Threading model: every other thread (gRPC handlers, the transport's callbacks) talks to the
// driver by posting to its mailbox (Deliver, Set, Get, …) and, for client requests, getting a
// callback when the answer is known. One exception, the read fast path: Get() first tries
// Replica::TryLeaseRead on the calling thread. The driver thread waits on the mailbox until the
// replica's next wake-up, hands it everything posted, then ends the turn with Replica::Process,
// so one fsync covers every entry and vote that accumulated in the batch (group commit).
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
#include "config/node_config.h"
#include "kv/kv_state_machine.h"
#include "node/event_log.h"
#include "node/replica.h"
#include "raft/raft_node.h"
#include "storage/env.h"

namespace raftkv::node {

using config::NodeConfig;

// When a client request that has no outcome yet must be answered anyway ("outcome unknown" for a
// SET, "retry" for a GET), so that the client hears from a live node before its RPC deadline.
using AnswerBy = std::chrono::steady_clock::time_point;
inline constexpr AnswerBy kNoAnswerBy = AnswerBy::max();

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
  void HandlePeerRequest(raft::Message request, ReplyFn reply);
  // The transport could not reach `peer`; logged to dump.txt at most once a second per peer.
  void ReportPeerError(NodeId peer);
  // `done` is called exactly once, on the driver thread or (Get's fast path, and requests refused
  // during shutdown) on the calling thread.
  void Set(kv::SetCommand command, ClientCallback done, AnswerBy answer_by = kNoAnswerBy);
  void OpenSession(ClientCallback done, AnswerBy answer_by = kNoAnswerBy);
  // Served on the calling thread when this node's published lease window covers now; otherwise
  // through the driver thread (which refuses, redirects or waits for the state machine).
  void Get(std::string key, ClientCallback done, AnswerBy answer_by = kNoAnswerBy);
  // Backup: a snapshot in snapshot_path() holding every write acknowledged before the call
  // (Replica::SaveSnapshot); `done` gets its meta in ClientResult::snapshot, or the refusal.
  void SaveSnapshot(ClientCallback done, AnswerBy answer_by = kNoAnswerBy);
  std::string snapshot_path() const;
  NodeStatus Status();  // blocks up to 5 s
  void Status(std::function<void(const NodeStatus&)> done);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Test-only (TestingOptions::fsync_delay): switches the slow disk on or off.
  void SetSlowDisk(bool slow);

 private:
  struct SetRequest {
    kv::SetCommand command;
    ClientCallback done;
    AnswerBy answer_by;
  };
  struct OpenSessionRequest {
    ClientCallback done;
    AnswerBy answer_by;
  };
  struct GetRequest {
    std::string key;
    ClientCallback done;
    AnswerBy answer_by;
  };
  struct SaveSnapshotRequest {
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
  using Input = std::variant<raft::Message, PeerRequest, SetRequest, OpenSessionRequest, GetRequest,
                             StatusRequest, PeerError, SaveSnapshotRequest>;

  class SlowDisk;
  RaftDriver(const NodeConfig& config, NodeClock clock, std::unique_ptr<EventLog> events);
  void Post(Input input) ABSL_LOCKS_EXCLUDED(mu_);
  void AnswerWhileStopped(Input& input);
  // What Status reports when the driver is not running: a follower that knows nothing.
  NodeStatus ShutdownStatus() const;
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  void Handle(Input& input, TimePoint now);
  // A client's steady-clock deadline on the node's clock (the test clock may run at another rate).
  TimePoint Local(AnswerBy answer_by) const;
  TimePoint Now() const { return clock_.Now(); }

  const NodeConfig config_;
  const NodeClock clock_;
  // The test-only slow disk in front of the real file system, when TestingOptions ask for it.
  std::unique_ptr<storage::DirLock> lock_;  // the node directory's; released after the rest
  std::unique_ptr<SlowDisk> slow_disk_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<node::Replica> replica_;  // owned by the driver thread (but TryLeaseRead)

  Mutex mu_;
  CondVar wake_;
  std::deque<Input> mailbox_ ABSL_GUARDED_BY(mu_);
  bool driver_waiting_ ABSL_GUARDED_BY(mu_) = false;  // posters wake the driver only then
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace raftkv::node

// A deterministic simulation of a raftkv cluster: N real nodes (node::Replica, the same unit the
// server runs: core, files, state machine, waiting clients, lease-read fast path) in one process,
// with simulated network, clocks and disks that lose power (sim_disk.h), concurrent clients, and
// a fault schedule — all driven by one seed, so that a seed always replays the same run. See
// sim_main.cc for the command line.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <variant>
#include <vector>

#include "check/linearizability.h"
#include "common/rng.h"
#include "node/replica.h"
#include "raft/raft_node.h"
#include "sim/checkers.h"
#include "sim/network.h"
#include "sim/sim_clock.h"
#include "sim/sim_disk.h"

namespace raftkv::sim {

inline constexpr int64_t kMs = 1'000'000;  // simulated real time is in nanoseconds

struct FaultSet {
  bool partitions = true;
  bool crashes = true;
  bool pauses = true;
  bool drift = true;
  bool loss = true;  // message loss, duplication and reordering
};

// Parses "all", "none" or a comma list of partition,crash,pause,drift,loss.
std::optional<FaultSet> ParseFaults(const std::string& text);

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 3;
  int64_t steps = 20'000;  // events in the fault phase
  int clients = 4;
  int keys = 3;
  double read_fraction = 0.5;
  FaultSet faults;
  raft::InjectedBug bug = raft::InjectedBug::kNone;
  bool trace = false;                          // print every event
  int64_t liveness_bound_ns = 30'000'000'000;  // after healing, everything completes within this
};

struct SimResult {
  bool ok = true;
  std::string violation;
  uint64_t trace_hash = 0;
  int64_t events = 0;
  int64_t sim_time_ns = 0;
  int ops_ok = 0, ops_failed = 0, ops_indeterminate = 0, reads_ok = 0;
  int leaders_elected = 0;
  // Session table activity: opens granted, opens refused (table full of sessions in use), SETs
  // refused because their session had been evicted.
  int sessions_opened = 0, sessions_refused = 0, sessions_expired = 0;
  int snapshots_installed = 0;  // by followers, from a leader's InstallSnapshot
  int rebuilds = 0;             // nodes whose disk was lost, rebuilt (--rebuild) on restart
  Term max_term = 0;
  LogIndex committed = 0;
  bool linearizability_inconclusive = false;
};

class Simulator {
 public:
  explicit Simulator(const SimOptions& options);
  SimResult Run();

 private:
  // ---- events ----
  struct ClientRequest {
    int client;
    uint64_t attempt;
    bool is_set;
    bool is_open;  // OPEN_SESSION (before a SET, when the client has no session)
    std::string key, value;
    uint64_t session, sequence;
  };
  enum class ReplyKind { kOk, kNotLeader, kUnknown, kRejected, kSessionExpired, kTooManySessions };
  struct ClientReply {
    int client;
    uint64_t attempt;
    ReplyKind kind;
    std::optional<std::string> value;
    NodeId leader_hint = kNoNode;
    uint64_t opened_session = 0;  // OPEN_SESSION answered
  };
  struct Deliver {
    raft::Message message;
  };
  struct TickNode {
    NodeId node;
    uint64_t incarnation;
  };
  struct RequestArrives {
    NodeId node;
    ClientRequest request;
  };
  struct ReplyArrives {
    ClientReply reply;
  };
  // attempt 0: start the next operation; otherwise resend that attempt (timed_out: no answer came).
  struct ClientWake {
    int client;
    uint64_t attempt;
    bool timed_out;
  };
  struct FaultStep {};
  struct Restart {
    NodeId node;
  };
  struct Resume {
    NodeId node;
  };
  using Payload = std::variant<Deliver, TickNode, RequestArrives, ReplyArrives, ClientWake,
                               FaultStep, Restart, Resume>;
  struct Event {
    int64_t time;
    uint64_t sequence;
    Payload payload;
    bool operator>(const Event& other) const {
      return time != other.time ? time > other.time : sequence > other.sequence;
    }
  };

  // ---- nodes ----
  // What a replica sees of the simulator: its network, its event log and the checkers' hooks.
  // Everything it sends after its disk lost power is dropped: the process is already dead.
  class NodeLink : public node::PeerTransport,
                   public node::EventSink,
                   public node::ReplicaObserver {
   public:
    NodeLink(Simulator* sim, NodeId id) : sim_(sim), id_(id) {}
    void Send(const raft::Message& message) override;
    void RecordEvent(const raft::Event& event) override;
    void RecordReceived(const std::string&) override {}
    void RecordCommitted(bool, const std::string&) override {}
    void RecordPeerError(NodeId) override {}
    void Record(const std::string& statement) override;
    bool RecordsRequests() const override { return false; }
    void OnReady(const raft::Ready& ready) override;
    void OnPersisted(const raft::RaftNode& core) override;
    void OnApplied(const raft::Entry& entry) override;
    void OnSnapshotInstalled(const raft::RaftNode& core,
                             const raft::SnapshotMeta& installed) override;

   private:
    bool Dead() const;
    Simulator* sim_;
    NodeId id_;
    bool grants_vote_ = false;  // the Ready being carried out grants a vote
  };
  struct Node {
    std::unique_ptr<SimDisk> disk = std::make_unique<SimDisk>();  // survives crashes
    std::unique_ptr<NodeLink> link;
    std::unique_ptr<node::Replica> replica;  // null while crashed
    SimClock clock;
    bool paused = false;
    int64_t paused_until = 0;
    uint64_t incarnation = 0;
    int64_t scheduled_tick = INT64_MAX;
    // Rebuilt (raftkv-node --rebuild) and not caught up when last seen running.
    bool rebuilding = false;
    // Its disk was lost: the next restart rebuilds it first (again, if a crash cut the rebuild).
    bool rebuild_pending = false;
  };

  // ---- clients (workload.cc) ----
  struct Operation {
    uint64_t id;
    bool is_set;
    std::string key, value;
    uint64_t sequence = 0;  // SET: 0 until the client has a session
    int64_t invoke;
    bool maybe_applied = false;
  };
  struct Client {
    uint64_t session = 0;  // 0: none open; the next SET opens one first
    bool opening = false;  // the attempt in flight is an OPEN_SESSION
    uint64_t next_sequence = 1;
    uint64_t attempt = 0;
    NodeId leader_guess = 0;
    std::optional<Operation> current;
    int ops_done = 0;
  };

  void Schedule(int64_t time, Payload payload);
  void Dispatch(const Event& event);
  bool DeferIfPaused(NodeId node, const Event& event);

  // simulator.cc
  void StartNode(NodeId node);
  // A scheduled restart: StartNode, after rebuilding the node when its disk was lost.
  void RestartNode(NodeId node);
  bool Rebuilding(NodeId node) const;
  void CrashNode(NodeId node, const char* why);
  // Ends the node's turn (Replica::Process), then crashes it if its power went mid-turn, feeds
  // the checkers and schedules its next wake-up.
  void AfterNodeEvent(NodeId node);
  bool CrashHook(SimDisk::Op op, SimDisk::Risk risk);
  void SendMessages(const std::vector<raft::Message>& messages);
  void HandleRequest(NodeId node, const ClientRequest& request);
  node::ClientCallback ReplyTo(NodeId node, const ClientRequest& request);
  void Fail(std::string violation);
  void Reply(ClientReply reply);
  TimePoint LocalNow(NodeId node) const { return nodes_[node].clock.Local(now_); }
  void Trace(const std::string& line);
  std::optional<NodeId> CurrentLeader() const;

  // workload.cc
  void StartWorkload();
  void ClientStep(const ClientWake& wake);
  void SendAttempt(int client);
  void HandleReply(const ClientReply& reply);
  void FinishOperation(int client, check::Outcome outcome, std::optional<std::string> read_value);
  bool ClientsIdle() const;

  // faults.cc
  void ScheduleFaults();
  void InjectFault();
  void HealEverything();

  SimOptions options_;
  raft::RaftConfig base_config_;
  Rng rng_;
  // Session table settings and client pauses, drawn from their own stream so that they do not
  // shift the rest of a seed's run. Some seeds get a table smaller than the number of clients, so
  // that sessions are evicted and refused, and clients that pause long enough to lose theirs.
  Rng session_rng_;
  int64_t max_sessions_ = 1000;
  // Snapshot policy of this seed (most seeds snapshot often, so compaction, InstallSnapshot and
  // restarts from a snapshot happen under every fault): ReplicaOptions::snapshot_entries, _keep_.
  int64_t snapshot_entries_ = 0;
  int64_t snapshot_keep_entries_ = 0;
  Rng snapshot_worker_rng_{0};  // how many turns a snapshot takes to be written
  Rng rebuild_rng_{0};          // which restarts find their disk lost
  SimNetwork network_;
  SafetyChecker checker_;
  std::vector<Node> nodes_;
  std::vector<Client> clients_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  uint64_t next_sequence_ = 0;
  int64_t now_ = 0;
  bool fault_phase_ = true;
  bool workload_open_ = true;
  // The workload shifts between write-heavy and read-only phases: elections among nodes with
  // equal logs (and so lease hand-overs) happen mostly while nothing is being written.
  double phase_read_fraction_ = 0.5;
  int64_t phase_ends_ = 0;
  uint64_t next_op_id_ = 1;
  std::vector<check::Operation> history_;
  uint64_t trace_hash_ = 0xcbf29ce484222325ULL;
  SimResult result_;
};

}  // namespace raftkv::sim

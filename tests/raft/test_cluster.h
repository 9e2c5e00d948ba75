// A hand-driven cluster for unit tests: real nodes — node::Replica, the unit the server and the
// simulator run, each on a simulated disk — where the test decides which messages are delivered,
// when time passes, and who crashes. No threads, no sleeping: time is a number.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <vector>

#include "kv/command.h"
#include "node/replica.h"
#include "raft/raft_node.h"
#include "sim/checkers.h"
#include "sim/sim_disk.h"

namespace raftkv::raft::testing {

inline RaftConfig TestConfig(NodeId id, int size) {
  RaftConfig config;
  config.id = id;
  config.cluster_size = size;
  config.heartbeat_interval = std::chrono::milliseconds(10);
  config.election_timeout_min = std::chrono::milliseconds(100);
  config.election_timeout_max = std::chrono::milliseconds(200);
  config.lease_duration = std::chrono::milliseconds(80);
  config.max_clock_drift = 0.01;
  return config;
}

inline TimePoint At(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

// The key of the SET an applied entry carries ("" for a NO-OP): what a test proposed.
inline std::string Payload(const Entry& entry) {
  if (entry.type != EntryType::kCommand) return "";
  absl::StatusOr<kv::Command> command = kv::DecodeCommand(entry.data);
  if (!command.ok()) return "<undecodable>";
  if (const auto* set = std::get_if<kv::SetCommand>(&*command)) return set->key;
  return "OPEN-SESSION";
}

class TestCluster {
 public:
  // `tweak` adjusts every node's Raft config; `tweak_replica`, each node's replica options.
  explicit TestCluster(int size, std::function<void(RaftConfig&)> tweak = nullptr,
                       std::function<void(NodeId, node::ReplicaOptions&)> tweak_replica = nullptr)
      : size_(size),
        tweak_(std::move(tweak)),
        tweak_replica_(std::move(tweak_replica)),
        nodes_(size) {
    for (NodeId id = 0; id < size; ++id) {
      nodes_[id].link = std::make_unique<Link>(this, id);
      nodes_[id].disk = std::make_unique<sim::SimDisk>();
    }
    for (NodeId id = 0; id < size; ++id) Start(id);
  }

  int size() const { return size_; }
  const RaftNode& node(NodeId id) const { return nodes_[id].replica->core(); }
  node::Replica& replica(NodeId id) { return *nodes_[id].replica; }
  bool up(NodeId id) const { return nodes_[id].replica != nullptr; }
  sim::SimDisk& disk(NodeId id) { return *nodes_[id].disk; }
  TimePoint now() const { return now_; }
  const std::vector<Entry>& applied(NodeId id) const { return nodes_[id].applied; }
  // From now on, keep every Ready the nodes' replicas carry out, for TakeReadies.
  void RecordReadies() { record_readies_ = true; }
  // Every Ready `id` carried out since the last call, oldest first.
  std::vector<Ready> TakeReadies(NodeId id) { return std::move(nodes_[id].readies); }
  std::vector<Message>& in_flight() { return in_flight_; }
  // Optional: the simulator's cross-node checker, fed by every replica (see Figure 8 test).
  void AttachChecker(sim::SafetyChecker* checker) { checker_ = checker; }

  void Start(NodeId id) {
    Node& n = nodes_[id];
    node::ReplicaOptions options;
    options.raft = TestConfig(id, size_);
    if (tweak_) tweak_(options.raft);
    options.dir = "/test/node" + std::to_string(id);
    options.clock = [this] { return now_; };
    options.on_fatal = [id](const absl::Status& status) {
      ADD_FAILURE() << "node " << id << " failed: " << status;
    };
    if (tweak_replica_) tweak_replica_(id, options);
    auto opened = node::Replica::Open(std::move(options), n.disk.get(), n.link.get(), n.link.get(),
                                      n.link.get(), now_, 1000 + id);
    ASSERT_TRUE(opened.ok()) << opened.status();
    n.replica = std::move(*opened);
    n.applied.clear();
    if (checker_) {
      std::vector<Entry> log;
      for (LogIndex i = node(id).log().FirstIndex(); i <= node(id).log().LastIndex(); ++i)
        log.push_back(node(id).log().At(i));
      checker_->OnRestart(id, node(id).log().BaseIndex(), log);
    }
    Process(id);
  }
  // The process dies: what it wrote stays on its disk (a kill, not a power loss).
  void Crash(NodeId id) {
    nodes_[id].disk->PowerOff();
    nodes_[id].replica.reset();
    Rng rng(id);
    nodes_[id].disk->Crash(sim::SimDisk::CrashKind::kProcess, rng);
  }

  // Proposes a SET of key `payload` on `id` (not yet processed: see Process).
  ProposeResult Propose(NodeId id, const std::string& payload) {
    ProposeResult result;
    result.index = node(id).log().LastIndex() + 1;
    result.term = node(id).term();
    // A refusal is answered at once; an acceptance later (and ignored here).
    auto refused = std::make_shared<std::optional<NodeId>>();
    replica(id).Set(
        kv::SetCommand{payload, "v", 0, 0},
        [refused](const node::ClientResult& answer) {
          if (answer.kind == node::ClientResult::Kind::kRejected) *refused = answer.leader_hint;
        },
        TimePoint::max(), now_);
    result.accepted = !refused->has_value();
    if (!result.accepted) result.leader_hint = **refused;
    return result;
  }
  // Delivers `message` to its addressee now and processes what it causes.
  void Step(const Message& message) {
    if (!up(message.to)) return;
    replica(message.to).Step(message, now_);
    Process(message.to);
  }

  // Moves the cluster's clock forward to `t` (never back), without processing anyone.
  void AdvanceTo(TimePoint t) { now_ = std::max(now_, t); }
  const std::vector<std::pair<NodeId, Event>>& events() const { return events_; }

  // Ends the node's turn: ticks it and carries out its Readies the way the server does.
  void Process(NodeId id) {
    if (up(id)) replica(id).Process(now_);
  }

  // Delivers every message in flight (and what they cause) until the network is quiet, dropping
  // messages for which `drop` says so.
  void Deliver(std::function<bool(const Message&)> drop = nullptr) {
    for (int round = 0; round < 10'000 && !in_flight_.empty(); ++round) {
      std::vector<Message> batch;
      batch.swap(in_flight_);
      for (const Message& message : batch) {
        if (!up(message.to) || (drop && drop(message))) continue;
        Step(message);
      }
    }
  }

  // Advances time in 1 ms steps, ticking every live node and delivering messages each step.
  void Run(int64_t ms, std::function<bool(const Message&)> drop = nullptr) {
    for (int64_t i = 0; i < ms; ++i) {
      now_ += std::chrono::milliseconds(1);
      for (NodeId id = 0; id < size_; ++id) Process(id);
      Deliver(drop);
    }
  }

  std::optional<NodeId> Leader() const {
    std::optional<NodeId> leader;
    for (NodeId id = 0; id < size_; ++id) {
      if (up(id) && node(id).role() == Role::kLeader &&
          (!leader || node(id).term() > node(*leader).term())) {
        leader = id;
      }
    }
    return leader;
  }

  // Elects a leader (running time until one exists and can serve) and returns it.
  NodeId ElectLeader() {
    for (int i = 0; i < 5000; ++i) {
      Run(1);
      if (auto leader = Leader(); leader && node(*leader).LeaseRead(now_).ok()) return *leader;
    }
    ADD_FAILURE() << "no leader elected";
    return 0;
  }

  int CountEvents(Event::Kind kind) const {
    int count = 0;
    for (const auto& [id, event] : events_) count += event.kind == kind ? 1 : 0;
    return count;
  }

 private:
  // The node's network, event log and checker hooks.
  class Link : public node::PeerTransport, public node::EventSink, public node::ReplicaObserver {
   public:
    Link(TestCluster* cluster, NodeId id) : cluster_(cluster), id_(id) {}
    void Send(const Message& message) override { cluster_->in_flight_.push_back(message); }
    void RecordEvent(const Event& event) override { cluster_->events_.push_back({id_, event}); }
    void RecordReceived(const std::string&) override {}
    void RecordCommitted(bool, const std::string&) override {}
    void RecordPeerError(NodeId) override {}
    void Record(const std::string&) override {}
    bool RecordsRequests() const override { return false; }
    void OnReady(const Ready& ready) override {
      if (cluster_->record_readies_) cluster_->nodes_[id_].readies.push_back(ready);
      if (cluster_->checker_) cluster_->checker_->OnLogChanged(id_, ready);
    }
    void OnPersisted(const RaftNode& core) override {
      if (cluster_->checker_) cluster_->checker_->OnState(id_, core);
    }
    void OnApplied(const Entry& entry) override {
      cluster_->nodes_[id_].applied.push_back(entry);
      if (cluster_->checker_) cluster_->checker_->OnApplied(id_, entry);
    }
    void OnSnapshotInstalled(const RaftNode& core, const SnapshotMeta& installed) override {
      if (cluster_->checker_) {
        cluster_->checker_->OnSnapshotInstalled(id_, installed.index, core.log().LastIndex());
      }
    }

   private:
    TestCluster* cluster_;
    NodeId id_;
  };
  struct Node {
    std::unique_ptr<Link> link;
    std::unique_ptr<sim::SimDisk> disk;  // survives crashes
    std::unique_ptr<node::Replica> replica;
    std::vector<Entry> applied;
    std::vector<Ready> readies;
  };

  int size_;
  std::function<void(RaftConfig&)> tweak_;
  std::function<void(NodeId, node::ReplicaOptions&)> tweak_replica_;
  std::vector<Node> nodes_;
  std::vector<Message> in_flight_;
  std::vector<std::pair<NodeId, Event>> events_;
  sim::SafetyChecker* checker_ = nullptr;
  bool record_readies_ = false;
  TimePoint now_ = At(1000);
};

}  // namespace raftkv::raft::testing

// A hand-driven cluster of real RaftNodes for unit tests: the test decides which messages are
// delivered, when time passes, and who crashes. No threads, no sleeping: time is a number.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <vector>

#include "raft/raft_node.h"
#include "sim/checkers.h"

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

class TestCluster {
 public:
  explicit TestCluster(int size, std::function<void(RaftConfig&)> tweak = nullptr)
      : size_(size), tweak_(std::move(tweak)), nodes_(size), disks_(size), applied_(size) {
    for (NodeId id = 0; id < size; ++id) Start(id);
  }

  RaftNode& node(NodeId id) { return *nodes_[id]; }
  bool up(NodeId id) const { return nodes_[id] != nullptr; }
  TimePoint now() const { return now_; }
  const std::vector<Entry>& applied(NodeId id) const { return applied_[id]; }
  std::vector<Message>& in_flight() { return in_flight_; }
  // Optional: the simulator's cross-node checker, fed after every Ready (see Figure 8 test).
  void AttachChecker(sim::SafetyChecker* checker) { checker_ = checker; }

  void Start(NodeId id) {
    RaftConfig config = TestConfig(id, size_);
    if (tweak_) tweak_(config);
    auto created = RaftNode::Create(config, RecoveredState{disks_[id].hard_state, disks_[id].log},
                                    now_, 1000 + id);
    ASSERT_TRUE(created.ok()) << created.status();
    nodes_[id] = std::move(*created);
    applied_[id].clear();
    if (checker_) checker_->OnRestart(id, disks_[id].log);
    Process(id);
  }
  void Crash(NodeId id) { nodes_[id].reset(); }

  // Runs every pending Ready of `id` the way the server does (ready.h's order).
  void Process(NodeId id) {
    RaftNode* raft = nodes_[id].get();
    while (raft && raft->HasReady()) {
      Ready ready = raft->TakeReady();
      Send(ready.messages);
      if (checker_) checker_->OnLogChanged(id, ready);
      Disk& disk = disks_[id];
      if (ready.hard_state) disk.hard_state = *ready.hard_state;
      disk.hard_state.commit_index = ready.commit_index;
      if (ready.truncate_from) disk.log.resize(*ready.truncate_from - 1);
      disk.log.insert(disk.log.end(), ready.entries.begin(), ready.entries.end());
      Send(ready.messages_after_persist);
      if (checker_) checker_->OnState(id, *raft);
      for (const Entry& entry : ready.committed_entries) {
        applied_[id].push_back(entry);
        if (checker_) checker_->OnApplied(id, entry);
      }
      for (const Event& event : ready.events) events_.push_back({id, event});
      raft->Advance(ready);
    }
  }

  // Delivers every message in flight (and what they cause) until the network is quiet, dropping
  // messages for which `drop` says so.
  void Deliver(std::function<bool(const Message&)> drop = nullptr) {
    for (int round = 0; round < 10'000 && !in_flight_.empty(); ++round) {
      std::vector<Message> batch;
      batch.swap(in_flight_);
      for (const Message& message : batch) {
        if (!up(message.to) || (drop && drop(message))) continue;
        nodes_[message.to]->Step(message, now_);
        Process(message.to);
      }
    }
  }

  // Advances time in 1 ms steps, ticking every live node and delivering messages each step.
  void Run(int64_t ms, std::function<bool(const Message&)> drop = nullptr) {
    for (int64_t i = 0; i < ms; ++i) {
      now_ += std::chrono::milliseconds(1);
      for (NodeId id = 0; id < size_; ++id) {
        if (!up(id)) continue;
        nodes_[id]->Tick(now_);
        Process(id);
      }
      Deliver(drop);
    }
  }

  std::optional<NodeId> Leader() {
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
  struct Disk {
    HardState hard_state;
    std::vector<Entry> log;
  };
  void Send(const std::vector<Message>& messages) {
    in_flight_.insert(in_flight_.end(), messages.begin(), messages.end());
  }

  int size_;
  std::function<void(RaftConfig&)> tweak_;
  std::vector<std::unique_ptr<RaftNode>> nodes_;
  std::vector<Disk> disks_;
  std::vector<std::vector<Entry>> applied_;
  std::vector<Message> in_flight_;
  std::vector<std::pair<NodeId, Event>> events_;
  sim::SafetyChecker* checker_ = nullptr;
  TimePoint now_ = At(1000);
};

}  // namespace raftkv::raft::testing

// The simulator's event loop, its nodes (core + disk + state machine) and client request handling
// on the node side. Clients live in workload.cc, the fault schedule in faults.cc.
#include "sim/simulator.h"

#include <algorithm>
#include <cstdio>

#include "kv/command.h"

namespace raftkv::sim {
namespace {

raft::RaftConfig SimRaftConfig(const SimOptions& options) {
  raft::RaftConfig config;
  config.cluster_size = options.nodes;
  config.heartbeat_interval = std::chrono::milliseconds(50);
  config.election_timeout_min = std::chrono::milliseconds(300);
  config.election_timeout_max = std::chrono::milliseconds(600);
  config.lease_duration = std::chrono::milliseconds(250);
  config.max_clock_drift = 0.01;
  config.max_entries_per_append = 16;
  config.max_inflight_appends = 4;
  config.injected_bug = options.bug;
  return config;
}

}  // namespace

Simulator::Simulator(const SimOptions& options)
    : options_(options),
      base_config_(SimRaftConfig(options)),
      rng_(options.seed),
      network_(options.nodes, NetworkOptions{}),
      checker_(options.nodes),
      nodes_(options.nodes),
      clients_(options.clients) {}

void Simulator::Schedule(int64_t time, Payload payload) {
  queue_.push(Event{time, next_sequence_++, std::move(payload)});
}

void Simulator::Trace(const std::string& line) {
  for (unsigned char c : line) trace_hash_ = (trace_hash_ ^ c) * 0x100000001b3ULL;
  trace_hash_ = (trace_hash_ ^ '\n') * 0x100000001b3ULL;
  if (options_.trace) std::printf("%10.3fms %s\n", static_cast<double>(now_) / kMs, line.c_str());
}

std::optional<NodeId> Simulator::CurrentLeader() const {
  std::optional<NodeId> leader;
  Term best = 0;
  for (NodeId id = 0; id < options_.nodes; ++id) {
    const auto& raft = nodes_[id].raft;
    if (raft && raft->role() == raft::Role::kLeader && raft->term() >= best) {
      best = raft->term();
      leader = id;
    }
  }
  return leader;
}

SimResult Simulator::Run() {
  const double drift = base_config_.max_clock_drift;
  for (NodeId id = 0; id < options_.nodes; ++id) {
    double rate = 1.0;
    if (options_.faults.drift) {
      // Half the nodes at an extreme of the bound, where lease arithmetic is tightest.
      rate = rng_.Chance(0.5) ? (rng_.Chance(0.5) ? 1 + drift : 1 - drift)
                              : 1 + drift * (2 * rng_.Fraction() - 1);
    }
    nodes_[id].clock = SimClock(rate, rng_.Between(0, 1'000'000) * kMs);
    StartNode(id);
  }
  if (options_.faults.loss) {
    network_.options().loss = 0.02 + 0.08 * rng_.Fraction();
    network_.options().duplication = 0.02;
  }
  StartWorkload();
  ScheduleFaults();

  int64_t events = 0;
  auto step = [&]() {
    Event event = queue_.top();
    queue_.pop();
    now_ = event.time;
    Dispatch(event);
    ++events;
  };
  while (events < options_.steps && !queue_.empty() && !checker_.violation()) step();

  // Liveness phase: heal everything; every operation in flight must then complete in time.
  fault_phase_ = false;
  HealEverything();
  const int64_t healed_at = now_;
  Trace("heal: all faults stopped");
  while (!queue_.empty() && !checker_.violation()) {
    if (now_ > healed_at + 2'000 * kMs) workload_open_ = false;
    if (!workload_open_ && ClientsIdle()) break;
    if (now_ > healed_at + options_.liveness_bound_ns) {
      result_.ok = false;
      result_.violation = "liveness: operations still pending " +
                          std::to_string(options_.liveness_bound_ns / kMs) +
                          "ms after all faults healed";
      break;
    }
    step();
  }
  checker_.Finish(now_);

  // Clients that never heard back: a SET may or may not have happened; a GET tells nothing.
  for (size_t c = 0; c < clients_.size(); ++c) {
    if (clients_[c].current) {
      FinishOperation(static_cast<int>(c),
                      clients_[c].current->maybe_applied ? check::Outcome::kIndeterminate
                                                         : check::Outcome::kFail,
                      std::nullopt);
    }
  }
  if (checker_.violation()) {
    result_.ok = false;
    result_.violation = *checker_.violation();
  }
  if (result_.ok) {
    check::CheckResult lin = check::CheckLinearizable(history_);
    result_.linearizability_inconclusive = lin.inconclusive;
    if (!lin.linearizable) {
      result_.ok = false;
      result_.violation = "linearizability: " + lin.explanation;
    }
  }
  for (const Node& node : nodes_) {
    if (node.raft) result_.max_term = std::max(result_.max_term, node.raft->term());
  }
  result_.committed = checker_.canonical_commit();
  result_.events = events;
  result_.sim_time_ns = now_;
  result_.trace_hash = trace_hash_;
  return result_;
}

bool Simulator::DeferIfPaused(NodeId node, const Event& event) {
  if (!nodes_[node].paused) return false;
  // A stopped process's socket buffers hold what arrives; it sees it all on resume.
  Schedule(nodes_[node].paused_until, event.payload);
  return true;
}

void Simulator::Dispatch(const Event& event) {
  std::visit(
      [&](const auto& payload) {
        using P = std::decay_t<decltype(payload)>;
        if constexpr (std::is_same_v<P, Deliver>) {
          const NodeId to = payload.message.to;
          if (!nodes_[to].raft || DeferIfPaused(to, event)) return;
          nodes_[to].raft->Step(payload.message, LocalNow(to));
          AfterNodeEvent(to);
        } else if constexpr (std::is_same_v<P, TickNode>) {
          Node& node = nodes_[payload.node];
          if (!node.raft || payload.incarnation != node.incarnation ||
              node.scheduled_tick != now_) {
            return;  // superseded by an earlier tick or a restart
          }
          node.scheduled_tick = INT64_MAX;
          if (node.paused) return;  // the resume ticks it and schedules afresh
          node.raft->Tick(LocalNow(payload.node));
          AfterNodeEvent(payload.node);
        } else if constexpr (std::is_same_v<P, RequestArrives>) {
          if (!nodes_[payload.node].raft || DeferIfPaused(payload.node, event)) return;
          HandleRequest(payload.node, payload.request);
        } else if constexpr (std::is_same_v<P, ReplyArrives>) {
          HandleReply(payload.reply);
        } else if constexpr (std::is_same_v<P, ClientWake>) {
          ClientStep(payload);
        } else if constexpr (std::is_same_v<P, FaultStep>) {
          if (fault_phase_) InjectFault();
        } else if constexpr (std::is_same_v<P, Restart>) {
          if (!nodes_[payload.node].raft) StartNode(payload.node);
        } else if constexpr (std::is_same_v<P, Resume>) {
          Node& node = nodes_[payload.node];
          if (node.paused && node.paused_until <= now_) {
            node.paused = false;
            Trace("resume " + std::to_string(payload.node));
            if (node.raft) {
              node.raft->Tick(LocalNow(payload.node));
              AfterNodeEvent(payload.node);
            }
          }
        }
      },
      event.payload);
}

void Simulator::StartNode(NodeId id) {
  Node& node = nodes_[id];
  raft::RaftConfig config = base_config_;
  config.id = id;
  raft::HardState hard_state = node.disk_hard_state;
  hard_state.commit_index = node.disk_commit;
  auto created = raft::RaftNode::Create(config, raft::RecoveredState{hard_state, node.disk_log},
                                        LocalNow(id), rng_.Next());
  if (!created.ok()) {
    result_.ok = false;
    result_.violation = "node " + std::to_string(id) +
                        " failed to start: " + std::string(created.status().message());
    return;
  }
  node.raft = std::move(*created);
  node.kv = kv::KvStateMachine();
  node.paused = false;
  ++node.incarnation;
  node.scheduled_tick = INT64_MAX;
  checker_.OnRestart(id, node.disk_log);
  Trace("start " + std::to_string(id) + " term=" + std::to_string(hard_state.term) +
        " log=" + std::to_string(node.disk_log.size()));
  AfterNodeEvent(id);
}

void Simulator::CrashNode(NodeId id, const char* why) {
  Node& node = nodes_[id];
  node.raft.reset();
  node.pending.clear();  // their clients will time out: outcome unknown
  node.paused = false;
  node.scheduled_tick = INT64_MAX;
  checker_.OnLeaseWindow(id, std::nullopt, now_);
  Trace(std::string("crash ") + std::to_string(id) + " " + why);
  Schedule(now_ + rng_.Between(10, 3000) * kMs, Restart{id});
}

void Simulator::SendMessages(const std::vector<raft::Message>& messages) {
  for (const raft::Message& message : messages) {
    for (int64_t delay : network_.Route(message.from, message.to, rng_)) {
      Schedule(now_ + delay, Deliver{message});
    }
  }
}

void Simulator::ProcessReady(NodeId id) {
  Node& node = nodes_[id];
  const double crash_chance = fault_phase_ && options_.faults.crashes ? 0.0005 : 0.0;
  while (node.raft && node.raft->HasReady()) {
    raft::Ready ready = node.raft->TakeReady();
    for (const raft::Event& event : ready.events) {
      if (event.kind == raft::Event::Kind::kHeartbeatRound) continue;  // too chatty to trace
      Trace("node " + std::to_string(id) + " event " +
            std::to_string(static_cast<int>(event.kind)) + " peer=" + std::to_string(event.peer) +
            " term=" + std::to_string(event.term) +
            " last=" + std::to_string(node.raft->log().LastIndex()) + "/" +
            std::to_string(node.raft->log().LastTerm()) +
            " commit=" + std::to_string(node.raft->commit_index()));
      if (event.kind == raft::Event::Kind::kBecameLeader) ++result_.leaders_elected;
    }
    SendMessages(ready.messages);
    checker_.OnLogChanged(id, ready);
    if (rng_.Chance(crash_chance)) return CrashNode(id, "before persisting a ready");
    // The simulated disk: everything in this Ready becomes durable at once.
    if (ready.hard_state) node.disk_hard_state = *ready.hard_state;
    node.disk_commit = ready.commit_index;
    if (ready.truncate_from) node.disk_log.resize(*ready.truncate_from - 1);
    node.disk_log.insert(node.disk_log.end(), ready.entries.begin(), ready.entries.end());
    // Targeted fault: crash right after granting a vote, before the grant leaves. A restarted
    // voter must remember that vote (§5.2), or two leaders can win one term.
    const bool grants_vote =
        std::any_of(ready.messages_after_persist.begin(), ready.messages_after_persist.end(),
                    [](const raft::Message& m) {
                      const auto* reply = std::get_if<raft::RequestVoteReply>(&m.body);
                      return reply != nullptr && reply->granted;
                    });
    if (rng_.Chance(grants_vote && crash_chance > 0 ? 0.05 : crash_chance)) {
      return CrashNode(id, "after persisting a ready");
    }
    SendMessages(ready.messages_after_persist);
    checker_.OnState(id, *node.raft);  // extends the canonical history before we apply from it
    for (const raft::Entry& entry : ready.committed_entries) Apply(id, entry);
    node.raft->Advance(ready);
  }
}

void Simulator::AfterNodeEvent(NodeId id) {
  ProcessReady(id);
  Node& node = nodes_[id];
  if (!node.raft) return;
  const raft::RaftNode& raft = *node.raft;
  checker_.OnState(id, raft);
  std::optional<std::pair<int64_t, int64_t>> window;
  if (std::optional<raft::LeaseWindow> lease = raft.CurrentLeaseWindow()) {
    window = {node.clock.RealWhenLocalReaches(lease->from),
              node.clock.RealWhenLocalReaches(lease->until)};
  }
  checker_.OnLeaseWindow(id, window, now_);
  if (raft.role() != raft::Role::kLeader && !node.pending.empty()) {
    // Leadership lost with proposals in flight: their fate is unknown to us.
    auto pending = std::move(node.pending);
    node.pending.clear();
    for (const auto& [index, set] : pending) {
      Reply(ClientReply{set.client, set.attempt, ReplyKind::kUnknown, std::nullopt,
                        raft.leader_id()});
    }
  }
  const int64_t deadline = node.clock.RealWhenLocalReaches(raft.NextDeadline());
  const int64_t tick_at = std::max(now_ + 1, std::min(deadline, now_ + 100 * kMs));
  if (tick_at < node.scheduled_tick) {
    node.scheduled_tick = tick_at;
    Schedule(tick_at, TickNode{id, node.incarnation});
  }
}

void Simulator::Apply(NodeId id, const raft::Entry& entry) {
  Node& node = nodes_[id];
  checker_.OnApplied(id, entry);
  if (entry.type != raft::EntryType::kCommand) return;
  absl::StatusOr<kv::SetCommand> command = kv::DecodeSet(entry.data);
  if (!command.ok()) {
    result_.ok = false;
    result_.violation = "node " + std::to_string(id) + " applied an undecodable entry";
    return;
  }
  const kv::ApplyOutcome outcome = node.kv.ApplySet(*command, entry.index);
  auto it = node.pending.find(entry.index);
  if (it == node.pending.end()) return;
  const PendingSet set = it->second;
  node.pending.erase(it);
  ReplyKind kind = ReplyKind::kUnknown;  // another leader's entry took this index
  if (entry.term == set.term) {
    kind = outcome == kv::ApplyOutcome::kSessionExpired ? ReplyKind::kRejected : ReplyKind::kOk;
  }
  Reply(ClientReply{set.client, set.attempt, kind, std::nullopt, id});
}

void Simulator::HandleRequest(NodeId id, const ClientRequest& request) {
  Node& node = nodes_[id];
  raft::RaftNode& raft = *node.raft;
  const TimePoint local_now = LocalNow(id);
  if (!request.is_set) {
    raft::LeaseReadResult read = raft.LeaseRead(local_now);
    if (read.ok() && raft.applied_index() >= read.read_index) {
      Reply(ClientReply{request.client, request.attempt, ReplyKind::kOk, node.kv.Get(request.key),
                        id});
    } else {
      const ReplyKind kind = read.refusal == raft::ReadRefusal::kNotLeader ? ReplyKind::kNotLeader
                                                                           : ReplyKind::kRejected;
      Reply(ClientReply{request.client, request.attempt, kind, std::nullopt, read.leader_hint});
    }
    return;
  }
  kv::SetCommand command{request.key, request.value, request.session, request.sequence};
  raft::ProposeResult proposal = raft.Propose(kv::EncodeSet(command), local_now);
  if (!proposal.accepted) {
    Reply(ClientReply{request.client, request.attempt, ReplyKind::kNotLeader, std::nullopt,
                      proposal.leader_hint});
    return;
  }
  node.pending[proposal.index] = PendingSet{request.client, request.attempt, proposal.term};
  AfterNodeEvent(id);
}

void Simulator::Reply(ClientReply reply) {
  if (fault_phase_ && options_.faults.loss && rng_.Chance(0.02)) return;  // reply lost
  Schedule(now_ + rng_.Between(100'000, 2 * kMs), ReplyArrives{std::move(reply)});
}

}  // namespace raftkv::sim

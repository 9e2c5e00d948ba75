// The simulator's event loop, its nodes (a node::Replica on a SimDisk each) and their links to the
// network, the clients and the checkers. Clients live in workload.cc, the fault schedule in
// faults.cc.
#include "sim/simulator.h"

#include <algorithm>
#include <cstdio>

#include "kv/command.h"
#include "node/node_dir.h"
#include "node/replica.h"
#include "raft/describe.h"
#include "storage/metadata_file.h"

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
      session_rng_(options.seed ^ 0x5e5510115e5510ULL),
      network_(options.nodes, NetworkOptions{}),
      checker_(options.nodes),
      nodes_(options.nodes),
      clients_(options.clients) {
  if (session_rng_.Chance(0.3)) max_sessions_ = std::max(1, options.clients - 1);
  Rng snapshot_rng(options.seed ^ 0x54a950075a9ULL);
  snapshot_worker_rng_ = Rng(options.seed ^ 0x3a0c4e7b1d2ULL);
  rebuild_rng_ = Rng(options.seed ^ 0x7eb011d5ULL);
  if (snapshot_rng.Chance(0.7)) {
    snapshot_entries_ = snapshot_rng.Between(2, 40);
    snapshot_keep_entries_ = snapshot_rng.Between(0, 8);
    // Small chunks, so that transfers take many, some lost, reordered or cut by crashes.
    base_config_.snapshot_chunk_bytes = snapshot_rng.Between(16, 300);
    base_config_.max_inflight_snapshot_chunks = static_cast<int>(snapshot_rng.Between(1, 4));
  }
  for (NodeId id = 0; id < options.nodes; ++id) {
    nodes_[id].link = std::make_unique<NodeLink>(this, id);
    nodes_[id].disk->SetCrashHook(
        [this](SimDisk::Op op, SimDisk::Risk risk) { return CrashHook(op, risk); });
  }
}

void Simulator::Fail(std::string violation) {
  if (!result_.ok) return;
  result_.ok = false;
  result_.violation = std::move(violation);
}

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
    if (!nodes_[id].replica) continue;
    const raft::RaftNode& core = nodes_[id].replica->core();
    if (core.role() == raft::Role::kLeader && core.term() >= best) {
      best = core.term();
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
  while (events < options_.steps && !queue_.empty() && !checker_.violation() && result_.ok) step();

  // Liveness phase: heal everything; every operation in flight must then complete in time.
  fault_phase_ = false;
  HealEverything();
  const int64_t healed_at = now_;
  Trace("heal: all faults stopped");
  while (!queue_.empty() && !checker_.violation() && result_.ok) {
    if (now_ > healed_at + 2'000 * kMs) workload_open_ = false;
    if (!workload_open_ && ClientsIdle()) break;
    if (now_ > healed_at + options_.liveness_bound_ns) {
      Fail("liveness: operations still pending " +
           std::to_string(options_.liveness_bound_ns / kMs) + "ms after all faults healed");
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
  if (checker_.violation()) Fail(*checker_.violation());
  if (result_.ok) {
    check::CheckResult lin = check::CheckLinearizable(history_);
    result_.linearizability_inconclusive = lin.inconclusive;
    if (!lin.linearizable) {
      result_.ok = false;
      result_.violation = "linearizability: " + lin.explanation;
    }
  }
  for (const Node& node : nodes_) {
    if (node.replica) result_.max_term = std::max(result_.max_term, node.replica->core().term());
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
          if (!nodes_[to].replica || DeferIfPaused(to, event)) return;
          if (std::holds_alternative<raft::InstallSnapshot>(payload.message.body) ||
              std::holds_alternative<raft::InstallSnapshotReply>(payload.message.body)) {
            Trace(raft::Describe(payload.message));
          }
          nodes_[to].replica->Step(payload.message, LocalNow(to));
          if (rng_.Chance(0.25)) {
            // Like the server's mailbox, sometimes let several messages in before the turn:
            // orders that one message per turn never produces (a snapshot's last chunk and the
            // AppendEntries that commits past it, in one Ready).
            Node& node = nodes_[to];
            const int64_t at = now_ + rng_.Between(100, 1000) * 1000;
            if (at < node.scheduled_tick) {
              node.scheduled_tick = at;
              Schedule(at, TickNode{to, node.incarnation});
            }
            return;
          }
          AfterNodeEvent(to);
        } else if constexpr (std::is_same_v<P, TickNode>) {
          Node& node = nodes_[payload.node];
          if (!node.replica || payload.incarnation != node.incarnation ||
              node.scheduled_tick != now_) {
            return;  // superseded by an earlier tick or a restart
          }
          node.scheduled_tick = INT64_MAX;
          if (node.paused) return;  // the resume ticks it and schedules afresh
          AfterNodeEvent(payload.node);
        } else if constexpr (std::is_same_v<P, RequestArrives>) {
          if (!nodes_[payload.node].replica || DeferIfPaused(payload.node, event)) return;
          HandleRequest(payload.node, payload.request);
        } else if constexpr (std::is_same_v<P, ReplyArrives>) {
          HandleReply(payload.reply);
        } else if constexpr (std::is_same_v<P, ClientWake>) {
          ClientStep(payload);
        } else if constexpr (std::is_same_v<P, FaultStep>) {
          if (fault_phase_) InjectFault();
        } else if constexpr (std::is_same_v<P, Restart>) {
          if (!nodes_[payload.node].replica) RestartNode(payload.node);
        } else if constexpr (std::is_same_v<P, Resume>) {
          Node& node = nodes_[payload.node];
          if (node.paused && node.paused_until <= now_) {
            node.paused = false;
            Trace("resume " + std::to_string(payload.node));
            if (node.replica) AfterNodeEvent(payload.node);
          }
        }
      },
      event.payload);
}

// ---- the node's side of its link ----

bool Simulator::NodeLink::Dead() const { return sim_->nodes_[id_].disk->powered_off(); }

void Simulator::NodeLink::Send(const raft::Message& message) {
  if (!Dead()) sim_->SendMessages({message});
}

void Simulator::NodeLink::RecordEvent(const raft::Event& event) {
  if (Dead() || event.kind == raft::Event::Kind::kHeartbeatRound) return;  // too chatty to trace
  const node::Replica* replica = sim_->nodes_[id_].replica.get();
  std::string line = "node " + std::to_string(id_) + " " + raft::Describe(event);
  if (replica != nullptr) {
    const raft::RaftNode& core = replica->core();
    line += " last=" + std::to_string(core.log().LastIndex()) + "/" +
            std::to_string(core.log().LastTerm()) +
            " commit=" + std::to_string(core.commit_index());
  }
  sim_->Trace(line);
  if (event.kind == raft::Event::Kind::kBecameLeader) ++sim_->result_.leaders_elected;
}

void Simulator::NodeLink::Record(const std::string& statement) {
  sim_->Trace("node " + std::to_string(id_) + " says: " + statement);
}

void Simulator::NodeLink::OnReady(const raft::Ready& ready) {
  if (Dead()) return;
  sim_->checker_.OnLogChanged(id_, ready);
  grants_vote_ = std::any_of(ready.messages_after_persist.begin(),
                             ready.messages_after_persist.end(), [](const raft::Message& m) {
                               const auto* reply = std::get_if<raft::RequestVoteReply>(&m.body);
                               return reply != nullptr && reply->granted;
                             });
}

void Simulator::NodeLink::OnPersisted(const raft::RaftNode& core) {
  if (Dead()) return;
  // Targeted fault: crash right after granting a vote, before the grant leaves. A restarted
  // voter must remember that vote (§5.2), or two leaders can win one term.
  if (grants_vote_ && sim_->fault_phase_ && sim_->options_.faults.crashes &&
      sim_->rng_.Chance(0.05)) {
    sim_->nodes_[id_].disk->PowerOff();
    return;
  }
  sim_->checker_.OnState(id_, core);  // extends the canonical history before we apply from it
}

void Simulator::NodeLink::OnApplied(const raft::Entry& entry) {
  if (!Dead()) sim_->checker_.OnApplied(id_, entry);
}

void Simulator::NodeLink::OnSnapshotInstalled(const raft::RaftNode& core,
                                              const raft::SnapshotMeta& installed) {
  if (Dead()) return;
  ++sim_->result_.snapshots_installed;
  sim_->checker_.OnSnapshotInstalled(id_, installed.index, core.log().LastIndex());
}

// ---- nodes ----

bool Simulator::CrashHook(SimDisk::Op op, SimDisk::Risk risk) {
  if (!fault_phase_ || !options_.faults.crashes) return false;
  // Renames, deletions and directory syncs mark the steps of a snapshot and of a log compaction
  // (written, renamed, log cut): crash between them often enough to try every step.
  if (op == SimDisk::Op::kRename || op == SimDisk::Op::kDelete || op == SimDisk::Op::kSyncDir) {
    return rng_.Chance(0.02);
  }
  // Rare in general; more often where a crash can tear what was written, and most often inside
  // the window between a log truncation and its sync, where the worst torn states live.
  switch (risk) {
    case SimDisk::Risk::kNone:
      return rng_.Chance(0.0001);
    case SimDisk::Risk::kUnsynced:
      return rng_.Chance(0.003);
    case SimDisk::Risk::kTruncation:
      return rng_.Chance(0.25);
  }
  return false;
}

void Simulator::StartNode(NodeId id) {
  Node& node = nodes_[id];
  node::ReplicaOptions options;
  options.raft = base_config_;
  options.raft.id = id;
  options.dir = "/sim/node" + std::to_string(id);
  options.max_sessions = max_sessions_;
  options.session_idle_timeout = std::chrono::seconds(1);
  options.snapshot_entries = snapshot_entries_;
  options.snapshot_keep_entries = snapshot_keep_entries_;
  // Written at once, reported up to a few turns later: the node takes turns (and may crash, or
  // install a leader's snapshot) while a snapshot is being written, as the server's forked
  // writer lets it.
  options.snapshot_worker = std::make_shared<node::InlineSnapshotWorker>(
      [this] { return static_cast<int>(snapshot_worker_rng_.Between(0, 4)); });
  options.clock = [this, id] { return LocalNow(id); };
  options.on_fatal = [this, id](const absl::Status& status) {
    // After the power went mid-turn, the disk ignores writes: what the node then reads back is
    // not its fault, and it is dead anyway.
    if (nodes_[id].disk->powered_off()) return;
    Fail("node " + std::to_string(id) + " failed: " + std::string(status.message()));
  };
  NodeLink* link = node.link.get();
  auto opened = node::Replica::Open(std::move(options), node.disk.get(), link, link, link,
                                    LocalNow(id), rng_.Next());
  if (!opened.ok()) {
    Fail("node " + std::to_string(id) +
         " failed to start: " + std::string(opened.status().message()));
    return;
  }
  node.replica = std::move(*opened);
  node.paused = false;
  ++node.incarnation;
  node.scheduled_tick = INT64_MAX;
  const raft::RaftNode& core = node.replica->core();
  std::vector<raft::Entry> log;
  for (LogIndex i = core.log().FirstIndex(); i <= core.log().LastIndex(); ++i) {
    log.push_back(core.log().At(i));
  }
  checker_.OnRestart(id, core.log().BaseIndex(), log);
  Trace("start " + std::to_string(id) + " term=" + std::to_string(core.term()) +
        " log=" + std::to_string(log.size()) + " commit=" + std::to_string(core.commit_index()));
  AfterNodeEvent(id);
}

bool Simulator::Rebuilding(NodeId id) const {
  const Node& node = nodes_[id];
  return node.replica ? node.replica->core().rebuilding() : node.rebuilding;
}

void Simulator::RestartNode(NodeId id) {
  Node& node = nodes_[id];
  // Now and then a node comes back without its disk, and the operator rebuilds it: only while
  // every other node is whole (the rule README and docs/file-formats.md give operators), and in
  // clusters of three or more (two whole nodes of three are still a majority).
  if (!node.rebuild_pending && options_.faults.crashes && options_.nodes >= 3 &&
      rebuild_rng_.Chance(0.05)) {
    bool others_whole = true;
    for (NodeId other = 0; other < options_.nodes; ++other) {
      if (other != id && (Rebuilding(other) || nodes_[other].rebuild_pending)) others_whole = false;
    }
    // A node that never saved metadata.txt has acknowledged nothing: nothing to rebuild (and
    // --rebuild refuses it, rightly: it must keep a term it does not know).
    const bool has_run =
        node.disk->FileSize("/sim/node" + std::to_string(id) + "/metadata.txt").ok();
    node.rebuild_pending = others_whole && has_run;
  }
  if (node.rebuild_pending) {
    const std::string dir = "/sim/node" + std::to_string(id);
    absl::StatusOr<std::string> rebuilt =
        node::RebuildNodeDir(node.disk.get(), dir, options_.nodes);
    if (node.disk->powered_off()) {
      // The power went in the middle: the operator runs it again at the next start.
      node.disk->Crash(SimDisk::CrashKind::kPowerLoss, rng_);
      Trace("crash " + std::to_string(id) + " during its rebuild (power loss)");
      Schedule(now_ + rng_.Between(10, 3000) * kMs, Restart{id});
      return;
    }
    if (!rebuilt.ok()) {
      Fail("node " + std::to_string(id) +
           " could not be rebuilt: " + std::string(rebuilt.status().message()));
      return;
    }
    node.rebuild_pending = false;
    node.rebuilding = true;
    ++result_.rebuilds;
    Trace("rebuild " + std::to_string(id) + ": " + *rebuilt);
  }
  StartNode(id);
}

void Simulator::CrashNode(NodeId id, const char* why) {
  Node& node = nodes_[id];
  // Power off first, so that nothing the dying node does from here reaches the disk.
  node.disk->PowerOff();
  node.replica.reset();  // its waiting clients time out: outcome unknown
  const auto kind =
      rng_.Chance(0.5) ? SimDisk::CrashKind::kPowerLoss : SimDisk::CrashKind::kProcess;
  node.disk->Crash(kind, rng_);
  // What its disk says (an end of the rebuild known only in memory is gone with the crash).
  absl::StatusOr<raft::HardState> saved =
      storage::LoadMetadata("/sim/node" + std::to_string(id), node.disk.get());
  node.rebuilding = !saved.ok() || saved->rebuilt_at_term > 0;
  node.paused = false;
  node.scheduled_tick = INT64_MAX;
  checker_.OnLeaseWindow(id, std::nullopt, now_);
  Trace(std::string("crash ") + std::to_string(id) + " " + why +
        (kind == SimDisk::CrashKind::kPowerLoss ? " (power loss)" : " (process killed)"));
  Schedule(now_ + rng_.Between(10, 3000) * kMs, Restart{id});
}

void Simulator::SendMessages(const std::vector<raft::Message>& messages) {
  for (const raft::Message& message : messages) {
    for (int64_t delay : network_.Route(message.from, message.to, rng_)) {
      Schedule(now_ + delay, Deliver{message});
    }
  }
}

void Simulator::AfterNodeEvent(NodeId id) {
  Node& node = nodes_[id];
  if (!node.replica) return;
  node.replica->Process(LocalNow(id));
  if (node.disk->powered_off()) return CrashNode(id, "mid-turn");
  if (node.replica->failed()) return;  // Fail() has recorded why
  const node::Replica& replica = *node.replica;
  checker_.OnState(id, replica.core());
  std::optional<std::pair<int64_t, int64_t>> window;
  if (std::optional<raft::LeaseWindow> lease = replica.published_window()) {
    window = {node.clock.RealWhenLocalReaches(lease->from),
              node.clock.RealWhenLocalReaches(lease->until)};
  }
  checker_.OnLeaseWindow(id, window, now_);
  const int64_t deadline = node.clock.RealWhenLocalReaches(replica.NextWake());
  const int64_t tick_at = std::max(now_ + 1, std::min(deadline, now_ + 100 * kMs));
  if (tick_at < node.scheduled_tick) {
    node.scheduled_tick = tick_at;
    Schedule(tick_at, TickNode{id, node.incarnation});
  }
}

node::ClientCallback Simulator::ReplyTo(NodeId id, const ClientRequest& request) {
  return [this, id, client = request.client, attempt = request.attempt,
          incarnation = nodes_[id].incarnation](const node::ClientResult& result) {
    const Node& node = nodes_[id];
    if (node.incarnation != incarnation || node.disk->powered_off()) return;  // died first
    using Kind = node::ClientResult::Kind;
    ReplyKind kind = ReplyKind::kRejected;
    if (result.kind == Kind::kOk) {
      kind = ReplyKind::kOk;
    } else if (result.kind == Kind::kUnknown) {
      kind = ReplyKind::kUnknown;
    } else if (result.reason == node::ClientResult::Reason::kNotLeader) {
      kind = ReplyKind::kNotLeader;
    } else if (result.reason == node::ClientResult::Reason::kSessionExpired) {
      kind = ReplyKind::kSessionExpired;
    } else if (result.reason == node::ClientResult::Reason::kTooManySessions) {
      kind = ReplyKind::kTooManySessions;
    } else if (result.reason == node::ClientResult::Reason::kInvalidArgument) {
      Fail("client " + std::to_string(client) + " refused as invalid: " + result.error);
    }
    std::optional<std::string> value;
    if (result.value) value = result.value->value;
    Reply(
        ClientReply{client, attempt, kind, std::move(value), result.leader_hint, result.client_id});
  };
}

void Simulator::HandleRequest(NodeId id, const ClientRequest& request) {
  node::Replica& replica = *nodes_[id].replica;
  const TimePoint local_now = LocalNow(id);
  // Answer before the client gives up on this attempt, as the server does for its RPC deadline.
  const TimePoint answer_by = local_now + std::chrono::milliseconds(400);
  node::ClientCallback done = ReplyTo(id, request);
  if (request.is_open) {
    replica.OpenSession(std::move(done), answer_by, local_now);
  } else if (!request.is_set) {
    // The server's order: the fast path on the published lease window, else the driver's path.
    if (!replica.TryLeaseRead(request.key, done)) {
      replica.Get(request.key, std::move(done), answer_by, local_now);
    }
  } else {
    replica.Set(kv::SetCommand{request.key, request.value, request.session, request.sequence},
                std::move(done), answer_by, local_now);
  }
  AfterNodeEvent(id);
}

void Simulator::Reply(ClientReply reply) {
  if (fault_phase_ && options_.faults.loss && rng_.Chance(0.02)) return;  // reply lost
  Schedule(now_ + rng_.Between(100'000, 2 * kMs), ReplyArrives{std::move(reply)});
}

}  // namespace raftkv::sim

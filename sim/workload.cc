// Simulated clients: each runs one operation at a time (GET or SET of a unique value on a small
// keyspace), follows leader hints, retries until it gets an answer, and reuses the sequence
// number when it retries a SET, so the state machine applies it once. A client opens a session
// (OPEN_SESSION) before its first SET and again whenever the cluster has dropped it; now and then
// it pauses long enough to lose it. Every operation lands in the history that the
// linearizability checker reads (session opens are not operations on keys, and are not in it).
#include "sim/simulator.h"

namespace raftkv::sim {
namespace {
constexpr int64_t kRequestTimeout = 500 * kMs;
}  // namespace

void Simulator::StartWorkload() {
  for (size_t c = 0; c < clients_.size(); ++c) {
    clients_[c].leader_guess = static_cast<NodeId>(rng_.Below(options_.nodes));
    Schedule(rng_.Between(0, 50 * kMs), ClientWake{static_cast<int>(c), 0, false});
  }
}

bool Simulator::ClientsIdle() const {
  for (const Client& client : clients_) {
    if (client.current) return false;
  }
  return true;
}

void Simulator::ClientStep(const ClientWake& wake) {
  Client& client = clients_[wake.client];
  if (wake.attempt == 0) {
    if (client.current || !workload_open_) return;
    Operation op;
    op.id = next_op_id_++;
    if (now_ >= phase_ends_) {
      phase_read_fraction_ = rng_.Chance(0.3) ? 1.0 : options_.read_fraction;
      phase_ends_ = now_ + rng_.Between(500, 5000) * kMs;
    }
    op.is_set = !rng_.Chance(phase_read_fraction_);
    op.key = "k" + std::to_string(rng_.Below(options_.keys));
    if (op.is_set) op.value = "c" + std::to_string(wake.client) + "-" + std::to_string(op.id);
    op.invoke = now_;
    client.current = op;
    SendAttempt(wake.client);
    return;
  }
  if (!client.current || wake.attempt != client.attempt) return;  // answered meanwhile
  if (wake.timed_out) {
    // No answer: the request may have been proposed and may still commit.
    if (client.current->is_set && !client.opening) client.current->maybe_applied = true;
    client.leader_guess = (client.leader_guess + 1) % options_.nodes;
  }
  SendAttempt(wake.client);
}

void Simulator::SendAttempt(int c) {
  Client& client = clients_[c];
  Operation& op = *client.current;
  const uint64_t attempt = ++client.attempt;
  // A SET needs a session; it takes its sequence number once it has one, and keeps it.
  client.opening = op.is_set && client.session == 0;
  if (op.is_set && !client.opening && op.sequence == 0) op.sequence = client.next_sequence++;
  ClientRequest request{c,      attempt,  op.is_set,      client.opening,
                        op.key, op.value, client.session, op.sequence};
  const bool lost = fault_phase_ && options_.faults.loss && rng_.Chance(0.02);
  if (!lost) {
    Schedule(now_ + rng_.Between(100'000, 2 * kMs),
             RequestArrives{client.leader_guess, std::move(request)});
  }
  Schedule(now_ + kRequestTimeout, ClientWake{c, attempt, true});
}

void Simulator::HandleReply(const ClientReply& reply) {
  Client& client = clients_[reply.client];
  if (!client.current || reply.attempt != client.attempt) return;  // stale answer
  switch (reply.kind) {
    case ReplyKind::kOk:
      if (client.opening) {
        ++result_.sessions_opened;
        client.session = reply.opened_session;
        client.next_sequence = 1;
        break;  // now the SET itself
      }
      FinishOperation(reply.client, check::Outcome::kOk, reply.value);
      return;
    case ReplyKind::kSessionExpired:
      ++result_.sessions_expired;
      client.session = 0;
      if (client.current->maybe_applied) {
        // An earlier attempt may have been applied, and the cluster can no longer tell.
        FinishOperation(reply.client, check::Outcome::kIndeterminate, std::nullopt);
        return;
      }
      client.current->sequence = 0;  // certainly never applied: again, in a new session
      break;
    case ReplyKind::kNotLeader:
      client.leader_guess = reply.leader_hint != kNoNode
                                ? reply.leader_hint
                                : (client.leader_guess + 1) % options_.nodes;
      break;
    case ReplyKind::kUnknown:
      if (client.current->is_set && !client.opening) client.current->maybe_applied = true;
      if (reply.leader_hint != kNoNode) client.leader_guess = reply.leader_hint;
      break;
    case ReplyKind::kTooManySessions:
      ++result_.sessions_refused;
      break;
    case ReplyKind::kRejected:
      break;  // e.g. a new leader still waiting out the old lease: ask it again shortly
  }
  const uint64_t attempt = ++client.attempt;  // the pending timeout no longer applies
  Schedule(now_ + rng_.Between(1 * kMs, 20 * kMs), ClientWake{reply.client, attempt, false});
}

void Simulator::FinishOperation(int c, check::Outcome outcome,
                                std::optional<std::string> read_value) {
  Client& client = clients_[c];
  const Operation& op = *client.current;
  check::Operation record;
  record.id = op.id;
  record.client = static_cast<uint32_t>(c);
  record.kind = op.is_set ? check::OpKind::kWrite : check::OpKind::kRead;
  record.key = op.key;
  record.value = op.is_set ? std::optional<std::string>(op.value) : std::move(read_value);
  record.invoke_ns = op.invoke;
  record.complete_ns = now_;
  record.outcome = outcome;
  history_.push_back(std::move(record));
  if (outcome == check::Outcome::kOk) {
    ++result_.ops_ok;
    if (!op.is_set) ++result_.reads_ok;
  } else if (outcome == check::Outcome::kFail) {
    ++result_.ops_failed;
  } else {
    ++result_.ops_indeterminate;
  }
  Trace("client " + std::to_string(c) + (op.is_set ? " set " : " get ") + op.key + " -> " +
        (outcome == check::Outcome::kOk ? "ok" : "unfinished"));
  client.current.reset();
  ++client.ops_done;
  // Now and then a pause past the session idle timeout (1 s), so that sessions get evicted.
  const int64_t pause = session_rng_.Chance(0.01) ? session_rng_.Between(1000, 3000) * kMs : 0;
  Schedule(now_ + pause + rng_.Between(0, 5 * kMs), ClientWake{c, 0, false});
}

}  // namespace raftkv::sim

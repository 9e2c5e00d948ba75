#include "raft/describe.h"

namespace raftkv::raft {
namespace {

std::string Ms(Duration d) {
  const int64_t micros = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (micros % 1000 == 0) return std::to_string(micros / 1000) + "ms";
  return std::to_string(micros / 1000) + "." + std::to_string(micros % 1000 / 100) + "ms";
}

std::string Entries(const std::vector<Entry>& entries, const PayloadFormatter& payload) {
  std::string out = "[";
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) out += ", ";
    out += Describe(entries[i], payload);
  }
  return out + "]";
}

std::string Node(NodeId id) { return id == kNoNode ? "none" : std::to_string(id); }

}  // namespace

std::string Describe(const Entry& entry, const PayloadFormatter& payload) {
  std::string out = std::to_string(entry.index) + "/" + std::to_string(entry.term) + " ";
  if (entry.type == EntryType::kNoop) return out + "NO-OP";
  return out + (payload ? payload(entry.data) : "cmd(" + std::to_string(entry.data.size()) + "B)");
}

std::string Describe(const Message& message, const PayloadFormatter& payload) {
  std::string out = std::to_string(message.from) + "->" + std::to_string(message.to) + " " +
                    MessageTypeName(message) + " term=" + std::to_string(message.term);
  if (const auto* vote = std::get_if<RequestVote>(&message.body)) {
    out +=
        " last=" + std::to_string(vote->last_log_index) + "/" + std::to_string(vote->last_log_term);
  } else if (const auto* reply = std::get_if<RequestVoteReply>(&message.body)) {
    out += reply->granted ? " granted" : " denied";
    if (reply->old_lease_remaining.count() > 0) {
      out += " old_lease=" + Ms(reply->old_lease_remaining);
    }
  } else if (const auto* append = std::get_if<AppendEntries>(&message.body)) {
    out += " prev=" + std::to_string(append->prev_log_index) + "/" +
           std::to_string(append->prev_log_term) +
           " commit=" + std::to_string(append->leader_commit) +
           " lease=" + Ms(append->lease_duration);
    if (!append->entries.empty()) out += " entries=" + Entries(append->entries, payload);
  } else if (const auto* ack = std::get_if<AppendEntriesReply>(&message.body)) {
    if (ack->success) {
      out += " ok match=" + std::to_string(ack->match_index);
    } else {
      out += " reject prev=" + std::to_string(ack->rejected_prev_index);
      if (ack->conflict_index != 0) {
        out += " conflict=" + std::to_string(ack->conflict_index) + "/" +
               std::to_string(ack->conflict_term);
      }
    }
  } else if (const auto* chunk = std::get_if<InstallSnapshot>(&message.body)) {
    out += " snapshot=" + std::to_string(chunk->snapshot.index) + "/" +
           std::to_string(chunk->snapshot.term) + " bytes=" + std::to_string(chunk->offset) + "+" +
           std::to_string(chunk->length) + "/" + std::to_string(chunk->snapshot.bytes) +
           (chunk->done ? " done" : "") + " lease=" + Ms(chunk->lease_duration);
  } else if (const auto* got = std::get_if<InstallSnapshotReply>(&message.body)) {
    out += " snapshot=" + std::to_string(got->snapshot_index) +
           " received=" + std::to_string(got->received);
    if (got->installed) out += " installed match=" + std::to_string(got->match_index);
  }
  return out;
}

std::string Describe(const Event& event) {
  const std::string term = " term=" + std::to_string(event.term);
  switch (event.kind) {
    case Event::Kind::kElectionTimeout:
      return "ElectionTimeout" + term;
    case Event::Kind::kBecameLeader:
      return "BecameLeader" + term;
    case Event::Kind::kWaitingForOldLease:
      return "WaitingForOldLease " + Ms(event.duration);
    case Event::Kind::kHeartbeatRound:
      return "HeartbeatRound" + term;
    case Event::Kind::kLeaseRenewalFailed:
      return "LeaseRenewalFailed" + term;
    case Event::Kind::kSteppedDown:
      return "SteppedDown" + term;
    case Event::Kind::kVoteGranted:
      return "VoteGranted to=" + Node(event.peer) + term;
    case Event::Kind::kVoteDenied:
      return "VoteDenied to=" + Node(event.peer) + term;
    case Event::Kind::kAppendAccepted:
      return "AppendAccepted from=" + Node(event.peer);
    case Event::Kind::kAppendRejected:
      return "AppendRejected from=" + Node(event.peer);
    case Event::Kind::kRebuildEnded:
      return "RebuildEnded" + term;
  }
  return "Event?";
}

std::string Describe(const Ready& ready, const PayloadFormatter& payload) {
  std::vector<std::string> parts;
  if (ready.hard_state) {
    parts.push_back("hard_state term=" + std::to_string(ready.hard_state->term) +
                    " vote=" + Node(ready.hard_state->voted_for));
  }
  if (ready.truncate_from) parts.push_back("truncate_from=" + std::to_string(*ready.truncate_from));
  if (!ready.entries.empty()) parts.push_back("entries=" + Entries(ready.entries, payload));
  if (!ready.committed_entries.empty()) {
    parts.push_back("committed=" + Entries(ready.committed_entries, payload));
  }
  if (!ready.messages.empty() || !ready.messages_after_persist.empty()) {
    parts.push_back(std::to_string(ready.messages.size()) + " messages, " +
                    std::to_string(ready.messages_after_persist.size()) + " after persist");
  }
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i > 0 ? "; " : "") + parts[i];
  return out.empty() ? "empty" : out;
}

}  // namespace raftkv::raft

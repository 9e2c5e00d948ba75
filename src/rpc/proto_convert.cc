#include "rpc/proto_convert.h"

#include "kv/command.h"

#include "raft/config.h"

#include <string>

namespace raftkv::rpc {
namespace {

int64_t Nanos(Duration d) { return d.count(); }
int64_t Nanos(TimePoint t) { return t.time_since_epoch().count(); }

absl::Status CheckPeer(const char* field, int32_t id, NodeId self, int cluster_size) {
  if (id < 0 || id >= cluster_size) {
    return absl::InvalidArgumentError(std::string(field) + " " + std::to_string(id) +
                                      " is not a node of this " + std::to_string(cluster_size) +
                                      "-node cluster: check every node's address list");
  }
  if (id == self) {
    return absl::InvalidArgumentError(std::string(field) + " " + std::to_string(id) +
                                      " is this node itself: two nodes share an id");
  }
  return absl::OkStatus();
}

absl::Status CheckReceiver(int32_t receiver, NodeId self) {
  if (receiver != self) {
    return absl::InvalidArgumentError("request meant for node " + std::to_string(receiver) +
                                      " reached node " + std::to_string(self) +
                                      ": the nodes' address lists disagree");
  }
  return absl::OkStatus();
}

}  // namespace

AppendEntriesRequest EncodeAppendEntries(const raft::Message& message) {
  const auto& body = std::get<raft::AppendEntries>(message.body);
  AppendEntriesRequest request;
  request.set_term(message.term);
  request.set_leader_id(message.from);
  request.set_receiver_id(message.to);
  request.set_prev_log_index(body.prev_log_index);
  request.set_prev_log_term(body.prev_log_term);
  request.mutable_entries()->Reserve(static_cast<int>(body.entries.size()));
  for (const raft::Entry& entry : body.entries) {
    LogEntry* out = request.add_entries();
    out->set_term(entry.term);
    out->set_index(entry.index);
    out->set_type(entry.type == raft::EntryType::kNoop ? LogEntry::NOOP : LogEntry::COMMAND);
    out->set_data(entry.data);
  }
  request.set_leader_commit(body.leader_commit);
  request.set_lease_duration_ns(Nanos(body.lease_duration));
  request.set_sent_at_ns(Nanos(body.sent_at));
  return request;
}

AppendEntriesResponse EncodeAppendEntriesReply(const raft::Message& message) {
  const auto& body = std::get<raft::AppendEntriesReply>(message.body);
  AppendEntriesResponse response;
  response.set_term(message.term);
  response.set_follower_id(message.from);
  response.set_success(body.success);
  response.set_match_index(body.match_index);
  response.set_rejected_prev_index(body.rejected_prev_index);
  response.set_conflict_term(body.conflict_term);
  response.set_conflict_index(body.conflict_index);
  response.set_echoed_sent_at_ns(Nanos(body.echoed_sent_at));
  return response;
}

RequestVoteRequest EncodeRequestVote(const raft::Message& message) {
  const auto& body = std::get<raft::RequestVote>(message.body);
  RequestVoteRequest request;
  request.set_term(message.term);
  request.set_candidate_id(message.from);
  request.set_receiver_id(message.to);
  request.set_last_log_index(body.last_log_index);
  request.set_last_log_term(body.last_log_term);
  return request;
}

RequestVoteResponse EncodeRequestVoteReply(const raft::Message& message) {
  const auto& body = std::get<raft::RequestVoteReply>(message.body);
  RequestVoteResponse response;
  response.set_term(message.term);
  response.set_voter_id(message.from);
  response.set_vote_granted(body.granted);
  response.set_old_lease_remaining_ns(Nanos(body.old_lease_remaining));
  return response;
}

InstallSnapshotRequest EncodeInstallSnapshot(const raft::Message& message) {
  const auto& body = std::get<raft::InstallSnapshot>(message.body);
  InstallSnapshotRequest request;
  request.set_term(message.term);
  request.set_leader_id(message.from);
  request.set_receiver_id(message.to);
  request.set_snapshot_index(body.snapshot.index);
  request.set_snapshot_term(body.snapshot.term);
  request.set_snapshot_nodes(body.snapshot.cluster_size);
  request.set_snapshot_bytes(body.snapshot.bytes);
  request.set_offset(body.offset);
  request.set_data(body.data);
  request.set_done(body.done);
  request.set_lease_duration_ns(Nanos(body.lease_duration));
  request.set_sent_at_ns(Nanos(body.sent_at));
  return request;
}

InstallSnapshotResponse EncodeInstallSnapshotReply(const raft::Message& message) {
  const auto& body = std::get<raft::InstallSnapshotReply>(message.body);
  InstallSnapshotResponse response;
  response.set_term(message.term);
  response.set_follower_id(message.from);
  response.set_receiver_id(message.to);
  response.set_snapshot_index(body.snapshot_index);
  response.set_received(body.received);
  response.set_installed(body.installed);
  response.set_match_index(body.match_index);
  response.set_echoed_sent_at_ns(Nanos(body.echoed_sent_at));
  return response;
}

// Terms and durations no correct peer sends (raft/config.h) are refused, naming the field.
absl::Status CheckTerm(const char* field, uint64_t term) {
  if (term <= raft::kMaxTerm) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(field) + " " + std::to_string(term) +
                                    " is beyond any term a cluster reaches (" +
                                    std::to_string(raft::kMaxTerm) + ")");
}
absl::Status CheckDuration(const char* field, int64_t nanos) {
  if (nanos >= 0 && nanos <= raft::kMaxDuration.count()) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(field) + " " + std::to_string(nanos) +
                                    " is outside 0.." + std::to_string(raft::kMaxDuration.count()) +
                                    " (no node's timing settings allow more)");
}

absl::StatusOr<raft::Message> Decode(const AppendEntriesRequest& request, NodeId self,
                                     int cluster_size) {
  if (absl::Status s = CheckPeer("leader_id", request.leader_id(), self, cluster_size); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckReceiver(request.receiver_id(), self); !s.ok()) return s;
  if (absl::Status s = CheckTerm("term", request.term()); !s.ok()) return s;
  if (absl::Status s = CheckTerm("prev_log_term", request.prev_log_term()); !s.ok()) return s;
  if (absl::Status s = CheckDuration("lease_duration_ns", request.lease_duration_ns()); !s.ok()) {
    return s;
  }
  raft::AppendEntries body;
  body.prev_log_index = request.prev_log_index();
  body.prev_log_term = request.prev_log_term();
  body.leader_commit = request.leader_commit();
  body.lease_duration = Duration(request.lease_duration_ns());
  body.sent_at = TimePoint(Duration(request.sent_at_ns()));
  body.entries.reserve(static_cast<size_t>(request.entries_size()));
  LogIndex expected = request.prev_log_index() + 1;
  Term previous_term = request.prev_log_term();
  for (const LogEntry& entry : request.entries()) {
    if (entry.index() != expected || entry.term() < previous_term ||
        entry.term() > request.term()) {
      return absl::InvalidArgumentError(
          "entries must follow prev_log_index contiguously with non-decreasing terms no newer "
          "than the request's term (entry index " +
          std::to_string(entry.index()) + ", expected " + std::to_string(expected) + ")");
    }
    // A payload this node could not apply once committed would stop it then (a replica cannot
    // skip a committed entry): refuse it now, while refusing costs nothing.
    if (entry.type() != LogEntry::NOOP && entry.type() != LogEntry::COMMAND) {
      return absl::InvalidArgumentError("entry " + std::to_string(entry.index()) +
                                        ": unknown entry type " + std::to_string(entry.type()));
    }
    if (entry.type() == LogEntry::NOOP ? !entry.data().empty()
                                       : !kv::DecodeCommand(entry.data()).ok()) {
      return absl::InvalidArgumentError(
          "entry " + std::to_string(entry.index()) +
          ": the payload is not a well-formed command (SET or OPEN-SESSION) for its type");
    }
    raft::Entry out;
    out.term = entry.term();
    out.index = entry.index();
    out.type = entry.type() == LogEntry::NOOP ? raft::EntryType::kNoop : raft::EntryType::kCommand;
    out.data = entry.data();
    body.entries.push_back(std::move(out));
    previous_term = entry.term();
    ++expected;
  }
  return raft::Message{request.leader_id(), self, request.term(), std::move(body)};
}

absl::StatusOr<raft::Message> Decode(const AppendEntriesResponse& response, NodeId self,
                                     int cluster_size) {
  if (absl::Status s = CheckPeer("follower_id", response.follower_id(), self, cluster_size);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckTerm("term", response.term()); !s.ok()) return s;
  if (absl::Status s = CheckTerm("conflict_term", response.conflict_term()); !s.ok()) return s;
  raft::AppendEntriesReply body;
  body.success = response.success();
  body.match_index = response.match_index();
  body.rejected_prev_index = response.rejected_prev_index();
  body.conflict_term = response.conflict_term();
  body.conflict_index = response.conflict_index();
  body.echoed_sent_at = TimePoint(Duration(response.echoed_sent_at_ns()));
  return raft::Message{response.follower_id(), self, response.term(), body};
}

absl::StatusOr<raft::Message> Decode(const RequestVoteRequest& request, NodeId self,
                                     int cluster_size) {
  if (absl::Status s = CheckPeer("candidate_id", request.candidate_id(), self, cluster_size);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckReceiver(request.receiver_id(), self); !s.ok()) return s;
  if (absl::Status s = CheckTerm("term", request.term()); !s.ok()) return s;
  if (absl::Status s = CheckTerm("last_log_term", request.last_log_term()); !s.ok()) return s;
  raft::RequestVote body{request.last_log_index(), request.last_log_term()};
  return raft::Message{request.candidate_id(), self, request.term(), body};
}

absl::StatusOr<raft::Message> Decode(const RequestVoteResponse& response, NodeId self,
                                     int cluster_size) {
  if (absl::Status s = CheckPeer("voter_id", response.voter_id(), self, cluster_size); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckTerm("term", response.term()); !s.ok()) return s;
  if (absl::Status s = CheckDuration("old_lease_remaining_ns", response.old_lease_remaining_ns());
      !s.ok()) {
    return s;
  }
  raft::RequestVoteReply body{response.vote_granted(), Duration(response.old_lease_remaining_ns())};
  return raft::Message{response.voter_id(), self, response.term(), body};
}

absl::Status CheckIndex(const char* field, uint64_t index) {
  if (index <= raft::kMaxLogIndex) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(field) + " " + std::to_string(index) +
                                    " is beyond any log index a cluster reaches (" +
                                    std::to_string(raft::kMaxLogIndex) + ")");
}

absl::StatusOr<raft::Message> Decode(const InstallSnapshotRequest& request, NodeId self,
                                     int cluster_size) {
  if (absl::Status s = CheckPeer("leader_id", request.leader_id(), self, cluster_size); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckReceiver(request.receiver_id(), self); !s.ok()) return s;
  if (absl::Status s = CheckTerm("term", request.term()); !s.ok()) return s;
  if (absl::Status s = CheckTerm("snapshot_term", request.snapshot_term()); !s.ok()) return s;
  if (absl::Status s = CheckIndex("snapshot_index", request.snapshot_index()); !s.ok()) return s;
  if (absl::Status s = CheckDuration("lease_duration_ns", request.lease_duration_ns()); !s.ok()) {
    return s;
  }
  const uint64_t bytes = request.snapshot_bytes();
  if (request.offset() > bytes || request.data().size() > bytes - request.offset() ||
      request.done() !=
          (!request.data().empty() && request.offset() + request.data().size() == bytes)) {
    return absl::InvalidArgumentError("the chunk [" + std::to_string(request.offset()) + ", +" +
                                      std::to_string(request.data().size()) +
                                      ") does not fit a snapshot of " + std::to_string(bytes) +
                                      " bytes, or `done` does not say whether it is the last");
  }
  if (request.snapshot_nodes() != cluster_size) {
    return absl::InvalidArgumentError("the snapshot was taken in a cluster of " +
                                      std::to_string(request.snapshot_nodes()) +
                                      " nodes, this one has " + std::to_string(cluster_size));
  }
  raft::InstallSnapshot body;
  body.snapshot = raft::SnapshotMeta{request.snapshot_index(), request.snapshot_term(),
                                     request.snapshot_nodes(), bytes};
  body.offset = request.offset();
  body.length = request.data().size();
  body.data = request.data();
  body.done = request.done();
  body.lease_duration = Duration(request.lease_duration_ns());
  body.sent_at = TimePoint(Duration(request.sent_at_ns()));
  return raft::Message{request.leader_id(), self, request.term(), std::move(body)};
}

absl::StatusOr<raft::Message> Decode(const InstallSnapshotResponse& response, NodeId self,
                                     int cluster_size) {
  if (absl::Status s = CheckPeer("follower_id", response.follower_id(), self, cluster_size);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckReceiver(response.receiver_id(), self); !s.ok()) return s;
  if (absl::Status s = CheckTerm("term", response.term()); !s.ok()) return s;
  if (absl::Status s = CheckIndex("snapshot_index", response.snapshot_index()); !s.ok()) return s;
  if (absl::Status s = CheckIndex("match_index", response.match_index()); !s.ok()) return s;
  raft::InstallSnapshotReply body;
  body.snapshot_index = response.snapshot_index();
  body.received = response.received();
  body.installed = response.installed();
  body.match_index = response.match_index();
  body.echoed_sent_at = TimePoint(Duration(response.echoed_sent_at_ns()));
  return raft::Message{response.follower_id(), self, response.term(), body};
}

}  // namespace raftkv::rpc

// The consensus core's own message and log-entry types. They are plain structs: the mapping to
// protobuf lives in src/rpc/, so the core depends on nothing but the standard library.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "common/types.h"

namespace raftkv::raft {

enum class EntryType : uint8_t {
  kNoop = 0,     // appended by every new leader (Raft §8; needed before lease reads, §6.4)
  kCommand = 1,  // an opaque state-machine command (the KV layer encodes SET in `data`)
};

struct Entry {
  Term term = 0;
  LogIndex index = 0;
  EntryType type = EntryType::kNoop;
  std::string data;

  friend bool operator==(const Entry&, const Entry&) = default;
};

// RequestVote RPC arguments (Figure 2).
struct RequestVote {
  LogIndex last_log_index = 0;
  Term last_log_term = 0;
};

// RequestVote reply. Granted or not, it carries the longest remaining leader lease the voter
// knows of (its own too, if it was leader), measured on the voter's clock at send time.
struct RequestVoteReply {
  bool granted = false;
  Duration old_lease_remaining{0};
};

// AppendEntries RPC arguments (Figure 2) plus the lease the leader asks for, and the leader's
// own send time, which the follower echoes so the leader can date its lease from the send.
struct AppendEntries {
  LogIndex prev_log_index = 0;
  Term prev_log_term = 0;
  std::vector<Entry> entries;
  LogIndex leader_commit = 0;
  Duration lease_duration{0};
  TimePoint sent_at{};  // leader's clock; opaque to the follower
};

// AppendEntries reply. On success `match_index` is the last index known to match the leader.
// On rejection `conflict_term`/`conflict_index` let the leader skip a whole term per round trip
// instead of one entry (Raft §5.3, "the protocol can be optimized").
struct AppendEntriesReply {
  bool success = false;
  LogIndex match_index = 0;
  LogIndex rejected_prev_index = 0;  // the prev_log_index of the request being rejected
  Term conflict_term = 0;            // 0: follower's log is shorter than prev_log_index
  LogIndex conflict_index = 0;
  TimePoint echoed_sent_at{};
};

using MessageBody = std::variant<RequestVote, RequestVoteReply, AppendEntries, AppendEntriesReply>;

struct Message {
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;  // sender's current term (§5.1: every RPC carries it)
  MessageBody body;
};

const char* MessageTypeName(const Message& message);

}  // namespace raftkv::raft

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
  // Refused because no correct leader could have sent the request (an entry conflicting with a
  // committed one, §5.4.3, or a second leader in a term, §5.2): only a forged or broken peer does.
  // Not sent on the wire; a unary AppendEntries call is answered INVALID_ARGUMENT instead of with
  // this reply.
  bool impossible = false;
};

// What a snapshot covers: every entry up to and including (index, term), in a cluster of
// `cluster_size` nodes (the membership it was taken with); `bytes` is the size of its file.
struct SnapshotMeta {
  LogIndex index = 0;
  Term term = 0;
  int cluster_size = 0;
  uint64_t bytes = 0;

  friend bool operator==(const SnapshotMeta&, const SnapshotMeta&) = default;
};

// InstallSnapshot RPC (Raft §7, Figure 13): one chunk of the leader's snapshot file, sent when the
// entries a follower needs next were compacted away. Chunks leave in order with a few in flight;
// `offset` says where this one goes, `done` that it is the last. The core never holds the file:
// the leader's core sends `length` and leaves `data` empty, and its driver fills `data` with bytes
// [offset, offset + length) of the snapshot file `snapshot` describes before the message leaves.
// Like AppendEntries, it carries the lease the leader asks for and its send time (design.md §4).
struct InstallSnapshot {
  SnapshotMeta snapshot;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string data;
  bool done = false;
  Duration lease_duration{0};
  TimePoint sent_at{};
};

// InstallSnapshot reply: how many bytes of `snapshot_index`'s file the follower holds (from
// offset 0, durably), and, once the last chunk is in and the snapshot installed, the index up to
// which its log now matches the leader's.
struct InstallSnapshotReply {
  LogIndex snapshot_index = 0;
  uint64_t received = 0;
  bool installed = false;
  LogIndex match_index = 0;
  TimePoint echoed_sent_at{};
};

using MessageBody = std::variant<RequestVote, RequestVoteReply, AppendEntries, AppendEntriesReply,
                                 InstallSnapshot, InstallSnapshotReply>;

struct Message {
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;  // sender's current term (§5.1: every RPC carries it)
  MessageBody body;
};

const char* MessageTypeName(const Message& message);

}  // namespace raftkv::raft

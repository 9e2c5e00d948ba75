// The state-machine commands carried in Raft log entries (the core treats them as opaque bytes):
//
//   SET key value       with the client session that makes retries exactly-once (Raft thesis
//                       §6.3);
//   OPEN-SESSION        registers a client session, whose id is the entry's log index (thesis
//                       §6.3: the id comes from the log, so no two clients can pick the same one).
//                       It carries what decides its effect — the log time and the session
//                       table's capacity and idle timeout — so every replica, and every replay of
//                       the log, applies it identically whatever its own config says.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "absl/status/statusor.h"

namespace raftkv::kv {

struct SetCommand {
  std::string key;
  std::string value;
  uint64_t client_id = 0;  // 0: no session, never deduplicated
  uint64_t sequence = 0;   // per client_id, from 1; a retry reuses it
  // Written before sessions were opened by OPEN-SESSION entries (tag 'S', logs.txt's "session="
  // form): replayed by the rules of its time (kv_state_machine.h). Never proposed any more.
  bool legacy_session = false;

  friend bool operator==(const SetCommand&, const SetCommand&) = default;
};

struct OpenSessionCommand {
  // Log time in milliseconds (kv_state_machine.h; the proposing node derives it from the last one
  // it applied and its own monotonic clock). Only session expiry reads it, never safety.
  uint64_t time_ms = 0;
  uint64_t max_sessions = 0;  // the session table's capacity; at least 1
  uint64_t idle_ms = 0;       // a session unused this long may be evicted to make room

  friend bool operator==(const OpenSessionCommand&, const OpenSessionCommand&) = default;
};

using Command = std::variant<SetCommand, OpenSessionCommand>;

// Binary encoding for a log entry's payload (cost: docs/benchmarks.md, Design figures): a tag byte
// ('C' for a SET, 'S' for a SET written before OPEN-SESSION existed, 'O'), then length- or
// varint-prefixed fields.
std::string EncodeSet(const SetCommand& command);
std::string EncodeOpenSession(const OpenSessionCommand& command);
// Refuses anything that is not exactly one well-formed command (DataLoss).
absl::StatusOr<Command> DecodeCommand(const std::string& payload);

}  // namespace raftkv::kv

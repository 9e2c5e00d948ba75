// The state-machine command carried in a Raft log entry: SET key value, with the client session
// that makes retries exactly-once (Raft thesis §6.3). The core treats it as opaque bytes.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace raftkv::kv {

struct SetCommand {
  std::string key;
  std::string value;
  uint64_t client_id = 0;  // 0: no session, never deduplicated
  uint64_t sequence = 0;   // per client_id, from 1; a retry reuses it

  friend bool operator==(const SetCommand&, const SetCommand&) = default;
};

// Binary encoding for the log entry's payload: 'S', then four length/varint-prefixed fields.
std::string EncodeSet(const SetCommand& command);
absl::StatusOr<SetCommand> DecodeSet(const std::string& payload);

}  // namespace raftkv::kv

#include "kv/command.h"

namespace raftkv::kv {
namespace {

void PutVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

bool GetVarint(const std::string& in, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && *pos < in.size(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in[(*pos)++]);
    *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

bool GetBytes(const std::string& in, size_t* pos, std::string* out) {
  uint64_t length = 0;
  if (!GetVarint(in, pos, &length) || length > in.size() - *pos) return false;
  out->assign(in, *pos, length);
  *pos += length;
  return true;
}

}  // namespace

std::string EncodeSet(const SetCommand& command) {
  // 'S' is the tag SETs had before OPEN-SESSION existed, kept for them; binaries of that time
  // refuse 'C' loudly rather than apply it by their rules.
  std::string out = command.legacy_session && command.client_id != 0 ? "S" : "C";
  out.reserve(command.key.size() + command.value.size() + 24);
  PutVarint(command.key.size(), &out);
  out += command.key;
  PutVarint(command.value.size(), &out);
  out += command.value;
  PutVarint(command.client_id, &out);
  PutVarint(command.sequence, &out);
  return out;
}

std::string EncodeOpenSession(const OpenSessionCommand& command) {
  std::string out = "O";
  PutVarint(command.time_ms, &out);
  PutVarint(command.max_sessions, &out);
  PutVarint(command.idle_ms, &out);
  return out;
}

absl::StatusOr<Command> DecodeCommand(const std::string& payload) {
  size_t pos = 1;
  if (!payload.empty() && (payload[0] == 'C' || payload[0] == 'S')) {
    SetCommand command;
    if (GetBytes(payload, &pos, &command.key) && GetBytes(payload, &pos, &command.value) &&
        GetVarint(payload, &pos, &command.client_id) &&
        GetVarint(payload, &pos, &command.sequence) && pos == payload.size()) {
      // Without a session the two tags mean the same.
      command.legacy_session = payload[0] == 'S' && command.client_id != 0;
      return command;
    }
  } else if (!payload.empty() && payload[0] == 'O') {
    OpenSessionCommand command;
    if (GetVarint(payload, &pos, &command.time_ms) &&
        GetVarint(payload, &pos, &command.max_sessions) &&
        GetVarint(payload, &pos, &command.idle_ms) && pos == payload.size()) {
      return command;
    }
  }
  return absl::DataLossError(
      "log entry payload is not a well-formed command (SET or OPEN-SESSION)");
}

}  // namespace raftkv::kv

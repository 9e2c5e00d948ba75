#include "kv/command_text.h"

#include <vector>

#include "common/escape.h"

namespace raftkv::kv {
namespace {

// Parses "<name><number>:<number>" (name includes its '=').
bool ParseSessionField(std::string_view field, std::string_view name, uint64_t* client_id,
                       uint64_t* sequence) {
  if (field.substr(0, name.size()) != name) return false;
  field.remove_prefix(name.size());
  const size_t colon = field.find(':');
  return colon != std::string_view::npos && ParseNumber(field.substr(0, colon), client_id) &&
         ParseNumber(field.substr(colon + 1), sequence) && *client_id != 0;
}

// Parses "<name><number>".
bool ParseNamedNumber(std::string_view field, std::string_view name, uint64_t* out) {
  return field.substr(0, name.size()) == name && ParseNumber(field.substr(name.size()), out);
}

}  // namespace

absl::StatusOr<std::string> FormatCommandText(std::string_view payload) {
  absl::StatusOr<Command> command = DecodeCommand(std::string(payload));
  if (!command.ok()) return command.status();
  if (const auto* open = std::get_if<OpenSessionCommand>(&*command)) {
    return "OPEN-SESSION time=" + std::to_string(open->time_ms) +
           " max=" + std::to_string(open->max_sessions) + " idle=" + std::to_string(open->idle_ms);
  }
  const auto& set = std::get<SetCommand>(*command);
  std::string text = "SET " + Escape(set.key) + " " + Escape(set.value);
  if (set.client_id != 0) {
    text += set.legacy_session ? " session=" : " client=";
    text += std::to_string(set.client_id) + ":" + std::to_string(set.sequence);
  }
  return text;
}

absl::StatusOr<std::string> ParseCommandText(std::string_view text) {
  const std::vector<std::string_view> fields = Split(text, ' ');
  if (fields[0] == "OPEN-SESSION") {
    OpenSessionCommand open;
    if (fields.size() != 4 || !ParseNamedNumber(fields[1], "time=", &open.time_ms) ||
        !ParseNamedNumber(fields[2], "max=", &open.max_sessions) ||
        !ParseNamedNumber(fields[3], "idle=", &open.idle_ms)) {
      return absl::InvalidArgumentError(
          "expected \"OPEN-SESSION time=<ms> max=<sessions> idle=<ms> <term>\"");
    }
    return EncodeOpenSession(open);
  }
  if (fields[0] != "SET" || (fields.size() != 3 && fields.size() != 4)) {
    return absl::InvalidArgumentError(
        "expected \"NO-OP <term>\", \"SET <key> <value> [client=<id>:<seq>] <term>\" or "
        "\"OPEN-SESSION time=<ms> max=<sessions> idle=<ms> <term>\"");
  }
  SetCommand set;
  absl::StatusOr<std::string> key = Unescape(fields[1]);
  if (!key.ok()) return absl::InvalidArgumentError("key: " + std::string(key.status().message()));
  absl::StatusOr<std::string> value = Unescape(fields[2]);
  if (!value.ok()) {
    return absl::InvalidArgumentError("value: " + std::string(value.status().message()));
  }
  set.key = std::move(*key);
  set.value = std::move(*value);
  if (fields.size() == 4) {
    if (ParseSessionField(fields[3], "session=", &set.client_id, &set.sequence)) {
      set.legacy_session = true;
    } else if (!ParseSessionField(fields[3], "client=", &set.client_id, &set.sequence)) {
      return absl::InvalidArgumentError(
          "expected \"client=<client_id>:<sequence>\" (or the older \"session=\") with a "
          "non-zero client_id");
    }
  }
  return EncodeSet(set);
}

std::string OperationText(const Command& command) {
  if (std::holds_alternative<OpenSessionCommand>(command)) return "OPEN-SESSION";
  const auto& set = std::get<SetCommand>(command);
  return "SET " + Escape(set.key) + " " + Escape(set.value);
}

}  // namespace raftkv::kv

// How a command reads in logs.txt and dump.txt: the text between the line's start and its term
// (docs/file-formats.md, "logs.txt", is the grammar):
//
//   SET <key> <value> [client=<client_id>:<sequence>]
//   SET <key> <value> session=<client_id>:<sequence>     (written before OPEN-SESSION existed)
//   OPEN-SESSION time=<ms> max=<sessions> idle=<ms>
//
// Keys and values are escaped (common/escape.h), so every field is one space-free token. The
// storage layer frames this text (term, index=, crc=) without knowing what it says; the node
// hands it these two functions.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "kv/command.h"

namespace raftkv::kv {

// The encoded command `payload` as text; refuses a payload that does not decode.
absl::StatusOr<std::string> FormatCommandText(std::string_view payload);
// The text back to the encoded payload; refuses anything FormatCommandText cannot produce.
absl::StatusOr<std::string> ParseCommandText(std::string_view text);

// "SET key value" or "OPEN-SESSION": what dump.txt says a request did (no session or clock).
std::string OperationText(const Command& command);

}  // namespace raftkv::kv

// Escaping for the human-readable files (logs.txt, metadata.txt, dump.txt) and the CLI. A field is
// one space-free token:
//   * bytes '!'..'~' other than '%' stand for themselves, so plain words stay as they are
//     (`SET name1 Jaggu 0` is written exactly like that);
//   * every other byte (space, newline, '%', control and non-ASCII bytes) becomes %XX, two
//     upper-case hex digits;
//   * the empty string is the lone token `%`, which no escape can produce.
// Unescape accepts exactly what Escape produces (either hex case), so every byte string
// round-trips and a damaged token is reported rather than guessed at.
#pragma once

#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace raftkv {

std::string Escape(std::string_view raw);
// Parses a whole token as a decimal number (no sign, no spaces, nothing left over).
template <typename Number>
bool ParseNumber(std::string_view text, Number* out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

// Takes a leading "<name>=<number>" field (and the space after it) off `fields`; false, leaving
// `fields` alone, when the first field is not that.
bool TakeNumberField(std::string_view* fields, std::string_view name, uint64_t* out);

// Splits on every `separator`, keeping empty pieces (so "a  b" has an empty middle field).
std::vector<std::string_view> Split(std::string_view text, char separator);
absl::StatusOr<std::string> Unescape(std::string_view token);

}  // namespace raftkv

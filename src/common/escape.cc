#include "common/escape.h"

namespace raftkv {
namespace {

bool IsPlain(unsigned char c) { return c >= '!' && c <= '~' && c != '%'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string Escape(std::string_view raw) {
  if (raw.empty()) return "%";
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(raw.size());
  for (char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (IsPlain(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  for (;;) {
    const size_t at = text.find(separator);
    pieces.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return pieces;
    text.remove_prefix(at + 1);
  }
}

absl::StatusOr<std::string> Unescape(std::string_view token) {
  if (token == "%") return std::string();
  if (token.empty()) return absl::InvalidArgumentError("empty field (an empty value is written %)");
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (c != '%') {
      if (!IsPlain(c)) {
        return absl::InvalidArgumentError("unescaped byte " + std::to_string(c) + " in a field");
      }
      out.push_back(token[i]);
      continue;
    }
    if (i + 2 >= token.size()) {
      return absl::InvalidArgumentError("'%' must be followed by two hex digits");
    }
    const int hi = HexValue(token[i + 1]);
    const int lo = HexValue(token[i + 2]);
    if (hi < 0 || lo < 0)
      return absl::InvalidArgumentError("'%' must be followed by two hex digits");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool TakeNumberField(std::string_view* fields, std::string_view name, uint64_t* out) {
  const size_t space = fields->find(' ');
  const std::string_view field = fields->substr(0, space);
  if (field.size() <= name.size() + 1 || field.substr(0, name.size()) != name ||
      field[name.size()] != '=' || !ParseNumber(field.substr(name.size() + 1), out)) {
    return false;
  }
  fields->remove_prefix(space == std::string_view::npos ? fields->size() : space + 1);
  return true;
}

}  // namespace raftkv

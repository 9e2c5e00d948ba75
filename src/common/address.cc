#include "common/address.h"

#include <algorithm>
#include <charconv>

namespace raftkv {

absl::Status CheckAddress(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == address.size()) {
    return absl::InvalidArgumentError("bad node address '" + std::string(address) +
                                      "': expected host:port, e.g. 127.0.0.1:50051");
  }
  const char* port_begin = address.data() + colon + 1;
  const char* port_end = address.data() + address.size();
  int port = 0;
  if (std::from_chars(port_begin, port_end, port).ptr != port_end || port < 1 || port > 65535) {
    return absl::InvalidArgumentError("bad node address '" + std::string(address) +
                                      "': the port must be a number in 1..65535");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ParseAddressList(std::string_view text) {
  std::vector<std::string> addresses;
  while (!text.empty()) {
    const size_t comma = std::min(text.find(','), text.size());
    std::string_view part = text.substr(0, comma);
    text.remove_prefix(std::min(comma + 1, text.size()));
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (part.empty()) continue;
    if (absl::Status status = CheckAddress(part); !status.ok()) return status;
    addresses.emplace_back(part);
  }
  if (addresses.empty()) {
    return absl::InvalidArgumentError(
        "no node addresses given: expected host:port,host:port,… (one per node, in node-id order)");
  }
  return addresses;
}

}  // namespace raftkv

// Node addresses as users write them: "host:port", and lists "host:port,host:port,…".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace raftkv {

absl::Status CheckAddress(std::string_view address);
// Splits at commas, trims spaces, checks each address; an empty list is an error.
absl::StatusOr<std::vector<std::string>> ParseAddressList(std::string_view text);

}  // namespace raftkv

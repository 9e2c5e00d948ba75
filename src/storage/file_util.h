// Small POSIX helpers for durable files. Every function returns a Status naming the path and the
// system error, so the caller can report it as it is.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace raftkv::storage {

absl::Status ErrnoError(std::string_view what, const std::string& path);
absl::Status WriteAll(int fd, std::string_view data, const std::string& path);
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);  // NotFound if absent
absl::Status CreateDirectories(const std::string& path);
// Makes a rename or a file creation inside `dir` durable.
absl::Status SyncDirectory(const std::string& dir);

}  // namespace raftkv::storage

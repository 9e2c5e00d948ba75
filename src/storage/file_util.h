// Small POSIX helpers for durable files. Every function returns a Status naming the path and the
// system error, so the caller can report it as it is.
#pragma once

#include <cstdint>
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

// The checksum of every node file: CRC-32 (zlib's, the one of gzip and PNG) of `bytes`,
// continuing from `crc` (0 to start), and how the files spell it: 8 lowercase hex digits.
uint32_t Crc32(std::string_view bytes, uint32_t crc = 0);
std::string Hex8(uint32_t value);

}  // namespace raftkv::storage

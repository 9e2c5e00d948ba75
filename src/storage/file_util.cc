#include "storage/file_util.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

namespace raftkv::storage {

absl::Status ErrnoError(std::string_view what, const std::string& path) {
  const int saved = errno;
  std::string message = std::string(what) + " " + path + ": " + std::strerror(saved);
  if (saved == ENOENT) return absl::NotFoundError(message);
  if (saved == EACCES || saved == EPERM) return absl::PermissionDeniedError(message);
  if (saved == ENOSPC) return absl::ResourceExhaustedError(message + " (free some disk space)");
  return absl::InternalError(message);
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(written));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  std::string contents;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR) continue;
      absl::Status status = ErrnoError("cannot read", path);
      ::close(fd);
      return status;
    }
    if (got == 0) break;
    contents.append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  return contents;
}

absl::Status CreateDirectories(const std::string& path) {
  // Create each missing level and sync its parent, so that a power loss cannot take the node's
  // directory (and with it both files: a node that forgot its vote) away again.
  std::filesystem::path missing = std::filesystem::absolute(path).lexically_normal();
  std::vector<std::filesystem::path> to_create;
  std::error_code error;
  while (!missing.empty() && !std::filesystem::exists(missing, error)) {
    to_create.push_back(missing);
    if (missing == missing.parent_path()) break;
    missing = missing.parent_path();
  }
  for (auto it = to_create.rbegin(); it != to_create.rend(); ++it) {
    if (!std::filesystem::create_directory(*it, error) && error) {
      return absl::InternalError("cannot create directory " + it->string() + ": " +
                                 error.message());
    }
    if (absl::Status status = SyncDirectory(it->parent_path().string()); !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open directory", dir);
  const int result = ::fsync(fd);
  absl::Status status = result == 0 ? absl::OkStatus() : ErrnoError("cannot fsync directory", dir);
  ::close(fd);
  return status;
}

uint32_t Crc32(std::string_view bytes, uint32_t crc) {
  while (!bytes.empty()) {
    const uInt n = static_cast<uInt>(std::min<size_t>(bytes.size(), 1u << 30));
    crc = static_cast<uint32_t>(crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), n));
    bytes.remove_prefix(n);
  }
  return crc;
}

std::string Hex8(uint32_t value) {
  char buffer[9];
  std::snprintf(buffer, sizeof buffer, "%08x", value);
  return buffer;
}

}  // namespace raftkv::storage

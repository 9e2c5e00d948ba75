// What the libFuzzer targets share: an Env holding one read-only file (the input), and a check
// that stops the fuzzer with a crash when a property fails. Each target parses untrusted bytes
// through the same function the node uses; a crash, a sanitizer report, or a failed Expect is a
// bug. Regression inputs that once crashed live in corpus/<target>/ beside the seeds.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "storage/env.h"

namespace raftkv::fuzz {

// Stops the run: libFuzzer saves the input as a crasher.
inline void Expect(bool holds, const char* what) {
  if (!holds) {
    std::fprintf(stderr, "fuzz property failed: %s\n", what);
    std::abort();
  }
}

// One file at `path` with `contents`; every other path is absent, and nothing can be written.
class OneFileEnv : public storage::Env {
 public:
  OneFileEnv(std::string path, std::string contents)
      : path_(std::move(path)), contents_(std::move(contents)) {}

  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    if (path != path_) return absl::NotFoundError(path);
    return contents_;
  }
  absl::StatusOr<std::string> ReadAt(const std::string& path, uint64_t offset,
                                     uint64_t length) override {
    if (path != path_) return absl::NotFoundError(path);
    if (offset >= contents_.size()) return std::string();
    return contents_.substr(offset, length);
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    if (path != path_) return absl::NotFoundError(path);
    return contents_.size();
  }
  absl::Status DeleteFile(const std::string&) override { return ReadOnly(); }
  absl::Status CreateDir(const std::string&) override { return ReadOnly(); }
  absl::StatusOr<std::unique_ptr<storage::WritableFile>> OpenWritable(const std::string&,
                                                                      bool) override {
    return ReadOnly();
  }
  absl::Status Rename(const std::string&, const std::string&) override { return ReadOnly(); }
  absl::Status SyncDir(const std::string&) override { return ReadOnly(); }
  absl::StatusOr<std::unique_ptr<storage::DirLock>> LockDir(const std::string&) override {
    return ReadOnly();
  }

 private:
  static absl::Status ReadOnly() { return absl::PermissionDeniedError("read-only fuzz env"); }
  std::string path_;
  std::string contents_;
};

}  // namespace raftkv::fuzz

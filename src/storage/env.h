// Env: the file operations behind the node's durable files (logs.txt, metadata.txt), as an
// interface, so that the simulator runs the very same storage code on a simulated disk that loses
// power (sim/sim_disk.h). The idea is LevelDB's Env; PosixEnv() is the real file system.
//
// Durability contract, the one POSIX gives and the one the simulated disk enforces:
//   * WriteAt, Truncate and Allocate change what reads see at once, but nothing is durable until
//     WritableFile::Sync returns (fdatasync: the data and the size);
//   * a file's name (creation, rename) is durable only once SyncDir of its directory returns;
//   * after a power loss, each write that was not synced may be lost, kept, or kept in part at any
//     4 KiB block boundary, and size changes (truncate, allocate, growth) may be lost independently
//     of the data: a truncation can be undone while a later write over the cut survives.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace raftkv::storage {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual absl::Status WriteAt(uint64_t offset, std::string_view data) = 0;
  virtual absl::Status Truncate(uint64_t size) = 0;
  // Grows the file to at least offset + length bytes, the new part reading as zeros (fallocate).
  // Unimplemented where the file system cannot; callers treat it as an optimisation.
  virtual absl::Status Allocate(uint64_t offset, uint64_t length) = 0;
  // Makes every write, truncation and size change so far durable (fdatasync).
  virtual absl::Status Sync() = 0;
  // A hint, not a promise of durability: start writing [offset, offset + length) to the disk
  // now, and first wait until [wait_offset, offset) has been written (sync_file_range). A long
  // file written in pieces this way reaches the disk as it goes, so its final Sync() is short
  // and does not stall other files' syncs behind one large burst (ext4 commits them together).
  virtual void Writeback(uint64_t wait_offset, uint64_t offset, uint64_t length) {
    (void)wait_offset, (void)offset, (void)length;
  }
};

// Held while this process uses a directory; destroying it (or the process dying) releases it.
class DirLock {
 public:
  virtual ~DirLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;  // NotFound if absent
  // Up to `length` bytes of `path` from `offset` (fewer at the end of the file): files too large to
  // read whole (a snapshot) are read in pieces. NotFound if absent.
  virtual absl::StatusOr<std::string> ReadAt(const std::string& path, uint64_t offset,
                                             uint64_t length) = 0;
  virtual absl::StatusOr<uint64_t> FileSize(const std::string& path) = 0;  // NotFound if absent
  // Removes `path`'s name (ok if absent); durable once SyncDir of its directory returns.
  virtual absl::Status DeleteFile(const std::string& path) = 0;
  virtual absl::Status CreateDir(const std::string& path) = 0;  // and its parents; ok if present
  // Opens `path` for writing, creating it if absent; `truncate` empties it.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                                     bool truncate) = 0;
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // Makes the creations and renames inside `dir` durable.
  virtual absl::Status SyncDir(const std::string& dir) = 0;
  // Creates `dir` if needed and takes its lock (`dir`/LOCK, which names the holder's pid): one
  // process per node directory. Fails with FailedPrecondition, naming the holder, while another
  // process (or another lock in this one) holds it. A lock is never stale: a dead process's
  // lock is released by the kernel.
  virtual absl::StatusOr<std::unique_ptr<DirLock>> LockDir(const std::string& dir) = 0;
  // Closes `file` without holding the caller up. Closing the last descriptor of a large file
  // that a rename has already unlinked (logs.txt replaced by its rewrite) frees its blocks; on a
  // file system mounted with online discard that took 9-13 ms here, on the node's driver thread.
  // Default: closes it now.
  virtual void CloseInBackground(std::unique_ptr<WritableFile> file) { file.reset(); }
};

// The real file system (one process-wide instance).
Env* PosixEnv();

// Replaces `dir`/`name` with `contents` so that a crash leaves either the old or the new file:
// write `name.tmp`, sync it, rename it over `name`, sync the directory.
absl::Status ReplaceFileAtomically(Env* env, const std::string& dir, const std::string& name,
                                   std::string_view contents);

}  // namespace raftkv::storage

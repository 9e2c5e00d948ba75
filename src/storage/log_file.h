// logs.txt: the node's Raft log as text, one entry a line, the line number being the log index.
//
//   NO-OP <term>
//   SET <key> <value> <term>
//   SET <key> <value> session=<client_id>:<sequence> <term>
//
// Keys and values are escaped (escape.h), so plain words appear verbatim: `NO-OP 0`,
// `SET name1 Jaggu 0`. The session field appears only for requests made in a client session; it
// is part of the replicated state (the exactly-once table is rebuilt from it on restart).
//
// Durability: Append() writes, Sync() makes everything written so far durable (fdatasync); the
// node acknowledges nothing before Sync() returns. A conflicting suffix is removed with
// TruncateFrom(), an ftruncate at the line boundary that is synced at once, before any append
// writes over the cut (with one sync for both, a power loss can keep the new bytes yet lose the
// truncation: a line half new, half old). Truncation happens only on a follower that meets a new
// leader's conflicting entries, so the extra sync is rare.
//
// Preallocation: while the node runs, logs.txt is grown ahead of the entries in steps of
// kPreallocateBytes (fallocate), so an append does not change the file's size and its fdatasync
// has no new size to journal; the blocks are allocated ahead too (ext4 still records, once per
// 4 KiB block, that a block has been written). On this machine's ext4 that took a sync from about
// 175 µs to about 110 µs; etcd preallocates its WAL for the same reason. The unwritten tail reads
// as zero bytes, which no entry line contains (escape.h). A clean close cuts the tail off, so a
// stopped node's logs.txt is plain text; after a crash the next Open cuts it off.
//
// Recovery: a last line without its newline is a write torn by a crash; it is dropped with a
// warning (it was never synced, so never acknowledged). So is everything from the first zero byte
// on: a sync makes every byte before the end durable, so a zero byte can only stand where a write
// had not reached the disk, and every byte after it was written later still. Any other malformed
// line stops the node with `logs.txt:LINE: what is wrong`: good data is never silently cut away.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "raft/message.h"
#include "storage/env.h"

namespace raftkv::storage {

absl::StatusOr<std::string> FormatEntryLine(const raft::Entry& entry);  // without the newline
absl::StatusOr<raft::Entry> ParseEntryLine(std::string_view line, LogIndex index);

class LogFile {
 public:
  static constexpr uint64_t kPreallocateBytes = 1 << 20;

  struct Recovered {
    std::vector<raft::Entry> entries;
    std::vector<std::string> warnings;  // for dump.txt
    std::vector<uint64_t> line_ends;    // byte offset just past each entry's line
  };

  // Parses the text of a logs.txt (`path` names it in errors); changes nothing on disk.
  static absl::StatusOr<Recovered> Parse(const std::string& text, const std::string& path);

  // Opens (creating if needed) `dir`/logs.txt, recovers its entries and makes what it recovered
  // durable (after a kill -9 the file may hold writes that are only in the page cache: the node
  // is about to act on them, so they must not vanish in a later power loss).
  static absl::StatusOr<std::unique_ptr<LogFile>> Open(const std::string& dir,
                                                       Recovered* recovered,
                                                       Env* env = PosixEnv());
  // Cuts off the preallocated tail, so that the file at rest is plain text.
  ~LogFile();
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  absl::Status Append(const std::vector<raft::Entry>& entries);
  absl::Status TruncateFrom(LogIndex index);  // removes entries >= index, durably
  absl::Status Sync();
  LogIndex LastIndex() const { return line_ends_.size(); }
  // Test-only (the simulator's deliberate bug one-sync-for-cut-and-append): TruncateFrom leaves
  // the cut to the next Sync().
  void SyncTruncationsForTesting(bool sync) { sync_truncations_ = sync; }
  const std::string& path() const { return path_; }

 private:
  LogFile(std::unique_ptr<WritableFile> file, std::string path, std::vector<uint64_t> line_ends);
  uint64_t End() const { return line_ends_.empty() ? 0 : line_ends_.back(); }
  // Tries to make the file at least `size` bytes long, zero-filled past End(), in
  // kPreallocateBytes steps; on failure appends simply grow the file.
  void Preallocate(uint64_t size);

  std::unique_ptr<WritableFile> file_;
  uint64_t file_size_ = 0;   // End() plus the preallocated zero tail
  bool preallocate_ = true;
  bool sync_truncations_ = true;  // false once the file system refused fallocate: plain appends
  std::string path_;
  std::vector<uint64_t> line_ends_;  // byte offset just past line i+1 (entry index i+1)
};

}  // namespace raftkv::storage

// snapshot.txt: a point-in-time image of the replicated state, so that the log before it can go
// (Raft §7). This file frames it; what the state machine writes inside is its own business, as a
// log entry's payload is (storage knows nothing of kv). The grammar is in docs/file-formats.md
// ("snapshot.txt"); in short:
//
//   SNAPSHOT index=<i> term=<t> nodes=<n> <state's header fields…>
//   <one line of state>…
//   END lines=<count> crc=<8 hex>
//
// `index`/`term` name the last log entry the image includes; `nodes` is the cluster's membership
// (today its size). The checksum, a CRC-32 of every byte before the END line, and the line count
// sit in the trailer because the file is written in one pass, by a process that may not hold the
// whole image at once (the forked child of node/fork_snapshot_worker.h): a file cut short has no
// END, a damaged one fails its checksum, and either is refused whole, never half-loaded.
//
// Durability: a snapshot is written under a temporary name, synced, and only then renamed over
// snapshot.txt (and the directory synced). The log entries it covers are deleted only after that.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "raft/message.h"
#include "storage/env.h"

namespace raftkv::storage {

inline constexpr char kSnapshotFile[] = "snapshot.txt";

using raft::SnapshotMeta;  // index, term, cluster size; `bytes` is the file's size

// Writes a snapshot to `path` in one pass, buffering about 1 MiB at a time. Nothing is durable
// until Finish() returns.
class SnapshotWriter {
 public:
  // `meta.bytes` is ignored (Finish() tells it). `header_fields` ("keys=3 sessions=1") follow the
  // framing's own fields on the first line; they must hold no newline.
  static absl::StatusOr<std::unique_ptr<SnapshotWriter>> Create(Env* env, const std::string& path,
                                                                const SnapshotMeta& meta,
                                                                std::string_view header_fields);
  // One line of state, without its newline; it must hold no newline or zero byte.
  absl::Status AddLine(std::string_view line);
  // Writes the trailer and syncs the file. Returns the file's size in bytes.
  absl::StatusOr<uint64_t> Finish();

 private:
  SnapshotWriter(std::unique_ptr<WritableFile> file, std::string path);
  absl::Status Put(std::string_view bytes);
  absl::Status Flush();

  std::unique_ptr<WritableFile> file_;
  std::string path_;
  std::string buffer_;
  uint64_t offset_ = 0;        // bytes written to the file so far
  uint64_t written_back_ = 0;  // bytes known to have reached the disk (Writeback)
  uint64_t lines_ = 0;
  uint32_t crc_ = 0;
};

// The first line's meta (`bytes` 0); `state_fields`, if given, gets the state's fields after it.
absl::StatusOr<SnapshotMeta> ParseSnapshotHeader(std::string_view line,
                                                 std::string_view* state_fields = nullptr);

// Reads and verifies the snapshot at `path`, piece by piece (never the whole file in one string):
// `on_header` gets the state's header fields, `on_line` every line of state in order. When either
// returns an error, or the file is damaged, reading stops with that error; the caller must then
// discard whatever it built (the checksum is only known at the end). The meta's `bytes` is the
// file's size. NotFound if absent.
absl::StatusOr<SnapshotMeta> ReadSnapshot(
    Env* env, const std::string& path,
    const std::function<absl::Status(std::string_view header_fields)>& on_header,
    const std::function<absl::Status(std::string_view line)>& on_line);

}  // namespace raftkv::storage

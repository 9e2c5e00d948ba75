// logs.txt: the node's Raft log as text, one entry a line. The grammar, the checksum and the
// recovery rules are specified once, in docs/file-formats.md ("logs.txt"); in short:
//
//   [START index=<first> prev_term=<t> crc=<8 hex>]
//   NO-OP <term> [index=<n>] crc=<8 hex>
//   <command text> <term> [index=<n>] crc=<8 hex>
//
// Without a START line, line n holds entry n. Once the log has been compacted (the entries before
// <first> are in snapshot.txt), the START line says which index the next line holds, and the entry
// before it (the base) had term <t>.
//
// The command text ("SET <key> <value> …", "OPEN-SESSION …") is the state machine's business:
// this file frames it and never looks inside (an EntryCodec turns payloads into text and back;
// the node passes kv's).
//
// `crc` is a CRC-32 of "<index> " and the line before " crc=", so damage anywhere in a line, or
// a line at the wrong place, is told from an intact one. The first line of every write carries
// its `index`: after a crash only the last write (not yet synced) can be torn, so an intact line
// that starts a write, found after a damaged one, proves the damage is not a torn tail.
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
// has no new size to journal. The unwritten tail reads as zero bytes, which no line contains. A
// clean close cuts the tail off, so a stopped node's logs.txt is plain text; after a crash the
// next Open cuts it off.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "raft/message.h"
#include "storage/env.h"

namespace raftkv::storage {

// A command entry's payload as text and back. The text is one or more space-separated fields
// (the term follows it on the line); `parse` must refuse whatever `format` cannot produce, and
// parse(format(p)) must mean what p means (kv's codec: the same bytes, except that a SET without
// a session comes back with the current tag).
struct EntryCodec {
  absl::StatusOr<std::string> (*format)(std::string_view payload);
  absl::StatusOr<std::string> (*parse)(std::string_view text);
};

// The entry's own text, "SET name1 Jaggu 0" (no index, checksum or newline): what operators read.
absl::StatusOr<std::string> FormatEntryLine(const raft::Entry& entry, const EntryCodec& codec);
absl::StatusOr<raft::Entry> ParseEntryLine(std::string_view line, LogIndex index,
                                           const EntryCodec& codec);

// A whole line of logs.txt (without the newline): the entry's text, `index=` when it starts a
// write, and the checksum.
absl::StatusOr<std::string> FormatRecord(const raft::Entry& entry, bool starts_write,
                                         const EntryCodec& codec);
struct Record {
  raft::Entry entry;
  bool starts_write = false;  // carries index=
  bool checksummed = false;   // false only for lines written before checksums existed
};
// Parses and verifies a line standing at `position` (nullopt: unknown, then the line must carry
// index= and a checksum). Lines without a checksum are accepted only if `legacy_allowed`.
absl::StatusOr<Record> ParseRecord(std::string_view line, std::optional<LogIndex> position,
                                   bool legacy_allowed, const EntryCodec& codec);

class LogFile {
 public:
  static constexpr uint64_t kPreallocateBytes = 1 << 20;

  struct Recovered {
    LogIndex base_index = 0;  // entries[0] is at base_index + 1
    Term base_term = 0;
    std::vector<raft::Entry> entries;   // empty when Read was given an EntrySink
    std::vector<std::string> warnings;  // for dump.txt
    std::vector<uint64_t> line_ends;    // byte offset just past each entry's line
    uint64_t header_bytes = 0;          // the START line's length with its newline
    bool missing = false;               // there was no logs.txt
    uint64_t file_bytes = 0;            // the file's size, zero tail and torn bytes included
  };

  // Parses the text of a logs.txt (`path` names it in errors) by the recovery rules of
  // docs/file-formats.md: a damaged tail is dropped with a warning, damage followed by an intact
  // write is DataLoss. Changes nothing on disk.
  static absl::StatusOr<Recovered> Parse(const std::string& text, const std::string& path,
                                         const EntryCodec& codec);

  // Where Read hands the recovered entries instead of Recovered::entries, so that the caller
  // can store them as they come and a long log is never held twice. `base` is called once, before
  // any entry; the entries come in order, contiguous from the base.
  struct EntrySink {
    std::function<void(LogIndex base_index, Term base_term)> base;
    std::function<void(raft::Entry entry)> entry;
  };
  // Reads and parses `dir`/logs.txt in pieces of 1 MiB (never the whole file at once); changes
  // nothing on disk.
  static absl::StatusOr<Recovered> Read(const std::string& dir, const EntryCodec& codec,
                                        Env* env = PosixEnv(), const EntrySink* sink = nullptr);
  // Opens (creating if needed) `dir`/logs.txt as `recovered` from Read() found it, cuts off the
  // torn tail, and makes what was recovered durable (after a kill -9 the file may hold writes
  // that are only in the page cache: the node is about to act on them, so they must not vanish in
  // a later power loss).
  static absl::StatusOr<std::unique_ptr<LogFile>> Open(const std::string& dir,
                                                       const Recovered& recovered,
                                                       const EntryCodec& codec,
                                                       Env* env = PosixEnv());
  // Read, then Open.
  static absl::StatusOr<std::unique_ptr<LogFile>> Open(const std::string& dir, Recovered* recovered,
                                                       const EntryCodec& codec,
                                                       Env* env = PosixEnv());
  // Cuts off the preallocated tail, so that the file at rest is plain text.
  ~LogFile();
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  absl::Status Append(const std::vector<raft::Entry>& entries);
  absl::Status TruncateFrom(LogIndex index);  // removes entries >= index, durably
  absl::Status Sync();
  // Replaces the file, durably and atomically (a crash leaves the old or the new one), by one
  // that starts after (base_index, base_term) and keeps the entries up to `keep_through` of this
  // one (none if keep_through <= base_index): compaction after a snapshot, or a log superseded by
  // an installed one. The kept lines are copied as they are (their checksums cover their index).
  absl::Status Rewrite(LogIndex base_index, Term base_term, LogIndex keep_through);
  LogIndex BaseIndex() const { return base_index_; }
  LogIndex LastIndex() const { return base_index_ + line_ends_.size(); }
  // Bytes Append wrote since this LogFile was opened (for /metrics).
  uint64_t appended_bytes() const { return appended_bytes_; }
  // Test-only (the simulator's deliberate bug one-sync-for-cut-and-append): TruncateFrom leaves
  // the cut to the next Sync().
  void SyncTruncationsForTesting(bool sync) { sync_truncations_ = sync; }
  const std::string& path() const { return path_; }

 private:
  LogFile(std::unique_ptr<WritableFile> file, std::string path, std::vector<uint64_t> line_ends,
          EntryCodec codec, Env* env, std::string dir);
  uint64_t End() const { return line_ends_.empty() ? header_bytes_ : line_ends_.back(); }
  // Tries to make the file at least `size` bytes long, zero-filled past End(), in
  // kPreallocateBytes steps; on failure appends simply grow the file.
  void Preallocate(uint64_t size);

  std::unique_ptr<WritableFile> file_;
  EntryCodec codec_;
  Env* env_;
  std::string dir_;
  LogIndex base_index_ = 0;
  uint64_t header_bytes_ = 0;  // the START line's, when there is one
  uint64_t file_size_ = 0;     // End() plus the preallocated zero tail
  uint64_t appended_bytes_ = 0;
  bool preallocate_ = true;
  bool sync_truncations_ = true;  // false once the file system refused fallocate: plain appends
  std::string path_;
  std::vector<uint64_t> line_ends_;  // byte offset just past entry base_index_ + i + 1
};

}  // namespace raftkv::storage

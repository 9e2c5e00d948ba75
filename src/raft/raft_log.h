// The node's in-memory view of its log. The durable copy lives with the driver (src/storage in the
// server, a simulated disk in sim/); this class tracks which suffix has not been handed to the
// driver yet (`unsent_from_`) and which prefix is known durable (`stable_index_`).
//
// The whole log stays in memory (there is no compaction yet), so it is stored compactly: a
// 24-byte record per entry, and the payloads packed end to end in 1 MiB chunks, rather than an
// Entry with its own std::string and heap block per entry (docs/benchmarks.md, Design figures);
// a std::deque never copies the whole log to grow.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raft/message.h"

namespace raftkv::raft {

class RaftLog {
 public:
  // `entries` must be contiguous from index 1; they are taken as durable (recovered from disk).
  explicit RaftLog(std::vector<Entry> entries);

  LogIndex LastIndex() const { return records_.size(); }
  Term LastTerm() const { return TermAt(LastIndex()); }
  // Term of the entry at `index`; 0 for index 0. `index` must be <= LastIndex().
  Term TermAt(LogIndex index) const;
  Entry At(LogIndex index) const;
  // First index holding `term`, searching back from `from` while the term matches.
  LogIndex FirstIndexOfTermEndingAt(LogIndex from) const;
  // Last index whose entry has exactly `term`, or nullopt.
  std::optional<LogIndex> LastIndexOfTerm(Term term) const;
  // Entries [from, ...] up to `max_entries` and about `max_bytes` (at least one entry).
  std::vector<Entry> Slice(LogIndex from, int max_entries, int64_t max_bytes) const;
  // Raft §5.4.1: is a log ending at (last_term, last_index) at least as up to date as ours?
  bool IsUpToDate(LogIndex last_index, Term last_term) const;

  void Append(const Entry& entry);
  // Removes every entry with index >= `from`.
  void TruncateFrom(LogIndex from);

  // Hand-off to the driver.
  std::optional<LogIndex> TakeTruncation();
  std::vector<Entry> TakeUnsent();
  // The driver made everything handed out so far durable.
  void MarkHandedOutStable();
  LogIndex StableIndex() const { return stable_index_; }
  // The index that will be stable once everything handed out so far is persisted.
  LogIndex HandedOutIndex() const { return unsent_from_ - 1; }

 private:
  // Where an entry's payload lives: chunks_[chunk], bytes [offset, offset + size).
  struct Record {
    Term term;
    uint32_t chunk;
    uint32_t offset;
    uint32_t size;
    EntryType type;
  };
  static constexpr size_t kChunkBytes = 1 << 20;

  std::string_view DataOf(const Record& record) const;
  void Store(const Entry& entry);

  std::deque<Record> records_;  // records_[i] is the entry at index i + 1
  // Payloads in order of index. A chunk is filled up to its capacity (at least kChunkBytes, or one
  // larger payload alone), trimmed, and a new one starts; truncation shrinks the chunk it lands in
  // and drops the ones after. Records hold offsets, never pointers, so a chunk may move freely.
  std::deque<std::string> chunks_;
  LogIndex unsent_from_;   // first index not yet handed to the driver
  LogIndex stable_index_;  // entries <= this are durable on this node
  std::optional<LogIndex> pending_truncation_;
};

}  // namespace raftkv::raft

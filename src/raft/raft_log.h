// The node's in-memory view of its log. The durable copy lives with the driver (src/storage in the
// server, a simulated disk in sim/); this class tracks which suffix has not been handed to the
// driver yet (`unsent_from_`) and which prefix is known durable (`stable_index_`).
//
// The log starts after a base entry (base_index, base_term): everything up to it is in the node's
// snapshot and gone from the log (Raft §7). Index 0 (term 0) and the base are the only indexes at
// or below the base whose term is known; anything else there must not be asked for (callers check
// FirstIndex()). Without a snapshot the base is index 0.
//
// The retained entries stay in memory, stored compactly: a 24-byte record per entry, and the
// payloads packed end to end in 1 MiB chunks, rather than an Entry with its own std::string and
// heap block per entry (docs/benchmarks.md, Design figures); a std::deque never copies the whole
// log to grow, and gives back its front when the log is compacted.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raft/message.h"

namespace raftkv::raft {

// The same question of a log recovered from disk as a vector (raftkv-inspect): does the log
// after (base_index, base_term) holding `entries` hold the entry (index, term)?
bool LogHolds(LogIndex base_index, Term base_term, const std::vector<Entry>& entries,
              LogIndex index, Term term);

// How a recovered log stands to the recovered snapshot (docs/file-formats.md, snapshot.txt,
// Recovery): it holds the snapshot's last entry (or there is no snapshot); it is superseded by it
// (a crash between installing a leader's snapshot and cutting the log: start from the snapshot
// with an empty log, Raft Figure 13 step 7); or it starts after it, and the entries in between
// are lost.
// `holds_snapshot_entry`: whether the log holds (snapshot_index, its term), as LogHolds or
// RaftLog::Holds answer it.
enum class LogVsSnapshot { kContinues, kSuperseded, kGap };
LogVsSnapshot CompareLogToSnapshot(LogIndex base_index, bool holds_snapshot_entry,
                                   LogIndex snapshot_index);

class RaftLog {
 public:
  // `entries` must be contiguous from base_index + 1; they are taken as durable (recovered).
  RaftLog(LogIndex base_index, Term base_term, std::vector<Entry> entries);
  explicit RaftLog(std::vector<Entry> entries) : RaftLog(0, 0, std::move(entries)) {}
  RaftLog() : RaftLog(0, 0, {}) {}

  LogIndex BaseIndex() const { return base_index_; }
  Term BaseTerm() const { return base_term_; }
  LogIndex FirstIndex() const { return base_index_ + 1; }
  LogIndex LastIndex() const { return base_index_ + records_.size(); }
  Term LastTerm() const { return TermAt(LastIndex()); }
  // Whether TermAt(index) may be asked: 0, the base, or a retained entry.
  bool HasTermAt(LogIndex index) const {
    return index == 0 || (index >= base_index_ && index <= LastIndex());
  }
  // Term of the entry at `index`; 0 for index 0. HasTermAt(index) must hold.
  Term TermAt(LogIndex index) const;
  // Whether the log holds the entry (index, term), as its base or a retained entry.
  bool Holds(LogIndex index, Term term) const { return HasTermAt(index) && TermAt(index) == term; }
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
  // Recovery: appends an entry read back from disk, durable already (nothing to hand out).
  void AppendRecovered(const Entry& entry);
  // Removes every entry with index >= `from` (> the base).
  void TruncateFrom(LogIndex from);
  // Drops the entries up to `index` (a retained, durable one), which becomes the base.
  void CompactTo(LogIndex index);
  // Drops every entry: the log is now empty after (index, term), which is durable elsewhere (an
  // installed snapshot). Nothing is left for the driver to write or cut.
  void ResetTo(LogIndex index, Term term);

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

  LogIndex base_index_ = 0;
  Term base_term_ = 0;
  std::deque<Record> records_;  // records_[i] is the entry at index base_index_ + i + 1
  // Payloads in order of index. A chunk is filled up to its capacity (at least kChunkBytes, or one
  // larger payload alone), trimmed, and a new one starts; truncation shrinks the chunk it lands in
  // and drops the ones after; compaction drops the chunks wholly before the new first entry.
  // Records hold chunk numbers and offsets, never pointers, so a chunk may move freely; chunk
  // number n is chunks_[n - first_chunk_].
  std::deque<std::string> chunks_;
  uint32_t first_chunk_ = 0;
  LogIndex unsent_from_;   // first index not yet handed to the driver
  LogIndex stable_index_;  // entries <= this are durable on this node
  std::optional<LogIndex> pending_truncation_;
};

}  // namespace raftkv::raft

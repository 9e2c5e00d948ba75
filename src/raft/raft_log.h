// The node's in-memory view of its log. The durable copy lives with the driver (src/storage in the
// server, a simulated disk in sim/); this class tracks which suffix has not been handed to the
// driver yet (`unsent_from_`) and which prefix is known durable (`stable_index_`).
#pragma once

#include <optional>
#include <vector>

#include "raft/message.h"

namespace raftkv::raft {

class RaftLog {
 public:
  // `entries` must be contiguous from index 1; they are taken as durable (recovered from disk).
  explicit RaftLog(std::vector<Entry> entries);

  LogIndex LastIndex() const { return entries_.size(); }
  Term LastTerm() const { return TermAt(LastIndex()); }
  // Term of the entry at `index`; 0 for index 0. `index` must be <= LastIndex().
  Term TermAt(LogIndex index) const;
  const Entry& At(LogIndex index) const;
  // First index holding `term`, searching back from `from` while the term matches.
  LogIndex FirstIndexOfTermEndingAt(LogIndex from) const;
  // Last index whose entry has exactly `term`, or nullopt.
  std::optional<LogIndex> LastIndexOfTerm(Term term) const;
  // Entries [from, ...] up to `max_entries` and about `max_bytes` (at least one entry).
  std::vector<Entry> Slice(LogIndex from, int max_entries, int64_t max_bytes) const;
  // Raft §5.4.1: is a log ending at (last_term, last_index) at least as up to date as ours?
  bool IsUpToDate(LogIndex last_index, Term last_term) const;

  void Append(Entry entry);
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
  std::vector<Entry> entries_;  // entries_[i] has index i + 1
  LogIndex unsent_from_;        // first index not yet handed to the driver
  LogIndex stable_index_;       // entries <= this are durable on this node
  std::optional<LogIndex> pending_truncation_;
};

}  // namespace raftkv::raft

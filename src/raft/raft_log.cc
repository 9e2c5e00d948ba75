#include "raft/raft_log.h"

#include <algorithm>

#include "common/check.h"

namespace raftkv::raft {

RaftLog::RaftLog(std::vector<Entry> entries)
    : entries_(std::move(entries)),
      unsent_from_(entries_.size() + 1),
      stable_index_(entries_.size()) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    RAFTKV_CHECK(entries_[i].index == i + 1, "recovered log must be contiguous from index 1");
    RAFTKV_CHECK(i == 0 || entries_[i].term >= entries_[i - 1].term,
                 "terms in a log never decrease");
  }
}

Term RaftLog::TermAt(LogIndex index) const {
  if (index == 0) return 0;
  RAFTKV_CHECK(index <= LastIndex(), "term lookup past the end of the log");
  return entries_[index - 1].term;
}

const Entry& RaftLog::At(LogIndex index) const {
  RAFTKV_CHECK(index >= 1 && index <= LastIndex(), "entry lookup outside the log");
  return entries_[index - 1];
}

LogIndex RaftLog::FirstIndexOfTermEndingAt(LogIndex from) const {
  const Term term = TermAt(from);
  LogIndex index = from;
  while (index > 1 && TermAt(index - 1) == term) --index;
  return index;
}

std::optional<LogIndex> RaftLog::LastIndexOfTerm(Term term) const {
  // Terms are non-decreasing along the log, so a binary search finds the last entry <= term.
  auto it = std::upper_bound(entries_.begin(), entries_.end(), term,
                             [](Term t, const Entry& e) { return t < e.term; });
  if (it == entries_.begin()) return std::nullopt;
  --it;
  if (it->term != term) return std::nullopt;
  return it->index;
}

std::vector<Entry> RaftLog::Slice(LogIndex from, int max_entries, int64_t max_bytes) const {
  std::vector<Entry> out;
  int64_t bytes = 0;
  for (LogIndex index = from; index <= LastIndex(); ++index) {
    const Entry& entry = At(index);
    if (!out.empty() && (static_cast<int>(out.size()) >= max_entries ||
                         bytes + static_cast<int64_t>(entry.data.size()) > max_bytes)) {
      break;
    }
    bytes += static_cast<int64_t>(entry.data.size());
    out.push_back(entry);
  }
  return out;
}

bool RaftLog::IsUpToDate(LogIndex last_index, Term last_term) const {
  if (last_term != LastTerm()) return last_term > LastTerm();
  return last_index >= LastIndex();
}

void RaftLog::Append(Entry entry) {
  RAFTKV_CHECK(entry.index == LastIndex() + 1, "appended entry must follow the last one");
  RAFTKV_CHECK(entry.term >= LastTerm(), "terms in a log never decrease");
  entries_.push_back(std::move(entry));
}

void RaftLog::TruncateFrom(LogIndex from) {
  RAFTKV_CHECK(from >= 1 && from <= LastIndex(), "truncation point outside the log");
  entries_.resize(from - 1);
  // The entries now at these indexes (appended later) are not durable until handed out again.
  stable_index_ = std::min(stable_index_, from - 1);
  if (from < unsent_from_) {
    // Part of what was handed out is gone: the driver must cut its copy too.
    pending_truncation_ = std::min(pending_truncation_.value_or(from), from);
    unsent_from_ = from;
  }
}

std::optional<LogIndex> RaftLog::TakeTruncation() {
  std::optional<LogIndex> truncation = pending_truncation_;
  pending_truncation_.reset();
  return truncation;
}

std::vector<Entry> RaftLog::TakeUnsent() {
  std::vector<Entry> out(entries_.begin() + static_cast<std::ptrdiff_t>(unsent_from_ - 1),
                         entries_.end());
  unsent_from_ = LastIndex() + 1;
  return out;
}

void RaftLog::MarkHandedOutStable() {
  RAFTKV_CHECK(!pending_truncation_, "a truncation was not handed to the driver");
  stable_index_ = unsent_from_ - 1;
}

}  // namespace raftkv::raft

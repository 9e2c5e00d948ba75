#include "raft/raft_log.h"

#include <algorithm>

#include "common/check.h"

namespace raftkv::raft {

bool LogHolds(LogIndex base_index, Term base_term, const std::vector<Entry>& entries,
              LogIndex index, Term term) {
  if (index == base_index) return base_term == term;
  return index > base_index && index - base_index <= entries.size() &&
         entries[index - base_index - 1].term == term;
}

LogVsSnapshot CompareLogToSnapshot(LogIndex base_index, bool holds_snapshot_entry,
                                   LogIndex snapshot_index) {
  if (snapshot_index == 0) return base_index == 0 ? LogVsSnapshot::kContinues : LogVsSnapshot::kGap;
  if (base_index > snapshot_index) return LogVsSnapshot::kGap;
  return holds_snapshot_entry ? LogVsSnapshot::kContinues : LogVsSnapshot::kSuperseded;
}

RaftLog::RaftLog(LogIndex base_index, Term base_term, std::vector<Entry> entries)
    : base_index_(base_index),
      base_term_(base_term),
      unsent_from_(base_index + entries.size() + 1),
      stable_index_(base_index + entries.size()) {
  for (size_t i = 0; i < entries.size(); ++i) {
    RAFTKV_CHECK(entries[i].index == base_index + i + 1,
                 "recovered log must be contiguous from its base");
    RAFTKV_CHECK(entries[i].term >= (i == 0 ? base_term : entries[i - 1].term),
                 "terms in a log never decrease");
    Store(entries[i]);
    std::string().swap(entries[i].data);  // keep one copy at a time while recovering
  }
}

void RaftLog::Store(const Entry& entry) {
  const size_t size = entry.data.size();
  RAFTKV_CHECK(size <= UINT32_MAX, "a log entry's payload must be under 4 GiB");
  if (chunks_.empty() || chunks_.back().size() + size > chunks_.back().capacity()) {
    // Give back the closed chunk's unused tail (large payloads can leave much of it empty).
    if (!chunks_.empty()) chunks_.back().shrink_to_fit();
    chunks_.emplace_back().reserve(std::max(kChunkBytes, size));
  }
  std::string& chunk = chunks_.back();
  records_.push_back(Record{entry.term, static_cast<uint32_t>(first_chunk_ + chunks_.size() - 1),
                            static_cast<uint32_t>(chunk.size()), static_cast<uint32_t>(size),
                            entry.type});
  chunk.append(entry.data);  // fits the capacity checked above: no reallocation in practice
}

std::string_view RaftLog::DataOf(const Record& record) const {
  return std::string_view(chunks_[record.chunk - first_chunk_]).substr(record.offset, record.size);
}

Term RaftLog::TermAt(LogIndex index) const {
  if (index == 0) return 0;
  if (index == base_index_) return base_term_;
  RAFTKV_CHECK(index > base_index_, "term lookup of a compacted entry");
  RAFTKV_CHECK(index <= LastIndex(), "term lookup past the end of the log");
  return records_[index - base_index_ - 1].term;
}

Entry RaftLog::At(LogIndex index) const {
  RAFTKV_CHECK(index > base_index_ && index <= LastIndex(), "entry lookup outside the log");
  const Record& record = records_[index - base_index_ - 1];
  return Entry{record.term, index, record.type, std::string(DataOf(record))};
}

LogIndex RaftLog::FirstIndexOfTermEndingAt(LogIndex from) const {
  const Term term = TermAt(from);
  LogIndex index = from;
  while (index > FirstIndex() && TermAt(index - 1) == term) --index;
  return index;
}

std::optional<LogIndex> RaftLog::LastIndexOfTerm(Term term) const {
  // Terms are non-decreasing along the log, so a binary search finds the last entry <= term.
  auto it = std::upper_bound(records_.begin(), records_.end(), term,
                             [](Term t, const Record& r) { return t < r.term; });
  if (it == records_.begin()) {
    if (base_index_ > 0 && base_term_ == term) return base_index_;
    return std::nullopt;
  }
  --it;
  if (it->term != term) return std::nullopt;
  return base_index_ + static_cast<LogIndex>(it - records_.begin()) + 1;
}

std::vector<Entry> RaftLog::Slice(LogIndex from, int max_entries, int64_t max_bytes) const {
  RAFTKV_CHECK(from > base_index_, "a slice starts after the base");
  std::vector<Entry> out;
  int64_t bytes = 0;
  for (LogIndex index = from; index <= LastIndex(); ++index) {
    const int64_t size = records_[index - base_index_ - 1].size;
    if (!out.empty() && (static_cast<int>(out.size()) >= max_entries || bytes + size > max_bytes)) {
      break;
    }
    bytes += size;
    out.push_back(At(index));
  }
  return out;
}

bool RaftLog::IsUpToDate(LogIndex last_index, Term last_term) const {
  if (last_term != LastTerm()) return last_term > LastTerm();
  return last_index >= LastIndex();
}

void RaftLog::Append(const Entry& entry) {
  RAFTKV_CHECK(entry.index == LastIndex() + 1, "appended entry must follow the last one");
  RAFTKV_CHECK(entry.term >= LastTerm(), "terms in a log never decrease");
  Store(entry);
}

void RaftLog::AppendRecovered(const Entry& entry) {
  RAFTKV_CHECK(unsent_from_ == LastIndex() + 1 && stable_index_ == LastIndex(),
               "recovered entries come before any new one");
  Append(entry);
  unsent_from_ = LastIndex() + 1;
  stable_index_ = LastIndex();
}

void RaftLog::TruncateFrom(LogIndex from) {
  RAFTKV_CHECK(from > base_index_ && from <= LastIndex(), "truncation point outside the log");
  const Record& first_cut = records_[from - base_index_ - 1];
  chunks_.resize(first_cut.chunk - first_chunk_ + 1);
  chunks_.back().resize(first_cut.offset);  // later appends refill it (records hold offsets)
  records_.resize(from - base_index_ - 1);
  // The entries now at these indexes (appended later) are not durable until handed out again.
  stable_index_ = std::min(stable_index_, from - 1);
  if (from < unsent_from_) {
    // Part of what was handed out is gone: the driver must cut its copy too.
    pending_truncation_ = std::min(pending_truncation_.value_or(from), from);
    unsent_from_ = from;
  }
}

void RaftLog::CompactTo(LogIndex index) {
  if (index <= base_index_) return;
  RAFTKV_CHECK(index <= stable_index_, "only durable entries are compacted");
  base_term_ = TermAt(index);
  records_.erase(records_.begin(), records_.begin() + static_cast<long>(index - base_index_));
  base_index_ = index;
  // Drop the chunks no retained entry points into.
  const uint32_t keep_from = records_.empty()
                                 ? first_chunk_ + static_cast<uint32_t>(chunks_.size()) - 1
                                 : records_.front().chunk;
  while (first_chunk_ < keep_from) {
    chunks_.pop_front();
    ++first_chunk_;
  }
  records_.shrink_to_fit();
}

void RaftLog::ResetTo(LogIndex index, Term term) {
  records_.clear();
  chunks_.clear();
  first_chunk_ = 0;
  base_index_ = index;
  base_term_ = term;
  unsent_from_ = index + 1;
  stable_index_ = index;
  pending_truncation_.reset();
}

std::optional<LogIndex> RaftLog::TakeTruncation() {
  std::optional<LogIndex> truncation = pending_truncation_;
  pending_truncation_.reset();
  return truncation;
}

std::vector<Entry> RaftLog::TakeUnsent() {
  std::vector<Entry> out;
  out.reserve(LastIndex() + 1 - unsent_from_);
  for (LogIndex index = unsent_from_; index <= LastIndex(); ++index) out.push_back(At(index));
  unsent_from_ = LastIndex() + 1;
  return out;
}

void RaftLog::MarkHandedOutStable() {
  RAFTKV_CHECK(!pending_truncation_, "a truncation was not handed to the driver");
  stable_index_ = unsent_from_ - 1;
}

}  // namespace raftkv::raft

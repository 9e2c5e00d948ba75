#include "raft/raft_log.h"

#include <algorithm>

#include "common/check.h"

namespace raftkv::raft {

RaftLog::RaftLog(std::vector<Entry> entries)
    : unsent_from_(entries.size() + 1), stable_index_(entries.size()) {
  for (size_t i = 0; i < entries.size(); ++i) {
    RAFTKV_CHECK(entries[i].index == i + 1, "recovered log must be contiguous from index 1");
    RAFTKV_CHECK(i == 0 || entries[i].term >= entries[i - 1].term, "terms in a log never decrease");
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
  records_.push_back(Record{entry.term, static_cast<uint32_t>(chunks_.size() - 1),
                            static_cast<uint32_t>(chunk.size()), static_cast<uint32_t>(size),
                            entry.type});
  chunk.append(entry.data);  // fits the capacity checked above: no reallocation in practice
}

std::string_view RaftLog::DataOf(const Record& record) const {
  return std::string_view(chunks_[record.chunk]).substr(record.offset, record.size);
}

Term RaftLog::TermAt(LogIndex index) const {
  if (index == 0) return 0;
  RAFTKV_CHECK(index <= LastIndex(), "term lookup past the end of the log");
  return records_[index - 1].term;
}

Entry RaftLog::At(LogIndex index) const {
  RAFTKV_CHECK(index >= 1 && index <= LastIndex(), "entry lookup outside the log");
  const Record& record = records_[index - 1];
  return Entry{record.term, index, record.type, std::string(DataOf(record))};
}

LogIndex RaftLog::FirstIndexOfTermEndingAt(LogIndex from) const {
  const Term term = TermAt(from);
  LogIndex index = from;
  while (index > 1 && TermAt(index - 1) == term) --index;
  return index;
}

std::optional<LogIndex> RaftLog::LastIndexOfTerm(Term term) const {
  // Terms are non-decreasing along the log, so a binary search finds the last entry <= term.
  auto it = std::upper_bound(records_.begin(), records_.end(), term,
                             [](Term t, const Record& r) { return t < r.term; });
  if (it == records_.begin()) return std::nullopt;
  --it;
  if (it->term != term) return std::nullopt;
  return static_cast<LogIndex>(it - records_.begin()) + 1;
}

std::vector<Entry> RaftLog::Slice(LogIndex from, int max_entries, int64_t max_bytes) const {
  RAFTKV_CHECK(from >= 1, "log indexes start at 1");
  std::vector<Entry> out;
  int64_t bytes = 0;
  for (LogIndex index = from; index <= LastIndex(); ++index) {
    const int64_t size = records_[index - 1].size;
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

void RaftLog::TruncateFrom(LogIndex from) {
  RAFTKV_CHECK(from >= 1 && from <= LastIndex(), "truncation point outside the log");
  const Record& first_cut = records_[from - 1];
  chunks_.resize(first_cut.chunk + 1);
  chunks_.back().resize(first_cut.offset);  // later appends refill it (records hold offsets)
  records_.resize(from - 1);
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

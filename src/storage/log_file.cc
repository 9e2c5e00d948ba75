#include "storage/log_file.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>

#include "common/escape.h"
#include "storage/file_util.h"

namespace raftkv::storage {
absl::StatusOr<std::string> FormatEntryLine(const raft::Entry& entry, const EntryCodec& codec) {
  const std::string term = std::to_string(entry.term);
  if (entry.type == raft::EntryType::kNoop) return "NO-OP " + term;
  absl::StatusOr<std::string> text = codec.format(entry.data);
  if (!text.ok()) return text.status();
  return *text + " " + term;
}

absl::StatusOr<raft::Entry> ParseEntryLine(std::string_view line, LogIndex index,
                                           const EntryCodec& codec) {
  raft::Entry entry;
  entry.index = index;
  const size_t space = line.rfind(' ');
  if (space == std::string_view::npos || !ParseNumber(line.substr(space + 1), &entry.term)) {
    return absl::InvalidArgumentError("the line must end with its term, a number");
  }
  const std::string_view text = line.substr(0, space);
  if (text == "NO-OP") {
    entry.type = raft::EntryType::kNoop;
    return entry;
  }
  absl::StatusOr<std::string> payload = codec.parse(text);
  if (!payload.ok()) return payload.status();
  entry.type = raft::EntryType::kCommand;
  entry.data = std::move(*payload);
  return entry;
}

namespace {

// CRC-32 (zlib's) of "<index> " followed by the line's text before " crc=".
uint32_t RecordChecksum(LogIndex index, std::string_view text) {
  char prefix_buffer[24];  // no allocation per line: this runs for every entry appended
  char* end = std::to_chars(prefix_buffer, prefix_buffer + sizeof prefix_buffer - 1, index).ptr;
  *end++ = ' ';
  const std::string_view prefix(prefix_buffer, static_cast<size_t>(end - prefix_buffer));
  return Crc32(text, Crc32(prefix));
}

// Splits off the line's last space-separated field if it starts with `name` ("crc=", "index="):
// returns the rest of the line and the field's value, or nullopt. Only whole trailing fields are
// looked at: escaped keys and values hold no spaces, but they may well hold "crc=" or "index=".
std::optional<std::pair<std::string_view, std::string_view>> SplitLastField(std::string_view line,
                                                                            std::string_view name) {
  const size_t space = line.rfind(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view field = line.substr(space + 1);
  if (field.substr(0, name.size()) != name) return std::nullopt;
  return std::make_pair(line.substr(0, space), field.substr(name.size()));
}

}  // namespace

namespace {

std::string FormatStartLine(LogIndex base_index, Term base_term) {
  const std::string text =
      "START index=" + std::to_string(base_index + 1) + " prev_term=" + std::to_string(base_term);
  return text + " crc=" + Hex8(RecordChecksum(0, text));
}

// Parses a START line into the base (index, term).
absl::StatusOr<std::pair<LogIndex, Term>> ParseStartLine(std::string_view line) {
  auto split = SplitLastField(line, "crc=");
  if (!split || split->second.size() != 8 ||
      Hex8(RecordChecksum(0, split->first)) != split->second) {
    return absl::InvalidArgumentError("the START line's checksum does not match");
  }
  const std::vector<std::string_view> fields = Split(split->first, ' ');
  LogIndex first = 0;
  Term term = 0;
  if (fields.size() != 3 || fields[0] != "START" || fields[1].substr(0, 6) != "index=" ||
      !ParseNumber(fields[1].substr(6), &first) || first == 0 ||
      fields[2].substr(0, 10) != "prev_term=" || !ParseNumber(fields[2].substr(10), &term)) {
    return absl::InvalidArgumentError("the first line must be START index=<n> prev_term=<n>");
  }
  return std::make_pair(first - 1, term);
}

}  // namespace

absl::StatusOr<std::string> FormatRecord(const raft::Entry& entry, bool starts_write,
                                         const EntryCodec& codec) {
  absl::StatusOr<std::string> text = FormatEntryLine(entry, codec);
  if (!text.ok()) return text.status();
  if (starts_write) *text += " index=" + std::to_string(entry.index);
  return *text + " crc=" + Hex8(RecordChecksum(entry.index, *text));
}

absl::StatusOr<Record> ParseRecord(std::string_view line, std::optional<LogIndex> position,
                                   bool legacy_allowed, const EntryCodec& codec) {
  Record record;
  std::string_view text = line;  // the line without its checksum field
  std::optional<uint32_t> checksum;
  if (auto split = SplitLastField(line, "crc=")) {
    text = split->first;
    uint32_t value = 0;
    if (split->second.size() != 8 ||
        split->second.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
      return absl::InvalidArgumentError("crc= must be 8 lowercase hex digits");
    }
    for (char c : split->second) value = value * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
    checksum = value;
    record.checksummed = true;
  } else if (!legacy_allowed || !position) {
    return absl::InvalidArgumentError("the line has no checksum (crc=)");
  }
  const std::string_view covered = text;
  // An index= field just before the checksum marks the first line of a write. (The field before
  // it is the entry's term, a number, so the two cannot be confused.)
  std::optional<LogIndex> stated;
  if (auto split = SplitLastField(text, "index=")) {
    LogIndex value = 0;
    if (!ParseNumber(split->second, &value)) {
      return absl::InvalidArgumentError("index= must be a number");
    }
    stated = value;
    text = split->first;
    record.starts_write = true;
  }
  if (!position && !stated) return absl::InvalidArgumentError("the line has no index=");
  if (position && stated && *stated != *position) {
    return absl::InvalidArgumentError("the line says index=" + std::to_string(*stated) +
                                      " but stands at index " + std::to_string(*position));
  }
  const LogIndex index = stated ? *stated : *position;
  if (checksum && RecordChecksum(index, covered) != *checksum) {
    return absl::InvalidArgumentError("checksum mismatch (crc=" + Hex8(*checksum) +
                                      ", the line's bytes give " +
                                      Hex8(RecordChecksum(index, covered)) + ")");
  }
  absl::StatusOr<raft::Entry> entry = ParseEntryLine(text, index, codec);
  if (!entry.ok()) return entry.status();
  record.entry = std::move(*entry);
  return record;
}

namespace {
constexpr const char* kDamaged =
    "(a bad disk, bit rot or an edit), and entries this node acknowledged may be lost. The node "
    "refuses to start and changes nothing. Restore this node's directory from a backup; if there "
    "is none, and every other node is intact, move the directory aside and start the node empty "
    "(see docs/file-formats.md, Recovery)";
}  // namespace

absl::StatusOr<LogFile::Recovered> LogFile::Parse(const std::string& text, const std::string& path,
                                                  const EntryCodec& codec) {
  Recovered recovered;
  size_t start = 0;
  size_t line_number = 1;
  if (text.compare(0, 6, "START ") == 0) {
    const size_t newline = text.find('\n');
    absl::StatusOr<std::pair<LogIndex, Term>> base = ParseStartLine(
        std::string_view(text).substr(0, newline == std::string::npos ? text.size() : newline));
    if (newline == std::string::npos || !base.ok()) {
      // The START line is written with the file, synced before the rename that makes it
      // logs.txt: it is never torn.
      return absl::DataLossError(
          path +
          ":1: " + (base.ok() ? std::string("no newline") : std::string(base.status().message())) +
          ": the START line was damaged after it was written " + kDamaged);
    }
    recovered.base_index = base->first;
    recovered.base_term = base->second;
    recovered.header_bytes = newline + 1;
    start = newline + 1;
    line_number = 2;
  }
  const LogIndex first_line_index = recovered.base_index + 1;  // the index at line `first_line`
  const size_t first_line = line_number;
  bool checksummed = false;  // once a line has a checksum, every later one must
  std::string damage;        // why the line at `start` is not an intact entry
  while (start < text.size()) {
    if (text[start] == '\0') {
      damage = "zero bytes (never written)";
      break;
    }
    const size_t newline = text.find('\n', start);
    if (newline == std::string::npos) {
      damage = "no newline";
      break;
    }
    const std::string_view line(text.data() + start, newline - start);
    absl::StatusOr<Record> record =
        line.find('\0') != std::string_view::npos
            ? absl::InvalidArgumentError("zero bytes in the line")
            : ParseRecord(line, first_line_index + line_number - first_line, !checksummed, codec);
    const Term previous_term =
        recovered.entries.empty() ? recovered.base_term : recovered.entries.back().term;
    if (record.ok() && record->entry.term < previous_term) {
      record = absl::InvalidArgumentError("term goes down from " + std::to_string(previous_term));
    }
    if (!record.ok()) {
      damage = std::string(record.status().message());
      break;
    }
    checksummed = checksummed || record->checksummed;
    recovered.entries.push_back(std::move(record->entry));
    recovered.line_ends.push_back(newline + 1);
    start = newline + 1;
    ++line_number;
  }
  if (start >= text.size()) return recovered;
  // Damage at `start`. A crash leaves zero bytes (space never written) or a short last line, never
  // altered text: writes go only to fresh space (the preallocated zeros, or past the end; a cut is
  // synced before anything is written over it). So a whole line, newline-terminated and free of
  // zero bytes, that fails to parse or to match its checksum is damage to written data.
  const size_t damaged_end = std::min(text.find('\n', start), text.size());
  const bool crash_shaped = damaged_end == text.size() ||
                            std::string_view(text.data() + start, damaged_end - start).find('\0') !=
                                std::string_view::npos;
  if (!crash_shaped) {
    return absl::DataLossError(path + ":" + std::to_string(line_number) + ": " + damage +
                               ": a whole line that is wrong was damaged after it was written " +
                               kDamaged);
  }
  // Only the last write, never synced and so never acknowledged, can be torn by a crash; an
  // intact line that starts a write further on proves the damage is older.
  size_t later_line = line_number;
  for (size_t at = start; at < text.size();) {
    const size_t newline = std::min(text.find('\n', at), text.size());
    std::string_view piece(text.data() + at, newline - at);
    const size_t first = piece.find_first_not_of('\0');
    piece = first == std::string_view::npos ? std::string_view() : piece.substr(first);
    if (at > start && !piece.empty()) {
      if (absl::StatusOr<Record> record = ParseRecord(piece, std::nullopt, false, codec);
          record.ok() && record->starts_write) {
        return absl::DataLossError(
            path + ":" + std::to_string(line_number) + ": damaged (" + damage + "), yet line " +
            std::to_string(later_line) + " after it holds an intact entry " +
            std::to_string(record->entry.index) +
            ": this is damage to data already written, not a write torn by a crash " + kDamaged);
      }
    }
    at = newline + 1;
    ++later_line;
  }
  // A tail of zero bytes alone is the preallocated space: dropped without a word.
  const size_t last_written = text.find_last_not_of('\0');
  if (last_written != std::string::npos && last_written >= start) {
    recovered.warnings.push_back(path + ":" + std::to_string(line_number) + ": dropped " +
                                 std::to_string(last_written + 1 - start) + " bytes from offset " +
                                 std::to_string(start) + " (" + damage +
                                 "): the tail of a write a crash cut before it was synced");
  }
  return recovered;
}

absl::StatusOr<LogFile::Recovered> LogFile::Read(const std::string& dir, const EntryCodec& codec,
                                                 Env* env) {
  const std::string path = dir + "/logs.txt";
  absl::StatusOr<std::string> contents = env->ReadFile(path);
  if (!contents.ok() && !absl::IsNotFound(contents.status())) return contents.status();
  const std::string text = contents.ok() ? std::move(*contents) : std::string();
  absl::StatusOr<Recovered> recovered = Parse(text, path, codec);
  if (!recovered.ok()) return recovered.status();
  recovered->missing = !contents.ok();
  recovered->file_bytes = text.size();
  return recovered;
}

absl::StatusOr<std::unique_ptr<LogFile>> LogFile::Open(const std::string& dir,
                                                       const Recovered& recovered,
                                                       const EntryCodec& codec, Env* env) {
  if (absl::Status status = env->CreateDir(dir); !status.ok()) return status;
  const std::string path = dir + "/logs.txt";
  absl::StatusOr<std::unique_ptr<WritableFile>> opened = env->OpenWritable(path, false);
  if (!opened.ok()) return opened.status();
  auto file = std::unique_ptr<LogFile>(
      new LogFile(std::move(*opened), path, recovered.line_ends, codec, env, dir));
  file->base_index_ = recovered.base_index;
  file->header_bytes_ = recovered.header_bytes;
  // Cut the torn tail off for good, so that appends start at a line boundary.
  const uint64_t good = file->End();
  if (good != recovered.file_bytes) {
    if (absl::Status status = file->file_->Truncate(good); !status.ok()) return status;
  }
  if (absl::Status status = file->Sync(); !status.ok()) return status;
  if (absl::Status status = env->SyncDir(dir); !status.ok()) return status;
  file->file_size_ = good;
  return file;
}

absl::StatusOr<std::unique_ptr<LogFile>> LogFile::Open(const std::string& dir, Recovered* recovered,
                                                       const EntryCodec& codec, Env* env) {
  absl::StatusOr<Recovered> read = Read(dir, codec, env);
  if (!read.ok()) return read.status();
  *recovered = std::move(*read);
  return Open(dir, *recovered, codec, env);
}

LogFile::LogFile(std::unique_ptr<WritableFile> file, std::string path,
                 std::vector<uint64_t> line_ends, EntryCodec codec, Env* env, std::string dir)
    : file_(std::move(file)),
      codec_(codec),
      env_(env),
      dir_(std::move(dir)),
      path_(std::move(path)),
      line_ends_(std::move(line_ends)) {}

LogFile::~LogFile() {
  // Not synced: if the cut is lost, the next Open drops the zero tail again.
  if (file_size_ > End()) (void)file_->Truncate(End());
}

void LogFile::Preallocate(uint64_t size) {
  if (!preallocate_ || size <= file_size_) return;
  const uint64_t target = (size / kPreallocateBytes + 1) * kPreallocateBytes;
  const absl::Status status = file_->Allocate(file_size_, target - file_size_);
  if (status.ok()) {
    file_size_ = target;
    return;
  }
  // Only an optimisation: the append goes on and grows the file itself (a full disk is then
  // reported by the write). A file system without fallocate is not asked again; after any other
  // failure the file may have grown part of the way, which the append's offset does not mind.
  if (absl::IsUnimplemented(status)) preallocate_ = false;
}

absl::Status LogFile::Append(const std::vector<raft::Entry>& entries) {
  std::string buffer;
  std::vector<uint64_t> ends;
  uint64_t offset = End();
  for (const raft::Entry& entry : entries) {
    if (entry.index != LastIndex() + ends.size() + 1) {
      return absl::InternalError("append at index " + std::to_string(entry.index) + " after " +
                                 std::to_string(LastIndex() + ends.size()));
    }
    absl::StatusOr<std::string> line = FormatRecord(entry, /*starts_write=*/ends.empty(), codec_);
    if (!line.ok()) return line.status();
    buffer += *line;
    buffer += '\n';
    offset += line->size() + 1;
    ends.push_back(offset);
  }
  Preallocate(offset);
  if (absl::Status status = file_->WriteAt(End(), buffer); !status.ok()) return status;
  file_size_ = std::max(file_size_, offset);
  line_ends_.insert(line_ends_.end(), ends.begin(), ends.end());
  return absl::OkStatus();
}

absl::Status LogFile::TruncateFrom(LogIndex index) {
  if (index <= base_index_ || index > LastIndex() + 1) {
    return absl::InternalError("truncation at " + std::to_string(index) + " outside the log");
  }
  const uint64_t keep =
      index == base_index_ + 1 ? header_bytes_ : line_ends_[index - base_index_ - 2];
  // Cutting the file (rather than zeroing the suffix) keeps "zero bytes only past the entries".
  if (absl::Status status = file_->Truncate(keep); !status.ok()) return status;
  line_ends_.resize(index - base_index_ - 1);
  file_size_ = keep;
  // The cut is made durable before anything is written over it: with one sync for both, a power
  // loss can keep the new data's block but lose the truncation (ext4 data=ordered, XFS), leaving
  // a line half new, half old where the old suffix went on.
  return sync_truncations_ ? Sync() : absl::OkStatus();
}

absl::Status LogFile::Sync() { return file_->Sync(); }

absl::Status LogFile::Rewrite(LogIndex base_index, Term base_term, LogIndex keep_through) {
  if (base_index < base_index_ || keep_through > LastIndex()) {
    return absl::InternalError("rewrite of the log after " + std::to_string(base_index) +
                               " keeping up to " + std::to_string(keep_through) + " of " +
                               std::to_string(base_index_) + ".." + std::to_string(LastIndex()));
  }
  const std::string temp = path_ + ".tmp";
  std::vector<uint64_t> ends;
  uint64_t size = 0;
  std::string header;
  {
    absl::StatusOr<std::unique_ptr<WritableFile>> out = env_->OpenWritable(temp, /*truncate=*/true);
    if (!out.ok()) return out.status();
    header = base_index == 0 ? "" : FormatStartLine(base_index, base_term) + "\n";
    if (absl::Status s = (*out)->WriteAt(0, header); !s.ok()) return s;
    size = header.size();
    if (keep_through > base_index) {
      // Copy the kept lines' bytes in pieces (the tail kept may be large).
      const uint64_t from =
          base_index == base_index_ ? header_bytes_ : line_ends_[base_index - base_index_ - 1];
      const uint64_t to = line_ends_[keep_through - base_index_ - 1];
      constexpr uint64_t kPiece = 1 << 20;
      for (uint64_t at = from; at < to;) {
        absl::StatusOr<std::string> piece = env_->ReadAt(path_, at, std::min(kPiece, to - at));
        if (!piece.ok()) return piece.status();
        if (piece->empty()) return absl::DataLossError(path_ + " is shorter than its entries");
        if (absl::Status s = (*out)->WriteAt(size + at - from, *piece); !s.ok()) return s;
        at += piece->size();
      }
      for (LogIndex index = base_index + 1; index <= keep_through; ++index) {
        ends.push_back(line_ends_[index - base_index_ - 1] - from + size);
      }
      size += to - from;
    }
    if (absl::Status s = (*out)->Sync(); !s.ok()) return s;
  }
  if (absl::Status s = env_->Rename(temp, path_); !s.ok()) return s;
  if (absl::Status s = env_->SyncDir(dir_); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<WritableFile>> reopened = env_->OpenWritable(path_, false);
  if (!reopened.ok()) return reopened.status();
  file_ = std::move(*reopened);
  base_index_ = base_index;
  header_bytes_ = header.size();
  line_ends_ = std::move(ends);
  file_size_ = size;
  return absl::OkStatus();
}

}  // namespace raftkv::storage

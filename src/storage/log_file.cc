#include "storage/log_file.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <utility>

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
    "refuses to start and changes nothing. If the other nodes hold a majority, start this one "
    "once with --rebuild: it discards its log and snapshot, comes back a term ahead of the one it "
    "may have voted in, and catches up from the leader (see docs/file-formats.md, Recovery)";
}  // namespace

namespace {

// The lines of a file, read in pieces: no more of it is in memory at a time than one piece and
// the longest line (recovery must not hold a long log twice, once as text and once parsed).
class LineReader {
 public:
  static constexpr uint64_t kPieceBytes = 1 << 20;
  using ReadFn = std::function<absl::StatusOr<std::string>(uint64_t offset, uint64_t length)>;
  LineReader(ReadFn read, uint64_t size) : read_(std::move(read)), size_(size) {}

  // The next line: its bytes without the newline (valid until the next call), the offset it
  // starts at, and whether a newline ends it (if not, it runs to the end of the file). False at
  // the end of the file.
  absl::StatusOr<bool> Next(std::string_view* line, uint64_t* offset, bool* newline) {
    size_t search_from = pos_;
    for (;;) {
      const size_t end = buffer_.find('\n', search_from);
      const uint64_t loaded_to = buffer_offset_ + buffer_.size();
      if (end != std::string::npos || loaded_to >= size_) {
        if (end == std::string::npos && pos_ >= buffer_.size()) return false;
        const size_t stop = end == std::string::npos ? buffer_.size() : end;
        *line = std::string_view(buffer_.data() + pos_, stop - pos_);
        *offset = buffer_offset_ + pos_;
        *newline = end != std::string::npos;
        pos_ = *newline ? stop + 1 : stop;
        return true;
      }
      // The line goes on past what is loaded: drop what was handed out, read the next piece.
      buffer_.erase(0, pos_);
      buffer_offset_ += pos_;
      pos_ = 0;
      search_from = buffer_.size();
      absl::StatusOr<std::string> piece =
          read_(loaded_to, std::min(kPieceBytes, size_ - loaded_to));
      if (!piece.ok()) return piece.status();
      if (piece->empty()) {
        size_ = loaded_to;  // the file is shorter than it was: it ends here
        continue;
      }
      buffer_ += *piece;
    }
  }

  uint64_t size() const { return size_; }

 private:
  ReadFn read_;
  uint64_t size_;
  std::string buffer_;  // the file's bytes from buffer_offset_
  uint64_t buffer_offset_ = 0;
  size_t pos_ = 0;  // where the next line starts in buffer_
};

bool HasZeroByte(std::string_view text) { return text.find('\0') != std::string_view::npos; }

// The recovery rules of docs/file-formats.md ("logs.txt", Recovery) over the lines `reader` gives.
// Entries go to `sink` if it is given, else into Recovered::entries.
absl::StatusOr<LogFile::Recovered> ParseLines(LineReader& reader, const std::string& path,
                                              const EntryCodec& codec,
                                              const LogFile::EntrySink* sink) {
  LogFile::Recovered recovered;
  recovered.file_bytes = reader.size();
  std::string_view line;
  uint64_t offset = 0;
  bool newline = false;
  absl::StatusOr<bool> more = reader.Next(&line, &offset, &newline);
  if (!more.ok()) return more.status();
  size_t line_number = 1;
  if (*more && line.substr(0, 6) == "START ") {
    absl::StatusOr<std::pair<LogIndex, Term>> base = ParseStartLine(line);
    if (!newline || !base.ok()) {
      // The START line is written with the file, synced before the rename that makes it
      // logs.txt: it is never torn.
      return absl::DataLossError(
          path +
          ":1: " + (base.ok() ? std::string("no newline") : std::string(base.status().message())) +
          ": the START line was damaged after it was written " + kDamaged);
    }
    recovered.base_index = base->first;
    recovered.base_term = base->second;
    recovered.header_bytes = line.size() + 1;
    more = reader.Next(&line, &offset, &newline);
    if (!more.ok()) return more.status();
    line_number = 2;
  }
  if (sink != nullptr) sink->base(recovered.base_index, recovered.base_term);
  LogIndex next_index = recovered.base_index + 1;
  Term last_term = recovered.base_term;
  bool checksummed = false;  // once a line has a checksum, every later one must
  std::string damage;        // why the line at `offset` is not an intact entry
  for (; *more; ++line_number) {
    if (!line.empty() && line[0] == '\0') {
      damage = "zero bytes (never written)";
      break;
    }
    if (!newline) {
      damage = "no newline";
      break;
    }
    absl::StatusOr<Record> record = HasZeroByte(line)
                                        ? absl::InvalidArgumentError("zero bytes in the line")
                                        : ParseRecord(line, next_index, !checksummed, codec);
    if (record.ok() && record->entry.term < last_term) {
      record = absl::InvalidArgumentError("term goes down from " + std::to_string(last_term));
    }
    if (!record.ok()) {
      damage = std::string(record.status().message());
      break;
    }
    checksummed = checksummed || record->checksummed;
    last_term = record->entry.term;
    ++next_index;
    recovered.line_ends.push_back(offset + line.size() + 1);
    if (sink != nullptr) {
      sink->entry(std::move(record->entry));
    } else {
      recovered.entries.push_back(std::move(record->entry));
    }
    more = reader.Next(&line, &offset, &newline);
    if (!more.ok()) return more.status();
  }
  if (!*more) return recovered;
  // Damage at `offset`. A crash leaves zero bytes (space never written) or a short last line,
  // never altered text: writes go only to fresh space (the preallocated zeros, or past the end; a
  // cut is synced before anything is written over it). So a whole line, newline-terminated and
  // free of zero bytes, that fails to parse or to match its checksum is damage to written data.
  const uint64_t start = offset;
  if (newline && !HasZeroByte(line)) {
    return absl::DataLossError(path + ":" + std::to_string(line_number) + ": " + damage +
                               ": a whole line that is wrong was damaged after it was written " +
                               kDamaged);
  }
  // Only the last write, never synced and so never acknowledged, can be torn by a crash; an
  // intact line that starts a write further on proves the damage is older. Meanwhile: where the
  // last byte ever written is (a tail of zero bytes alone is the preallocated space).
  std::optional<uint64_t> last_written;
  for (size_t later_line = line_number; *more; ++later_line) {
    if (newline) {
      last_written = offset + line.size();  // the newline itself
    } else if (const size_t last = line.find_last_not_of('\0'); last != std::string_view::npos) {
      last_written = offset + last;
    }
    const size_t first = line.find_first_not_of('\0');
    const std::string_view piece =
        first == std::string_view::npos ? std::string_view() : line.substr(first);
    if (offset > start && !piece.empty()) {
      if (absl::StatusOr<Record> record = ParseRecord(piece, std::nullopt, false, codec);
          record.ok() && record->starts_write) {
        return absl::DataLossError(
            path + ":" + std::to_string(line_number) + ": damaged (" + damage + "), yet line " +
            std::to_string(later_line) + " after it holds an intact entry " +
            std::to_string(record->entry.index) +
            ": this is damage to data already written, not a write torn by a crash " + kDamaged);
      }
    }
    more = reader.Next(&line, &offset, &newline);
    if (!more.ok()) return more.status();
  }
  if (last_written.has_value()) {
    recovered.warnings.push_back(path + ":" + std::to_string(line_number) + ": dropped " +
                                 std::to_string(*last_written + 1 - start) + " bytes from offset " +
                                 std::to_string(start) + " (" + damage +
                                 "): the tail of a write a crash cut before it was synced");
  }
  return recovered;
}

}  // namespace

absl::StatusOr<LogFile::Recovered> LogFile::Parse(const std::string& text, const std::string& path,
                                                  const EntryCodec& codec) {
  LineReader reader(
      [&text](uint64_t offset, uint64_t length) -> absl::StatusOr<std::string> {
        return text.substr(offset, length);
      },
      text.size());
  return ParseLines(reader, path, codec, nullptr);
}

absl::StatusOr<LogFile::Recovered> LogFile::Read(const std::string& dir, const EntryCodec& codec,
                                                 Env* env, const EntrySink* sink) {
  const std::string path = dir + "/logs.txt";
  absl::StatusOr<uint64_t> size = env->FileSize(path);
  if (!size.ok() && !absl::IsNotFound(size.status())) return size.status();
  LineReader reader(
      [env, &path](uint64_t offset, uint64_t length) { return env->ReadAt(path, offset, length); },
      size.value_or(0));
  absl::StatusOr<Recovered> recovered = ParseLines(reader, path, codec, sink);
  if (!recovered.ok()) return recovered.status();
  recovered->missing = !size.ok();
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
  appended_bytes_ += buffer.size();
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
  // The old file is unlinked: closing it frees its blocks, which is slow (storage/env.h).
  env_->CloseInBackground(std::exchange(file_, std::move(*reopened)));
  base_index_ = base_index;
  header_bytes_ = header.size();
  line_ends_ = std::move(ends);
  file_size_ = size;
  return absl::OkStatus();
}

}  // namespace raftkv::storage

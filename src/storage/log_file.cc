#include "storage/log_file.h"

#include <algorithm>
#include <cerrno>

#include "kv/command.h"
#include "storage/escape.h"
#include "storage/file_util.h"

namespace raftkv::storage {
namespace {

absl::Status LineError(const std::string& path, size_t line, std::string_view what) {
  return absl::DataLossError(path + ":" + std::to_string(line) + ": " + std::string(what));
}

}  // namespace

absl::StatusOr<std::string> FormatEntryLine(const raft::Entry& entry) {
  const std::string term = std::to_string(entry.term);
  if (entry.type == raft::EntryType::kNoop) return "NO-OP " + term;
  absl::StatusOr<kv::SetCommand> command = kv::DecodeSet(entry.data);
  if (!command.ok()) return command.status();
  std::string line = "SET " + Escape(command->key) + " " + Escape(command->value) + " ";
  if (command->client_id != 0) {
    line += "session=" + std::to_string(command->client_id) + ":" +
            std::to_string(command->sequence) + " ";
  }
  return line + term;
}

absl::StatusOr<raft::Entry> ParseEntryLine(std::string_view line, LogIndex index) {
  const std::vector<std::string_view> fields = Split(line, ' ');
  raft::Entry entry;
  entry.index = index;
  if (!ParseNumber(fields.back(), &entry.term)) {
    return absl::InvalidArgumentError("the line must end with its term, a number");
  }
  if (fields[0] == "NO-OP") {
    if (fields.size() != 2) return absl::InvalidArgumentError("expected \"NO-OP <term>\"");
    entry.type = raft::EntryType::kNoop;
    return entry;
  }
  if (fields[0] != "SET" || (fields.size() != 4 && fields.size() != 5)) {
    return absl::InvalidArgumentError(
        "expected \"NO-OP <term>\" or \"SET <key> <value> [session=<id>:<seq>] <term>\"");
  }
  kv::SetCommand command;
  absl::StatusOr<std::string> key = Unescape(fields[1]);
  if (!key.ok()) return absl::InvalidArgumentError("key: " + std::string(key.status().message()));
  absl::StatusOr<std::string> value = Unescape(fields[2]);
  if (!value.ok()) {
    return absl::InvalidArgumentError("value: " + std::string(value.status().message()));
  }
  command.key = std::move(*key);
  command.value = std::move(*value);
  if (fields.size() == 5) {
    std::string_view session = fields[3];
    const size_t colon = session.find(':');
    if (session.substr(0, 8) != "session=" || colon == std::string_view::npos ||
        !ParseNumber(session.substr(8, colon - 8), &command.client_id) ||
        !ParseNumber(session.substr(colon + 1), &command.sequence) || command.client_id == 0) {
      return absl::InvalidArgumentError("expected \"session=<client_id>:<sequence>\"");
    }
  }
  entry.type = raft::EntryType::kCommand;
  entry.data = kv::EncodeSet(command);
  return entry;
}

absl::StatusOr<LogFile::Recovered> LogFile::Parse(const std::string& text,
                                                  const std::string& path) {
  Recovered recovered;
  // Past the first zero byte lies the preallocated tail, and possibly writes that never reached
  // the disk whole (see the header); the entries end there.
  const size_t zero = std::min(text.find('\0'), text.size());
  if (text.find_first_not_of('\0', zero) != std::string::npos) {
    recovered.warnings.push_back(path + ": dropped " + std::to_string(text.size() - zero) +
                                 " bytes after offset " + std::to_string(zero) +
                                 " (a write a crash cut before it reached the disk)");
  }
  const std::string_view body(text.data(), zero);
  size_t start = 0;
  size_t line_number = 1;
  while (start < body.size()) {
    const size_t newline = body.find('\n', start);
    if (newline == std::string_view::npos) {
      recovered.warnings.push_back(
          path + ":" + std::to_string(line_number) +
          ": dropped a torn last line (no newline; a crash cut the write)");
      break;
    }
    const std::string_view line = body.substr(start, newline - start);
    absl::StatusOr<raft::Entry> entry = ParseEntryLine(line, line_number);
    if (!entry.ok()) return LineError(path, line_number, std::string(entry.status().message()));
    if (!recovered.entries.empty() && entry->term < recovered.entries.back().term) {
      return LineError(path, line_number,
                       "term goes down from " + std::to_string(recovered.entries.back().term));
    }
    recovered.entries.push_back(std::move(*entry));
    recovered.line_ends.push_back(newline + 1);
    start = newline + 1;
    ++line_number;
  }
  return recovered;
}

absl::StatusOr<std::unique_ptr<LogFile>> LogFile::Open(const std::string& dir,
                                                       Recovered* recovered, Env* env) {
  if (absl::Status status = env->CreateDir(dir); !status.ok()) return status;
  const std::string path = dir + "/logs.txt";
  absl::StatusOr<std::string> contents = env->ReadFile(path);
  if (!contents.ok() && !absl::IsNotFound(contents.status())) return contents.status();
  const std::string text = contents.ok() ? std::move(*contents) : std::string();
  absl::StatusOr<Recovered> parsed = Parse(text, path);
  if (!parsed.ok()) return parsed.status();
  *recovered = std::move(*parsed);
  std::vector<uint64_t> line_ends = recovered->line_ends;

  absl::StatusOr<std::unique_ptr<WritableFile>> opened = env->OpenWritable(path, false);
  if (!opened.ok()) return opened.status();
  auto file = std::unique_ptr<LogFile>(new LogFile(std::move(*opened), path, std::move(line_ends)));
  // Cut the torn tail off for good, so that appends start at a line boundary.
  const uint64_t good = file->End();
  if (good != text.size()) {
    if (absl::Status status = file->file_->Truncate(good); !status.ok()) return status;
  }
  if (absl::Status status = file->Sync(); !status.ok()) return status;
  if (absl::Status status = env->SyncDir(dir); !status.ok()) return status;
  file->file_size_ = good;
  return file;
}

LogFile::LogFile(std::unique_ptr<WritableFile> file, std::string path,
                 std::vector<uint64_t> line_ends)
    : file_(std::move(file)), path_(std::move(path)), line_ends_(std::move(line_ends)) {}

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
    absl::StatusOr<std::string> line = FormatEntryLine(entry);
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
  if (index < 1 || index > LastIndex() + 1) {
    return absl::InternalError("truncation at " + std::to_string(index) + " outside the log");
  }
  const uint64_t keep = index == 1 ? 0 : line_ends_[index - 2];
  // Cutting the file (rather than zeroing the suffix) keeps "zero bytes only past the entries".
  if (absl::Status status = file_->Truncate(keep); !status.ok()) return status;
  line_ends_.resize(index - 1);
  file_size_ = keep;
  // The cut is made durable before anything is written over it: with one sync for both, a power
  // loss can keep the new data's block but lose the truncation (ext4 data=ordered, XFS), leaving
  // a line half new, half old where the old suffix went on.
  return sync_truncations_ ? Sync() : absl::OkStatus();
}

absl::Status LogFile::Sync() { return file_->Sync(); }

}  // namespace raftkv::storage

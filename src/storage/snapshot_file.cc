#include "storage/snapshot_file.h"

#include <cstdio>
#include <optional>
#include <vector>

#include "common/escape.h"
#include "storage/file_util.h"

namespace raftkv::storage {
absl::StatusOr<SnapshotMeta> ParseSnapshotHeader(std::string_view line,
                                                 std::string_view* state_fields) {
  std::string_view fields = line;
  uint64_t index = 0, term = 0, nodes = 0;
  if (fields.substr(0, 9) != "SNAPSHOT " ||
      !(fields.remove_prefix(9), TakeNumberField(&fields, "index", &index)) ||
      !TakeNumberField(&fields, "term", &term) || !TakeNumberField(&fields, "nodes", &nodes) ||
      nodes == 0 || nodes > 1000) {
    return absl::InvalidArgumentError(
        "the first line must be SNAPSHOT index=<n> term=<n> nodes=<n> …");
  }
  if (state_fields != nullptr) *state_fields = fields;
  return SnapshotMeta{index, term, static_cast<int>(nodes), 0};
}

namespace {

constexpr size_t kPieceBytes = 1 << 20;
// A line of state is at most a key and a value (MAX_VALUE_BYTES is at most 64 MiB, tripled by
// escaping) plus a little: anything longer is damage, not state.
constexpr size_t kMaxLineBytes = 256u << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<SnapshotWriter>> SnapshotWriter::Create(
    Env* env, const std::string& path, const SnapshotMeta& meta, std::string_view header_fields) {
  absl::StatusOr<std::unique_ptr<WritableFile>> file = env->OpenWritable(path, /*truncate=*/true);
  if (!file.ok()) return file.status();
  auto writer = std::unique_ptr<SnapshotWriter>(new SnapshotWriter(std::move(*file), path));
  std::string header = "SNAPSHOT index=" + std::to_string(meta.index) +
                       " term=" + std::to_string(meta.term) +
                       " nodes=" + std::to_string(meta.cluster_size);
  if (!header_fields.empty()) header += " " + std::string(header_fields);
  if (absl::Status s = writer->Put(header + "\n"); !s.ok()) return s;
  return writer;
}

SnapshotWriter::SnapshotWriter(std::unique_ptr<WritableFile> file, std::string path)
    : file_(std::move(file)), path_(std::move(path)), crc_(0) {}

absl::Status SnapshotWriter::Put(std::string_view bytes) {
  crc_ = Crc32(bytes, crc_);
  buffer_.append(bytes);
  return buffer_.size() >= kPieceBytes ? Flush() : absl::OkStatus();
}

absl::Status SnapshotWriter::Flush() {
  if (buffer_.empty()) return absl::OkStatus();
  if (absl::Status s = file_->WriteAt(offset_, buffer_); !s.ok()) return s;
  // Written out as it goes, one piece behind: the final Sync() then has little left to do.
  file_->Writeback(written_back_, offset_, buffer_.size());
  written_back_ = offset_;
  offset_ += buffer_.size();
  buffer_.clear();
  return absl::OkStatus();
}

absl::Status SnapshotWriter::AddLine(std::string_view line) {
  if (line.find('\n') != std::string_view::npos || line.find('\0') != std::string_view::npos) {
    return absl::InternalError("a snapshot line must hold no newline or zero byte");
  }
  ++lines_;
  if (absl::Status s = Put(line); !s.ok()) return s;
  return Put("\n");
}

absl::StatusOr<uint64_t> SnapshotWriter::Finish() {
  // The trailer is not part of what its checksum covers.
  buffer_ += "END lines=" + std::to_string(lines_) + " crc=" + Hex8(crc_) + "\n";
  if (absl::Status s = Flush(); !s.ok()) return s;
  if (absl::Status s = file_->Sync(); !s.ok()) return s;
  return offset_;
}

absl::StatusOr<SnapshotMeta> ReadSnapshot(
    Env* env, const std::string& path,
    const std::function<absl::Status(std::string_view header_fields)>& on_header,
    const std::function<absl::Status(std::string_view line)>& on_line) {
  auto damaged = [&](uint64_t line_number, const std::string& why) {
    return absl::DataLossError(path + ":" + std::to_string(line_number) + ": " + why +
                               ": the snapshot is damaged");
  };
  uint64_t offset = 0;
  std::string pending;  // bytes read; those before `pos` are consumed
  size_t pos = 0;
  uint32_t crc = 0;
  uint64_t line_number = 0;
  std::optional<SnapshotMeta> meta;
  uint64_t lines = 0;
  bool ended = false;
  bool at_eof = false;
  while (!ended) {
    const size_t newline = pending.find('\n', pos);
    if (newline == std::string::npos) {
      if (at_eof) {
        return damaged(line_number + 1, pos == pending.size() ? "the file ends without its END line"
                                                              : "the last line has no newline");
      }
      if (pending.size() - pos > kMaxLineBytes) {
        return damaged(line_number + 1, "a line is too long");
      }
      absl::StatusOr<std::string> piece = env->ReadAt(path, offset, kPieceBytes);
      if (!piece.ok()) return piece.status();
      at_eof = piece->size() < kPieceBytes;
      offset += piece->size();
      pending.erase(0, pos);
      pos = 0;
      pending += *piece;
      continue;
    }
    const std::string_view line(pending.data() + pos, newline - pos);
    ++line_number;
    if (line.find('\0') != std::string_view::npos) return damaged(line_number, "zero bytes");
    if (!meta) {
      std::string_view fields;
      absl::StatusOr<SnapshotMeta> header = ParseSnapshotHeader(line, &fields);
      if (!header.ok()) return damaged(line_number, std::string(header.status().message()));
      meta = *header;
      if (absl::Status s = on_header(fields); !s.ok())
        return damaged(line_number, std::string(s.message()));
    } else if (line.substr(0, 4) == "END ") {
      std::string_view fields = line.substr(4);
      uint64_t stated_lines = 0;
      if (!TakeNumberField(&fields, "lines", &stated_lines) || fields.substr(0, 4) != "crc=" ||
          fields.size() != 12) {
        return damaged(line_number, "the END line must be END lines=<n> crc=<8 hex>");
      }
      if (fields.substr(4) != Hex8(crc)) {
        return damaged(line_number, "checksum mismatch (crc=" + std::string(fields.substr(4)) +
                                        ", the file's bytes give " + Hex8(crc) + ")");
      }
      if (stated_lines != lines) {
        return damaged(line_number, "END says " + std::to_string(stated_lines) +
                                        " lines of state, the file holds " + std::to_string(lines));
      }
      ended = true;
      pos = newline + 1;
      break;
    } else {
      ++lines;
      if (absl::Status s = on_line(line); !s.ok())
        return damaged(line_number, std::string(s.message()));
    }
    crc = Crc32(std::string_view(pending.data() + pos, newline + 1 - pos), crc);
    pos = newline + 1;
  }
  const uint64_t unread = pending.size() - pos;
  if (unread != 0 || !at_eof) {
    absl::StatusOr<uint64_t> size = env->FileSize(path);
    if (!size.ok()) return size.status();
    if (*size != offset - unread) {
      return damaged(line_number + 1, "bytes follow the END line");
    }
  }
  meta->bytes = offset - unread;
  return *meta;
}

}  // namespace raftkv::storage

#include "storage/metadata_file.h"

#include <cstdio>
#include <vector>

#include "common/escape.h"
#include "storage/file_util.h"

namespace raftkv::storage {
namespace {

constexpr const char* kName = "metadata.txt";

absl::Status LineError(const std::string& path, size_t line, const std::string& what) {
  return absl::DataLossError(path + ":" + std::to_string(line) + ": " + what);
}

}  // namespace

std::string FormatMetadata(const raft::HardState& state) {
  const std::string body =
      "# raftkv node metadata (replaced atomically; do not edit while the node runs)\n"
      "term " +
      std::to_string(state.term) + "\n" + "voted_for " +
      (state.voted_for == kNoNode ? std::string("none") : std::to_string(state.voted_for)) + "\n" +
      "commit_index " + std::to_string(state.commit_index) + "\n" +
      (state.rebuilt_at_term > 0 ? "rebuilt_at_term " + std::to_string(state.rebuilt_at_term) + "\n"
                                 : std::string());
  return body + "crc " + Hex8(Crc32(body)) + "\n";
}

absl::Status CheckLogAgainstMetadata(const std::string& dir, const raft::HardState& state,
                                     uint64_t log_entries, bool log_missing,
                                     bool metadata_checksummed) {
  const std::string what_to_do =
      ". The node refuses to start and changes nothing. If the other nodes hold a majority, start "
      "this one once with --rebuild: it discards its log and snapshot, comes back a term ahead "
      "of the one it may have voted in, and catches up from the leader (see docs/file-formats.md, "
      "Recovery)";
  if (log_missing && state.term > 0) {
    return absl::DataLossError(dir + "/logs.txt is missing, yet metadata.txt records term " +
                               std::to_string(state.term) +
                               ": the log this node acknowledged is gone" + what_to_do);
  }
  if (metadata_checksummed && log_entries < state.commit_index) {
    return absl::DataLossError(dir + "/logs.txt holds " + std::to_string(log_entries) +
                               " entries, yet metadata.txt records " +
                               std::to_string(state.commit_index) +
                               " as committed: committed entries were lost" + what_to_do);
  }
  return absl::OkStatus();
}

absl::Status SaveMetadata(const std::string& dir, const raft::HardState& state, Env* env) {
  return ReplaceFileAtomically(env, dir, kName, FormatMetadata(state));
}

absl::StatusOr<raft::HardState> LoadMetadata(const std::string& dir, Env* env, bool* checksummed) {
  if (checksummed != nullptr) *checksummed = false;
  const std::string path = dir + "/" + kName;
  absl::StatusOr<std::string> text = env->ReadFile(path);
  if (absl::IsNotFound(text.status())) return raft::HardState{};
  if (!text.ok()) return text.status();
  raft::HardState state;
  bool seen[4] = {false, false, false, false};
  const std::vector<std::string_view> lines = Split(*text, '\n');
  size_t offset = 0;  // of lines[i] in the text
  for (size_t i = 0; i < lines.size(); offset += lines[i].size() + 1, ++i) {
    const std::string_view line = lines[i];
    if (line.empty() || line[0] == '#') continue;
    if (line.substr(0, 4) == "crc ") {
      const std::string expected = Hex8(Crc32(std::string_view(*text).substr(0, offset)));
      if (line.substr(4) != expected) {
        return LineError(path, i + 1,
                         "checksum mismatch (crc " + std::string(line.substr(4)) +
                             ", the file's bytes give " + expected +
                             "): the file is damaged; restore it from a backup (see "
                             "docs/file-formats.md, Recovery)");
      }
      const std::string_view rest = std::string_view(*text).substr(offset + line.size());
      if (rest.find_first_not_of('\n') != std::string_view::npos) {
        return LineError(path, i + 1, "the crc line must be the last");
      }
      if (checksummed != nullptr) *checksummed = true;
      break;
    }
    const size_t space = line.find(' ');
    const std::string_view key = line.substr(0, space);
    const std::string_view value =
        space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    bool ok = false;
    int slot = -1;
    if (key == "term") {
      slot = 0;
      ok = ParseNumber(value, &state.term);
    } else if (key == "voted_for") {
      slot = 1;
      if (value == "none") {
        state.voted_for = kNoNode;
        ok = true;
      } else {
        ok = ParseNumber(value, &state.voted_for) && state.voted_for >= 0;
      }
    } else if (key == "commit_index") {
      slot = 2;
      ok = ParseNumber(value, &state.commit_index);
    } else if (key == "rebuilt_at_term") {
      slot = 3;
      ok = ParseNumber(value, &state.rebuilt_at_term) && state.rebuilt_at_term > 0;
    } else {
      return LineError(path, i + 1,
                       "unknown key \"" + std::string(key) +
                           "\" (expected term, voted_for, commit_index or rebuilt_at_term)");
    }
    if (!ok) {
      return LineError(path, i + 1,
                       "bad value \"" + std::string(value) + "\" for " + std::string(key));
    }
    if (seen[slot]) return LineError(path, i + 1, std::string(key) + " appears twice");
    seen[slot] = true;
  }
  if (!seen[0] || !seen[1]) {
    return absl::DataLossError(path + ": term and voted_for are required");
  }
  return state;
}

}  // namespace raftkv::storage

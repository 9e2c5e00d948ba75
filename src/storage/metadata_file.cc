#include "storage/metadata_file.h"

#include <vector>

#include "storage/escape.h"
#include "storage/file_util.h"

namespace raftkv::storage {
namespace {

constexpr const char* kName = "metadata.txt";

absl::Status LineError(const std::string& path, size_t line, const std::string& what) {
  return absl::DataLossError(path + ":" + std::to_string(line) + ": " + what);
}

}  // namespace

std::string FormatMetadata(const raft::HardState& state) {
  return "# raftkv node metadata (replaced atomically; do not edit while the node runs)\n"
         "term " +
         std::to_string(state.term) + "\n" + "voted_for " +
         (state.voted_for == kNoNode ? std::string("none") : std::to_string(state.voted_for)) +
         "\n" + "commit_index " + std::to_string(state.commit_index) + "\n";
}

absl::Status SaveMetadata(const std::string& dir, const raft::HardState& state, Env* env) {
  return ReplaceFileAtomically(env, dir, kName, FormatMetadata(state));
}

absl::StatusOr<raft::HardState> LoadMetadata(const std::string& dir, Env* env) {
  const std::string path = dir + "/" + kName;
  absl::StatusOr<std::string> text = env->ReadFile(path);
  if (absl::IsNotFound(text.status())) return raft::HardState{};
  if (!text.ok()) return text.status();
  raft::HardState state;
  bool seen[3] = {false, false, false};
  const std::vector<std::string_view> lines = Split(*text, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (line.empty() || line[0] == '#') continue;
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
    } else {
      return LineError(
          path, i + 1,
          "unknown key \"" + std::string(key) + "\" (expected term, voted_for or commit_index)");
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

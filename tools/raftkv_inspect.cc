// raftkv-inspect: prints and validates a node's data directory without changing it.
//
//   raftkv-inspect DIR [--all]
//
// DIR is a node directory (logs_node_<id>) or a data directory holding several. Exit status: 0
// when every directory is valid (a torn last line, which a crash can leave, is only a warning),
// 1 when a file is damaged, 2 on bad usage.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kv/command.h"
#include "node/replica.h"
#include "storage/file_util.h"
#include "storage/log_file.h"
#include "storage/metadata_file.h"

namespace {

namespace fs = std::filesystem;
using raftkv::raft::EntryType;

// Validates and prints one node directory; returns whether it is valid.
bool Inspect(const std::string& dir, bool all) {
  std::printf("%s\n", dir.c_str());
  bool metadata_checksummed = false;
  absl::StatusOr<raftkv::raft::HardState> metadata =
      raftkv::storage::LoadMetadata(dir, raftkv::storage::PosixEnv(), &metadata_checksummed);
  if (!metadata.ok()) {
    std::printf("  ERROR %s\n", std::string(metadata.status().message()).c_str());
    return false;
  }
  std::printf("  metadata.txt  term %llu, voted_for %s, commit_index %llu\n",
              static_cast<unsigned long long>(metadata->term),
              metadata->voted_for < 0 ? "none" : std::to_string(metadata->voted_for).c_str(),
              static_cast<unsigned long long>(metadata->commit_index));

  // The node's own recovery rules (docs/file-formats.md, Recovery), without changing anything.
  absl::StatusOr<raftkv::storage::LogFile::Recovered> log =
      raftkv::storage::LogFile::Read(dir, raftkv::node::kCommandCodec);
  if (log.ok()) {
    if (absl::Status status = raftkv::storage::CheckLogAgainstMetadata(
            dir, *metadata, log->entries.size(), log->missing, metadata_checksummed);
        !status.ok()) {
      log = status;
    }
  }
  if (!log.ok()) {
    std::printf("  ERROR %s\n", std::string(log.status().message()).c_str());
    return false;
  }
  size_t noops = 0, opens = 0;
  std::set<uint64_t> sessions;  // every session opened or (legacy) named
  for (const auto& entry : log->entries) {
    if (entry.type == EntryType::kNoop) {
      ++noops;
    } else if (auto command = raftkv::kv::DecodeCommand(entry.data); command.ok()) {
      if (std::holds_alternative<raftkv::kv::OpenSessionCommand>(*command)) {
        ++opens;
        sessions.insert(entry.index);
      } else if (const auto& set = std::get<raftkv::kv::SetCommand>(*command); set.legacy_session) {
        sessions.insert(set.client_id);
      }
    }
  }
  const size_t count = log->entries.size();
  std::printf(
      "  logs.txt      %zu entries (%zu NO-OP, %zu SET, %zu OPEN-SESSION), terms %llu..%llu, %zu "
      "sessions\n",
      count, noops, count - noops - opens, opens,
      static_cast<unsigned long long>(count ? log->entries.front().term : 0),
      static_cast<unsigned long long>(count ? log->entries.back().term : 0), sessions.size());
  for (const std::string& warning : log->warnings) std::printf("  WARNING %s\n", warning.c_str());
  bool valid = true;
  if (count > 0 && log->entries.back().term > metadata->term) {
    std::printf("  ERROR logs.txt holds term %llu, newer than metadata.txt's term %llu\n",
                static_cast<unsigned long long>(log->entries.back().term),
                static_cast<unsigned long long>(metadata->term));
    valid = false;
  }
  if (metadata->commit_index > count) {
    std::printf(
        "  note: commit_index is past the durable log (a crash before the log's fsync);"
        " the node relearns it from the leader\n");
  }
  std::error_code error;
  for (const char* name : {"dump.txt", "dump.txt.1"}) {
    const auto size = fs::file_size(dir + "/" + name, error);
    if (!error) std::printf("  %-13s %.1f KiB\n", name, static_cast<double>(size) / 1024);
  }
  const size_t first = all || count <= 10 ? 0 : count - 10;
  if (count > 0) std::printf("  %s:\n", all ? "entries" : "last entries");
  for (size_t i = first; i < count; ++i) {
    auto line = raftkv::storage::FormatEntryLine(log->entries[i], raftkv::node::kCommandCodec);
    std::printf("    %6zu  %s\n", i + 1, line.ok() ? line->c_str() : "<undecodable>");
  }
  return valid;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  bool all = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--all") {
      all = true;
    } else if (arg == "--help" || arg == "-h") {
      std::puts("usage: raftkv-inspect DIR [--all]   (DIR: logs_node_<id> or a data directory)");
      return 0;
    } else if (dir.empty()) {
      dir = arg;
    } else {
      std::fprintf(stderr, "raftkv-inspect: unexpected argument '%s'\n", arg.c_str());
      return 2;
    }
  }
  if (dir.empty() || !fs::is_directory(dir)) {
    std::fprintf(stderr, "raftkv-inspect: give a node or data directory (got '%s')\n", dir.c_str());
    return 2;
  }
  std::vector<std::string> nodes;
  if (fs::exists(dir + "/logs.txt") || fs::exists(dir + "/metadata.txt")) {
    nodes.push_back(dir);
  } else {
    for (const auto& child : fs::directory_iterator(dir)) {
      if (child.is_directory() && child.path().filename().string().rfind("logs_node_", 0) == 0) {
        nodes.push_back(child.path().string());
      }
    }
    std::sort(nodes.begin(), nodes.end());
  }
  if (nodes.empty()) {
    std::fprintf(stderr, "raftkv-inspect: %s holds no logs.txt, metadata.txt or logs_node_*\n",
                 dir.c_str());
    return 2;
  }
  bool valid = true;
  for (const std::string& node : nodes) valid = Inspect(node, all) && valid;
  return valid ? 0 : 1;
}

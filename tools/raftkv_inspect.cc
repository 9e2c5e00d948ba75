// raftkv-inspect: prints and validates a node's data directory without changing it.
//
//   raftkv-inspect DIR [--all]
//
// It checks snapshot.txt, metadata.txt and logs.txt by the node's own rules (docs/file-formats.md)
// and prints a summary; --all prints every entry and every line of the snapshot's state.
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
#include "kv/kv_state_machine.h"
#include "node/replica.h"
#include "storage/file_util.h"
#include "storage/log_file.h"
#include "storage/metadata_file.h"
#include "storage/snapshot_file.h"

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

  // The snapshot, checked whole as the node loads it (docs/file-formats.md, snapshot.txt).
  raftkv::raft::SnapshotMeta snapshot;
  std::vector<std::string> lines;
  absl::StatusOr<raftkv::node::LoadedSnapshot> loaded = raftkv::node::LoadSnapshot(
      raftkv::storage::PosixEnv(), dir + "/" + raftkv::storage::kSnapshotFile,
      [&](std::string_view line) {
        if (all) lines.emplace_back(line);
      });
  if (!loaded.ok() && !absl::IsNotFound(loaded.status())) {
    std::printf("  ERROR %s\n", std::string(loaded.status().message()).c_str());
    return false;
  }
  if (loaded.ok()) {
    snapshot = loaded->meta;
    std::printf(
        "  snapshot.txt  up to index %llu (term %llu), %zu keys, %zu sessions, %llu bytes\n",
        static_cast<unsigned long long>(snapshot.index),
        static_cast<unsigned long long>(snapshot.term), loaded->kv->size(),
        loaded->kv->session_count(), static_cast<unsigned long long>(snapshot.bytes));
    for (const std::string& line : lines) std::printf("    %s\n", line.c_str());
    if (snapshot.term > metadata->term) {
      std::printf("  ERROR snapshot.txt holds term %llu, newer than metadata.txt's term %llu\n",
                  static_cast<unsigned long long>(snapshot.term),
                  static_cast<unsigned long long>(metadata->term));
      return false;
    }
  }

  // The node's own recovery rules (docs/file-formats.md, Recovery), in its order, without changing
  // anything: the log against the snapshot, then against metadata.txt.
  absl::StatusOr<raftkv::storage::LogFile::Recovered> log =
      raftkv::storage::LogFile::Read(dir, raftkv::node::kCommandCodec);
  if (!log.ok()) {
    std::printf("  ERROR %s\n", std::string(log.status().message()).c_str());
    return false;
  }
  const bool holds = raftkv::raft::LogHolds(log->base_index, log->base_term, log->entries,
                                            snapshot.index, snapshot.term);
  switch (raftkv::raft::CompareLogToSnapshot(log->base_index, holds, snapshot.index)) {
    case raftkv::raft::LogVsSnapshot::kContinues:
      break;
    case raftkv::raft::LogVsSnapshot::kSuperseded:
      std::printf(
          "  note: logs.txt does not hold the snapshot's last entry (a crash while installing a "
          "leader's snapshot); the node starts from the snapshot with an empty log\n");
      log->entries.clear();
      log->base_index = snapshot.index;
      log->base_term = snapshot.term;
      break;
    case raftkv::raft::LogVsSnapshot::kGap:
      std::printf(
          "  ERROR logs.txt starts after index %llu but the snapshot covers only up to "
          "%llu: the entries in between are lost\n",
          static_cast<unsigned long long>(log->base_index),
          static_cast<unsigned long long>(snapshot.index));
      return false;
  }
  if (absl::Status status = raftkv::storage::CheckLogAgainstMetadata(
          dir, *metadata, log->base_index + log->entries.size(), log->missing,
          metadata_checksummed);
      !status.ok()) {
    std::printf("  ERROR %s\n", std::string(status.message()).c_str());
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
      "  logs.txt      %zu entries%s (%zu NO-OP, %zu SET, %zu OPEN-SESSION), terms %llu..%llu, %zu "
      "sessions\n",
      count,
      log->base_index == 0 ? "" : (" from index " + std::to_string(log->base_index + 1)).c_str(),
      noops, count - noops - opens, opens,
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
  if (metadata->commit_index > std::max<uint64_t>(log->base_index + count, snapshot.index)) {
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
    std::printf("    %6llu  %s\n", static_cast<unsigned long long>(log->entries[i].index),
                line.ok() ? line->c_str() : "<undecodable>");
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

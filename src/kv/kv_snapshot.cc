// KvStateMachine as lines of a snapshot (storage/snapshot_file.h frames them). Grammar:
// docs/file-formats.md, "snapshot.txt".
//
//   KEY <key> <value> <version>
//   SESSION <client id> <last used, log ms> <used since the last OPEN-SESSION: 0|1> <sequences>
//   LEGACY <client id> <last used, log index> <sequences>
//
// <sequences> is "<applied_through>" followed by ",<seq>" for each sequence applied above it.
#include <algorithm>
#include <string>
#include <vector>

#include "common/escape.h"
#include "kv/kv_state_machine.h"

namespace raftkv::kv {
namespace {

std::string FormatSequences(uint64_t through, const std::set<uint64_t>& above) {
  std::string out = std::to_string(through);
  for (uint64_t sequence : above) out += "," + std::to_string(sequence);
  return out;
}

// Parses FormatSequences' output into `through` and `above`, checking what Add() keeps true.
bool ParseSequences(std::string_view text, uint64_t* through, std::set<uint64_t>* above) {
  const std::vector<std::string_view> parts = Split(text, ',');
  if (!ParseNumber(parts[0], through)) return false;
  uint64_t previous = *through + 1;
  for (size_t i = 1; i < parts.size(); ++i) {
    uint64_t sequence = 0;
    if (!ParseNumber(parts[i], &sequence) || sequence <= previous) return false;
    above->insert(sequence);
    previous = sequence;
  }
  return true;
}

}  // namespace

std::string KvStateMachine::SnapshotHeaderFields(bool sessions) const {
  return "keys=" + std::to_string(data_.size()) +
         " sessions=" + std::to_string(sessions ? sessions_.size() : 0) +
         " legacy=" + std::to_string(sessions ? legacy_sessions_.size() : 0) +
         " log_time=" + std::to_string(log_time_ms_);
}

absl::Status KvStateMachine::WriteSnapshotLines(
    const std::function<absl::Status(std::string_view line)>& line, bool sessions) const {
  std::vector<const Item*> items;
  items.reserve(data_.size());
  for (const ItemPtr& item : data_) items.push_back(item.get());
  std::sort(items.begin(), items.end(),
            [](const Item* a, const Item* b) { return a->key() < b->key(); });
  std::string text;
  for (const Item* item : items) {
    text = "KEY " + Escape(item->key()) + " " + Escape(item->value()) + " " +
           std::to_string(item->version);
    if (absl::Status s = line(text); !s.ok()) return s;
  }
  if (!sessions) return absl::OkStatus();
  std::vector<uint64_t> ids;
  ids.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    const Session& session = sessions_.at(id);
    text = "SESSION " + std::to_string(id) + " " + std::to_string(session.last_used_ms) + " " +
           (session.recently_used ? "1 " : "0 ") +
           FormatSequences(session.sequences.applied_through, session.sequences.applied_above);
    if (absl::Status s = line(text); !s.ok()) return s;
  }
  ids.clear();
  for (const auto& [id, session] : legacy_sessions_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    const LegacySession& session = legacy_sessions_.at(id);
    text = "LEGACY " + std::to_string(id) + " " + std::to_string(session.last_used_index) + " " +
           FormatSequences(session.sequences.applied_through, session.sequences.applied_above);
    if (absl::Status s = line(text); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status KvStateMachine::SnapshotLoader::Header(std::string_view fields) {
  if (!TakeNumberField(&fields, "keys", &keys_) ||
      !TakeNumberField(&fields, "sessions", &sessions_) ||
      !TakeNumberField(&fields, "legacy", &legacy_) ||
      !TakeNumberField(&fields, "log_time", &kv_->log_time_ms_) || !fields.empty()) {
    return absl::InvalidArgumentError(
        "the header's state fields must be keys=<n> sessions=<n> legacy=<n> log_time=<ms>");
  }
  have_header_ = true;
  return absl::OkStatus();
}

absl::Status KvStateMachine::SnapshotLoader::Line(std::string_view line) {
  if (!have_header_) return absl::InvalidArgumentError("state lines before the header");
  const std::vector<std::string_view> f = Split(line, ' ');
  KvStateMachine& kv = *kv_;
  if (f[0] == "KEY") {
    uint64_t version = 0;
    if (f.size() != 4 || !ParseNumber(f[3], &version) || version == 0) {
      return absl::InvalidArgumentError("a KEY line is KEY <key> <value> <version ≥ 1>");
    }
    absl::StatusOr<std::string> key = Unescape(f[1]);
    absl::StatusOr<std::string> value = Unescape(f[2]);
    if (!key.ok() || !value.ok() || key->empty()) {
      return absl::InvalidArgumentError("a KEY line has a damaged key or value");
    }
    if (key->size() > UINT32_MAX || value->size() > UINT32_MAX ||
        !kv.data_.insert(MakeItem(*key, *value, version)).second) {
      return absl::InvalidArgumentError("key " + std::string(f[1]) + " appears twice");
    }
    return absl::OkStatus();
  }
  if (f[0] == "SESSION") {
    uint64_t id = 0, last_used = 0;
    Session session;
    if (f.size() != 5 || !ParseNumber(f[1], &id) || id == 0 || !ParseNumber(f[2], &last_used) ||
        (f[3] != "0" && f[3] != "1") ||
        !ParseSequences(f[4], &session.sequences.applied_through,
                        &session.sequences.applied_above) ||
        last_used > kv.log_time_ms_) {
      return absl::InvalidArgumentError(
          "a SESSION line is SESSION <id> <last used ms ≤ log_time> <0|1> <sequences>");
    }
    session.last_used_ms = last_used;
    session.recently_used = f[3] == "1";
    if (!kv.sessions_.emplace(id, session).second) {
      return absl::InvalidArgumentError("session " + std::to_string(id) + " appears twice");
    }
    if (session.recently_used) {
      kv.recently_used_.push_back(id);
    } else {
      kv.idle_since_.emplace(last_used, id);
    }
    return absl::OkStatus();
  }
  if (f[0] == "LEGACY") {
    uint64_t id = 0;
    LegacySession session;
    if (f.size() != 4 || !ParseNumber(f[1], &id) || id == 0 ||
        !ParseNumber(f[2], &session.last_used_index) ||
        !ParseSequences(f[3], &session.sequences.applied_through,
                        &session.sequences.applied_above)) {
      return absl::InvalidArgumentError(
          "a LEGACY line is LEGACY <id> <last used index> <sequences>");
    }
    if (!kv.legacy_by_last_use_.emplace(session.last_used_index, id).second ||
        !kv.legacy_sessions_.emplace(id, session).second) {
      return absl::InvalidArgumentError("legacy session " + std::to_string(id) +
                                        " appears twice, or shares its last use");
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown line kind " + std::string(f[0]) +
                                    " (expected KEY, SESSION or LEGACY)");
}

absl::StatusOr<std::unique_ptr<KvStateMachine>> KvStateMachine::SnapshotLoader::Finish() {
  if (!have_header_) return absl::InvalidArgumentError("no header");
  if (kv_->data_.size() != keys_ || kv_->sessions_.size() != sessions_ ||
      kv_->legacy_sessions_.size() != legacy_) {
    return absl::InvalidArgumentError("the header announces keys=" + std::to_string(keys_) +
                                      " sessions=" + std::to_string(sessions_) +
                                      " legacy=" + std::to_string(legacy_) + ", the file holds " +
                                      std::to_string(kv_->data_.size()) + ", " +
                                      std::to_string(kv_->sessions_.size()) + ", " +
                                      std::to_string(kv_->legacy_sessions_.size()));
  }
  return std::move(kv_);
}

}  // namespace raftkv::kv

#include "kv/kv_state_machine.h"

#include <algorithm>

namespace raftkv::kv {

ApplyOutcome KvStateMachine::ApplySet(const SetCommand& command, uint64_t log_index) {
  if (command.client_id != 0) {
    const ApplyOutcome outcome = command.legacy_session ? ApplyLegacySession(command, log_index)
                                                        : ApplySetInSession(command, log_index);
    if (outcome != ApplyOutcome::kApplied) return outcome;
  }
  auto it = data_.find(std::string_view(command.key));
  if (it == data_.end()) {
    data_.insert(MakeItem(command.key, command.value, 1));
  } else if ((*it)->value_size == command.value.size()) {
    Item& item = **it;  // the key (what the set hashes) stays; the value is overwritten in place
    std::copy(command.value.begin(), command.value.end(), item.bytes() + item.key_size);
    ++item.version;
  } else {
    auto node = data_.extract(it);
    node.value() = MakeItem(command.key, command.value, node.value()->version + 1);
    data_.insert(std::move(node));
  }
  return ApplyOutcome::kApplied;
}

KvStateMachine::ItemPtr KvStateMachine::MakeItem(std::string_view key, std::string_view value,
                                                 uint64_t version) {
  ItemPtr item(static_cast<Item*>(::operator new(sizeof(Item) + key.size() + value.size())));
  item->version = version;
  item->key_size = static_cast<uint32_t>(key.size());
  item->value_size = static_cast<uint32_t>(value.size());
  std::copy(key.begin(), key.end(), item->bytes());
  std::copy(value.begin(), value.end(), item->bytes() + key.size());
  return item;
}

std::optional<std::string> KvStateMachine::Get(std::string_view key) const {
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return std::string((*it)->value());
}

std::optional<StoredValue> KvStateMachine::Find(std::string_view key) const {
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return StoredValue{std::string((*it)->value()), (*it)->version};
}

void KvStateMachine::Sequences::Add(uint64_t sequence) {
  if (sequence == applied_through + 1) {
    applied_through = sequence;
  } else {
    applied_above.insert(sequence);
  }
  // Sequences that fell out of the window count as applied.
  const uint64_t highest = Highest();
  if (highest >= kSequenceWindow) {
    applied_through = std::max(applied_through, highest - kSequenceWindow);
  }
  // Close the gap: absorb the out-of-order sequences that now continue applied_through.
  while (!applied_above.empty() && *applied_above.begin() <= applied_through + 1) {
    applied_through = std::max(applied_through, *applied_above.begin());
    applied_above.erase(applied_above.begin());
  }
}

// Decides the session part of a SET; kApplied means "apply the value".
ApplyOutcome KvStateMachine::ApplySetInSession(const SetCommand& command, uint64_t log_index) {
  auto it = sessions_.find(command.client_id);
  if (it == sessions_.end()) {
    return command.client_id >= log_index ? ApplyOutcome::kNeverOpened
                                          : ApplyOutcome::kSessionExpired;
  }
  Session& session = it->second;
  Sequences& sequences = session.sequences;
  const uint64_t sequence = command.sequence;
  if (sequences.Contains(sequence)) {
    Touch(command.client_id, session);
    return ApplyOutcome::kDuplicate;
  }
  if (sequence > sequences.Highest() && sequence - sequences.Highest() > kSequenceWindow) {
    return ApplyOutcome::kSequenceTooFar;
  }
  sequences.Add(sequence);
  Touch(command.client_id, session);
  return ApplyOutcome::kApplied;
}

// The rules of the version that wrote the SET (no OPEN-SESSION, no bound on sequences, eviction
// of the least recently used at its default capacity), so that its logs replay as they applied.
ApplyOutcome KvStateMachine::ApplyLegacySession(const SetCommand& command, uint64_t log_index) {
  auto it = legacy_sessions_.find(command.client_id);
  if (it == legacy_sessions_.end()) {
    if (command.sequence != 1) return ApplyOutcome::kSessionExpired;
    if (legacy_sessions_.size() >= kLegacyMaxSessions && !legacy_by_last_use_.empty()) {
      legacy_sessions_.erase(legacy_by_last_use_.begin()->second);
      legacy_by_last_use_.erase(legacy_by_last_use_.begin());
    }
    it = legacy_sessions_.emplace(command.client_id, LegacySession{}).first;
  }
  LegacySession& session = it->second;
  const bool duplicate = session.sequences.Contains(command.sequence);
  if (!duplicate) session.sequences.Add(command.sequence);
  if (session.last_used_index != log_index) {
    legacy_by_last_use_.erase(session.last_used_index);
    legacy_by_last_use_.emplace(log_index, command.client_id);
    session.last_used_index = log_index;
  }
  return duplicate ? ApplyOutcome::kDuplicate : ApplyOutcome::kApplied;
}

OpenOutcome KvStateMachine::ApplyOpenSession(const OpenSessionCommand& command,
                                             uint64_t log_index) {
  log_time_ms_ = std::max(log_time_ms_, command.time_ms);
  // Sessions used since the previous OPEN-SESSION were used at this log time at the latest.
  for (uint64_t client_id : recently_used_) {
    Session& session = sessions_.at(client_id);
    session.recently_used = false;
    session.last_used_ms = log_time_ms_;
    idle_since_.emplace(log_time_ms_, client_id);
  }
  recently_used_.clear();
  const uint64_t capacity = std::clamp<uint64_t>(command.max_sessions, 1, kMaxSessionsCeiling);
  while (sessions_.size() >= capacity && !idle_since_.empty() &&
         log_time_ms_ - idle_since_.begin()->first >= command.idle_ms) {
    sessions_.erase(idle_since_.begin()->second);
    idle_since_.erase(idle_since_.begin());
  }
  if (sessions_.size() >= capacity) return OpenOutcome::kTableFull;
  Session& session = sessions_[log_index];
  session.last_used_ms = log_time_ms_;
  idle_since_.emplace(log_time_ms_, log_index);
  return OpenOutcome::kOpened;
}

void KvStateMachine::Touch(uint64_t client_id, Session& session) {
  if (session.recently_used) return;  // the common case: one flag per SET
  session.recently_used = true;
  idle_since_.erase({session.last_used_ms, client_id});
  recently_used_.push_back(client_id);
}

}  // namespace raftkv::kv

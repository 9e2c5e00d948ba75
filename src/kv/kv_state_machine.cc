#include "kv/kv_state_machine.h"

#include <algorithm>

namespace raftkv::kv {

ApplyOutcome KvStateMachine::ApplySet(const SetCommand& command, uint64_t log_index) {
  if (command.client_id != 0) {
    auto it = sessions_.find(command.client_id);
    if (it == sessions_.end()) {
      if (command.sequence != 1) return ApplyOutcome::kSessionExpired;
      if (sessions_.size() >= max_sessions_ && !sessions_by_last_use_.empty()) {
        auto oldest = sessions_by_last_use_.begin();
        sessions_.erase(oldest->second);
        sessions_by_last_use_.erase(oldest);
      }
      it = sessions_.emplace(command.client_id, Session{}).first;
    }
    Session& session = it->second;
    const uint64_t sequence = command.sequence;
    const bool too_old = sequence + kSequenceWindow <= session.highest_sequence;
    if (too_old || sequence <= session.applied_through ||
        session.applied_above.count(sequence) > 0) {
      Touch(command.client_id, session, log_index);
      return ApplyOutcome::kDuplicate;
    }
    if (sequence == session.applied_through + 1) {
      session.applied_through = sequence;
    } else {
      session.applied_above.insert(sequence);
    }
    session.highest_sequence = std::max(session.highest_sequence, sequence);
    // Sequences that fell out of the window count as applied (see too_old above).
    if (session.highest_sequence >= kSequenceWindow) {
      session.applied_through =
          std::max(session.applied_through, session.highest_sequence - kSequenceWindow);
    }
    // Close the gap: absorb the out-of-order sequences that now continue applied_through.
    auto& above = session.applied_above;
    while (!above.empty() && *above.begin() <= session.applied_through + 1) {
      session.applied_through = std::max(session.applied_through, *above.begin());
      above.erase(above.begin());
    }
    Touch(command.client_id, session, log_index);
  }
  StoredValue& stored = data_[command.key];
  stored.value = command.value;
  ++stored.version;
  return ApplyOutcome::kApplied;
}

std::optional<std::string> KvStateMachine::Get(const std::string& key) const {
  const StoredValue* stored = Find(key);
  if (stored == nullptr) return std::nullopt;
  return stored->value;
}

const StoredValue* KvStateMachine::Find(const std::string& key) const {
  auto it = data_.find(key);
  return it == data_.end() ? nullptr : &it->second;
}

void KvStateMachine::Touch(uint64_t client_id, Session& session, uint64_t log_index) {
  if (session.last_used_index == log_index) return;
  // Move the session's node to its new position rather than free one and allocate another.
  auto node = sessions_by_last_use_.extract(session.last_used_index);
  if (node.empty()) {
    sessions_by_last_use_.emplace(log_index, client_id);
  } else {
    node.key() = log_index;
    sessions_by_last_use_.insert(std::move(node));
  }
  session.last_used_index = log_index;
}

}  // namespace raftkv::kv

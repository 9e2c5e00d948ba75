#include "kv/kv_state_machine.h"

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
    const bool too_old = command.sequence + kSequenceWindow <= session.highest_sequence;
    if (too_old || session.applied.count(command.sequence) > 0) {
      Touch(command.client_id, session, log_index);
      return ApplyOutcome::kDuplicate;
    }
    session.applied.insert(command.sequence);
    if (command.sequence > session.highest_sequence) session.highest_sequence = command.sequence;
    while (!session.applied.empty() &&
           *session.applied.begin() + kSequenceWindow <= session.highest_sequence) {
      session.applied.erase(session.applied.begin());
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
  if (session.last_used_index != 0) sessions_by_last_use_.erase(session.last_used_index);
  session.last_used_index = log_index;
  sessions_by_last_use_[log_index] = client_id;
}

}  // namespace raftkv::kv

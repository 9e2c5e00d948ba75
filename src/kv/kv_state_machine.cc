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
    // Sequences that fell out of the window are at or below applied_through (kept so below), so
    // they count as applied too.
    if (sequence <= session.applied_through || session.applied_above.count(sequence) > 0) {
      Touch(command.client_id, session, log_index);
      return ApplyOutcome::kDuplicate;
    }
    if (sequence == session.applied_through + 1) {
      session.applied_through = sequence;
    } else {
      session.applied_above.insert(sequence);
    }
    // Sequences that fell out of the window count as applied.
    const uint64_t highest = session.Highest();
    if (highest >= kSequenceWindow) {
      session.applied_through = std::max(session.applied_through, highest - kSequenceWindow);
    }
    // Close the gap: absorb the out-of-order sequences that now continue applied_through.
    auto& above = session.applied_above;
    while (!above.empty() && *above.begin() <= session.applied_through + 1) {
      session.applied_through = std::max(session.applied_through, *above.begin());
      above.erase(above.begin());
    }
    Touch(command.client_id, session, log_index);
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

// The replicated key-value state machine: applies committed SET commands in log order and
// remembers, per client session, which sequence numbers it has applied, so that a retried SET is
// applied once (Raft thesis §6.3). Every decision depends only on the log, so every replica
// reaches the same state, sessions included.
//
// Sessions stay bounded without clocks: at most `max_sessions` are kept, and when a new one
// arrives the session least recently used, measured in log indexes, is evicted. A request from an
// evicted (or never seen) session whose sequence is not 1 is refused as expired rather than
// guessed at, because its earlier requests may or may not have been applied.
//
// Thread-safety: none; the owner serialises Apply with reads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "kv/command.h"

namespace raftkv::kv {

enum class ApplyOutcome {
  kApplied,         // the value is now set
  kDuplicate,       // this (client_id, sequence) was applied before: nothing changed
  kSessionExpired,  // unknown session with sequence > 1: nothing changed
};

// A key's current value and how many SETs have been applied to it (etcd calls this the key's
// version): a retried SET that was deduplicated leaves the version alone, which makes "applied
// exactly once" observable from outside.
struct StoredValue {
  std::string value;
  uint64_t version = 0;
};

class KvStateMachine {
 public:
  explicit KvStateMachine(size_t max_sessions = 100'000) : max_sessions_(max_sessions) {}

  ApplyOutcome ApplySet(const SetCommand& command, uint64_t log_index);
  std::optional<std::string> Get(std::string_view key) const;
  std::optional<StoredValue> Find(std::string_view key) const;  // a copy; nullopt when absent
  size_t size() const { return data_.size(); }
  size_t session_count() const { return sessions_.size(); }

  // How many sequence numbers below a session's highest are remembered individually; older ones
  // are answered as duplicates (a client never has that many requests in flight).
  static constexpr uint64_t kSequenceWindow = 4096;

 private:
  // A sequence is applied (or treated as such) iff it is <= applied_through or in applied_above.
  // A client numbering its requests in order keeps applied_above empty, so applying allocates
  // nothing; out-of-order arrivals wait there until the gap below them closes or falls out of the
  // window.
  struct Session {
    uint64_t applied_through = 0;
    std::set<uint64_t> applied_above;  // each > applied_through + 1
    uint64_t last_used_index = 0;
    // The highest sequence applied: it is in applied_above, or absorbed into applied_through.
    uint64_t Highest() const {
      return applied_above.empty() ? applied_through : *applied_above.rbegin();
    }
  };
  void Touch(uint64_t client_id, Session& session, uint64_t log_index);

  // A key, its value and its version in one allocation (header, then the key's bytes, then the
  // value's): with a million small keys this is about a quarter less memory than a map of
  // strings, which allocates the node, the key and the value separately.
  struct Item {
    uint64_t version;
    uint32_t key_size;
    uint32_t value_size;
    const char* bytes() const { return reinterpret_cast<const char*>(this + 1); }
    char* bytes() { return reinterpret_cast<char*>(this + 1); }
    std::string_view key() const { return {bytes(), key_size}; }
    std::string_view value() const { return {bytes() + key_size, value_size}; }
  };
  struct ItemDeleter {
    void operator()(Item* item) const { ::operator delete(item); }
  };
  using ItemPtr = std::unique_ptr<Item, ItemDeleter>;
  static ItemPtr MakeItem(std::string_view key, std::string_view value, uint64_t version);
  // Hash and equality on the key, so that a string_view finds an item (heterogeneous lookup).
  struct ItemHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>()(key); }
    size_t operator()(const ItemPtr& item) const { return (*this)(item->key()); }
  };
  struct ItemKeyEqual {
    using is_transparent = void;
    static std::string_view KeyOf(std::string_view key) { return key; }
    static std::string_view KeyOf(const ItemPtr& item) { return item->key(); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return KeyOf(a) == KeyOf(b);
    }
  };

  size_t max_sessions_;
  std::unordered_set<ItemPtr, ItemHash, ItemKeyEqual> data_;
  std::unordered_map<uint64_t, Session> sessions_;
  std::map<uint64_t, uint64_t> sessions_by_last_use_;  // last_used_index -> client_id
};

}  // namespace raftkv::kv

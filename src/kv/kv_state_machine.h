// The replicated key-value state machine: applies committed commands in log order and keeps the
// client session table that makes a retried SET apply once (Raft thesis §6.3). Every decision
// depends only on the log — never on this node's config or clock — so every replica, and every
// replay of the log, reaches the same state, sessions included.
//
// Sessions (docs/design.md, "Client sessions"):
//  - A session exists only once an OPEN-SESSION entry created it; its id is that entry's index.
//    A SET naming any other id is refused as expired (or, for an id the log has not reached yet,
//    as never opened), whatever its sequence: a retry after the session was evicted can
//    therefore never be applied a second time.
//  - A SET may run at most kSequenceWindow ahead of the highest sequence the session has applied;
//    anything further is refused, so a single SET moves the window by at most that much (a
//    sequence of 2^64-1 used to make every later SET a silent duplicate). That sequences below
//    the window count as applied is sound only because a client never issues a sequence that far
//    past its oldest one still in flight (client/session.h, rule 2).
//  - The table is bounded by the capacity carried in each OPEN-SESSION entry. To make room, an
//    OPEN-SESSION evicts only sessions that have been idle for the entry's idle timeout, measured
//    in log time (the times stamped on OPEN-SESSION entries, never decreasing; the node stamps
//    them, node/replica.h); if none has, the new session is refused, not an active one evicted.
//    A client opening sessions in a loop can fill the table, but cannot push out sessions in use.
//  - SETs written before OPEN-SESSION existed (legacy_session) are replayed by the rules of their
//    time, in a table of their own: sequence 1 of an unknown id opened it, and beyond
//    kLegacyMaxSessions (that version's default MAX_SESSIONS) the session least recently used,
//    in log order, was evicted.
//
// Thread-safety: none; the owner serialises Apply with reads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "kv/command.h"

namespace raftkv::kv {

enum class ApplyOutcome {
  kApplied,         // the value is now set
  kDuplicate,       // this (client_id, sequence) was applied before: nothing changed
  kSessionExpired,  // client_id names no open session (evicted, or never opened): nothing changed
  kNeverOpened,     // client_id is not an index the log has reached: no session ever had it
  kSequenceTooFar,  // more than kSequenceWindow above the session's highest: nothing changed
};

enum class OpenOutcome {
  kOpened,     // the session's id is the entry's log index
  kTableFull,  // the table is at capacity and no session has been idle long enough to evict
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
  ApplyOutcome ApplySet(const SetCommand& command, uint64_t log_index);
  OpenOutcome ApplyOpenSession(const OpenSessionCommand& command, uint64_t log_index);
  std::optional<std::string> Get(std::string_view key) const;
  std::optional<StoredValue> Find(std::string_view key) const;  // a copy; nullopt when absent
  size_t size() const { return data_.size(); }
  size_t session_count() const { return sessions_.size(); }
  bool HasSession(uint64_t client_id) const { return sessions_.count(client_id) > 0; }
  uint64_t log_time_ms() const { return log_time_ms_; }

  // ---- Snapshots (kv/kv_snapshot.cc; the lines are specified in docs/file-formats.md) ----
  // The fields for the snapshot's first line: "keys=<n> sessions=<n> legacy=<n> log_time=<ms>".
  // `sessions` false leaves the session tables out: only the simulator's deliberate bug does.
  std::string SnapshotHeaderFields(bool sessions = true) const;
  // Every key (sorted), session and legacy session as lines of text, in an order that makes the
  // file the same on every replica at the same index.
  absl::Status WriteSnapshotLines(const std::function<absl::Status(std::string_view line)>& line,
                                  bool sessions = true) const;
  // Rebuilds a state machine from a snapshot's header fields and lines; refuses anything that
  // WriteSnapshotLines cannot produce.
  class SnapshotLoader {
   public:
    absl::Status Header(std::string_view fields);
    absl::Status Line(std::string_view line);
    // Checks the counts the header announced; the loader is spent afterwards.
    absl::StatusOr<std::unique_ptr<KvStateMachine>> Finish();

   private:
    std::unique_ptr<KvStateMachine> kv_ = std::make_unique<KvStateMachine>();
    uint64_t keys_ = 0, sessions_ = 0, legacy_ = 0;
    bool have_header_ = false;
  };

  // How many sequence numbers below a session's highest are remembered individually (older ones
  // are answered as duplicates), and how far above it a SET may run.
  static constexpr uint64_t kSequenceWindow = 4096;
  // The most sessions any OPEN-SESSION entry may ask for; larger capacities are clamped to it.
  static constexpr uint64_t kMaxSessionsCeiling = 10'000'000;
  static constexpr size_t kLegacyMaxSessions = 100'000;

 private:
  // The sequence numbers a session has applied. A sequence is applied (or treated as such) iff it
  // is <= applied_through or in applied_above. A client numbering its requests in order keeps
  // applied_above empty, so applying allocates nothing; out-of-order arrivals wait there until
  // the gap below them closes or falls out of the window.
  struct Sequences {
    uint64_t applied_through = 0;
    std::set<uint64_t> applied_above;  // each > applied_through + 1
    // The highest sequence applied: it is in applied_above, or absorbed into applied_through.
    uint64_t Highest() const {
      return applied_above.empty() ? applied_through : *applied_above.rbegin();
    }
    bool Contains(uint64_t sequence) const {
      return sequence <= applied_through || applied_above.count(sequence) > 0;
    }
    void Add(uint64_t sequence);  // !Contains(sequence)
  };
  struct Session {
    Sequences sequences;
    // The latest log time the session is known to have been used by: the time of the first
    // OPEN-SESSION applied after its last use. Meaningful only when !recently_used.
    uint64_t last_used_ms = 0;
    // Used since the last OPEN-SESSION; then it is in recently_used_, not in idle_since_.
    bool recently_used = false;
  };
  struct LegacySession {
    Sequences sequences;
    uint64_t last_used_index = 0;
  };
  // Marks the session used; one flag per SET (cost: docs/benchmarks.md, Design figures).
  void Touch(uint64_t client_id, Session& session);
  ApplyOutcome ApplySetInSession(const SetCommand& command, uint64_t log_index);
  ApplyOutcome ApplyLegacySession(const SetCommand& command, uint64_t log_index);

  // A key, its value and its version in one allocation (header, then the key's bytes, then the
  // value's), where a map of strings allocates the node, the key and the value separately
  // (docs/benchmarks.md, Design figures).
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

  std::unordered_set<ItemPtr, ItemHash, ItemKeyEqual> data_;
  std::unordered_map<uint64_t, Session> sessions_;
  // Invariant: every session is in exactly one of these two. A SET only flips a flag and appends
  // (once per session between OPEN-SESSIONs); the next OPEN-SESSION stamps them all with its time.
  std::vector<uint64_t> recently_used_;                 // client ids, each once
  std::set<std::pair<uint64_t, uint64_t>> idle_since_;  // (last_used_ms, client id)
  uint64_t log_time_ms_ = 0;  // the greatest OPEN-SESSION time applied; never decreases
  std::unordered_map<uint64_t, LegacySession> legacy_sessions_;
  std::map<uint64_t, uint64_t> legacy_by_last_use_;  // last_used_index -> client id
};

}  // namespace raftkv::kv

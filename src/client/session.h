// ClientSession: hands out the (client id, sequence number) pairs that make SETs exactly-once,
// under the two rules the cluster's state machine relies on (src/kv/kv_state_machine.h):
//
//  1. A session is opened by its sequence 1, and the cluster refuses a sequence above 1 from a
//     session it does not know. So sequence 1 goes out alone; the next SETs wait until it is
//     known to be applied. If its fate is unknown (deadline) the session is abandoned for a fresh
//     one rather than risk every later SET being refused.
//  2. The cluster remembers applied sequences only within a window below the highest it has seen
//     and treats anything older as a duplicate. A SET is therefore only issued while it is within
//     that window of the oldest SET still in flight; otherwise a slow old SET could be retried
//     after the window had passed it and be answered "duplicate" without ever being applied.
//
// SETs that cannot be issued yet are queued, never blocked on, and started in order as room
// appears; a queued SET can be withdrawn (its deadline passed). Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"

namespace raftkv::client {

struct SessionTicket {
  uint64_t client_id = 0;
  uint64_t sequence = 0;
};

class ClientSession {
 public:
  enum class Outcome {
    kApplied,  // the cluster acknowledged the SET
    kUnknown,  // the SET ended without an acknowledgement (deadline, cancelled, refused)
    kExpired,  // the cluster no longer knows this session
  };
  using Start = std::function<void(SessionTicket)>;

  explicit ClientSession(uint64_t window);

  // Returns a ticket if the SET may go out now. Otherwise queues it and returns nullopt with
  // *queued_id set; `start_later` is then called with its ticket by a later Release (on that
  // thread: keep it short and do not call back into this session from it).
  std::optional<SessionTicket> Acquire(Start start_later, uint64_t* queued_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Withdraws a queued SET; false if it was already started.
  bool Cancel(uint64_t queued_id) ABSL_LOCKS_EXCLUDED(mu_);
  // The SET holding `ticket` is over. Starts any queued SETs that now fit.
  void Release(SessionTicket ticket, Outcome outcome) ABSL_LOCKS_EXCLUDED(mu_);

  uint64_t client_id() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  bool CanIssue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SessionTicket Issue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Renew() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pops the queued SETs that may start now, paired with their tickets.
  std::vector<std::pair<Start, SessionTicket>> TakeStartable() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Waiting {
    uint64_t id;
    Start start;
  };

  const uint64_t window_;
  mutable Mutex mu_;
  std::mt19937_64 random_ ABSL_GUARDED_BY(mu_);
  uint64_t client_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  bool open_ ABSL_GUARDED_BY(mu_) = false;  // sequence 1 was acknowledged
  std::set<uint64_t> in_flight_ ABSL_GUARDED_BY(mu_);
  std::deque<Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  uint64_t next_waiting_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace raftkv::client

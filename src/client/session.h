// ClientSession: hands out the (client id, sequence number) pairs that make SETs exactly-once,
// under the rules the cluster's state machine keeps (src/kv/kv_state_machine.h):
//
//  1. A session exists once the cluster has applied an OPEN_SESSION for it; its id is what the
//     cluster answered. Until then SETs queue, and the owner is asked (the `open` callback) to
//     send one OPEN_SESSION; it reports back with Opened or OpenFailed.
//  2. The cluster remembers applied sequences only within a window below the highest it has
//     applied, and treats anything older as a duplicate. A SET is therefore only issued within
//     that window of the oldest SET still in flight; otherwise a slow old SET could be retried
//     after the window had passed it and be answered "duplicate" without ever being applied.
//  3. The cluster refuses a sequence more than the window above the highest it has applied. A SET
//     is therefore only issued within the window above the highest this client knows applied; a
//     session that can go no further that way (a whole window of SETs gave up unacknowledged) is
//     replaced by a new one.
//
// A session the cluster no longer has (a SET answered SESSION_EXPIRED) is dropped and a new one
// opened for the SETs still to come.
//
// SETs that cannot be issued yet are queued, never blocked on, and started in order as room
// appears; a queued SET can be withdrawn (its deadline passed). Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
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

  // `open` is called, never under the session's lock, whenever a session must be opened: the
  // owner sends an OPEN_SESSION and answers with exactly one Opened or OpenFailed. Only one open
  // is outstanding at a time.
  ClientSession(uint64_t window, std::function<void()> open);

  // Returns a ticket if the SET may go out now. Otherwise queues it and returns nullopt with
  // *queued_id set; `start_later` is then called with its ticket by a later Release or Opened
  // (on that thread: keep it short and do not call back into this session from it).
  std::optional<SessionTicket> Acquire(Start start_later, uint64_t* queued_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Withdraws a queued SET; false if it was already started.
  bool Cancel(uint64_t queued_id) ABSL_LOCKS_EXCLUDED(mu_);
  // The SET holding `ticket` is over. Starts any queued SETs that now fit.
  void Release(SessionTicket ticket, Outcome outcome) ABSL_LOCKS_EXCLUDED(mu_);
  // The outstanding open succeeded with `client_id`, or failed. A failed open is tried again
  // (through `open`) while SETs are queued and `retry` is true.
  void Opened(uint64_t client_id) ABSL_LOCKS_EXCLUDED(mu_);
  void OpenFailed(bool retry) ABSL_LOCKS_EXCLUDED(mu_);

  uint64_t client_id() const ABSL_LOCKS_EXCLUDED(mu_);  // 0 while none is open

 private:
  bool CanIssue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SessionTicket Issue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Drop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pops the queued SETs that may start now, paired with their tickets.
  std::vector<std::pair<Start, SessionTicket>> TakeStartable() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the queued SETs need an open now (which the caller must then call, outside mu_).
  bool NeedsOpen() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartAll(std::vector<std::pair<Start, SessionTicket>> ready, bool open);

  struct Waiting {
    uint64_t id;
    Start start;
  };

  const uint64_t window_;
  const std::function<void()> open_;
  mutable Mutex mu_;
  uint64_t client_id_ ABSL_GUARDED_BY(mu_) = 0;  // 0: no session open
  bool opening_ ABSL_GUARDED_BY(mu_) = false;    // an open is outstanding
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t highest_applied_ ABSL_GUARDED_BY(mu_) = 0;  // the highest acknowledged sequence
  std::set<uint64_t> in_flight_ ABSL_GUARDED_BY(mu_);
  std::deque<Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  uint64_t next_waiting_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace raftkv::client

// Workload: concurrent clients doing GET and SET on a small keyspace through the public client
// library, every written value unique, every operation recorded with its invoke and completion
// times and its outcome — ok, fail (certainly not applied) or indeterminate (may or may not have
// been applied) — for the linearizability checker.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "check/linearizability.h"
#include "common/mutex.h"
#include "raftkv/client.h"

namespace raftkv::chaos {

using SteadyClock = std::chrono::steady_clock;

struct WorkloadOptions {
  std::vector<std::string> addresses;
  int clients = 5;
  // The first `readers` clients only read. A reader keeps talking to whichever node last served it,
  // so after a partition some readers stay with the old leader while the writers move on: the
  // situation in which a leader serving reads without a valid lease returns stale values.
  int readers = 2;
  int keys = 4;
  double read_fraction = 0.5;
  uint64_t seed = 1;
  client::Millis deadline{2'000};
  client::Millis rpc_timeout{1'500};
};

class Workload {
 public:
  Workload(WorkloadOptions options, SteadyClock::time_point origin);
  ~Workload();  // Stop()

  void Start();
  void Stop();
  // One GET of every key from a fresh client, recorded like the rest (after Stop).
  void FinalReads();

  std::vector<check::Operation> History() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string KeyName(int key) const { return "key" + std::to_string(key); }

 private:
  void RunClient(uint32_t client_id);
  void Record(check::Operation op) ABSL_LOCKS_EXCLUDED(mu_);
  int64_t NowNs() const;

  const WorkloadOptions options_;
  const SteadyClock::time_point origin_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> next_op_id_{1};
  std::vector<std::thread> threads_;
  mutable Mutex mu_;
  std::vector<check::Operation> history_ ABSL_GUARDED_BY(mu_);
};

// Maps a client call's result to the checker's outcome.
check::Outcome SetOutcome(const absl::Status& status);

}  // namespace raftkv::chaos

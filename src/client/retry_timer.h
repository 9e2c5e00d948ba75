// RetryTimer: runs callbacks at given times on one thread of its own, so that a call waiting to
// retry holds no thread. Stop() runs every callback still waiting at once (callers check their
// own shutdown flag) and joins the thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"

namespace raftkv::client {

class RetryTimer {
 public:
  using Clock = std::chrono::steady_clock;

  RetryTimer();
  ~RetryTimer();  // Stop()

  void At(Clock::time_point when, std::function<void()> callback) ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  Mutex mu_;
  CondVar wake_;
  std::multimap<Clock::time_point, std::function<void()>> due_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace raftkv::client

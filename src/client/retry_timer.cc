#include "client/retry_timer.h"

#include <vector>

namespace raftkv::client {

RetryTimer::RetryTimer() : thread_([this] { Loop(); }) {}

RetryTimer::~RetryTimer() { Stop(); }

void RetryTimer::At(Clock::time_point when, std::function<void()> callback) {
  bool run_now = false;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      run_now = true;
    } else {
      const bool earliest = due_.empty() || when < due_.begin()->first;
      due_.emplace(when, std::move(callback));
      if (earliest) wake_.notify_one();
    }
  }
  if (run_now) callback();
}

void RetryTimer::Stop() {
  {
    MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    wake_.notify_one();
  }
  thread_.join();
}

void RetryTimer::Loop() {
  MutexLock lock(&mu_);
  while (true) {
    if (stopping_) break;
    if (due_.empty()) {
      wake_.wait(mu_);
      continue;
    }
    const Clock::time_point next = due_.begin()->first;
    if (Clock::now() < next) {
      wake_.wait_until(mu_, next);
      continue;
    }
    std::function<void()> callback = std::move(due_.begin()->second);
    due_.erase(due_.begin());
    mu_.unlock();
    callback();
    mu_.lock();
  }
  // Stopping: whatever still waits runs now, outside the lock (callbacks may call At, which then
  // runs them inline because stopping_ is set).
  std::vector<std::function<void()>> remaining;
  for (auto& [when, callback] : due_) remaining.push_back(std::move(callback));
  due_.clear();
  mu_.unlock();
  for (auto& callback : remaining) callback();
  mu_.lock();
}

}  // namespace raftkv::client

// An annotated mutex over std::mutex. Clang's -Wthread-safety checks ABSL_GUARDED_BY against it,
// and ThreadSanitizer sees it (it intercepts pthread mutexes). Debian's absl::Mutex would give us
// the annotations, but its library is not built with TSan, whose reports would then be false.
#pragma once

#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace raftkv {

class ABSL_LOCKABLE Mutex {
 public:
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mutex_.lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mutex_.unlock(); }

 private:
  std::mutex mutex_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mutex) ABSL_EXCLUSIVE_LOCK_FUNCTION(mutex) : mutex_(mutex) {
    mutex_->lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mutex_->unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* mutex_;
};

// Waits on a Mutex the caller holds (std::condition_variable_any accepts any lockable).
using CondVar = std::condition_variable_any;

}  // namespace raftkv

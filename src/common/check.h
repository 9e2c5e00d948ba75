// Always-on invariant checks. A failed RAFTKV_CHECK is a programmer error (a broken invariant of
// the algorithm), never an operating error: it prints where and why, then aborts so that the
// simulator, the sanitizers and core dumps catch it at the first bad step. Operating errors
// (bad input, I/O failure, unreachable peer) are returned as absl::Status instead.
#pragma once

#include <cstdio>
#include <cstdlib>

#define RAFTKV_CHECK(condition, message)                                                        \
  do {                                                                                          \
    if (!(condition)) {                                                                         \
      std::fprintf(stderr, "%s:%d: invariant violated: %s (%s)\n", __FILE__, __LINE__, message, \
                   #condition);                                                                 \
      std::abort();                                                                             \
    }                                                                                           \
  } while (false)

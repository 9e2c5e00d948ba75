// Linearizability checker for key-value register histories (GET/SET, unique written values).
//
// The history is split by key (P-compositionality: a history of independent registers is
// linearizable iff each key's sub-history is), and every key is searched with the Wing & Gong
// algorithm as refined by Lowe (the one Knossos and Porcupine use): a linked list of call/return
// events in real-time order, a stack to backtrack, and a cache of (set of linearized ops,
// register value) pairs so that each configuration is explored once.
//
// Unique written values give exact reductions that keep the search small:
//   * a read of a value no kept write wrote, or that completed before any write of its value was
//     invoked, is reported at once;
//   * a write must linearize before every read of its value, so its interval is cut to end at the
//     earliest completion of such a read (this gives observed indeterminate writes a finite
//     interval and makes them mandatory);
//   * an indeterminate write whose value is never read is dropped: "never" and "at the very end"
//     are equivalent, and removing it from any linearization leaves it valid;
//   * a value that is overwritten never comes back, so a write is not linearized while reads of
//     the current value are still pending, and a read that fits is linearized without trying
//     alternatives (it changes nothing, so going first never hurts).
// Indeterminate writes that cannot use these reductions (null or duplicated value) keep an
// infinite interval and are optional: the search succeeds once every mandatory op is linearized,
// since a write is always legal and leftover writes can be appended at the end.
//
// On a violation the culprit is localized by bisection: dropping reads never breaks a
// linearizable history, so the first read (in invoke order) that the writes and earlier reads
// cannot explain is reported, along with where the search got stuck.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace raftkv::check {

enum class OpKind { kRead, kWrite };

// kOk: completed with a definite answer. kFail: certainly did not take effect (drop it).
// kIndeterminate: may or may not have taken effect, at any time after invoke (like a Jepsen :info
// op).
enum class Outcome { kOk, kFail, kIndeterminate };

struct Operation {
  uint64_t id = 0;      // unique per history, for reporting
  uint32_t client = 0;  // which client issued it (for reporting)
  OpKind kind = OpKind::kRead;
  std::string key;
  // write: the value written (nullopt deletes the key). read (kOk): the value seen, nullopt = key
  // absent.
  std::optional<std::string> value;
  int64_t invoke_ns = 0;    // real time the request was sent
  int64_t complete_ns = 0;  // real time the answer arrived; ignored unless outcome == kOk
  Outcome outcome = Outcome::kOk;
};

struct CheckResult {
  bool linearizable = true;
  bool inconclusive = false;     // search budget exhausted for some key: neither proven nor refuted
  std::string key;               // the first key that failed (or was inconclusive)
  std::string explanation;       // human readable: what could not be linearized, with op ids/times
                                 // (empty when linearizable and conclusive)
  std::vector<uint64_t> window;  // ids of a small window of ops around the failure (for the report)
};

struct CheckOptions {
  // Distinct (linearized set, register value) configurations explored per key before giving up.
  uint64_t max_states_per_key = 2'000'000;
};

// Checks that `history` is linearizable with respect to a map of independent registers. Every
// key's register starts absent (a read returning nullopt is valid before any write). Intervals are
// closed: A must precede B only if A.complete_ns < B.invoke_ns. A kOk op with complete_ns <
// invoke_ns is treated as instantaneous at invoke_ns. Keys are checked in lexicographic order; the
// first violating key is reported. If no key fails but some key exhausted its budget, the result
// is linearizable=true, inconclusive=true for the first such key. The output is deterministic.
CheckResult CheckLinearizable(const std::vector<Operation>& history,
                              const CheckOptions& options = {});

}  // namespace raftkv::check

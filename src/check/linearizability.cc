#include "check/linearizability.h"

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>
#include <unordered_map>
#include <utility>

namespace raftkv::check {
namespace {

constexpr int64_t kInfinity = std::numeric_limits<int64_t>::max();
constexpr uint32_t kAbsent = 0;         // register-state index of "key absent"
constexpr size_t kMaxWindow = 20;       // ops listed around a failure
constexpr size_t kMaxReportStates = 8;  // register values listed for a failure

// One op of a key's sub-history as the search sees it.
struct KeyOp {
  const Operation* op = nullptr;
  bool is_write = false;
  uint32_t value = kAbsent;  // index into the key's distinct values
  int64_t invoke = 0;
  int64_t complete = 0;  // effective end: clamped, tightened, or kInfinity
  bool required = true;  // false: an indeterminate write that may never take effect
};

std::string QuoteValue(const std::optional<std::string>& value) {
  if (!value) return "absent";
  constexpr size_t kMaxShown = 40;  // values can be large; the report must stay readable
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < value->size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>((*value)[i]);
    if (c == '"' || c == '\\') out += '\\';
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += {'\\', 'x', kHex[c >> 4], kHex[c & 0xf]};
    }
  }
  return out + (value->size() > kMaxShown ? "...\"" : "\"");
}

std::string DescribeOp(const Operation& op) {
  std::string out = "op " + std::to_string(op.id) + " (client " + std::to_string(op.client) + ", " +
                    (op.kind == OpKind::kWrite ? "write " : "read ") + QuoteValue(op.value) +
                    ", invoked " + std::to_string(op.invoke_ns) + " ns, ";
  if (op.outcome == Outcome::kOk)
    return out + "completed " + std::to_string(op.complete_ns) + " ns)";
  return out + (op.outcome == Outcome::kFail ? "failed)" : "indeterminate)");
}

// Exact set of explored (linearized set, register state) configurations. The linearized set is
// stored compactly: ops are indexed in invoke order and an op can only be linearized ahead of an
// unlinearized one it overlaps, so all words below the first non-full word are implied ones and
// only a short tail of words needs storing. This keeps millions of states affordable even when a
// key has thousands of ops.
class StateCache {
 public:
  StateCache() : slots_(1024, 0) {}

  // Inserts the configuration; returns false if it was already present.
  bool Insert(const std::vector<uint64_t>& bits, uint32_t state) {
    size_t first = 0;
    while (first < bits.size() && bits[first] == ~uint64_t{0}) ++first;
    size_t end = bits.size();
    while (end > first && bits[end - 1] == 0) --end;
    const uint64_t header = (static_cast<uint64_t>(first) << 32) | state;
    uint64_t hash = Mix(header);
    for (size_t w = first; w < end; ++w) hash = Mix(hash ^ bits[w]);
    const uint32_t len = static_cast<uint32_t>(end - first);

    const size_t mask = slots_.size() - 1;
    size_t slot = hash & mask;
    for (; slots_[slot] != 0; slot = (slot + 1) & mask) {
      const Entry& e = entries_[slots_[slot] - 1];
      if (e.hash == hash && e.len == len && arena_[e.offset] == header &&
          std::equal(bits.begin() + first, bits.begin() + end, arena_.begin() + e.offset + 1)) {
        return false;
      }
    }
    entries_.push_back({hash, arena_.size(), len});
    arena_.push_back(header);
    arena_.insert(arena_.end(), bits.begin() + first, bits.begin() + end);
    slots_[slot] = static_cast<uint32_t>(entries_.size());
    if (entries_.size() * 2 > slots_.size()) Grow();
    return true;
  }

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint64_t hash;
    size_t offset;  // into arena_: header word, then len bitset words
    uint32_t len;
  };

  // splitmix64 finalizer: cheap and mixes every input bit into every output bit.
  static uint64_t Mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }

  void Grow() {
    std::vector<uint32_t> slots(slots_.size() * 2, 0);
    const size_t mask = slots.size() - 1;
    for (size_t i = 0; i < entries_.size(); ++i) {
      size_t slot = entries_[i].hash & mask;
      while (slots[slot] != 0) slot = (slot + 1) & mask;
      slots[slot] = static_cast<uint32_t>(i + 1);
    }
    slots_ = std::move(slots);
  }

  std::vector<uint64_t> arena_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> slots_;  // entry index + 1; 0 = empty
};

// Where the search got furthest before being forced to backtrack: the op whose return could not
// be passed with the most ops linearized, and the register values seen there. If that op is a
// write kept out by pending reads of states[0], `stranded` is the latest-invoked of those reads
// (a stale read is usually the latest read of its value).
struct Deepest {
  bool valid = false;
  size_t depth = 0;
  const Operation* op = nullptr;
  std::vector<uint32_t> states;
  const Operation* stranded = nullptr;
};

enum class SearchStatus { kLinearizable, kViolation, kBudgetExhausted };

// Lowe's variant of the Wing & Gong search over one key. Node 2i is the call of ops[i] and node
// 2i+1 its return; `next`/`prev` form the list of events of not-yet-linearized ops. `once[s]` is
// true when register state s can never recur after being overwritten (a unique value, or absent
// when the key has no deletes).
SearchStatus Search(const std::vector<KeyOp>& ops, const std::vector<bool>& once, uint64_t budget,
                    Deepest* deepest) {
  const size_t n = ops.size();
  size_t required_left = 0;
  std::vector<uint32_t> pending(once.size(), 0);  // unlinearized reads, by value
  for (const KeyOp& op : ops) {
    required_left += op.required ? 1 : 0;
    if (!op.is_write) ++pending[op.value];
  }
  if (required_left == 0) return SearchStatus::kLinearizable;

  // Calls sort before returns at equal times so that touching intervals count as concurrent.
  std::vector<uint32_t> order(2 * n);
  std::iota(order.begin(), order.end(), 0u);
  auto time_of = [&](uint32_t node) {
    return node % 2 == 0 ? ops[node / 2].invoke : ops[node / 2].complete;
  };
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const int64_t ta = time_of(a), tb = time_of(b);
    if (ta != tb) return ta < tb;
    if (a % 2 != b % 2) return a % 2 < b % 2;
    return a < b;
  });
  const uint32_t head = static_cast<uint32_t>(2 * n), tail = head + 1;
  std::vector<uint32_t> next(2 * n + 2), prev(2 * n + 2);
  uint32_t last = head;
  for (uint32_t node : order) {
    next[last] = node;
    prev[node] = last;
    last = node;
  }
  next[last] = tail;
  prev[tail] = last;
  auto unlink = [&](uint32_t node) {
    next[prev[node]] = next[node];
    prev[next[node]] = prev[node];
  };
  auto relink = [&](uint32_t node) {
    next[prev[node]] = node;
    prev[next[node]] = node;
  };

  struct Frame {
    uint32_t call;   // list node of the linearized op's call
    uint32_t state;  // register state before the op was linearized
  };
  std::vector<Frame> stack;
  std::vector<uint64_t> bits((n + 63) / 64, 0);
  StateCache cache;
  uint32_t state = kAbsent;
  auto linearized = [&](size_t i) { return (bits[i / 64] >> (i % 64) & 1) != 0; };
  // Notes a dead end at the return of unlinearized ops[op] if it is the deepest one so far.
  auto record_dead_end = [&](size_t op) {
    if (deepest->valid && stack.size() == deepest->depth && ops[op].op == deepest->op) {
      auto& states = deepest->states;
      if (states.size() < kMaxReportStates &&
          std::find(states.begin(), states.end(), state) == states.end()) {
        states.push_back(state);
      }
      return;
    }
    if (deepest->valid && stack.size() <= deepest->depth) return;
    *deepest = Deepest{true, stack.size(), ops[op].op, {state}, nullptr};
    if (!ops[op].is_write || !once[state] || pending[state] == 0) return;
    for (size_t r = 0; r < n; ++r) {  // ops are in invoke order: keep the last match
      if (!ops[r].is_write && ops[r].value == state && !linearized(r))
        deepest->stranded = ops[r].op;
    }
  };
  uint32_t entry = next[head];
  while (required_left > 0) {
    const size_t i = entry / 2;
    if (entry % 2 == 0) {
      const KeyOp& op = ops[i];
      // A read fits only its own value. A write must wait while reads of the current value are
      // pending if that value can never come back: overwriting it would strand them.
      if (op.is_write ? pending[state] > 0 && once[state] : op.value != state) {
        entry = next[entry];
        continue;
      }
      const uint32_t new_state = op.is_write ? op.value : state;
      const uint64_t bit = uint64_t{1} << (i % 64);
      bits[i / 64] |= bit;
      if (cache.Insert(bits, new_state)) {
        if (cache.size() > budget) return SearchStatus::kBudgetExhausted;
        stack.push_back({entry, state});
        state = new_state;
        required_left -= op.required ? 1 : 0;
        if (!op.is_write) --pending[op.value];
        unlink(entry + 1);
        unlink(entry);
        entry = next[head];
        continue;
      }
      bits[i / 64] &= ~bit;  // configuration already explored, and it failed
      if (op.is_write) {
        entry = next[entry];
        continue;
      }
      // A fitting read can always be linearized first: it changes nothing, and no unlinearized
      // op must precede it (the cursor passed no return). So if the configuration with it failed,
      // this one fails too; fall through to backtrack.
    } else {
      record_dead_end(i);  // the op's return came and it is not linearized
    }
    // Backtrack. Frames of reads are popped too: by the argument above they had no alternative.
    for (;;) {
      if (stack.empty()) return SearchStatus::kViolation;
      const Frame frame = stack.back();
      stack.pop_back();
      const size_t popped = frame.call / 2;
      bits[popped / 64] &= ~(uint64_t{1} << (popped % 64));
      state = frame.state;
      required_left += ops[popped].required ? 1 : 0;
      relink(frame.call);  // reverse order of unlinking
      relink(frame.call + 1);
      if (ops[popped].is_write) {
        entry = next[frame.call];
        break;
      }
      ++pending[ops[popped].value];
    }
  }
  return SearchStatus::kLinearizable;
}

// Ids of `extras` and of the ops whose interval overlaps `center`'s (nearest invocations first),
// at most kMaxWindow, in id order.
std::vector<uint64_t> Window(const std::vector<const Operation*>& ops, const Operation& center,
                             const std::vector<const Operation*>& extras = {}) {
  auto end_of = [](const Operation& op) {
    return op.outcome == Outcome::kOk ? std::max(op.invoke_ns, op.complete_ns) : kInfinity;
  };
  std::vector<std::pair<uint64_t, const Operation*>> near;  // (distance from center's invoke, op)
  for (const Operation* op : extras) near.emplace_back(0, op);
  for (const Operation* op : ops) {
    if (op->invoke_ns > end_of(center) || end_of(*op) < center.invoke_ns) continue;
    const int64_t d = op->invoke_ns - center.invoke_ns;
    near.emplace_back(d < 0 ? 0 - static_cast<uint64_t>(d) : static_cast<uint64_t>(d) + 1, op);
  }
  std::stable_sort(near.begin(), near.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<uint64_t> ids;
  for (const auto& [distance, op] : near) {
    if (ids.size() == kMaxWindow) break;
    if (op != nullptr && std::find(ids.begin(), ids.end(), op->id) == ids.end()) {
      ids.push_back(op->id);
    }
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

enum class KeyStatus { kLinearizable, kViolation, kInconclusive };

KeyStatus CheckKey(const std::string& key, const std::vector<const Operation*>& all,
                   const CheckOptions& options, CheckResult* result) {
  // Failed ops never happened and failed/indeterminate reads tell nothing about the register.
  std::vector<const Operation*> kept;
  std::unordered_map<std::string, uint64_t> failed_writes;  // value -> op id, for reporting
  for (const Operation* op : all) {
    if (op->kind == OpKind::kWrite && op->outcome == Outcome::kFail) {
      if (op->value) failed_writes.emplace(*op->value, op->id);
    } else if (op->kind == OpKind::kWrite || op->outcome == Outcome::kOk) {
      kept.push_back(op);
    }
  }
  std::stable_sort(kept.begin(), kept.end(), [](const Operation* a, const Operation* b) {
    return a->invoke_ns != b->invoke_ns ? a->invoke_ns < b->invoke_ns : a->id < b->id;
  });
  // kInfinity is reserved for indeterminate writes.
  auto end_of = [](const Operation& op) {
    return std::min(std::max(op.invoke_ns, op.complete_ns), kInfinity - 1);
  };

  // Register states are indices into the key's distinct written values; 0 is "absent".
  std::unordered_map<std::string, uint32_t> index;
  std::vector<const std::optional<std::string>*> names = {nullptr};
  std::vector<uint32_t> writers = {0};                     // writers[kAbsent] counts deletes
  std::vector<int64_t> first_read_end = {kInfinity};       // kInfinity: the value is never read
  std::vector<const Operation*> first_writer = {nullptr};  // kept is in invoke order
  for (const Operation* op : kept) {
    if (op->kind != OpKind::kWrite) continue;
    if (!op->value) {
      ++writers[kAbsent];
      continue;
    }
    auto [it, added] = index.emplace(*op->value, static_cast<uint32_t>(names.size()));
    if (added) {
      names.push_back(&op->value);
      writers.push_back(0);
      first_read_end.push_back(kInfinity);
      first_writer.push_back(op);
    }
    ++writers[it->second];
  }

  auto fail = [&](const Operation& op, std::string explanation,
                  const std::vector<const Operation*>& extras = {}) {
    result->linearizable = false;
    result->key = key;
    result->explanation = "key " + QuoteValue(key) + ": " + std::move(explanation);
    result->window = Window(kept, op, extras);
    return KeyStatus::kViolation;
  };
  // Unique values make some reads impossible outright; reporting them here is both faster and
  // clearer than letting the search fail somewhere around them.
  for (const Operation* op : kept) {
    if (op->kind != OpKind::kRead || !op->value) continue;
    auto it = index.find(*op->value);
    if (it == index.end()) {
      auto failed = failed_writes.find(*op->value);
      return fail(*op,
                  DescribeOp(*op) + " read a value that no write of this key wrote" +
                      (failed == failed_writes.end()
                           ? std::string()
                           : " (only op " + std::to_string(failed->second) + ", which failed)"));
    }
    const uint32_t v = it->second;
    if (first_writer[v]->invoke_ns > end_of(*op)) {
      return fail(*op, DescribeOp(*op) + " completed before any write of its value was invoked: " +
                           DescribeOp(*first_writer[v]));
    }
    first_read_end[v] = std::min(first_read_end[v], end_of(*op));
  }

  std::vector<KeyOp> ops;
  for (const Operation* op : kept) {
    KeyOp k{op, op->kind == OpKind::kWrite, kAbsent, op->invoke_ns, end_of(*op), true};
    if (op->value) k.value = index.at(*op->value);
    const bool unique = k.is_write && k.value != kAbsent && writers[k.value] == 1;
    if (k.is_write && op->outcome == Outcome::kIndeterminate) {
      if (unique && first_read_end[k.value] == kInfinity) continue;  // unobserved: as if never
      k.complete = unique ? first_read_end[k.value] : kInfinity;
      k.required = unique;
    } else if (unique) {
      // The write precedes every read of its value, hence ends before the first of them does.
      k.complete = std::min(k.complete, first_read_end[k.value]);
    }
    ops.push_back(k);
  }

  std::vector<bool> once(names.size());
  for (uint32_t v = 0; v < names.size(); ++v) once[v] = writers[v] == (v == kAbsent ? 0 : 1);
  Deepest deepest;
  const SearchStatus status = Search(ops, once, options.max_states_per_key, &deepest);
  if (status == SearchStatus::kLinearizable) return KeyStatus::kLinearizable;
  if (status == SearchStatus::kBudgetExhausted) {
    result->inconclusive = true;
    result->key = key;
    result->explanation = "key " + QuoteValue(key) + ": search budget of " +
                          std::to_string(options.max_states_per_key) + " states exhausted over " +
                          std::to_string(ops.size()) + " ops; neither proven nor refuted";
    if (deepest.valid) {
      result->explanation += " (furthest dead end: " + DescribeOp(*deepest.op) + ")";
      result->window = Window(kept, *deepest.op);
    }
    return KeyStatus::kInconclusive;
  }

  // Localize. Dropping reads keeps a history linearizable and the writes alone always are, so
  // bisect for the fewest leading reads (in invoke order) that already fail: the last of them is
  // the first read that the writes and the earlier reads cannot explain.
  std::vector<size_t> reads;  // positions in ops
  for (size_t p = 0; p < ops.size(); ++p) {
    if (!ops[p].is_write) reads.push_back(p);
  }
  size_t lo = 0, hi = reads.size();  // lo leading reads pass, hi fail
  bool localized = !reads.empty();
  while (localized && hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    std::vector<KeyOp> subset;
    for (size_t p = 0; p < ops.size(); ++p) {
      if (ops[p].is_write || p <= reads[mid - 1]) subset.push_back(ops[p]);
    }
    Deepest probe;
    const SearchStatus probed = Search(subset, once, options.max_states_per_key, &probe);
    localized = probed != SearchStatus::kBudgetExhausted;
    if (probed == SearchStatus::kViolation) deepest = probe;
    (probed == SearchStatus::kViolation ? hi : lo) = mid;
  }

  std::string text = "no linearization exists. ";
  const Operation* culprit = localized ? ops[reads[hi - 1]].op : deepest.op;
  const Operation* writer = nullptr;  // of the culprit's value, shown for context
  if (localized) {
    const KeyOp& read = ops[reads[hi - 1]];
    if (read.value != kAbsent && writers[read.value] == 1) writer = first_writer[read.value];
    text += DescribeOp(*culprit) +
            " is the first read that cannot be linearized: the writes plus the " +
            std::to_string(lo) + " earlier-invoked read(s) can be, but not together with it";
    if (writer != nullptr) text += "; its value was written by " + DescribeOp(*writer);
    text += ". Where the search for these ops got stuck, ";
  }
  text += DescribeOp(*deepest.op) + " could not be linearized in time: the register could hold ";
  for (size_t s = 0; s < deepest.states.size(); ++s) {
    text += (s == 0 ? "" : " or ") +
            QuoteValue(deepest.states[s] == kAbsent ? std::nullopt : *names[deepest.states[s]]);
  }
  if (deepest.stranded != nullptr) {
    text += std::string(deepest.states.size() > 1 ? ", and overwriting the first"
                                                  : ", and overwriting it") +
            " would strand " + DescribeOp(*deepest.stranded) + ", which still needs that value";
    if (deepest.op->outcome == Outcome::kOk &&
        deepest.stranded->invoke_ns > deepest.op->complete_ns) {
      text += ", although it began after that write completed";
    }
  }
  return fail(*culprit, text + ".", {culprit, writer, deepest.op, deepest.stranded});
}

}  // namespace

CheckResult CheckLinearizable(const std::vector<Operation>& history, const CheckOptions& options) {
  std::map<std::string, std::vector<const Operation*>> by_key;  // ordered: deterministic reports
  for (const Operation& op : history) by_key[op.key].push_back(&op);
  CheckResult result;
  for (const auto& [key, ops] : by_key) {
    CheckResult key_result;
    const KeyStatus status = CheckKey(key, ops, options, &key_result);
    if (status == KeyStatus::kViolation) return key_result;
    if (status == KeyStatus::kInconclusive && !result.inconclusive) {
      result = std::move(key_result);
    }
  }
  return result;
}

}  // namespace raftkv::check

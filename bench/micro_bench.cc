// Google Benchmark micro-benchmarks of the hot pieces of a node: the SET command codec, logs.txt
// encoding and appends (with and without fsync, per batch size: what group commit buys), the
// core's in-memory log (append, AppendEntries slices), the state machine's apply and read, and
// the lease check a GET makes.
//
//   build/bench/raftkv-micro-bench                      (make bench runs it too)
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/escape.h"
#include "kv/command.h"
#include "kv/kv_state_machine.h"
#include "node/replica.h"
#include "raft/raft_log.h"
#include "raft/raft_node.h"
#include "storage/log_file.h"

namespace raftkv {
namespace {

const std::string kValue(100, 'v');

std::string Key(int64_t i) { return "k" + std::to_string(1'000'000'000 + i); }

void BM_EncodeDecodeSet(benchmark::State& state) {
  const kv::SetCommand command{Key(1), kValue, 0x1234567890abcdef, 42};
  for (auto _ : state) {
    std::string encoded = kv::EncodeSet(command);
    benchmark::DoNotOptimize(kv::DecodeCommand(encoded));
  }
}
BENCHMARK(BM_EncodeDecodeSet);

void BM_EscapeValue(benchmark::State& state) {
  const std::string spaced = "hello world, " + kValue;
  for (auto _ : state) benchmark::DoNotOptimize(Escape(spaced));
}
BENCHMARK(BM_EscapeValue);

// Appends batches of `range(0)` SET entries to logs.txt; `range(1)` = 1 adds the fsync that makes
// the batch durable. Items per second = entries per second.
void BM_LogAppend(benchmark::State& state) {
  char pattern[] = "/tmp/raftkv-bench-log-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  storage::LogFile::Recovered recovered;
  auto log = storage::LogFile::Open(dir, &recovered, node::kCommandCodec);
  if (!log.ok()) {
    state.SkipWithError("cannot open logs.txt");
    return;
  }
  const int64_t batch = state.range(0);
  const bool sync = state.range(1) != 0;
  LogIndex next = 1;
  std::vector<raft::Entry> entries(static_cast<size_t>(batch));
  for (auto _ : state) {
    for (raft::Entry& entry : entries) {
      entry = raft::Entry{1, next, raft::EntryType::kCommand,
                          kv::EncodeSet({Key(static_cast<int64_t>(next)), kValue, 7, next})};
      ++next;
    }
    if (!(*log)->Append(entries).ok() || (sync && !(*log)->Sync().ok())) {
      state.SkipWithError("append failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
  log->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_LogAppend)
    ->ArgNames({"batch", "fsync"})
    ->Args({1, 0})
    ->Args({64, 0})
    ->Args({1, 1})
    ->Args({64, 1})
    ->Args({512, 1})
    ->UseRealTime();

void BM_StateMachineApply(benchmark::State& state) {
  kv::KvStateMachine machine;
  // 64 clients (sessions 1..64, from OPEN-SESSION entries at those indexes) taking turns.
  for (uint64_t id = 1; id <= 64; ++id) machine.ApplyOpenSession({0, 1000, 60'000}, id);
  uint64_t index = 0;
  for (auto _ : state) {
    ++index;
    benchmark::DoNotOptimize(machine.ApplySet(
        {Key(static_cast<int64_t>(index % 10'000)), kValue, 1 + index % 64, 1 + index / 64},
        64 + index));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StateMachineApply);

void BM_StateMachineGet(benchmark::State& state) {
  kv::KvStateMachine machine;
  for (int64_t i = 0; i < 10'000; ++i)
    machine.ApplySet({Key(i), kValue, 0, 0}, static_cast<uint64_t>(i) + 1);
  int64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(machine.Find(Key(i++ % 10'000)));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StateMachineGet);

// The core's in-memory log: appending a SET's entry, and cutting an AppendEntries batch from it
// (the leader does one per follower per send; 64 entries here).
void BM_RaftLogAppend(benchmark::State& state) {
  const std::string data = kv::EncodeSet({Key(1), kValue, 7, 1});
  raft::RaftLog log;
  LogIndex index = 0;
  for (auto _ : state) {
    if (index == 100'000) {  // bounded memory however long it runs: start over
      log.TruncateFrom(1);
      index = 0;
    }
    ++index;
    log.Append(raft::Entry{1, index, raft::EntryType::kCommand, data});
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RaftLogAppend);

void BM_RaftLogSlice(benchmark::State& state) {
  const std::string data = kv::EncodeSet({Key(1), kValue, 7, 1});
  std::vector<raft::Entry> entries;
  for (LogIndex index = 1; index <= 100'000; ++index) {
    entries.push_back(raft::Entry{1, index, raft::EntryType::kCommand, data});
  }
  const raft::RaftLog log(std::move(entries));
  LogIndex from = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(log.Slice(from, 64, 1 << 20));
    from = from % 99'000 + 64;
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_RaftLogSlice);

// The check a lease GET makes on the leader (single-node cluster, so the node leads at once).
void BM_LeaseRead(benchmark::State& state) {
  raft::RaftConfig config;
  config.id = 0;
  config.cluster_size = 1;
  TimePoint now{};
  auto node = raft::RaftNode::Create(config, {}, now, 1);
  if (!node.ok()) {
    state.SkipWithError("cannot create the node");
    return;
  }
  for (int step = 0; step < 100 && (*node)->role() != raft::Role::kLeader; ++step) {
    now += std::chrono::milliseconds(50);
    (*node)->Tick(now);
    while ((*node)->HasReady()) {
      raft::Ready ready = (*node)->TakeReady();
      (*node)->Advance(ready);
    }
  }
  if (!(*node)->LeaseRead(now).ok()) {
    state.SkipWithError("the node holds no lease");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize((*node)->LeaseRead(now));
}
BENCHMARK(BM_LeaseRead);

}  // namespace
}  // namespace raftkv

BENCHMARK_MAIN();

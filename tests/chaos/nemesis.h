// Nemesis: the faults of the fault tests, as named scenarios. Each scenario finds its target
// (usually the current leader), applies the fault, holds it, undoes it and lets the cluster
// settle, recording when each fault was in force for the report's timeline.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tests/chaos/chaos_cluster.h"

namespace raftkv::chaos {

struct FaultWindow {
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  std::string what;
};

// Every chaos cluster takes snapshots this often (config.ini [snapshot]), so that the forked
// writer, compaction and InstallSnapshot run under every fault; follower-misses-snapshot makes a
// follower miss more than ENTRIES + KEEP_ENTRIES writes.
inline constexpr int kSnapshotEntries = 200;
inline constexpr int kSnapshotKeepEntries = 20;

struct NemesisTimings {
  std::chrono::milliseconds hold{2'000};    // how long a partition, kill or slow disk lasts
  std::chrono::milliseconds pause{1'200};   // SIGSTOP: longer than lease + election timeout
  std::chrono::milliseconds settle{1'500};  // quiet time after each fault
};

class Nemesis {
 public:
  Nemesis(ChaosCluster* cluster, uint64_t seed, NemesisTimings timings,
          std::chrono::steady_clock::time_point origin);

  // The scenario names, in the order `--scenarios all` runs them.
  static const std::vector<std::string>& ScenarioNames();
  // Runs one named scenario; false if the name is unknown.
  bool Run(const std::string& scenario);
  // Random scenarios until `duration` has passed.
  void RunRandom(std::chrono::milliseconds duration);

  const std::vector<FaultWindow>& windows() const { return windows_; }
  int leader_changes() const { return leader_changes_; }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::optional<int> CurrentLeader();
  int RandomNode();
  int RandomNodeExcept(int excluded);
  void Hold(std::chrono::milliseconds duration);
  void Window(const std::string& what, const std::function<void()>& apply,
              std::chrono::milliseconds hold, const std::function<void()>& undo);
  int64_t NowNs() const;

  ChaosCluster* cluster_;
  std::mt19937_64 random_;
  NemesisTimings timings_;
  std::chrono::steady_clock::time_point origin_;
  std::vector<FaultWindow> windows_;
  int leader_changes_ = 0;
  std::vector<std::string> problems_;  // nodes that died by themselves, scenarios skipped
};

}  // namespace raftkv::chaos

#include "tests/chaos/nemesis.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

namespace raftkv::chaos {

using std::chrono::milliseconds;

Nemesis::Nemesis(ChaosCluster* cluster, uint64_t seed, NemesisTimings timings,
                 std::chrono::steady_clock::time_point origin)
    : cluster_(cluster), random_(seed), timings_(timings), origin_(origin) {}

const std::vector<std::string>& Nemesis::ScenarioNames() {
  static const auto* names = new std::vector<std::string>{
      "leader-isolation", "split",         "bridge",        "one-way",
      "kill-leader",      "kill-follower", "kill-majority", "kill-all",
      "pause-leader",     "slow-disk",     "slow-network",  "follower-misses-snapshot"};
  return *names;
}

int64_t Nemesis::NowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              origin_)
      .count();
}

std::optional<int> Nemesis::CurrentLeader() {
  std::optional<LeaderInfo> leader = cluster_->WaitForLeader(5'000);
  if (!leader) return std::nullopt;
  return leader->id;
}

int Nemesis::RandomNode() {
  return static_cast<int>(random_() % static_cast<uint64_t>(cluster_->size()));
}

int Nemesis::RandomNodeExcept(int excluded) {
  int node = RandomNode();
  while (node == excluded) node = RandomNode();
  return node;
}

void Nemesis::Hold(milliseconds duration) { std::this_thread::sleep_for(duration); }

void Nemesis::Window(const std::string& what, const std::function<void()>& apply, milliseconds hold,
                     const std::function<void()>& undo) {
  const std::optional<LeaderInfo> before = cluster_->Leader();
  FaultWindow window{NowNs(), 0, what};
  apply();
  Hold(hold);
  undo();
  window.end_ns = NowNs();
  for (const std::string& exit : cluster_->ReapUnexpectedExits()) problems_.push_back(exit);
  windows_.push_back(window);
  Hold(timings_.settle);
  const std::optional<LeaderInfo> after = cluster_->Leader();
  if (before && after && (before->id != after->id || before->term != after->term)) {
    ++leader_changes_;
  }
}

bool Nemesis::Run(const std::string& scenario) {
  const int n = cluster_->size();
  for (const std::string& exit : cluster_->ReapUnexpectedExits()) problems_.push_back(exit);
  const std::optional<int> current_leader = CurrentLeader();
  if (!current_leader) {
    // Every scenario aims at the leader or away from it: without one it would test nothing.
    problems_.push_back("no leader within 5 s before '" + scenario + "': scenario skipped");
    return true;
  }
  const int leader = *current_leader;
  const std::string on = " (node " + std::to_string(leader) + ")";
  if (scenario == "leader-isolation") {
    std::vector<int> rest;
    for (int i = 0; i < n; ++i) {
      if (i != leader) rest.push_back(i);
    }
    Window(
        "isolate leader" + on,
        [&] {
          cluster_->Partition({{leader}, rest});
        },
        timings_.hold, [&] { cluster_->HealNetwork(); });
  } else if (scenario == "split") {
    std::vector<int> nodes(n);
    for (int i = 0; i < n; ++i) nodes[i] = i;
    std::shuffle(nodes.begin(), nodes.end(), random_);
    const std::vector<int> minority(nodes.begin(), nodes.begin() + (n - 1) / 2);
    const std::vector<int> majority(nodes.begin() + (n - 1) / 2, nodes.end());
    Window(
        "majority/minority split",
        [&] {
          cluster_->Partition({minority, majority});
        },
        timings_.hold, [&] { cluster_->HealNetwork(); });
  } else if (scenario == "bridge") {
    // The leader alone on one side, the bridge sees both sides, the rest on the other side.
    const int bridge = RandomNodeExcept(leader);
    Window(
        "bridge through node " + std::to_string(bridge) + ", leader" + on + " on one side",
        [&] {
          for (int i = 0; i < n; ++i) {
            if (i == leader || i == bridge) continue;
            cluster_->SetLink(leader, i, true);
            cluster_->SetLink(i, leader, true);
          }
        },
        timings_.hold, [&] { cluster_->HealNetwork(); });
  } else if (scenario == "one-way") {
    Window(
        "leader" + on + " cannot send (it still receives)",
        [&] {
          for (int i = 0; i < n; ++i) cluster_->SetLink(leader, i, true);
        },
        timings_.hold, [&] { cluster_->HealNetwork(); });
  } else if (scenario == "kill-leader") {
    Window(
        "kill -9 leader" + on, [&] { cluster_->Kill(leader); }, timings_.hold,
        [&] { (void)cluster_->Start(leader); });
  } else if (scenario == "kill-follower") {
    const int follower = RandomNodeExcept(leader);
    Window(
        "kill -9 follower " + std::to_string(follower), [&] { cluster_->Kill(follower); },
        timings_.hold, [&] { (void)cluster_->Start(follower); });
  } else if (scenario == "kill-majority") {
    std::vector<int> victims = {leader};
    while (static_cast<int>(victims.size()) < n / 2 + 1) {
      const int next = RandomNode();
      if (std::find(victims.begin(), victims.end(), next) == victims.end()) {
        victims.push_back(next);
      }
    }
    Window(
        "kill -9 a majority including the leader" + on,
        [&] {
          for (int v : victims) cluster_->Kill(v);
        },
        timings_.hold,
        [&] {
          for (int v : victims) (void)cluster_->Start(v);
        });
  } else if (scenario == "kill-all") {
    Window(
        "kill -9 every node",
        [&] {
          for (int i = 0; i < n; ++i) cluster_->Kill(i);
        },
        milliseconds(500),
        [&] {
          for (int i = 0; i < n; ++i) (void)cluster_->Start(i);
        });
  } else if (scenario == "pause-leader") {
    Window(
        "SIGSTOP leader" + on, [&] { cluster_->Pause(leader); }, timings_.pause,
        [&] { cluster_->Resume(leader); });
  } else if (scenario == "slow-disk") {
    Window(
        "slow fsync on leader" + on, [&] { cluster_->SetSlowDisk(leader, true); }, timings_.hold,
        [&] { cluster_->SetSlowDisk(leader, false); });
  } else if (scenario == "follower-misses-snapshot") {
    // A follower down while the others commit more than a snapshot's worth of entries: the
    // leader has compacted past it, so it must come back by InstallSnapshot.
    const int follower = RandomNodeExcept(leader);
    const uint64_t needed = kSnapshotEntries + kSnapshotKeepEntries + 50;
    uint64_t commit_at_restart = 0;
    bool enough = false;
    // Only what the follower writes after its restart counts (an earlier scenario may have
    // installed a snapshot on it too).
    uint64_t dump_before = 0;
    Window(
        "kill -9 follower " + std::to_string(follower) + " while the others commit " +
            std::to_string(needed) + "+ entries",
        [&] {
          const std::optional<StatusReply> before = cluster_->NodeStatus(leader);
          cluster_->Kill(follower);
          const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
          while (!enough && before && std::chrono::steady_clock::now() < give_up) {
            Hold(milliseconds(100));
            for (int i = 0; i < n; ++i) {
              const std::optional<StatusReply> now = cluster_->NodeStatus(i);
              if (now && now->role() == "leader" &&
                  now->commit_index() >= before->commit_index() + needed) {
                enough = true;
                commit_at_restart = now->commit_index();
              }
            }
          }
        },
        milliseconds(0),
        [&] {
          std::error_code error;
          dump_before = std::filesystem::file_size(cluster_->DumpPath(follower), error);
          if (error) dump_before = 0;
          (void)cluster_->Start(follower);
        });
    if (!enough) {
      problems_.push_back(
          "follower-misses-snapshot: the others did not commit enough entries in 30 s");
      return true;
    }
    bool caught_up = false;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!caught_up && std::chrono::steady_clock::now() < give_up) {
      const std::optional<StatusReply> status = cluster_->NodeStatus(follower);
      caught_up = status && status->last_applied() >= commit_at_restart;
      if (!caught_up) Hold(milliseconds(100));
    }
    std::ifstream dump(cluster_->DumpPath(follower));
    dump.seekg(static_cast<std::streamoff>(dump_before));
    const std::string text(std::istreambuf_iterator<char>(dump), {});
    if (!caught_up) {
      problems_.push_back("follower " + std::to_string(follower) +
                          " did not catch up within 20 s of its restart");
    } else if (text.find("installed a snapshot from the leader") == std::string::npos) {
      problems_.push_back("follower " + std::to_string(follower) +
                          " caught up without installing a snapshot: the scenario tested nothing");
    }
  } else if (scenario == "slow-network") {
    // Every link slow by its own 20–150 ms: heartbeats arrive late, some past the lease.
    Window(
        "slow links (20-150 ms per pair)",
        [&] {
          for (int from = 0; from < n; ++from) {
            for (int to = 0; to < n; ++to) {
              cluster_->SetLinkDelay(from, to, milliseconds(20 + random_() % 131));
            }
          }
        },
        timings_.hold, [&] { cluster_->HealNetwork(); });
  } else {
    return false;
  }
  return true;
}

void Nemesis::RunRandom(milliseconds duration) {
  const auto end = std::chrono::steady_clock::now() + duration;
  const std::vector<std::string>& names = ScenarioNames();
  while (std::chrono::steady_clock::now() < end) {
    Run(names[random_() % names.size()]);
  }
}

}  // namespace raftkv::chaos

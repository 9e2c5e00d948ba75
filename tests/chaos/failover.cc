#include "tests/chaos/failover.h"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "raftkv/client.h"

namespace raftkv::chaos {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double Millis(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count() / 1000.0;
}

void PrintSummary(const char* what, std::vector<double> times) {
  std::sort(times.begin(), times.end());
  std::printf("   %-20s median %7.1f ms   worst %7.1f ms   (best %.1f ms, %zu kills)\n", what,
              times[times.size() / 2], times.back(), times.front(), times.size());
}

}  // namespace

bool MeasureFailover(const ClusterOptions& options, int rounds) {
  ChaosCluster cluster(options);
  if (!cluster.StartAll().ok() || !cluster.WaitForLeader(10'000)) {
    std::printf("   the cluster did not start\n");
    return false;
  }
  client::ClientOptions client_options;
  client_options.addresses = cluster.client_addresses();
  client_options.deadline = milliseconds(20'000);
  std::vector<double> set_times, get_times;
  for (int round = 0; round < rounds; ++round) {
    auto setter = client::Client::Create(client_options);
    auto getter = client::Client::Create(client_options);
    // Both learn the current leader, as long-lived clients would have.
    if (!(*setter)->Set("failover", "warm").ok() || !(*getter)->Get("failover").ok()) {
      std::printf("   round %d: the cluster is not serving before the kill\n", round + 1);
      return false;
    }
    const std::optional<LeaderInfo> leader = cluster.WaitForLeader(5'000);
    if (!leader) return false;
    const Clock::time_point killed = Clock::now();
    cluster.Kill(leader->id);
    Clock::duration set_time{}, get_time{};
    bool set_ok = false, get_ok = false;
    std::thread set_thread([&] {
      set_ok = (*setter)->Set("failover", "round" + std::to_string(round)).ok();
      set_time = Clock::now() - killed;
    });
    std::thread get_thread([&] {
      get_ok = (*getter)->Get("failover").ok();
      get_time = Clock::now() - killed;
    });
    set_thread.join();
    get_thread.join();
    if (!set_ok || !get_ok) {
      std::printf("   round %d: no success within 20 s of killing node %d\n", round + 1,
                  leader->id);
      return false;
    }
    set_times.push_back(Millis(set_time));
    get_times.push_back(Millis(get_time));
    std::printf(
        "   kill %2d: leader %d killed; first SET after %7.1f ms, first GET after %7.1f ms\n",
        round + 1, leader->id, set_times.back(), get_times.back());
    std::fflush(stdout);
    (void)cluster.Start(leader->id);
    std::this_thread::sleep_for(milliseconds(1'500));  // rejoin and catch up
  }
  std::printf("== failover over %d leader kills (kill -9 to first success):\n", rounds);
  PrintSummary("first SET", set_times);
  PrintSummary("first GET", get_times);
  return true;
}

}  // namespace raftkv::chaos

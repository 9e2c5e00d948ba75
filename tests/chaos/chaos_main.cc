// raftkv-chaos: fault tests against real raftkv-node processes. Starts a cluster on loopback (nodes
// linked through cuttable TCP proxies), runs concurrent clients through the public client library,
// applies faults — partitions, kill -9, SIGSTOP, slow fsync, clock drift — then heals everything,
// reads every key, and checks the whole history for linearizability.
//
//   raftkv-chaos --scenarios all --nodes 3                  every named scenario once
//   raftkv-chaos --random 30m --nodes 5 --seeds 10          random campaigns
//   raftkv-chaos --scenarios pause-leader --bug read-without-lease --expect-violation
//   raftkv-chaos --measure-failover 20                      kill the leader 20 times, time it
//
// Exit status: 0 when every run is linearizable (with --expect-violation: when some run is not).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/str_split.h"
#include "config/node_config.h"
#include "tests/chaos/chaos_cluster.h"
#include "tests/chaos/failover.h"
#include "tests/chaos/nemesis.h"
#include "tests/chaos/report.h"
#include "tests/chaos/workload.h"

namespace raftkv::chaos {
namespace {

using std::chrono::milliseconds;

struct Settings {
  int nodes = 3;
  std::vector<std::string> scenarios;
  milliseconds random_duration{0};
  uint64_t seed = 1;
  int seeds = 1;
  int clients = 5;
  int keys = 4;
  double drift = 0.0;               // each node's clock rate is drawn from [1 - drift, 1 + drift]
  std::vector<double> clock_rates;  // or given exactly, one per node
  double max_clock_drift = 0.01;    // what the nodes are configured to tolerate
  std::string bug = "none";
  bool expect_violation = false;
  bool keep = false;
  int base_port = 0;
  std::string node_binary;
  NemesisTimings timings;
};

// Short timings, so that each fault shows a whole failover within a few seconds.
std::string ConfigText(const Settings& settings) {
  return "[raft]\nHEARTBEAT_INTERVAL = 20ms\nELECTION_TIMEOUT_MIN = 300ms\n"
         "LEASE_DURATION = 200ms\nMAX_CLOCK_DRIFT = " +
         std::to_string(settings.max_clock_drift) +
         "\n[logging]\nSTDOUT = false\nVERBOSITY = quiet\n[snapshot]\nENTRIES = " +
         std::to_string(kSnapshotEntries) +
         "\nKEEP_ENTRIES = " + std::to_string(kSnapshotKeepEntries) + "\nCHUNK_BYTES = 4KiB\n";
}

// The command that replays one run: same faults, same workload seed, same clock rates. (Real
// processes and real time are not deterministic, so a replay repeats the schedule, not every
// interleaving.)
std::string ReplayCommand(const Settings& settings, uint64_t seed) {
  std::string command = "build/tests/chaos/raftkv-chaos --nodes " + std::to_string(settings.nodes) +
                        " --seed " + std::to_string(seed);
  if (!settings.scenarios.empty()) {
    std::string names;
    for (const std::string& name : settings.scenarios) names += (names.empty() ? "" : ",") + name;
    command += " --scenarios " + names;
  }
  if (settings.random_duration.count() > 0) {
    command += " --random " + std::to_string(settings.random_duration.count()) + "ms";
  }
  if (settings.drift != 0) command += " --drift " + std::to_string(settings.drift);
  if (!settings.clock_rates.empty()) {
    std::string rates;
    for (double rate : settings.clock_rates) {
      rates += (rates.empty() ? "" : ",") + std::to_string(rate);
    }
    command += " --clock-rates " + rates;
  }
  if (settings.max_clock_drift != 0.01) {
    command += " --max-clock-drift " + std::to_string(settings.max_clock_drift);
  }
  if (settings.bug != "none") command += " --bug " + settings.bug;
  if (settings.clients != 5) command += " --clients " + std::to_string(settings.clients);
  if (settings.keys != 4) command += " --keys " + std::to_string(settings.keys);
  if (settings.timings.hold != NemesisTimings{}.hold) {
    command += " --hold " + std::to_string(settings.timings.hold.count()) + "ms";
  }
  return command;
}

struct RunResult {
  bool linearizable = false;  // and conclusive
  bool violation = false;     // the checker refuted linearizability (not merely "no verdict")
  bool recovered = false;     // healed cluster elected a leader and served every final read
};

RunResult RunOnce(const Settings& settings, uint64_t seed) {
  char pattern[] = "/tmp/raftkv-chaos-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  std::mt19937_64 random(seed);
  ClusterOptions options;
  options.nodes = settings.nodes;
  options.base_port = settings.base_port;
  options.node_binary = settings.node_binary;
  options.dir = dir;
  options.config_text = ConfigText(settings);
  options.fsync_delay = "40ms";
  options.injected_bug = settings.bug;
  for (int i = 0; i < settings.nodes; ++i) {
    const double drawn =
        1.0 + settings.drift * std::uniform_real_distribution<double>(-1, 1)(random);
    options.clock_rates.push_back(settings.clock_rates.empty() ? drawn : settings.clock_rates[i]);
  }
  std::printf("== run: seed %llu, %d nodes, data in %s\n", static_cast<unsigned long long>(seed),
              settings.nodes, dir.c_str());
  std::printf("   clock rates:");
  for (double rate : options.clock_rates) std::printf(" %.4f", rate);
  std::printf("%s\n", settings.bug == "none" ? "" : ("; injected bug: " + settings.bug).c_str());
  std::fflush(stdout);

  const auto origin = SteadyClock::now();
  RunInfo info{seed, std::chrono::system_clock::now(), {}};
  ChaosCluster cluster(options);
  for (int i = 0; i < settings.nodes; ++i) info.dump_paths.push_back(cluster.DumpPath(i));
  if (absl::Status status = cluster.StartAll(); !status.ok()) {
    std::printf("   cannot start the cluster: %s\n", std::string(status.message()).c_str());
    return {};
  }
  const std::optional<LeaderInfo> first_leader = cluster.WaitForLeader(10'000);
  if (!first_leader) {
    std::printf("   no leader within 10 s of start (see %s/node*.out)\n", dir.c_str());
    return {};
  }
  std::printf("   node %d elected leader %.0f ms after start\n", first_leader->id,
              std::chrono::duration<double, std::milli>(SteadyClock::now() - origin).count());

  WorkloadOptions workload_options;
  workload_options.addresses = cluster.client_addresses();
  workload_options.clients = settings.clients;
  workload_options.keys = settings.keys;
  workload_options.seed = seed;
  Workload workload(workload_options, origin);
  workload.Start();

  Nemesis nemesis(&cluster, seed, settings.timings, origin);
  std::this_thread::sleep_for(milliseconds(500));
  for (const std::string& scenario : settings.scenarios) nemesis.Run(scenario);
  if (settings.random_duration.count() > 0) nemesis.RunRandom(settings.random_duration);

  // Heal everything, let the clients see a healthy cluster, then read every key.
  bool recovered = cluster.HealAll().ok() && cluster.WaitForLeader(10'000).has_value();
  std::this_thread::sleep_for(milliseconds(1'000));
  workload.Stop();
  workload.FinalReads();
  const std::vector<check::Operation> history = workload.History();
  int final_reads_ok = 0, writes_ok = 0, reads_ok = 0;
  for (const check::Operation& op : history) {
    const bool ok_op = op.outcome == check::Outcome::kOk;
    if (op.client == static_cast<uint32_t>(settings.clients)) {
      final_reads_ok += ok_op ? 1 : 0;
    } else if (ok_op) {
      (op.kind == check::OpKind::kWrite ? writes_ok : reads_ok)++;
    }
  }
  std::vector<std::string> problems = nemesis.problems();
  for (const std::string& exit : cluster.ReapUnexpectedExits()) problems.push_back(exit);
  if (final_reads_ok != settings.keys) {
    problems.push_back(std::to_string(settings.keys - final_reads_ok) + " of the " +
                       std::to_string(settings.keys) + " final reads failed");
  }
  if (writes_ok == 0 || reads_ok == 0) problems.push_back("no successful writes or no reads");
  for (const std::string& problem : problems) {
    std::printf("   PROBLEM: %s\n", problem.c_str());
    recovered = false;
  }

  const check::CheckResult result = check::CheckLinearizable(history);
  std::printf("   operations:\n%s", Counts(history).c_str());
  std::printf("   fault windows after which another node (or term) led: %d\n",
              nemesis.leader_changes());
  std::printf("   availability:\n%s", Timeline(history, nemesis.windows()).c_str());
  bool ok = recovered && result.linearizable && !result.inconclusive;
  if (!recovered) std::printf("   FAILED: the cluster did not recover after healing\n");
  if (!result.linearizable) {
    std::printf("   VIOLATION: the history is not linearizable\n%s",
                ViolationDetails(history, result, info).c_str());
  } else if (result.inconclusive) {
    std::printf("   INCONCLUSIVE: the checker ran out of budget on key %s\n", result.key.c_str());
  } else {
    std::printf("   linearizable: yes (%zu operations; final reads of every key ok)\n",
                history.size());
  }
  std::printf("   replay: %s\n", ReplayCommand(settings, seed).c_str());
  std::fflush(stdout);
  if (!settings.keep && (ok || settings.expect_violation)) {
    std::filesystem::remove_all(dir);
  } else {
    std::printf("   files kept in %s\n", dir.c_str());
  }
  return RunResult{result.linearizable && !result.inconclusive, !result.linearizable, recovered};
}

int Main(int argc, char** argv) {
  CLI::App app{"raftkv-chaos: fault tests against real raftkv-node processes"};
  Settings settings;
  std::string scenarios, random_text = "0s", hold_text = "2s";
  int measure_failover = 0;
  app.add_option("--nodes", settings.nodes, "cluster size, 3 to 9 (3 or 5 are the usual)")
      ->check(CLI::Range(3, 9));
  app.add_option(
      "--scenarios", scenarios, "comma-separated named scenarios, or 'all': " + [] {
        std::string names;
        for (const std::string& n : Nemesis::ScenarioNames()) names += n + " ";
        return names;
      }());
  app.add_option("--random", random_text, "random faults for this long (e.g. 60s, 30m)");
  app.add_option("--hold", hold_text, "how long each partition, kill or slow disk lasts (2s)");
  app.add_option("--seed", settings.seed, "first seed (faults, workload, clock rates)");
  app.add_option("--seeds", settings.seeds, "runs, with seeds seed, seed+1, …");
  app.add_option("--clients", settings.clients, "concurrent clients (default 5)");
  app.add_option("--keys", settings.keys, "keyspace size (default 4)");
  app.add_option("--drift", settings.drift,
                 "clock rates drawn from [1-D, 1+D]; the nodes tolerate --max-clock-drift");
  app.add_option("--clock-rates", settings.clock_rates,
                 "exact clock rate of each node, e.g. 0.6,0.6,1.45 (overrides --drift)")
      ->delimiter(',');
  app.add_option("--max-clock-drift", settings.max_clock_drift,
                 "the nodes' MAX_CLOCK_DRIFT (default 0.01)");
  app.add_option("--bug", settings.bug, "deliberate bug in every node (see raftkv-node --help)");
  app.add_flag("--expect-violation", settings.expect_violation,
               "succeed only if some run finds a violation (to show the checker catches bugs)");
  app.add_flag("--keep", settings.keep, "keep the data directories of passing runs");
  app.add_option("--measure-failover", measure_failover,
                 "kill the leader N times; report the time to the first SET and GET");
  app.add_option("--base-port", settings.base_port, "first port (default: derived from the pid)");
  app.add_option("--node-binary", settings.node_binary, "raftkv-node to run");
  CLI11_PARSE(app, argc, argv);

  if (settings.node_binary.empty()) settings.node_binary = RAFTKV_NODE_BINARY;
  // Below Linux's ephemeral range (32768+), so that no outgoing connection can take a node's
  // port while it is down; disjoint from the process tests' 12000-21999.
  if (settings.base_port == 0) settings.base_port = 22'000 + static_cast<int>(getpid() % 50) * 200;
  if (!settings.clock_rates.empty() &&
      static_cast<int>(settings.clock_rates.size()) != settings.nodes) {
    std::fprintf(stderr, "raftkv-chaos: --clock-rates needs one rate per node\n");
    return 2;
  }
  for (double rate : settings.clock_rates) {
    if (!(rate > 0.5 && rate < 2)) {  // what raftkv-node --test-clock-rate accepts
      std::fprintf(stderr, "raftkv-chaos: --clock-rates: each rate must be in (0.5, 2), not %g\n",
                   rate);
      return 2;
    }
  }
  if (!scenarios.empty()) {
    if (scenarios == "all") {
      settings.scenarios = Nemesis::ScenarioNames();
    } else {
      settings.scenarios = absl::StrSplit(scenarios, ',');
    }
    for (const std::string& name : settings.scenarios) {
      const auto& known = Nemesis::ScenarioNames();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::fprintf(stderr, "raftkv-chaos: unknown scenario '%s' (see --help)\n", name.c_str());
        return 2;
      }
    }
  }
  absl::StatusOr<Duration> random_duration = config::ParseDuration(random_text);
  if (!random_duration.ok()) {
    std::fprintf(stderr, "raftkv-chaos: --random: %s\n",
                 std::string(random_duration.status().message()).c_str());
    return 2;
  }
  settings.random_duration = std::chrono::duration_cast<milliseconds>(*random_duration);
  absl::StatusOr<Duration> hold = config::ParseDuration(hold_text);
  if (!hold.ok() || *hold <= Duration(0)) {
    std::fprintf(stderr, "raftkv-chaos: --hold: give a positive duration such as 2s\n");
    return 2;
  }
  settings.timings.hold = std::chrono::duration_cast<milliseconds>(*hold);

  if (measure_failover > 0) {
    ClusterOptions options;
    options.nodes = settings.nodes;
    options.base_port = settings.base_port;
    options.node_binary = settings.node_binary;
    char pattern[] = "/tmp/raftkv-failover-XXXXXX";
    options.dir = mkdtemp(pattern);
    // The shipped defaults (config.ini): failover as a user gets it out of the box.
    options.config_text = "[logging]\nSTDOUT = false\nVERBOSITY = quiet\n";
    const bool ok = MeasureFailover(options, measure_failover);
    std::filesystem::remove_all(options.dir);
    return ok ? 0 : 1;
  }
  if (settings.scenarios.empty() && settings.random_duration.count() == 0) {
    std::fprintf(stderr, "raftkv-chaos: give --scenarios, --random or --measure-failover\n");
    return 2;
  }

  int passed = 0, violations = 0;
  for (int i = 0; i < settings.seeds; ++i) {
    const RunResult run = RunOnce(settings, settings.seed + static_cast<uint64_t>(i));
    passed += run.linearizable && run.recovered ? 1 : 0;
    violations += run.violation ? 1 : 0;
  }
  if (settings.expect_violation) {
    std::printf("== %d of %d runs found the injected bug '%s'\n", violations, settings.seeds,
                settings.bug.c_str());
    return violations > 0 ? 0 : 1;
  }
  std::printf("== %d of %d runs linearizable and recovered\n", passed, settings.seeds);
  return passed == settings.seeds ? 0 : 1;
}

}  // namespace
}  // namespace raftkv::chaos

int main(int argc, char** argv) { return raftkv::chaos::Main(argc, argv); }

// raftkv-sim: runs the deterministic cluster simulator for one seed or a range of seeds.
//
//   raftkv-sim --seed 42                       one run; prints its summary and trace hash
//   raftkv-sim --seed 1 --seeds 1000 --nodes 5  seeds 1..1000
//   raftkv-sim --seed 42 --trace               every event of the run, to replay a failure
//   raftkv-sim --regressions FILE               every run listed in FILE ("seed nodes steps")
//
// On a violation it prints the seed and the one command that replays it, and exits 1.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "sim/regression_seeds.h"
#include "sim/simulator.h"

namespace {

using raftkv::sim::SimOptions;

void Usage() {
  std::puts(
      "usage: raftkv-sim [--seed S] [--seeds N] [--nodes N] [--steps K] [--clients C]\n"
      "                  [--keys K] [--faults all|none|partition,crash,pause,drift,loss]\n"
      "                  [--bug NAME] [--trace] [--quiet] [--regressions FILE]\n"
      "bugs (deliberate, to show the checkers work): skip-old-lease-wait,\n"
      "  commit-old-term-by-count, forget-to-persist-vote, read-without-lease,\n"
      "  skip-noop-before-read");
}

bool ParseArgs(int argc, char** argv, SimOptions* options, uint64_t* seeds, bool* quiet,
               std::string* faults_text, std::string* regressions) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "raftkv-sim: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto number = [&]() -> uint64_t {
      const std::string text = value();
      char* end = nullptr;
      const uint64_t parsed = std::strtoull(text.c_str(), &end, 0);
      if (text.empty() || *end != '\0') {
        std::fprintf(stderr, "raftkv-sim: %s expects a number, got '%s'\n", arg.c_str(),
                     text.c_str());
        std::exit(2);
      }
      return parsed;
    };
    if (arg == "--seed") {
      options->seed = number();
    } else if (arg == "--seeds") {
      *seeds = number();
    } else if (arg == "--nodes") {
      options->nodes = static_cast<int>(number());
    } else if (arg == "--steps") {
      options->steps = static_cast<int64_t>(number());
    } else if (arg == "--clients") {
      options->clients = static_cast<int>(number());
    } else if (arg == "--keys") {
      options->keys = static_cast<int>(number());
    } else if (arg == "--faults") {
      *faults_text = value();
      auto faults = raftkv::sim::ParseFaults(*faults_text);
      if (!faults) {
        std::fprintf(stderr, "raftkv-sim: unknown fault list '%s'\n", faults_text->c_str());
        return false;
      }
      options->faults = *faults;
    } else if (arg == "--bug") {
      bool ok = false;
      options->bug = raftkv::raft::ParseInjectedBug(value(), &ok);
      if (!ok) {
        std::fprintf(stderr, "raftkv-sim: unknown bug '%s'\n", argv[i]);
        return false;
      }
    } else if (arg == "--trace") {
      options->trace = true;
    } else if (arg == "--quiet") {
      *quiet = true;
    } else if (arg == "--regressions") {
      *regressions = value();
    } else if (arg == "--help" || arg == "-h") {
      Usage();
      std::exit(0);
    } else {
      std::fprintf(stderr, "raftkv-sim: unknown argument '%s'\n", arg.c_str());
      return false;
    }
  }
  if (options->nodes < 1 || options->nodes > 9 || options->clients < 1 || options->keys < 1) {
    std::fprintf(stderr, "raftkv-sim: need 1..9 nodes, at least one client and one key\n");
    return false;
  }
  return true;
}

std::string ReplayCommand(const SimOptions& options, const std::string& faults_text) {
  std::ostringstream out;
  out << "build/sim/raftkv-sim --seed " << options.seed << " --nodes " << options.nodes
      << " --steps " << options.steps << " --faults " << faults_text;
  if (options.bug != raftkv::raft::InjectedBug::kNone) {
    out << " --bug " << raftkv::raft::InjectedBugName(options.bug);
  }
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  SimOptions options;
  uint64_t seeds = 1;
  bool quiet = false;
  std::string faults_text = "all";
  std::string regressions;
  if (!ParseArgs(argc, argv, &options, &seeds, &quiet, &faults_text, &regressions)) {
    Usage();
    return 2;
  }
  std::vector<SimOptions> runs;
  if (!regressions.empty()) {
    auto listed = raftkv::sim::ReadRegressionSeeds(regressions, options);
    if (!listed.ok()) {
      std::fprintf(stderr, "raftkv-sim: %s\n", std::string(listed.status().message()).c_str());
      return 2;
    }
    runs = std::move(*listed);
  } else {
    for (uint64_t i = 0; i < seeds; ++i) {
      runs.push_back(options);
      runs.back().seed = options.seed + i;
    }
  }

  const auto started = std::chrono::steady_clock::now();
  int failures = 0;
  int64_t total_ops = 0;
  int inconclusive = 0;
  int64_t opened = 0, refused = 0, expired = 0, installed = 0, rebuilds = 0;
  for (const SimOptions& run : runs) {
    const uint64_t seed = run.seed;
    const int nodes = run.nodes;
    raftkv::sim::SimResult result = raftkv::sim::Simulator(run).Run();
    total_ops += result.ops_ok;
    opened += result.sessions_opened;
    refused += result.sessions_refused;
    expired += result.sessions_expired;
    installed += result.snapshots_installed;
    rebuilds += result.rebuilds;
    inconclusive += result.linearizability_inconclusive ? 1 : 0;
    if (!result.ok) {
      ++failures;
      std::printf("FAIL seed=%llu nodes=%d: %s\n  replay: %s --trace\n",
                  static_cast<unsigned long long>(seed), nodes, result.violation.c_str(),
                  ReplayCommand(run, faults_text).c_str());
    } else if (!quiet || runs.size() == 1) {
      std::printf(
          "ok seed=%llu nodes=%d events=%lld sim_time=%.1fs ops ok=%d (reads %d) fail=%d "
          "indeterminate=%d leaders=%d max_term=%llu committed=%llu sessions=%d/%d/%d "
          "snapshots_installed=%d rebuilds=%d trace_hash=%016llx%s\n",
          static_cast<unsigned long long>(seed), nodes, static_cast<long long>(result.events),
          static_cast<double>(result.sim_time_ns) / 1e9, result.ops_ok, result.reads_ok,
          result.ops_failed, result.ops_indeterminate, result.leaders_elected,
          static_cast<unsigned long long>(result.max_term),
          static_cast<unsigned long long>(result.committed), result.sessions_opened,
          result.sessions_refused, result.sessions_expired, result.snapshots_installed,
          result.rebuilds, static_cast<unsigned long long>(result.trace_hash),
          result.linearizability_inconclusive ? " (linearizability inconclusive)" : "");
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (runs.size() > 1) {
    std::printf(
        "%zu runs, %d failed, %d inconclusive, %lld ops ok, sessions opened/refused/expired "
        "%lld/%lld/%lld, snapshots installed %lld, rebuilds %lld, %.1fs wall\n",
        runs.size(), failures, inconclusive, static_cast<long long>(total_ops),
        static_cast<long long>(opened), static_cast<long long>(refused),
        static_cast<long long>(expired), static_cast<long long>(installed),
        static_cast<long long>(rebuilds), seconds);
  }
  return failures == 0 ? 0 : 1;
}

// The fault tests' report: operation counts, an availability timeline (ok operations per second,
// with the fault windows marked), the verdict of the linearizability checker, and, on a
// violation, the operations around it and the nodes' dump.txt lines from that time.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "check/linearizability.h"
#include "tests/chaos/nemesis.h"

namespace raftkv::chaos {

struct RunInfo {
  uint64_t seed = 0;
  std::chrono::system_clock::time_point origin_wall;  // wall time of history time 0
  std::vector<std::string> dump_paths;                // one per node
};

std::string Counts(const std::vector<check::Operation>& history);
std::string Timeline(const std::vector<check::Operation>& history,
                     const std::vector<FaultWindow>& windows);
std::string ViolationDetails(const std::vector<check::Operation>& history,
                             const check::CheckResult& result, const RunInfo& info);

}  // namespace raftkv::chaos

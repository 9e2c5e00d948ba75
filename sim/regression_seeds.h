// The regression list: seeds that once exposed a bug, replayed by `make test` and by
// `raftkv-sim --regressions FILE`. One run per line: "seed nodes steps", then an optional
// "# why" comment; blank lines and lines starting with '#' are skipped.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/simulator.h"

namespace raftkv::sim {

// Each run is `base` with the line's seed, nodes and steps; errors name FILE:LINE.
absl::StatusOr<std::vector<SimOptions>> ReadRegressionSeeds(const std::string& path,
                                                            const SimOptions& base);

}  // namespace raftkv::sim

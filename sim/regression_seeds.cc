#include "sim/regression_seeds.h"

#include <fstream>
#include <sstream>

namespace raftkv::sim {

absl::StatusOr<std::vector<SimOptions>> ReadRegressionSeeds(const std::string& path,
                                                            const SimOptions& base) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError("cannot read " + path);
  std::vector<SimOptions> runs;
  std::string line;
  for (int number = 1; std::getline(file, line); ++number) {
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    std::istringstream fields(line.substr(0, line.find('#')));
    SimOptions run = base;
    if (!(fields >> run.seed >> run.nodes >> run.steps) || run.nodes < 1 || run.steps < 1) {
      return absl::InvalidArgumentError(path + ":" + std::to_string(number) +
                                        ": expected \"seed nodes steps\", got \"" + line + "\"");
    }
    runs.push_back(run);
  }
  return runs;
}

}  // namespace raftkv::sim

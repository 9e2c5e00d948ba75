// The `raftkv status` table: one row per node, in the manner of `etcdctl endpoint status -w table`.
#pragma once

#include <string>
#include <vector>

#include "raftkv/client.h"

namespace raftkv::tools {

std::string FormatStatusTable(const std::vector<client::NodeStatus>& nodes);
int CountUnreachable(const std::vector<client::NodeStatus>& nodes);

}  // namespace raftkv::tools

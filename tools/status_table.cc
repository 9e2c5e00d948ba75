#include "tools/status_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace raftkv::tools {
namespace {

using Row = std::vector<std::string>;

std::string Border(const std::vector<size_t>& widths) {
  std::string line = "+";
  for (size_t width : widths) line += std::string(width + 2, '-') + "+";
  return line + "\n";
}

std::string Line(const Row& row, const std::vector<size_t>& widths) {
  std::string line = "|";
  for (size_t i = 0; i < row.size(); ++i) {
    line += " " + row[i] + std::string(widths[i] - row[i].size(), ' ') + " |";
  }
  return line + "\n";
}

}  // namespace

std::string FormatStatusTable(const std::vector<client::NodeStatus>& nodes) {
  const Row header = {"ID",     "ADDRESS", "ROLE",     "TERM",      "LEADER",
                      "COMMIT", "APPLIED", "LAST LOG", "LEASE LEFT"};
  std::vector<Row> rows;
  std::vector<std::string> errors;
  for (const client::NodeStatus& node : nodes) {
    if (!node.error.ok()) {
      rows.push_back(
          {std::to_string(node.id), node.address, "unreachable", "-", "-", "-", "-", "-", "-"});
      errors.push_back(
          absl::StrCat("node ", node.id, " (", node.address, "): ", node.error.message()));
      continue;
    }
    rows.push_back({std::to_string(node.id), node.address, node.role, std::to_string(node.term),
                    node.leader < 0 ? "none" : std::to_string(node.leader),
                    std::to_string(node.commit_index), std::to_string(node.last_applied),
                    std::to_string(node.last_log_index),
                    node.role == "leader" ? absl::StrCat(node.lease_remaining_ms, "ms") : "-"});
  }
  std::vector<size_t> widths;
  for (const std::string& title : header) widths.push_back(title.size());
  for (const Row& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string table = Border(widths) + Line(header, widths) + Border(widths);
  for (const Row& row : rows) table += Line(row, widths);
  table += Border(widths);
  if (!errors.empty()) table += absl::StrJoin(errors, "\n") + "\n";
  return table;
}

int CountUnreachable(const std::vector<client::NodeStatus>& nodes) {
  return static_cast<int>(std::count_if(nodes.begin(), nodes.end(),
                                        [](const client::NodeStatus& n) { return !n.error.ok(); }));
}

}  // namespace raftkv::tools

#include "tests/chaos/report.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <set>

namespace raftkv::chaos {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

const char* OutcomeName(check::Outcome outcome) {
  switch (outcome) {
    case check::Outcome::kOk:
      return "ok";
    case check::Outcome::kFail:
      return "fail";
    case check::Outcome::kIndeterminate:
      return "indeterminate";
  }
  return "?";
}

// The dump.txt timestamp format: 2026-11-23T14:12:20.054Z.
std::string WallTime(const RunInfo& info, int64_t ns) {
  const auto when = info.origin_wall + std::chrono::nanoseconds(ns);
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  const int64_t millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[96];
  std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(millis));
  return text;
}

std::string Describe(const check::Operation& op) {
  char line[256];
  std::snprintf(line, sizeof(line), "  op %-6llu client %-2u %-5s %-6s %-14s %8.3fs .. %8.3fs  %s",
                static_cast<unsigned long long>(op.id), op.client,
                op.kind == check::OpKind::kRead ? "GET" : "SET", op.key.c_str(),
                op.value ? op.value->c_str() : "(absent)", op.invoke_ns / 1e9,
                op.outcome == check::Outcome::kOk ? op.complete_ns / 1e9 : 0.0,
                OutcomeName(op.outcome));
  return line;
}

}  // namespace

std::string Counts(const std::vector<check::Operation>& history) {
  std::map<std::string, int> counts;
  for (const check::Operation& op : history) {
    counts[std::string(op.kind == check::OpKind::kRead ? "GET " : "SET ") +
           OutcomeName(op.outcome)]++;
  }
  std::string text;
  for (const auto& [name, count] : counts)
    text += "  " + name + ": " + std::to_string(count) + "\n";
  return text;
}

std::string Timeline(const std::vector<check::Operation>& history,
                     const std::vector<FaultWindow>& windows) {
  int64_t end = 0;
  for (const check::Operation& op : history) end = std::max(end, op.complete_ns);
  const int seconds = static_cast<int>(end / kSecond) + 1;
  std::vector<int> ok(seconds, 0);
  for (const check::Operation& op : history) {
    if (op.outcome == check::Outcome::kOk) ++ok[op.complete_ns / kSecond];
  }
  const int peak = std::max(1, *std::max_element(ok.begin(), ok.end()));
  std::string text = "  second  ok ops/s (each # = " + std::to_string(std::max(1, peak / 40)) +
                     ")   faults in force\n";
  for (int s = 0; s < seconds; ++s) {
    std::string faults;
    for (const FaultWindow& window : windows) {
      if (window.start_ns < (s + 1) * kSecond && window.end_ns >= s * kSecond) {
        faults += (faults.empty() ? "" : "; ") + window.what;
      }
    }
    const int bar = ok[s] * 40 / peak;
    char line[160];
    std::snprintf(line, sizeof(line), "  %5d %6d |%-40s| ", s, ok[s],
                  std::string(bar, '#').c_str());
    text += line + faults + "\n";
  }
  return text;
}

std::string ViolationDetails(const std::vector<check::Operation>& history,
                             const check::CheckResult& result, const RunInfo& info) {
  std::string text = "  seed " + std::to_string(info.seed) + ", key " + result.key + "\n  " +
                     result.explanation + "\n  operations around it:\n";
  const std::set<uint64_t> window(result.window.begin(), result.window.end());
  int64_t from = INT64_MAX, to = 0;
  for (const check::Operation& op : history) {
    if (window.count(op.id) == 0) continue;
    text += Describe(op) + "\n";
    from = std::min(from, op.invoke_ns);
    to = std::max(to, op.outcome == check::Outcome::kOk ? op.complete_ns : op.invoke_ns);
  }
  if (from > to) return text;
  // The nodes' view of the last moments before the violation: elections, votes, lease and
  // step-down events (commits, requests and heartbeats left out), the last 25 lines per node.
  const std::string first = WallTime(info, to - 2 * kSecond);
  const std::string last = WallTime(info, to + kSecond / 5);
  text +=
      "  dump.txt from " + first + " to " + last + " (commits, requests, heartbeats left out):\n";
  for (size_t node = 0; node < info.dump_paths.size(); ++node) {
    std::ifstream dump(info.dump_paths[node]);
    std::vector<std::string> lines;
    for (std::string line; std::getline(dump, line);) {
      const std::string stamp = line.substr(0, line.find(' '));
      if (stamp < first || stamp > last) continue;
      bool routine = false;
      for (const char* noise :
           {"heartbeat", "accepted AppendEntries", "committed the entry", "received an"}) {
        routine = routine || line.find(noise) != std::string::npos;
      }
      if (!routine) lines.push_back(line);
    }
    const size_t start = lines.size() > 25 ? lines.size() - 25 : 0;
    for (size_t i = start; i < lines.size(); ++i) {
      text += "    [node " + std::to_string(node) + "] " + lines[i] + "\n";
    }
  }
  return text;
}

}  // namespace raftkv::chaos

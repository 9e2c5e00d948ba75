// A small parser of the Prometheus text exposition format (0.0.4), strict enough to catch what a
// Prometheus server would refuse: every sample's family announced by # HELP and # TYPE before
// it, a family's samples contiguous, names and label names of the allowed characters, label values
// quoted with only \\, \" and \n escapes, values that parse as floats. Used by the tests of
// obs/prometheus.h and of a node's /metrics.
#pragma once

#include <cctype>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace raftkv::obs::testing {

struct ParsedSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct ParsedText {
  std::map<std::string, std::string> types;  // family -> gauge, counter, histogram …
  std::vector<ParsedSample> samples;
  std::string error;  // empty when the text is well-formed

  // The value of the one sample named `name` whose labels include `labels`.
  std::optional<double> Value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const {
    for (const ParsedSample& sample : samples) {
      if (sample.name != name) continue;
      bool match = true;
      for (const auto& [key, value] : labels) {
        auto it = sample.labels.find(key);
        match = match && it != sample.labels.end() && it->second == value;
      }
      if (match) return sample.value;
    }
    return std::nullopt;
  }
};

inline bool ValidName(const std::string& name, bool label) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (!label && c == ':'))) {
      return false;
    }
  }
  return true;
}

// The family a sample belongs to: histogram samples end in _bucket, _sum or _count.
inline std::string FamilyOf(const std::string& name,
                            const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const std::string base = name.substr(0, name.size() - s.size());
      if (types.count(base) && types.at(base) == "histogram") return base;
    }
  }
  return "";
}

// What a Prometheus server checks of each histogram series (its labels without `le`): buckets in
// increasing `le` with non-decreasing counts, a +Inf bucket equal to _count, and a _sum. Returns
// the first problem, or "".
inline std::string CheckHistograms(const ParsedText& parsed) {
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // (le, count) in order
    std::optional<double> count, sum;
  };
  std::map<std::string, Series> series;  // family + labels without le
  for (const ParsedSample& sample : parsed.samples) {
    const std::string family = FamilyOf(sample.name, parsed.types);
    if (parsed.types.at(family) != "histogram") continue;
    std::map<std::string, std::string> labels = sample.labels;
    const auto le = labels.find("le");
    std::optional<std::string> bound;
    if (le != labels.end()) {
      bound = le->second;
      labels.erase(le);
    }
    std::string key = family;
    for (const auto& [name, value] : labels) key += "," + name + "=" + value;
    Series& one = series[key];
    if (sample.name == family + "_bucket") {
      if (!bound) return "a bucket without le in " + key;
      const double at = *bound == "+Inf" ? 1e308 : std::strtod(bound->c_str(), nullptr);
      if (!one.buckets.empty() &&
          (at <= one.buckets.back().first || sample.value < one.buckets.back().second)) {
        return "buckets out of order or decreasing in " + key;
      }
      one.buckets.emplace_back(at, sample.value);
    } else if (sample.name == family + "_count") {
      one.count = sample.value;
    } else if (sample.name == family + "_sum") {
      one.sum = sample.value;
    } else {
      return "a histogram sample that is not _bucket, _count or _sum: " + sample.name;
    }
  }
  for (const auto& [key, one] : series) {
    if (one.buckets.empty() || one.buckets.back().first != 1e308) return "no +Inf bucket in " + key;
    if (!one.count || *one.count != one.buckets.back().second) {
      return "_count differs from the +Inf bucket in " + key;
    }
    if (!one.sum) return "no _sum in " + key;
  }
  return "";
}

inline ParsedText ParsePrometheusText(const std::string& text) {
  ParsedText parsed;
  std::set<std::string> helped, finished;
  std::string current;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  auto fail = [&](const std::string& why) {
    parsed.error = "line " + std::to_string(number) + ": " + why + ": " + line;
    return parsed;
  };
  if (!text.empty() && text.back() != '\n') {
    parsed.error = "the text does not end with a newline";
    return parsed;
  }
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      std::istringstream fields(line.substr(7));
      std::string name, rest;
      fields >> name;
      std::getline(fields, rest);
      if (!ValidName(name, false)) return fail("bad metric name");
      if (line[2] == 'H') {
        if (!helped.insert(name).second) return fail("second HELP for a family");
      } else {
        const std::string type = rest.empty() ? "" : rest.substr(1);
        if (type != "gauge" && type != "counter" && type != "histogram" && type != "summary" &&
            type != "untyped") {
          return fail("unknown type");
        }
        if (parsed.types.count(name)) return fail("second TYPE for a family");
        parsed.types[name] = type;
      }
      continue;
    }
    if (line[0] == '#') continue;  // a comment
    ParsedSample sample;
    size_t at = 0;
    while (at < line.size() && line[at] != '{' && line[at] != ' ') ++at;
    sample.name = line.substr(0, at);
    if (!ValidName(sample.name, false)) return fail("bad sample name");
    if (at < line.size() && line[at] == '{') {
      ++at;
      while (at < line.size() && line[at] != '}') {
        size_t equals = line.find('=', at);
        if (equals == std::string::npos) return fail("label without =");
        const std::string key = line.substr(at, equals - at);
        if (!ValidName(key, true)) return fail("bad label name");
        at = equals + 1;
        if (at >= line.size() || line[at] != '"') return fail("label value not quoted");
        ++at;
        std::string value;
        while (at < line.size() && line[at] != '"') {
          if (line[at] == '\\') {
            ++at;
            if (at >= line.size()) return fail("escape at the end");
            if (line[at] == 'n') {
              value += '\n';
            } else if (line[at] == '\\' || line[at] == '"') {
              value += line[at];
            } else {
              return fail("bad escape in a label value");
            }
          } else {
            value += line[at];
          }
          ++at;
        }
        if (at >= line.size()) return fail("unterminated label value");
        ++at;
        if (!sample.labels.emplace(key, value).second) return fail("a label twice");
        if (at < line.size() && line[at] == ',') {
          ++at;
        } else if (at < line.size() && line[at] != '}') {
          return fail("labels not separated by a comma");
        }
      }
      if (at >= line.size()) return fail("unterminated labels");
      ++at;
    }
    if (at >= line.size() || line[at] != ' ') return fail("no value");
    const std::string value = line.substr(at + 1);
    char* end = nullptr;
    if (value == "+Inf" || value == "-Inf" || value == "NaN") {
      sample.value = value == "NaN" ? 0 : (value[0] == '+' ? 1e308 : -1e308);
    } else {
      sample.value = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0') return fail("value is not a number");
    }
    const std::string family = FamilyOf(sample.name, parsed.types);
    if (family.empty() || !helped.count(family)) return fail("sample before its HELP and TYPE");
    if (family != current) {
      if (finished.count(family)) return fail("a family's samples are not contiguous");
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    parsed.samples.push_back(std::move(sample));
  }
  parsed.error = CheckHistograms(parsed);
  return parsed;
}

}  // namespace raftkv::obs::testing

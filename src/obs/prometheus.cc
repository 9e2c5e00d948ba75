#include "obs/prometheus.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/check.h"

namespace raftkv::obs {

std::string PrometheusText::EscapeLabelValue(std::string_view value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '"') {
      escaped += "\\\"";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

std::string PrometheusText::FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.9g", value);
  return buffer;
}

void PrometheusText::Begin(std::string_view name, std::string_view help, std::string_view type) {
  if (!families_.empty() && families_.back() == name) return;  // more samples of the same family
  RAFTKV_CHECK(std::find(families_.begin(), families_.end(), name) == families_.end(),
               "a metric family's samples are contiguous");
  families_.emplace_back(name);
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  // HELP text escapes backslash and newline only.
  for (char c : help) {
    if (c == '\\') {
      text_ += "\\\\";
    } else if (c == '\n') {
      text_ += "\\n";
    } else {
      text_ += c;
    }
  }
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void PrometheusText::Sample(std::string_view name, const Labels& labels, double value) {
  text_ += name;
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) text_ += ',';
      text_ += labels[i].first;
      text_ += "=\"";
      text_ += EscapeLabelValue(labels[i].second);
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
  text_ += FormatValue(value);
  text_ += '\n';
}

void PrometheusText::Gauge(std::string_view name, std::string_view help, double value,
                           const Labels& labels) {
  Begin(name, help, "gauge");
  Sample(name, labels, value);
}

void PrometheusText::Counter(std::string_view name, std::string_view help, double value,
                             const Labels& labels) {
  Begin(name, help, "counter");
  Sample(name, labels, value);
}

void PrometheusText::Histogram(std::string_view name, std::string_view help,
                               const std::vector<double>& bounds,
                               const std::vector<uint64_t>& cumulative, uint64_t count, double sum,
                               const Labels& labels) {
  RAFTKV_CHECK(bounds.size() == cumulative.size(), "one cumulative count per bucket");
  Begin(name, help, "histogram");
  const std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i < bounds.size(); ++i) {
    Labels with_le = labels;
    with_le.emplace_back("le", FormatValue(bounds[i]));
    Sample(bucket, with_le, static_cast<double>(cumulative[i]));
  }
  Labels infinite = labels;
  infinite.emplace_back("le", "+Inf");
  Sample(bucket, infinite, static_cast<double>(count));
  Sample(std::string(name) + "_sum", labels, sum);
  Sample(std::string(name) + "_count", labels, static_cast<double>(count));
}

}  // namespace raftkv::obs

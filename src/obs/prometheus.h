// Prometheus text exposition format (version 0.0.4), written by hand: Debian 12 has no
// prometheus-cpp package, and a node needs only a few gauges, counters and histograms. One
// family's samples must be contiguous, each family introduced by its # HELP and # TYPE lines; see
// https://prometheus.io/docs/instrumenting/exposition_formats/. Names follow the conventions:
// raftkv_… with base units (_seconds, _bytes) and _total for counters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "obs/histogram.h"

namespace raftkv::obs {

using Labels = std::vector<std::pair<std::string, std::string>>;

class PrometheusText {
 public:
  // A family with one sample. Calling a family again with other labels adds a sample to it; a
  // family must not be resumed after another has begun (checked: it is a programming error).
  void Gauge(std::string_view name, std::string_view help, double value, const Labels& labels = {});
  void Counter(std::string_view name, std::string_view help, double value,
               const Labels& labels = {});
  // A histogram from cumulative bucket counts: `bounds[i]` is bucket i's upper bound (le), and
  // `cumulative[i]` the observations at most that; `count` and `sum` cover them all (+Inf).
  void Histogram(std::string_view name, std::string_view help, const std::vector<double>& bounds,
                 const std::vector<uint64_t>& cumulative, uint64_t count, double sum,
                 const Labels& labels = {});
  void Histogram(std::string_view name, std::string_view help, const HistogramSnapshot& snapshot,
                 const Labels& labels = {}) {
    Histogram(name, help, snapshot.bounds, snapshot.cumulative, snapshot.count,
              snapshot.sum_seconds, labels);
  }

  const std::string& text() const { return text_; }

  // A label value as the format wants it: backslash, double quote and newline escaped.
  static std::string EscapeLabelValue(std::string_view value);
  // A number as the format wants it: integers without a fraction, NaN and ±Inf spelled out.
  static std::string FormatValue(double value);

 private:
  void Begin(std::string_view name, std::string_view help, std::string_view type);
  void Sample(std::string_view name, const Labels& labels, double value);

  std::string text_;
  std::vector<std::string> families_;  // in order; the last one may take more samples
};

}  // namespace raftkv::obs

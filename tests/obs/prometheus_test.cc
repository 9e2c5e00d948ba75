// obs/prometheus.h against the exposition format, checked by a strict parser of it.
#include "obs/prometheus.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/obs/prometheus_text.h"

namespace raftkv::obs {
namespace {

using testing::ParsedText;
using testing::ParsePrometheusText;

TEST(PrometheusText, FamiliesSamplesAndLabelsParseBack) {
  PrometheusText text;
  text.Gauge("raftkv_term", "The current term.", 7);
  text.Gauge("raftkv_role", "1 for the role held.", 1, {{"role", "leader"}});
  text.Gauge("raftkv_role", "1 for the role held.", 0, {{"role", "follower"}});
  text.Counter("raftkv_elections_total", "Elections started.", 3);
  text.Gauge("raftkv_node_info", "Weird label values survive.", 1, {{"address", "a\"b\\c\nd"}});
  text.Gauge("raftkv_lease_remaining_seconds", "Fractions.", 0.125);
  const ParsedText parsed = ParsePrometheusText(text.text());
  ASSERT_EQ(parsed.error, "") << text.text();
  EXPECT_EQ(parsed.types.at("raftkv_term"), "gauge");
  EXPECT_EQ(parsed.types.at("raftkv_elections_total"), "counter");
  EXPECT_EQ(parsed.Value("raftkv_term"), 7);
  EXPECT_EQ(parsed.Value("raftkv_role", {{"role", "leader"}}), 1);
  EXPECT_EQ(parsed.Value("raftkv_role", {{"role", "follower"}}), 0);
  EXPECT_EQ(parsed.Value("raftkv_node_info", {{"address", "a\"b\\c\nd"}}), 1);
  EXPECT_DOUBLE_EQ(*parsed.Value("raftkv_lease_remaining_seconds"), 0.125);
  EXPECT_EQ(text.text().find("# HELP raftkv_role"), text.text().rfind("# HELP raftkv_role"))
      << "one HELP per family";
}

TEST(PrometheusText, HistogramsAreCumulativeWithInfSumAndCount) {
  PrometheusText text;
  text.Histogram("raftkv_fsync_seconds", "fsync latency.", {0.001, 0.01, 0.1}, {5, 9, 10}, 11,
                 0.75);
  const ParsedText parsed = ParsePrometheusText(text.text());
  ASSERT_EQ(parsed.error, "") << text.text();
  EXPECT_EQ(parsed.types.at("raftkv_fsync_seconds"), "histogram");
  EXPECT_EQ(parsed.Value("raftkv_fsync_seconds_bucket", {{"le", "0.001"}}), 5);
  EXPECT_EQ(parsed.Value("raftkv_fsync_seconds_bucket", {{"le", "0.1"}}), 10);
  EXPECT_EQ(parsed.Value("raftkv_fsync_seconds_bucket", {{"le", "+Inf"}}), 11);
  EXPECT_EQ(parsed.Value("raftkv_fsync_seconds_count"), 11);
  EXPECT_DOUBLE_EQ(*parsed.Value("raftkv_fsync_seconds_sum"), 0.75);
}

// Each observation lands in the first bucket whose bound it does not exceed (Prometheus' `le`).
TEST(Histogram, ObservationsLandInTheirBucketsCumulatively) {
  Histogram histogram;
  histogram.Observe(std::chrono::microseconds(50));  // exactly the first bound
  histogram.Observe(std::chrono::microseconds(51));  // the second bucket
  histogram.Observe(std::chrono::milliseconds(3));   // le 0.005
  histogram.Observe(std::chrono::seconds(60));       // past every bound: +Inf only
  histogram.Observe(std::chrono::nanoseconds(-5));   // a clock that stepped back: counted as 0
  const HistogramSnapshot snapshot = histogram.Snapshot();
  ASSERT_EQ(snapshot.bounds.size(), Histogram::kBounds.size());
  EXPECT_EQ(snapshot.cumulative[0], 2u);  // 50 µs and the negative one
  EXPECT_EQ(snapshot.cumulative[1], 3u);
  EXPECT_EQ(snapshot.cumulative[5], 3u);  // le 0.0025
  EXPECT_EQ(snapshot.cumulative[6], 4u);  // le 0.005
  EXPECT_EQ(snapshot.cumulative.back(), 4u);
  EXPECT_EQ(snapshot.count, 5u);
  EXPECT_NEAR(snapshot.sum_seconds, 60.003101, 1e-9);
  PrometheusText text;
  text.Histogram("raftkv_x_seconds", "x.", snapshot, {{"op", "get"}});
  const ParsedText parsed = ParsePrometheusText(text.text());
  ASSERT_EQ(parsed.error, "") << text.text();
  EXPECT_EQ(parsed.Value("raftkv_x_seconds_bucket", {{"op", "get"}, {"le", "+Inf"}}), 5);
  EXPECT_EQ(parsed.Value("raftkv_x_seconds_bucket", {{"op", "get"}, {"le", "5e-05"}}), 2);
}

TEST(PrometheusText, ValuesAreSpelledAsTheFormatWants) {
  EXPECT_EQ(PrometheusText::FormatValue(3), "3");
  EXPECT_EQ(PrometheusText::FormatValue(-1), "-1");
  EXPECT_EQ(PrometheusText::FormatValue(0.5), "0.5");
  EXPECT_EQ(PrometheusText::FormatValue(INFINITY), "+Inf");
  EXPECT_EQ(PrometheusText::FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(PrometheusText::FormatValue(NAN), "NaN");
  EXPECT_EQ(PrometheusText::FormatValue(1e18), "1e+18");
}

// The parser itself refuses what Prometheus would (so the tests above can fail).
TEST(PrometheusText, TheParserRefusesMalformedText) {
  for (const char* bad : {
           "raftkv_x 1\n",                                  // no HELP/TYPE
           "# HELP a x\n# TYPE a gauge\na{l=\"v} 1\n",      // unterminated
           "# HELP a x\n# TYPE a gauge\na{l=\"\\t\"} 1\n",  // bad escape
           "# HELP a x\n# TYPE a gauge\na one\n",           // not a number
           "# HELP a x\n# TYPE a gauge\n# HELP b y\n# TYPE b gauge\na 1\nb 1\na 2\n",  // split
           "# HELP a x\n# TYPE a gauge\na 1",       // no final newline
           "# HELP 1a x\n# TYPE 1a gauge\n1a 1\n",  // bad name
           // Histograms: decreasing buckets, no +Inf, _count off the +Inf bucket, no _sum.
           "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
           "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
           "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
           "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
           "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",
       }) {
    EXPECT_NE(ParsePrometheusText(bad).error, "") << bad;
  }
}

}  // namespace
}  // namespace raftkv::obs

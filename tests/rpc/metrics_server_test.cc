// What the metrics endpoint says, from a node status made up here: /metrics parsed by a strict
// Prometheus text parser, /status parsed as JSON, and /health's judgement.
#include "rpc/metrics_server.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "tests/obs/prometheus_text.h"

namespace raftkv::rpc {
namespace {

using obs::testing::ParsedText;
using obs::testing::ParsePrometheusText;

node::NodeStatus LeaderStatus() {
  node::NodeStatus status{
      1, raft::Role::kLeader, 7, 1, 40, 39, 42, std::chrono::milliseconds(250), {}, 3, {}, {}, {}};
  status.counts.elections_started = 2;
  status.counts.leader_changes = 1;
  status.peers = {{0, 42, 0, "replicate"}, {2, 30, 12, "probe"}};  // lag = 42 - match
  status.storage.entries_appended = 42;
  status.storage.bytes_appended = 4200;
  obs::Histogram fsync;
  fsync.Observe(std::chrono::microseconds(700));
  fsync.Observe(std::chrono::milliseconds(3));
  status.storage.log_sync = fsync.Snapshot();
  status.recent_events = {{std::chrono::seconds(5), "became leader for term 7"},
                          {std::chrono::seconds(1), "a \"quoted\"\ntext"}};
  return status;
}

ServingCounts Counts() {
  RequestMetrics requests;
  requests.Record(RequestMetrics::Op::kSet, node::ClientResult::Ok(std::nullopt, 1),
                  std::chrono::microseconds(900));
  requests.Record(RequestMetrics::Op::kGet,
                  node::ClientResult::Rejected(node::ClientResult::Reason::kNotLeader, "x", 0),
                  std::chrono::microseconds(30));
  requests.Record(RequestMetrics::Op::kSet, node::ClientResult::Unknown("lost", 0),
                  std::chrono::seconds(2));
  return ServingCounts{2, 5, 1, requests.Take()};
}

MetricsPlan Plan() {
  return MetricsPlan{"127.0.0.1:50052",
                     {"127.0.0.1:50051", "127.0.0.1:50052", "10.0.0.3:50051"},
                     {"127.0.0.1:51051", "127.0.0.1:51052", "0.0.0.0:51051"}};
}

TEST(MetricsText, EveryFamilyParsesAndSaysWhatTheStatusSays) {
  const std::string text = MetricsText(LeaderStatus(), Counts(), "127.0.0.1:50052");
  const ParsedText parsed = ParsePrometheusText(text);
  ASSERT_EQ(parsed.error, "") << text;
  EXPECT_EQ(parsed.Value("raftkv_role", {{"role", "leader"}}), 1);
  EXPECT_EQ(parsed.Value("raftkv_term"), 7);
  EXPECT_EQ(parsed.Value("raftkv_sessions"), 3);
  EXPECT_EQ(parsed.Value("raftkv_peer_match_index", {{"peer", "2"}}), 30);
  EXPECT_EQ(parsed.Value("raftkv_peer_lag_entries", {{"peer", "2"}}), 12);  // 42 - 30
  EXPECT_EQ(parsed.Value("raftkv_peer_lag_entries", {{"peer", "0"}}), 0);   // never negative
  EXPECT_EQ(parsed.Value("raftkv_peer_replication_mode", {{"peer", "2"}, {"mode", "probe"}}), 1);
  EXPECT_EQ(parsed.Value("raftkv_peer_replication_mode", {{"peer", "2"}, {"mode", "replicate"}}),
            0);
  EXPECT_EQ(parsed.Value("raftkv_requests_total", {{"op", "set"}, {"outcome", "ok"}}), 1);
  EXPECT_EQ(parsed.Value("raftkv_requests_total", {{"op", "set"}, {"outcome", "outcome_unknown"}}),
            1);
  EXPECT_EQ(parsed.Value("raftkv_requests_total", {{"op", "get"}, {"outcome", "not_leader"}}), 1);
  EXPECT_EQ(parsed.Value("raftkv_request_duration_seconds_count", {{"op", "set"}}), 2);
  EXPECT_EQ(
      parsed.Value("raftkv_request_duration_seconds_bucket", {{"op", "set"}, {"le", "0.001"}}), 1);
  EXPECT_EQ(parsed.Value("raftkv_log_fsync_duration_seconds_count"), 2);
  EXPECT_EQ(parsed.Value("raftkv_log_fsync_duration_seconds_bucket", {{"le", "0.001"}}), 1);
  EXPECT_EQ(parsed.Value("raftkv_log_appended_bytes_total"), 4200);
  EXPECT_EQ(parsed.Value("raftkv_connections"), 5);
  EXPECT_EQ(parsed.Value("raftkv_client_streams"), 2);
  EXPECT_EQ(parsed.Value("raftkv_connections_shed_total"), 1);
  EXPECT_EQ(parsed.types.at("raftkv_request_duration_seconds"), "histogram");
  EXPECT_EQ(parsed.types.at("raftkv_requests_total"), "counter");
}

TEST(MetricsText, AFollowerHasNoPeerSeries) {
  node::NodeStatus status = LeaderStatus();
  status.role = raft::Role::kFollower;
  status.peers.clear();
  const ParsedText parsed = ParsePrometheusText(MetricsText(status, Counts(), "a:1"));
  ASSERT_EQ(parsed.error, "");
  EXPECT_FALSE(parsed.Value("raftkv_peer_match_index").has_value());
  EXPECT_EQ(parsed.Value("raftkv_role", {{"role", "follower"}}), 1);
}

TEST(StatusJson, IsJsonWithEveryFieldTheDashboardReads) {
  const nlohmann::json status = nlohmann::json::parse(StatusJson(LeaderStatus(), Counts(), Plan()));
  EXPECT_EQ(status["id"], 1);
  EXPECT_EQ(status["address"], "127.0.0.1:50052");
  EXPECT_EQ(status["role"], "leader");
  EXPECT_EQ(status["term"], 7);
  EXPECT_EQ(status["leader"], 1);
  EXPECT_EQ(status["commit_index"], 40);
  EXPECT_EQ(status["last_applied"], 39);
  EXPECT_EQ(status["last_log_index"], 42);
  EXPECT_EQ(status["lease_remaining_ms"], 250);
  EXPECT_EQ(status["sessions"], 3);
  EXPECT_EQ(status["healthy"], true);
  ASSERT_EQ(status["peers"].size(), 2u);
  EXPECT_EQ(status["peers"][1]["id"], 2);
  EXPECT_EQ(status["peers"][1]["lag"], 12);
  EXPECT_EQ(status["peers"][1]["mode"], "probe");
  EXPECT_EQ(status["requests"], 3);
  EXPECT_EQ(status["requests_ok"], 1);
  EXPECT_EQ(status["latency"]["count"], 3);
  EXPECT_EQ(status["latency"]["bounds"].size(), status["latency"]["cumulative"].size());
  EXPECT_EQ(status["latency"]["cumulative"][0], 1);  // the 30 µs GET
  ASSERT_EQ(status["events"].size(), 2u);
  EXPECT_EQ(status["events"][0]["age_ms"], 5000);
  EXPECT_EQ(status["events"][1]["text"], "a \"quoted\"\ntext");  // escaped, and back
  EXPECT_EQ(status["addresses"][2], "10.0.0.3:50051");
  EXPECT_EQ(status["metrics_addresses"][2], "0.0.0.0:51051");
}

// Threads record into shards of their own; a snapshot sums them all.
TEST(RequestMetrics, RecordsFromManyThreadsAddUp) {
  RequestMetrics metrics;
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t) {  // more threads than shards: some share one
    threads.emplace_back([&metrics] {
      for (int i = 0; i < 1000; ++i) {
        metrics.Record(RequestMetrics::Op::kGet, node::ClientResult::Ok(std::nullopt, 0),
                       std::chrono::microseconds(200));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const RequestMetrics::Snapshot snapshot = metrics.Take();
  const size_t get = static_cast<size_t>(RequestMetrics::Op::kGet);
  EXPECT_EQ(snapshot.counts[get][static_cast<size_t>(RequestMetrics::Outcome::kOk)], 12000u);
  EXPECT_EQ(snapshot.latency[get].count, 12000u);
  EXPECT_EQ(snapshot.latency[get].cumulative[2], 12000u);  // le 0.00025
  EXPECT_EQ(snapshot.latency[get].cumulative[1], 0u);      // le 0.0001
  EXPECT_NEAR(snapshot.latency[get].sum_seconds, 2.4, 1e-9);
  EXPECT_EQ(snapshot.latency[static_cast<size_t>(RequestMetrics::Op::kSet)].count, 0u);
}

TEST(JudgeHealth, NeedsAKnownLeaderAndTheAppliedIndexCloseToTheCommitIndex) {
  node::NodeStatus status = LeaderStatus();
  EXPECT_TRUE(JudgeHealth(status, 1000).healthy);
  status.last_applied = 10;
  status.commit_index = 2000;
  const Health applying = JudgeHealth(status, 1000);
  EXPECT_FALSE(applying.healthy);
  EXPECT_NE(applying.reason.find("1990 committed entries not yet applied"), std::string::npos);
  status.leader = kNoNode;
  const Health orphan = JudgeHealth(status, 1000);
  EXPECT_FALSE(orphan.healthy);
  EXPECT_NE(orphan.reason.find("no known leader"), std::string::npos);
}

}  // namespace
}  // namespace raftkv::rpc

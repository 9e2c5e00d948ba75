// A node's HTTP endpoint (rpc/metrics_server.h) on real processes: /metrics in the Prometheus
// text format, checked by a strict parser; /health, which flips to 503 on a node cut off from the
// others and back to 200 once it rejoins; /status as JSON.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <tuple>

#include "tests/obs/prometheus_text.h"
#include "tests/process/process_cluster.h"

namespace raftkv {
namespace {

using std::chrono::milliseconds;

// Below Linux's ephemeral ports, and away from ProcessCluster's own (12000 + …).
int MetricsPort(int id) { return 22000 + static_cast<int>(getpid() % 1000) * 10 + id; }

std::string MetricsConfig(int size) {
  std::string listen;
  for (int id = 0; id < size; ++id) {
    listen += (id == 0 ? "" : ",") + std::string("127.0.0.1:") + std::to_string(MetricsPort(id));
  }
  return "[metrics]\nLISTEN = " + listen + "\n";
}

// The status code and body of GET `path` on node `id`'s metrics address (0: no answer).
std::pair<int, std::string> HttpGet(int id, const std::string& path) {
  httplib::Client client("127.0.0.1", MetricsPort(id));
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(6, 0);
  httplib::Result result = client.Get(path);
  if (!result) return {0, ""};
  return {result->status, result->body};
}

// Polls /health of node `id` until it answers `status`, for up to `limit`.
bool HealthBecomes(int id, int status, milliseconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < give_up) {
    if (HttpGet(id, "/health").first == status) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return false;
}

TEST(MetricsEndpoint, EveryNodeServesMetricsHealthAndStatus) {
  ProcessCluster cluster(3, MetricsConfig(3));
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  ASSERT_TRUE(cluster.Request(Set("k", "v", 0, 0)));
  int leaders = 0;
  for (int id = 0; id < 3; ++id) {
    auto [code, body] = HttpGet(id, "/metrics");
    ASSERT_EQ(code, 200) << "node " << id;
    const obs::testing::ParsedText parsed = obs::testing::ParsePrometheusText(body);
    ASSERT_EQ(parsed.error, "") << body;
    for (const char* name : {"raftkv_term",
                             "raftkv_leader_id",
                             "raftkv_commit_index",
                             "raftkv_applied_index",
                             "raftkv_last_log_index",
                             "raftkv_lease_remaining_seconds",
                             "raftkv_client_streams",
                             "raftkv_connections_shed_total",
                             "process_resident_memory_bytes",
                             "raftkv_elections_started_total",
                             "raftkv_leader_changes_total",
                             "raftkv_became_leader_total",
                             "raftkv_step_downs_total",
                             "raftkv_lease_renewals_failed_total",
                             "raftkv_sessions",
                             "raftkv_connections",
                             "raftkv_requests_total",
                             "raftkv_request_duration_seconds_count",
                             "raftkv_log_entries_appended_total",
                             "raftkv_log_appended_bytes_total",
                             "raftkv_log_fsync_duration_seconds_count",
                             "raftkv_snapshots_taken_total",
                             "raftkv_snapshot_failures_total",
                             "raftkv_snapshot_write_duration_seconds_count",
                             "raftkv_snapshots_installed_total",
                             "raftkv_snapshots_rejected_total",
                             "raftkv_snapshot_receive_duration_seconds_count",
                             "raftkv_snapshot_sends_started_total",
                             "raftkv_snapshot_sent_bytes_total"}) {
      EXPECT_TRUE(parsed.Value(name).has_value()) << name << " on node " << id << "\n" << body;
    }
    // Every node wrote the NO-OP (and the leader the SET) to its log, each batch fsynced.
    EXPECT_GE(parsed.Value("raftkv_log_entries_appended_total").value_or(0), 1);
    EXPECT_GE(parsed.Value("raftkv_log_appended_bytes_total").value_or(0), 10);
    EXPECT_GE(parsed.Value("raftkv_log_fsync_duration_seconds_count").value_or(0), 1);
    EXPECT_GE(parsed.Value("raftkv_connections").value_or(0), 1);  // a peer's stream at least
    EXPECT_EQ(parsed.Value("raftkv_node_info", {{"id", std::to_string(id)}}), 1) << body;
    EXPECT_GE(parsed.Value("raftkv_term").value_or(0), 1);
    // The NO-OP and the SET on the leader; a follower learns of the SET at the next heartbeat.
    EXPECT_GE(parsed.Value("raftkv_commit_index").value_or(0), id == leader ? 2 : 1);
    leaders += static_cast<int>(parsed.Value("raftkv_role", {{"role", "leader"}}).value_or(0));
    if (id == leader) {
      // The SET, answered by the leader: counted, timed, and replicated to both followers.
      EXPECT_GE(
          parsed.Value("raftkv_requests_total", {{"op", "set"}, {"outcome", "ok"}}).value_or(0), 1);
      EXPECT_GE(parsed.Value("raftkv_request_duration_seconds_count", {{"op", "set"}}).value_or(0),
                1);
      for (int peer = 0; peer < 3; ++peer) {
        if (peer == id) continue;
        const std::map<std::string, std::string> labels = {{"peer", std::to_string(peer)}};
        EXPECT_GE(parsed.Value("raftkv_peer_match_index", labels).value_or(-1), 0) << body;
        EXPECT_TRUE(parsed.Value("raftkv_peer_lag_entries", labels).has_value()) << body;
      }
      EXPECT_FALSE(parsed.Value("raftkv_peer_match_index", {{"peer", std::to_string(id)}}));
      EXPECT_GT(parsed.Value("raftkv_lease_remaining_seconds").value_or(0), 0);
      EXPECT_GE(parsed.Value("raftkv_became_leader_total").value_or(0), 1);
      EXPECT_GE(parsed.Value("raftkv_elections_started_total").value_or(0), 1);
    }
    EXPECT_TRUE(HealthBecomes(id, 200, milliseconds(3000))) << "node " << id;
    auto [status_code, status] = HttpGet(id, "/status");
    EXPECT_EQ(status_code, 200);
    EXPECT_NE(status.find("\"id\":" + std::to_string(id)), std::string::npos) << status;
    EXPECT_NE(status.find("\"leader\":" + std::to_string(leader)), std::string::npos) << status;
  }
  EXPECT_EQ(leaders, 1);
  EXPECT_EQ(HttpGet(0, "/nothing-here").first, 404);
}

// What the dashboard is made of, without a browser (make test-ui drives one): the page and its
// script and styles from the binary, and a /status any page may read (the page polls every
// node's) that names every node's metrics address, the leader's view of its followers, the
// requests and the recent events.
TEST(MetricsEndpoint, EveryNodeServesTheDashboardAndTheStatusItPolls) {
  ProcessCluster cluster(3, MetricsConfig(3));
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  ASSERT_TRUE(cluster.Request(Set("k", "v", 0, 0)));
  httplib::Client client("127.0.0.1", MetricsPort(leader));
  client.set_read_timeout(6, 0);
  httplib::Result page = client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("<script src=\"/dashboard.js\">"), std::string::npos);
  EXPECT_NE(page->body.find("id=\"nodes\""), std::string::npos);
  for (const auto& [path, type, needle] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"/dashboard.js", "text/javascript; charset=utf-8", "function poll()"},
           {"/dashboard.css", "text/css; charset=utf-8", "#events"}}) {
    httplib::Result asset = client.Get(path);
    ASSERT_TRUE(asset) << path;
    EXPECT_EQ(asset->status, 200) << path;
    EXPECT_EQ(asset->get_header_value("Content-Type"), type) << path;
    EXPECT_NE(asset->body.find(needle), std::string::npos) << path;
  }
  // Any page may read /status: the dashboard served by one node polls all of them.
  httplib::Result status = client.Get("/status", {{"Origin", "http://127.0.0.1:1"}});
  ASSERT_TRUE(status);
  EXPECT_EQ(status->get_header_value("Access-Control-Allow-Origin"), "*");
  const nlohmann::json json = nlohmann::json::parse(status->body);
  EXPECT_EQ(json["id"], leader);
  EXPECT_EQ(json["role"], "leader");
  ASSERT_EQ(json["metrics_addresses"].size(), 3u);
  ASSERT_EQ(json["addresses"].size(), 3u);
  for (int id = 0; id < 3; ++id) {
    EXPECT_EQ(json["metrics_addresses"][id], "127.0.0.1:" + std::to_string(MetricsPort(id)));
  }
  ASSERT_EQ(json["peers"].size(), 2u);  // the leader's view of both followers
  int holding_the_set = 0;              // a majority acknowledged it: one follower at least
  for (const nlohmann::json& peer : json["peers"]) {
    EXPECT_NE(peer["id"], leader);
    EXPECT_GE(peer["match_index"], 0);
    holding_the_set += peer["match_index"] >= 2 ? 1 : 0;
  }
  EXPECT_GE(holding_the_set, 1) << json.dump();
  bool became_leader = false;
  for (const nlohmann::json& event : json["events"]) {
    became_leader |= event["text"].get<std::string>().find("became leader for term") == 0;
  }
  EXPECT_TRUE(became_leader) << json.dump();
  EXPECT_GE(json["requests_ok"], 1);  // the SET
  EXPECT_EQ(json["latency"]["bounds"].size(), json["latency"]["cumulative"].size());
}

TEST(MetricsEndpoint, HealthFlipsTo503OnANodeCutOffAndBackAfterHealing) {
  ProcessCluster cluster(3, MetricsConfig(3));
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  const int cut_off = (leader + 1) % 3;
  ASSERT_TRUE(HealthBecomes(cut_off, 200, milliseconds(3000)));
  // The other two stop (SIGSTOP: alive but silent, as behind a partition).
  for (int id = 0; id < 3; ++id) {
    if (id != cut_off) kill(cluster.pid(id), SIGSTOP);
  }
  EXPECT_TRUE(HealthBecomes(cut_off, 503, milliseconds(5000)));
  auto [code, body] = HttpGet(cut_off, "/health");
  EXPECT_NE(body.find("no known leader"), std::string::npos) << body;
  for (int id = 0; id < 3; ++id) {
    if (id != cut_off) kill(cluster.pid(id), SIGCONT);
  }
  EXPECT_TRUE(HealthBecomes(cut_off, 200, milliseconds(8000)));
  // Cut off, it started elections of its own; back, it knows a leader again.
  const obs::testing::ParsedText after =
      obs::testing::ParsePrometheusText(HttpGet(cut_off, "/metrics").second);
  ASSERT_EQ(after.error, "");
  EXPECT_GE(after.Value("raftkv_elections_started_total").value_or(0), 1);
}

// Raw bytes to node `id`'s metrics port; returns what came back before the node closed it (or
// `wait` passed).
std::string RawExchange(int id, const std::string& request, milliseconds wait) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(MetricsPort(id)));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return "";
  }
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the node closed it early: fine, read what it said
    sent += static_cast<size_t>(n);
  }
  timeval timeout{static_cast<time_t>(wait.count() / 1000),
                  static_cast<suseconds_t>(wait.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string answer;
  char buffer[4096];
  while (true) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return answer;
}

// The endpoint is as exposed as the node's port: a huge request head, a client that never
// finishes its request, a POST, garbage — each costs a bounded amount and a few seconds at most,
// and the node keeps answering.
TEST(MetricsEndpoint, HostileHttpClientsGetBoundedAnswersAndTheEndpointServesOn) {
  ProcessCluster cluster(1, MetricsConfig(1));
  ASSERT_EQ(cluster.WaitForLeader(), 0);
  const std::string huge = "GET /metrics HTTP/1.1\r\nX: " + std::string(100 << 10, 'a');
  EXPECT_NE(RawExchange(0, huge, milliseconds(3000)).find("431"), std::string::npos);
  EXPECT_NE(RawExchange(0, "POST /metrics HTTP/1.1\r\n\r\n", milliseconds(3000)).find("405"),
            std::string::npos);
  EXPECT_NE(RawExchange(0, "nonsense\r\n\r\n", milliseconds(3000)).find("400"), std::string::npos);
  // A client that sends half a request and waits: given up after 2 s, and others served after.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(RawExchange(0, "GET /metr", milliseconds(5000)), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(4500));
  EXPECT_EQ(HttpGet(0, "/health").first, 200);
  EXPECT_NE(RawExchange(0, "HEAD /health HTTP/1.0\r\n\r\n", milliseconds(3000)).find("200 OK"),
            std::string::npos);
}

TEST(MetricsEndpoint, AMetricsAddressInUseStopsTheNodeAtStartWithAClearMessage) {
  // Node 0's metrics port taken before the cluster starts (a plain listening socket).
  const int squatter = socket(AF_INET, SOCK_STREAM, 0);
  int yes = 1;  // connections of an earlier test may linger in TIME_WAIT on the port
  setsockopt(squatter, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(MetricsPort(0)));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  ASSERT_EQ(bind(squatter, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(squatter, 16), 0);
  ProcessCluster cluster(1, MetricsConfig(1));
  const std::optional<int> exited = cluster.WaitForExit(0, milliseconds(15000));
  ASSERT_TRUE(exited.has_value()) << cluster.Output(0);
  EXPECT_NE(cluster.Output(0).find("cannot listen for metrics on"), std::string::npos)
      << cluster.Output(0);
  close(squatter);
}

}  // namespace
}  // namespace raftkv

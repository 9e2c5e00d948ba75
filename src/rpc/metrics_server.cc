#include "rpc/metrics_server.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <optional>

#include "obs/prometheus.h"
#include "raft/raft_node.h"
#include "rpc/dashboard_assets.h"

namespace raftkv::rpc {
namespace {

double Seconds(Duration duration) { return std::chrono::duration<double>(duration).count(); }

// The process's resident memory, from /proc/self/statm (0 if unreadable).
double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
      out += buffer;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// "[a,b,…]" from `count` items, item i written by `item(i)`.
template <typename Item>
std::string JsonList(size_t count, Item item) {
  std::string list = "[";
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) list += ',';
    list += item(i);
  }
  return list + "]";
}

}  // namespace

Health JudgeHealth(const node::NodeStatus& status, int64_t max_apply_lag) {
  if (status.leader == kNoNode) {
    return {false,
            "no known leader (an election is under way, or this node is cut off from a "
            "majority)"};
  }
  const int64_t lag = static_cast<int64_t>(status.commit_index - status.last_applied);
  if (lag > max_apply_lag) {
    return {false, "applying: " + std::to_string(lag) + " committed entries not yet applied"};
  }
  return {true, std::string(raft::RoleName(status.role)) + ", leader " +
                    std::to_string(status.leader) + ", term " + std::to_string(status.term) +
                    ", applied " + std::to_string(status.last_applied) + " of " +
                    std::to_string(status.commit_index)};
}

std::string MetricsText(const node::NodeStatus& status, const ServingCounts& counts,
                        const std::string& address) {
  obs::PrometheusText text;
  text.Gauge("raftkv_node_info", "This node: its id and address (always 1).", 1,
             {{"id", std::to_string(status.id)}, {"address", address}});
  for (raft::Role role : {raft::Role::kFollower, raft::Role::kCandidate, raft::Role::kLeader}) {
    text.Gauge("raftkv_role", "1 for the role this node holds now, 0 for the others.",
               status.role == role ? 1 : 0, {{"role", raft::RoleName(role)}});
  }
  text.Gauge("raftkv_term", "The current Raft term.", static_cast<double>(status.term));
  text.Gauge("raftkv_leader_id", "The leader this node knows of, -1 for none.", status.leader);
  text.Gauge("raftkv_commit_index", "The highest log index known committed.",
             static_cast<double>(status.commit_index));
  text.Gauge("raftkv_applied_index", "The highest log index applied to the state machine.",
             static_cast<double>(status.last_applied));
  text.Gauge("raftkv_last_log_index", "The last index in this node's log.",
             static_cast<double>(status.last_log_index));
  text.Gauge("raftkv_lease_remaining_seconds",
             "A leader: how long its lease still lets it serve reads locally (0: none).",
             Seconds(status.lease_remaining));
  const node::EventCounts& events = status.counts;
  text.Counter("raftkv_elections_started_total",
               "Elections this node started (its election timeout fired).",
               static_cast<double>(events.elections_started));
  text.Counter("raftkv_leader_changes_total",
               "Times the leader this node knows of became another node.",
               static_cast<double>(events.leader_changes));
  text.Counter("raftkv_became_leader_total", "Times this node became leader.",
               static_cast<double>(events.terms_led));
  text.Counter("raftkv_step_downs_total", "Times this node stepped down from leader or candidate.",
               static_cast<double>(events.step_downs));
  text.Counter("raftkv_lease_renewals_failed_total",
               "Times this node, as leader, could not renew its lease and stepped down.",
               static_cast<double>(events.lease_renewals_failed));
  text.Gauge("raftkv_sessions", "Client sessions in the state machine (replicated state).",
             static_cast<double>(status.sessions));
  for (const node::PeerStatus& peer : status.peers) {
    text.Gauge("raftkv_peer_match_index",
               "A leader: the index up to which each follower's log is known to match its own.",
               static_cast<double>(peer.match_index), {{"peer", std::to_string(peer.id)}});
  }
  for (const node::PeerStatus& peer : status.peers) {
    text.Gauge("raftkv_peer_lag_entries",
               "A leader: entries of its log each follower is not known to hold.",
               static_cast<double>(peer.lag), {{"peer", std::to_string(peer.id)}});
  }
  for (const node::PeerStatus& peer : status.peers) {
    for (const char* mode : {"probe", "replicate", "snapshot"}) {
      text.Gauge("raftkv_peer_replication_mode",
                 "A leader: 1 for how it replicates to each follower now (probe: finding where "
                 "the logs match; replicate: streaming; snapshot: sending its snapshot).",
                 peer.mode == mode ? 1 : 0, {{"peer", std::to_string(peer.id)}, {"mode", mode}});
    }
  }
  // Requests, by operation and outcome.
  const RequestMetrics::Snapshot& requests = counts.requests;
  for (size_t op = 0; op < RequestMetrics::kOpNames.size(); ++op) {
    for (size_t outcome = 0; outcome < RequestMetrics::kOutcomeNames.size(); ++outcome) {
      text.Counter("raftkv_requests_total",
                   "Client requests answered, by operation and outcome (the reply's error code).",
                   static_cast<double>(requests.counts[op][outcome]),
                   {{"op", RequestMetrics::kOpNames[op]},
                    {"outcome", RequestMetrics::kOutcomeNames[outcome]}});
    }
  }
  for (size_t op = 0; op < RequestMetrics::kOpNames.size(); ++op) {
    text.Histogram("raftkv_request_duration_seconds",
                   "Client requests from arrival to answer, by operation (every outcome).",
                   requests.latency[op], {{"op", RequestMetrics::kOpNames[op]}});
  }
  // Storage.
  const node::StorageCounts& storage = status.storage;
  text.Counter("raftkv_log_entries_appended_total", "Entries written to logs.txt.",
               static_cast<double>(storage.entries_appended));
  text.Counter("raftkv_log_appended_bytes_total", "Bytes written to logs.txt by appends.",
               static_cast<double>(storage.bytes_appended));
  text.Histogram("raftkv_log_fsync_duration_seconds",
                 "Each fsync of logs.txt (one per batch of appended entries).", storage.log_sync);
  text.Counter("raftkv_snapshots_taken_total", "Snapshots of the state machine this node wrote.",
               static_cast<double>(storage.snapshots_taken));
  text.Counter("raftkv_snapshot_failures_total",
               "Snapshots this node could not write (it retries; the log keeps growing).",
               static_cast<double>(storage.snapshot_failures));
  text.Histogram("raftkv_snapshot_write_duration_seconds",
                 "Snapshots this node wrote, from start to snapshot.txt durable.",
                 storage.snapshot_write);
  text.Counter("raftkv_snapshots_installed_total",
               "Snapshots received from a leader (InstallSnapshot), checked and installed.",
               static_cast<double>(storage.snapshots_installed));
  text.Counter("raftkv_snapshots_rejected_total",
               "Snapshots received from a leader that failed their check and were discarded.",
               static_cast<double>(storage.snapshots_rejected));
  text.Histogram("raftkv_snapshot_receive_duration_seconds",
                 "Snapshots installed from a leader, from the first chunk to installed.",
                 storage.snapshot_receive);
  text.Counter("raftkv_snapshot_sends_started_total",
               "InstallSnapshot transfers this node began to followers that needed compacted "
               "entries.",
               static_cast<double>(storage.snapshot_sends_started));
  text.Counter("raftkv_snapshot_sent_bytes_total", "InstallSnapshot chunk bytes sent to followers.",
               static_cast<double>(storage.snapshot_bytes_sent));
  // Serving.
  text.Gauge("raftkv_client_streams", "ServeClientStream calls open now.",
             static_cast<double>(counts.client_streams));
  text.Gauge("raftkv_connections", "Inbound connections open now (clients' and peers').",
             static_cast<double>(counts.connections_open));
  text.Counter("raftkv_connections_shed_total",
               "Connections closed at accept because the node held MAX_CONNECTIONS.",
               static_cast<double>(counts.connections_shed));
  text.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", ResidentBytes());
  return text.text();
}

std::string StatusJson(const node::NodeStatus& status, const ServingCounts& counts,
                       const MetricsPlan& plan) {
  const auto number = [](auto value) { return std::to_string(value); };
  const Health health = JudgeHealth(status, MetricsServer::kMaxApplyLag);
  std::string json =
      "{\"id\":" + number(status.id) + ",\"address\":" + JsonString(plan.node_address) +
      ",\"role\":" + JsonString(raft::RoleName(status.role)) + ",\"term\":" + number(status.term) +
      ",\"leader\":" + number(status.leader) + ",\"commit_index\":" + number(status.commit_index) +
      ",\"last_applied\":" + number(status.last_applied) +
      ",\"last_log_index\":" + number(status.last_log_index) +
      ",\"lease_remaining_ms\":" + number(ToMillis(status.lease_remaining)) +
      ",\"sessions\":" + number(status.sessions) +
      ",\"healthy\":" + (health.healthy ? "true" : "false") +
      ",\"health\":" + JsonString(health.reason);
  json += ",\"peers\":" + JsonList(status.peers.size(), [&](size_t i) {
            const node::PeerStatus& peer = status.peers[i];
            return "{\"id\":" + number(peer.id) + ",\"match_index\":" + number(peer.match_index) +
                   ",\"lag\":" + number(peer.lag) + ",\"mode\":" + JsonString(peer.mode) + "}";
          });
  // Requests of every operation together: answered, answered ok, and their latency histogram.
  uint64_t answered = 0, ok = 0;
  obs::HistogramSnapshot latency;
  for (size_t op = 0; op < RequestMetrics::kOpNames.size(); ++op) {
    for (uint64_t count : counts.requests.counts[op]) answered += count;
    ok += counts.requests.counts[op][static_cast<size_t>(RequestMetrics::Outcome::kOk)];
    latency.Add(counts.requests.latency[op]);
  }
  const auto& bounds = obs::Histogram::kBounds;
  json +=
      ",\"requests\":" + number(answered) + ",\"requests_ok\":" + number(ok) +
      ",\"latency\":{\"bounds\":" +
      JsonList(bounds.size(),
               [&](size_t i) { return obs::PrometheusText::FormatValue(bounds[i]); }) +
      ",\"cumulative\":" +
      JsonList(bounds.size(),
               [&](size_t i) {
                 return number(i < latency.cumulative.size() ? latency.cumulative[i] : uint64_t{0});
               }) +
      ",\"count\":" + number(latency.count) + "}";
  json += ",\"events\":" + JsonList(status.recent_events.size(), [&](size_t i) {
            return "{\"age_ms\":" + number(ToMillis(status.recent_events[i].age)) +
                   ",\"text\":" + JsonString(status.recent_events[i].text) + "}";
          });
  const auto strings = [](const std::vector<std::string>& items) {
    return JsonList(items.size(), [&](size_t i) { return JsonString(items[i]); });
  };
  json += ",\"addresses\":" + strings(plan.node_addresses);
  json += ",\"metrics_addresses\":" + strings(plan.metrics_addresses);
  return json + "}\n";
}

namespace {

// The node's status, or nullopt if the driver does not answer within 2 s (stuck, or stopping).
std::optional<node::NodeStatus> AskStatus(node::RaftDriver* driver) {
  auto answer = std::make_shared<std::promise<node::NodeStatus>>();
  std::future<node::NodeStatus> future = answer->get_future();
  driver->Status([answer](const node::NodeStatus& status) { answer->set_value(status); });
  if (future.wait_for(std::chrono::seconds(2)) != std::future_status::ready) return std::nullopt;
  return future.get();
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, node::RaftDriver* driver, MetricsPlan plan,
    std::function<ServingCounts(bool with_connections)> counts) {
  auto server = std::unique_ptr<MetricsServer>(new MetricsServer());
  absl::StatusOr<std::unique_ptr<HttpEndpoint>> endpoint = HttpEndpoint::Start(
      listen,
      [driver, plan, counts](const HttpEndpoint::Request& request) -> HttpEndpoint::Response {
        const std::string& path = request.path;
        if (std::optional<HttpEndpoint::Response> asset = DashboardAsset(path)) return *asset;
        if (path != "/metrics" && path != "/health" && path != "/status") {
          return {404, "text/plain; charset=utf-8",
                  "not found: try / (the dashboard), /metrics, /health, /status\n"};
        }
        // The dashboard served by one node polls every node's /status from the browser, so any
        // page may read it (as Prometheus's own API allows by default): it holds indexes, roles,
        // addresses and event texts, nothing secret. The port has no authentication at all:
        // listen on loopback or an internal network (docs/operations.md).
        std::vector<std::pair<std::string, std::string>> headers = {{"Cache-Control", "no-store"}};
        if (path == "/status") headers.emplace_back("Access-Control-Allow-Origin", "*");
        const std::optional<node::NodeStatus> status = AskStatus(driver);
        if (!status) {
          return {503, "text/plain; charset=utf-8",
                  "unhealthy: the node did not report its state within 2 s\n", headers};
        }
        if (path == "/metrics") {
          return {200, "text/plain; version=0.0.4; charset=utf-8",
                  MetricsText(*status, counts(/*with_connections=*/true), plan.node_address),
                  headers};
        }
        if (path == "/status") {
          return {200, "application/json",
                  StatusJson(*status, counts(/*with_connections=*/false), plan), headers};
        }
        const Health health = JudgeHealth(*status, kMaxApplyLag);
        return {health.healthy ? 200 : 503, "text/plain; charset=utf-8",
                (health.healthy ? "ok: " : "unhealthy: ") + health.reason + "\n", headers};
      });
  if (!endpoint.ok()) return endpoint.status();
  server->endpoint_ = std::move(*endpoint);
  return server;
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (endpoint_ != nullptr) endpoint_->Stop();
}

}  // namespace raftkv::rpc

// config.ini: every tunable of a raftkv node, parsed and validated at start-up. Unknown keys, bad
// values and impossible combinations are refused with a message naming the key.
//
//   [cluster]
//   NODES =                        host:port,host:port,… in node-id order (optional: the command
//                                  line may give them instead; the raftkv client reads them too)
//   [raft]
//   LEASE_DURATION = 400ms         durations take a unit: ns, us, ms, s, m (2.5s is fine)
//   HEARTBEAT_INTERVAL = 50ms
//   ELECTION_TIMEOUT_MIN = 500ms
//   ELECTION_TIMEOUT_MAX = 1s      default 2 × ELECTION_TIMEOUT_MIN
//   MAX_CLOCK_DRIFT = 0.01         a fraction
//   ALLOW_LONG_LEASE = false
//   MAX_ENTRIES_PER_APPEND = 512
//   MAX_INFLIGHT_APPENDS = 8
//   [storage]
//   DATA_DIR = data                each node uses DATA_DIR/logs_node_<id>/
//   [logging]
//   VERBOSITY = normal             quiet | normal | verbose (quiet drops per-heartbeat lines)
//   STDOUT = true                  echo dump.txt lines to stdout
//   DUMP_MAX_BYTES = 64MiB         dump.txt is rotated to dump.txt.1 beyond this size
//   DUMP_KEEP_FILES = 3            rotated files kept (dump.txt.1 … .N); older ones are deleted
//   [snapshot]
//   ENTRIES = 100000               a snapshot once this many entries were applied since the last
//                                  (0: never); the log before it is then cut
//   KEEP_ENTRIES = 5000            entries kept before the snapshot for followers lagging a little
//   CHUNK_BYTES = 512KiB           InstallSnapshot chunk size (four in flight per follower)
//   [metrics]
//   LISTEN =                       host:port,host:port,… in node-id order: where each node serves
//                                  /metrics, /health and /status over HTTP (empty: none;
//                                  raftkv-node --metrics-listen overrides it for one node)
//   [tls]                          mutual TLS for peers and clients: all three, or none (plaintext)
//   CA_FILE =                      PEM: the cluster CA (scripts/make-certs DIR N)
//   CERT_FILE =                    PEM: this node's certificate; its common name must be node<id>
//   KEY_FILE =                     PEM: its private key ({id} in a path: the node id, so that
//                                  one file serves a cluster: CERT_FILE = certs/node{id}.crt)
//   [limits]
//   MAX_KEY_BYTES = 4KiB
//   MAX_VALUE_BYTES = 1MiB
//   MAX_SESSIONS = 100000          written into OPEN-SESSION entries this node proposes as leader
//   SESSION_IDLE_TIMEOUT = 10m     (ditto): how long a session must be unused before it may be
//                                  evicted to make room (kv/kv_state_machine.h)
//   MAX_CONNECTIONS = 10000        connections held open at once; more are closed at accept
//                                  (rpc/accept_gate.h)
//   HANDSHAKE_TIMEOUT = 10s        a connection must finish its TLS/HTTP2 handshake this soon
//   CONNECTION_IDLE_TIMEOUT = 10m  a connection with no call this long is closed
//   MAX_STREAMS = 1000             ServeClientStream calls open at once
//   MAX_CALLS_PER_CONNECTION = 100 calls in flight at once on one connection (HTTP/2 streams)
//   MAX_REQUESTS_PER_STREAM = 10000  requests of one ServeClientStream waiting for answers
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tls_files.h"
#include "raft/config.h"

namespace raftkv::config {

// Ordered: each level writes everything the one before it does, and more.
//   minimal  elections, leader changes, lease failures, step-downs, votes, errors: no line per
//            request or per heartbeat, so dump.txt costs nothing on the request path
//   quiet    and one line per request received and per entry committed
//   normal   and the per-heartbeat lines (heartbeat rounds, accepted AppendEntries)
enum class Verbosity { kMinimal, kQuiet, kNormal, kVerbose };

// Fault-injection knobs for the process-level fault tests (tests/chaos/). Set only by raftkv-node's
// --test-* flags, never by config.ini; a node running with any of them says so in dump.txt.
struct TestingOptions {
  double clock_rate = 1.0;          // the node's clock runs at this multiple of real time
  Duration fsync_delay{0};          // added before every fsync while the slow disk is switched on
  bool slow_disk_at_start = false;  // otherwise SIGUSR1 switches it on, SIGUSR2 off

  bool any() const { return clock_rate != 1.0 || fsync_delay.count() > 0 || slow_disk_at_start; }
};

inline constexpr int64_t kMaxKeyPlusValueBytes = 2 << 20;

struct NodeConfig {
  raft::RaftConfig raft;           // id and cluster_size come from the command line
  std::vector<std::string> nodes;  // [cluster] NODES; empty when not given
  std::string data_dir = "data";
  // This node's own directory: logs.txt, metadata.txt, snapshot.txt, dump.txt.
  std::string node_dir() const { return data_dir + "/logs_node_" + std::to_string(raft.id); }
  Verbosity verbosity = Verbosity::kNormal;
  bool log_to_stdout = true;
  int64_t dump_max_bytes = 64 << 20;
  int64_t dump_keep_files = 3;
  int64_t snapshot_entries = 100'000;
  int64_t snapshot_keep_entries = 5'000;
  int64_t max_key_bytes = 4 << 10;
  int64_t max_value_bytes = 1 << 20;  // with max_key_bytes, at most kMaxKeyPlusValueBytes
  int64_t max_sessions = 100'000;
  Duration session_idle_timeout = std::chrono::minutes(10);
  int64_t max_connections = 10'000;
  Duration handshake_timeout = std::chrono::seconds(10);
  Duration connection_idle_timeout = std::chrono::minutes(10);
  int64_t max_streams = 1'000;
  int64_t max_calls_per_connection = 100;
  int64_t max_requests_per_stream = 10'000;
  std::vector<std::string> metrics_listen;  // [metrics] LISTEN, one per node; empty: none
  TlsFiles tls;                             // as written, {id} unexpanded; none set: plaintext
  // `tls` with {id} replaced by this node's id.
  TlsFiles node_tls() const;
  // This node's metrics address from [metrics] LISTEN, or "" for none.
  std::string node_metrics_listen() const;
  TestingOptions testing;
};

// Parses the text of a config.ini (`origin` names it in errors). Keys not given keep their
// defaults. Does not validate the Raft timings (that needs the cluster size); see Validate.
absl::StatusOr<NodeConfig> ParseNodeConfig(const std::string& text, const std::string& origin);
absl::StatusOr<NodeConfig> LoadNodeConfig(const std::string& path);
absl::Status ValidateNodeConfig(const NodeConfig& config);

// "250ms", "2.5s", "1m", "800us", "100ns".
absl::StatusOr<Duration> ParseDuration(const std::string& text);
// "4096", "4KiB", "1MiB", "2GiB".
absl::StatusOr<int64_t> ParseByteSize(const std::string& text);

}  // namespace raftkv::config

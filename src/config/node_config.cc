#include "config/node_config.h"

#include <ini.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <tuple>

#include "absl/strings/str_replace.h"
#include "common/address.h"
#include "kv/kv_state_machine.h"
#include "storage/file_util.h"

namespace raftkv::config {
namespace {

absl::StatusOr<double> ParseFraction(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value)) {
    return absl::InvalidArgumentError("\"" + text + "\" is not a number");
  }
  return value;
}

absl::StatusOr<int64_t> ParseCount(const std::string& text) {
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < 0) {
    return absl::InvalidArgumentError("\"" + text + "\" is not a non-negative whole number");
  }
  return value;
}

absl::StatusOr<bool> ParseBool(const std::string& text) {
  if (text == "true" || text == "yes" || text == "on" || text == "1") return true;
  if (text == "false" || text == "no" || text == "off" || text == "0") return false;
  return absl::InvalidArgumentError("\"" + text + "\" is not true or false");
}

// One setter per "section.KEY"; each returns an error about the value only.
using Setter = std::function<absl::Status(NodeConfig&, const std::string&)>;

template <typename T, typename Parse, typename Store>
Setter Make(Parse parse, Store store) {
  return [parse, store](NodeConfig& config, const std::string& text) -> absl::Status {
    absl::StatusOr<T> value = parse(text);
    if (!value.ok()) return value.status();
    return store(config, *value);
  };
}

const std::map<std::string, Setter>& Setters() {
  static const auto* setters = new std::map<std::string, Setter>{
      {"raft.LEASE_DURATION", Make<Duration>(ParseDuration,
                                             [](NodeConfig& c, Duration d) {
                                               c.raft.lease_duration = d;
                                               return absl::OkStatus();
                                             })},
      {"raft.HEARTBEAT_INTERVAL", Make<Duration>(ParseDuration,
                                                 [](NodeConfig& c, Duration d) {
                                                   c.raft.heartbeat_interval = d;
                                                   return absl::OkStatus();
                                                 })},
      {"raft.ELECTION_TIMEOUT_MIN", Make<Duration>(ParseDuration,
                                                   [](NodeConfig& c, Duration d) {
                                                     c.raft.election_timeout_min = d;
                                                     return absl::OkStatus();
                                                   })},
      {"raft.ELECTION_TIMEOUT_MAX", Make<Duration>(ParseDuration,
                                                   [](NodeConfig& c, Duration d) {
                                                     c.raft.election_timeout_max = d;
                                                     return absl::OkStatus();
                                                   })},
      {"raft.MAX_CLOCK_DRIFT", Make<double>(ParseFraction,
                                            [](NodeConfig& c, double d) {
                                              c.raft.max_clock_drift = d;
                                              return absl::OkStatus();
                                            })},
      {"raft.ALLOW_LONG_LEASE", Make<bool>(ParseBool,
                                           [](NodeConfig& c, bool b) {
                                             c.raft.allow_long_lease = b;
                                             return absl::OkStatus();
                                           })},
      {"raft.MAX_ENTRIES_PER_APPEND", Make<int64_t>(ParseCount,
                                                    [](NodeConfig& c, int64_t n) {
                                                      c.raft.max_entries_per_append =
                                                          static_cast<int>(n);
                                                      return absl::OkStatus();
                                                    })},
      {"raft.MAX_INFLIGHT_APPENDS", Make<int64_t>(ParseCount,
                                                  [](NodeConfig& c, int64_t n) {
                                                    c.raft.max_inflight_appends =
                                                        static_cast<int>(n);
                                                    return absl::OkStatus();
                                                  })},
      {"cluster.NODES",
       [](NodeConfig& c, const std::string& text) -> absl::Status {
         c.nodes.clear();
         if (text.empty()) return absl::OkStatus();  // addresses come from the command line
         absl::StatusOr<std::vector<std::string>> nodes = ParseAddressList(text);
         if (!nodes.ok()) return nodes.status();
         c.nodes = *nodes;
         return absl::OkStatus();
       }},
      {"storage.DATA_DIR",
       [](NodeConfig& c, const std::string& text) {
         if (text.empty()) return absl::InvalidArgumentError("must not be empty");
         c.data_dir = text;
         return absl::OkStatus();
       }},
      {"logging.VERBOSITY",
       [](NodeConfig& c, const std::string& text) {
         if (text == "minimal") {
           c.verbosity = Verbosity::kMinimal;
         } else if (text == "quiet") {
           c.verbosity = Verbosity::kQuiet;
         } else if (text == "normal") {
           c.verbosity = Verbosity::kNormal;
         } else if (text == "verbose") {
           c.verbosity = Verbosity::kVerbose;
         } else {
           return absl::InvalidArgumentError("\"" + text +
                                             "\" is not minimal, quiet, normal or verbose");
         }
         return absl::OkStatus();
       }},
      {"logging.STDOUT", Make<bool>(ParseBool,
                                    [](NodeConfig& c, bool b) {
                                      c.log_to_stdout = b;
                                      return absl::OkStatus();
                                    })},
      {"logging.DUMP_MAX_BYTES", Make<int64_t>(ParseByteSize,
                                               [](NodeConfig& c, int64_t n) {
                                                 c.dump_max_bytes = n;
                                                 return absl::OkStatus();
                                               })},
      {"logging.DUMP_KEEP_FILES", Make<int64_t>(ParseCount,
                                                [](NodeConfig& c, int64_t n) {
                                                  c.dump_keep_files = n;
                                                  return absl::OkStatus();
                                                })},
      {"snapshot.ENTRIES", Make<int64_t>(ParseCount,
                                         [](NodeConfig& c, int64_t n) {
                                           c.snapshot_entries = n;
                                           return absl::OkStatus();
                                         })},
      {"snapshot.KEEP_ENTRIES", Make<int64_t>(ParseCount,
                                              [](NodeConfig& c, int64_t n) {
                                                c.snapshot_keep_entries = n;
                                                return absl::OkStatus();
                                              })},
      {"snapshot.CHUNK_BYTES", Make<int64_t>(ParseByteSize,
                                             [](NodeConfig& c, int64_t n) {
                                               c.raft.snapshot_chunk_bytes = n;
                                               return absl::OkStatus();
                                             })},
      {"limits.MAX_CONNECTIONS", Make<int64_t>(ParseCount,
                                    [](NodeConfig& c, int64_t n) {
                                      c.max_connections = n;
                                      return absl::OkStatus();
                                    })},
      {"limits.HANDSHAKE_TIMEOUT", Make<Duration>(ParseDuration,
                                     [](NodeConfig& c, Duration d) {
                                       c.handshake_timeout = d;
                                       return absl::OkStatus();
                                     })},
      {"limits.CONNECTION_IDLE_TIMEOUT", Make<Duration>(ParseDuration,
                                     [](NodeConfig& c, Duration d) {
                                       c.connection_idle_timeout = d;
                                       return absl::OkStatus();
                                     })},
      {"limits.MAX_STREAMS", Make<int64_t>(ParseCount,
                                    [](NodeConfig& c, int64_t n) {
                                      c.max_streams = n;
                                      return absl::OkStatus();
                                    })},
      {"limits.MAX_CALLS_PER_CONNECTION", Make<int64_t>(ParseCount,
                                    [](NodeConfig& c, int64_t n) {
                                      c.max_calls_per_connection = n;
                                      return absl::OkStatus();
                                    })},
      {"limits.MAX_REQUESTS_PER_STREAM", Make<int64_t>(ParseCount,
                                    [](NodeConfig& c, int64_t n) {
                                      c.max_requests_per_stream = n;
                                      return absl::OkStatus();
                                    })},
      {"metrics.LISTEN",
       [](NodeConfig& c, const std::string& text) -> absl::Status {
         c.metrics_listen.clear();
         if (text.empty()) return absl::OkStatus();
         absl::StatusOr<std::vector<std::string>> listen = ParseAddressList(text);
         if (!listen.ok()) return listen.status();
         c.metrics_listen = *listen;
         return absl::OkStatus();
       }},
      {"tls.CA_FILE",
       [](NodeConfig& c, const std::string& text) {
         c.tls.ca_file = text;
         return absl::OkStatus();
       }},
      {"tls.CERT_FILE",
       [](NodeConfig& c, const std::string& text) {
         c.tls.cert_file = text;
         return absl::OkStatus();
       }},
      {"tls.KEY_FILE",
       [](NodeConfig& c, const std::string& text) {
         c.tls.key_file = text;
         return absl::OkStatus();
       }},
      {"limits.MAX_KEY_BYTES", Make<int64_t>(ParseByteSize,
                                             [](NodeConfig& c, int64_t n) {
                                               c.max_key_bytes = n;
                                               return absl::OkStatus();
                                             })},
      {"limits.MAX_VALUE_BYTES", Make<int64_t>(ParseByteSize,
                                               [](NodeConfig& c, int64_t n) {
                                                 c.max_value_bytes = n;
                                                 return absl::OkStatus();
                                               })},
      {"limits.MAX_SESSIONS", Make<int64_t>(ParseCount,
                                            [](NodeConfig& c, int64_t n) {
                                              c.max_sessions = n;
                                              return absl::OkStatus();
                                            })},
      {"limits.SESSION_IDLE_TIMEOUT", Make<Duration>(ParseDuration,
                                                     [](NodeConfig& c, Duration d) {
                                                       c.session_idle_timeout = d;
                                                       return absl::OkStatus();
                                                     })},
  };
  return *setters;
}

struct ParseState {
  NodeConfig config;
  std::string origin;
  absl::Status error;
};

int HandleKey(void* user, const char* section, const char* name, const char* value) {
  auto* state = static_cast<ParseState*>(user);
  const std::string key = std::string(section) + "." + name;
  const std::string where = state->origin + ": [" + section + "] " + name;
  auto it = Setters().find(key);
  if (it == Setters().end()) {
    state->error = absl::InvalidArgumentError(where + ": unknown key (see README, \"config.ini\")");
    return 0;
  }
  if (absl::Status status = it->second(state->config, value); !status.ok()) {
    state->error = absl::InvalidArgumentError(where + ": " + std::string(status.message()));
    return 0;
  }
  return 1;
}

}  // namespace

std::string NodeConfig::node_metrics_listen() const {
  if (raft.id < 0 || static_cast<size_t>(raft.id) >= metrics_listen.size()) return "";
  return metrics_listen[static_cast<size_t>(raft.id)];
}

TlsFiles NodeConfig::node_tls() const {
  const std::string id = std::to_string(raft.id);
  return TlsFiles{absl::StrReplaceAll(tls.ca_file, {{"{id}", id}}),
                  absl::StrReplaceAll(tls.cert_file, {{"{id}", id}}),
                  absl::StrReplaceAll(tls.key_file, {{"{id}", id}})};
}

absl::StatusOr<Duration> ParseDuration(const std::string& text) {
  static const std::pair<const char*, double> kUnits[] = {
      {"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}};
  size_t digits = 0;
  while (digits < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
    ++digits;
  }
  const std::string number = text.substr(0, digits);
  const std::string unit = text.substr(digits);
  for (const auto& [name, nanos] : kUnits) {
    if (unit != name) continue;
    char* end = nullptr;
    const double value = std::strtod(number.c_str(), &end);
    if (number.empty() || *end != '\0') break;
    // Below 2^61 ns (73 years): validation scales a duration by the drift margin (under 3x),
    // which must still fit in 64 bits.
    if (!(value * nanos < 0x1p61)) {
      return absl::InvalidArgumentError("\"" + text + "\" is too long a duration");
    }
    return Duration(static_cast<int64_t>(std::llround(value * nanos)));
  }
  return absl::InvalidArgumentError("\"" + text +
                                    "\" is not a duration with a unit, like 250ms or 2.5s");
}

absl::StatusOr<int64_t> ParseByteSize(const std::string& text) {
  static const std::pair<const char*, int64_t> kUnits[] = {
      {"", 1}, {"B", 1}, {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", int64_t{1} << 30}};
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  const std::string unit = text.substr(digits);
  for (const auto& [name, scale] : kUnits) {
    if (unit != name || digits == 0 || digits > 12) continue;
    const int64_t count = std::stoll(text.substr(0, digits));
    if (count > std::numeric_limits<int64_t>::max() / scale) break;  // would overflow
    return count * scale;
  }
  return absl::InvalidArgumentError("\"" + text + "\" is not a size like 4096, 4KiB or 1MiB");
}

absl::StatusOr<NodeConfig> ParseNodeConfig(const std::string& text, const std::string& origin) {
  ParseState state;
  state.origin = origin;
  const int result = ini_parse_string(text.c_str(), HandleKey, &state);
  if (!state.error.ok()) return state.error;
  if (result != 0) {
    return absl::InvalidArgumentError(origin + ":" + std::to_string(result) +
                                      ": not a \"KEY = value\" line or a [section]");
  }
  return state.config;
}

absl::StatusOr<NodeConfig> LoadNodeConfig(const std::string& path) {
  absl::StatusOr<std::string> text = storage::ReadWholeFile(path);
  if (!text.ok()) return text.status();
  return ParseNodeConfig(*text, path);
}

absl::Status ValidateNodeConfig(const NodeConfig& config) {
  if (absl::Status status = config.raft.Validate(); !status.ok()) return status;
  if (config.max_key_bytes < 1) {
    return absl::InvalidArgumentError("[limits] MAX_KEY_BYTES must be at least 1");
  }
  if (config.max_value_bytes < 0) {
    return absl::InvalidArgumentError("[limits] MAX_VALUE_BYTES must not be negative");
  }
  // A request or an AppendEntries carries one key and value whole, and a stream batch closes at
  // 1 MiB plus one item (rpc/batch_stream.h): 2 MiB keeps every message within gRPC's 4 MiB.
  if (config.max_key_bytes > kMaxKeyPlusValueBytes ||
      config.max_value_bytes > kMaxKeyPlusValueBytes - config.max_key_bytes) {
    return absl::InvalidArgumentError(
        "[limits] MAX_KEY_BYTES + MAX_VALUE_BYTES must be at most 2MiB (every message must fit "
        "gRPC's 4 MiB limit); store larger objects elsewhere and keep a reference in raftkv");
  }
  if (config.max_sessions < 1 ||
      static_cast<uint64_t>(config.max_sessions) > kv::KvStateMachine::kMaxSessionsCeiling) {
    return absl::InvalidArgumentError("[limits] MAX_SESSIONS must be between 1 and " +
                                      std::to_string(kv::KvStateMachine::kMaxSessionsCeiling));
  }
  if (config.session_idle_timeout < std::chrono::seconds(1) ||
      config.session_idle_timeout > std::chrono::hours(24 * 30)) {
    return absl::InvalidArgumentError(
        "[limits] SESSION_IDLE_TIMEOUT must be between 1s and 30 days (43200m): a session idle "
        "that "
        "long may be evicted to make room for a new one");
  }
  if (config.dump_keep_files < 1 || config.dump_keep_files > 100) {
    return absl::InvalidArgumentError(
        "[logging] DUMP_KEEP_FILES must be between 1 and 100 (rotated dump.txt files kept)");
  }
  if (config.snapshot_entries != 0 &&
      (config.snapshot_entries < 10 || config.snapshot_entries > 100'000'000)) {
    return absl::InvalidArgumentError(
        "[snapshot] ENTRIES must be 0 (never snapshot) or between 10 and 100000000");
  }
  if (config.snapshot_keep_entries < 0 || config.snapshot_keep_entries > 10'000'000) {
    return absl::InvalidArgumentError("[snapshot] KEEP_ENTRIES must be between 0 and 10000000");
  }
  if (config.raft.snapshot_chunk_bytes < 1024 || config.raft.snapshot_chunk_bytes > (2 << 20)) {
    return absl::InvalidArgumentError(
        "[snapshot] CHUNK_BYTES must be between 1KiB and 2MiB (every message must fit gRPC's 4 MiB "
        "limit)");
  }
  for (const auto& [key, value, low, high] :
       {std::tuple<const char*, int64_t, int64_t, int64_t>{"MAX_CONNECTIONS",
                                                           config.max_connections, 1, 1'000'000},
        {"MAX_STREAMS", config.max_streams, 1, 1'000'000},
        // A peer's connection carries its AppendEntries stream beside its other calls.
        {"MAX_CALLS_PER_CONNECTION", config.max_calls_per_connection, 16, 100'000},
        {"MAX_REQUESTS_PER_STREAM", config.max_requests_per_stream, 2, 1'000'000}}) {
    if (value < low || value > high) {
      return absl::InvalidArgumentError("[limits] " + std::string(key) + " must be between " +
                                        std::to_string(low) + " and " + std::to_string(high));
    }
  }
  if (config.handshake_timeout < std::chrono::milliseconds(100) ||
      config.handshake_timeout > std::chrono::minutes(10)) {
    return absl::InvalidArgumentError("[limits] HANDSHAKE_TIMEOUT must be between 100ms and 10m");
  }
  if (config.connection_idle_timeout < std::chrono::seconds(1) ||
      config.connection_idle_timeout > std::chrono::hours(24)) {
    return absl::InvalidArgumentError(
        "[limits] CONNECTION_IDLE_TIMEOUT must be between 1s and 24h (1440m)");
  }
  if (!config.metrics_listen.empty() &&
      config.metrics_listen.size() != static_cast<size_t>(config.raft.cluster_size)) {
    return absl::InvalidArgumentError(
        "[metrics] LISTEN lists " + std::to_string(config.metrics_listen.size()) +
        " addresses for a cluster of " + std::to_string(config.raft.cluster_size) +
        ": give one per node, in node-id order (or none)");
  }
  if (config.tls.any() &&
      (config.tls.ca_file.empty() || config.tls.cert_file.empty() || config.tls.key_file.empty())) {
    return absl::InvalidArgumentError(
        "[tls] CA_FILE, CERT_FILE and KEY_FILE go together: set all three for mutual TLS "
        "(scripts/make-certs DIR N makes them), or none for plaintext");
  }
  if (config.dump_max_bytes < 4096) {
    return absl::InvalidArgumentError("[logging] DUMP_MAX_BYTES must be at least 4KiB");
  }
  return absl::OkStatus();
}

}  // namespace raftkv::config

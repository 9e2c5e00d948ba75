// raftkv: the command-line client.
//
//   raftkv [--nodes ADDR,ADDR,…] [--timeout 10s] get KEY
//   raftkv [--nodes …] set KEY VALUE
//   raftkv [--nodes …] status
//   raftkv [--nodes …]                 interactive prompt (or, from a pipe, one request a line)
//
// The node list comes from --nodes, else $RAFTKV_NODES, else [cluster] NODES of --config FILE.
// Mutual TLS: --cacert/--cert/--key (else $RAFTKV_CACERT, $RAFTKV_CERT, $RAFTKV_KEY), as etcdctl.
// Exit status: 0 success, 1 the request failed (the message says why), 2 bad usage, 3 GET of a
// key that does not exist.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "common/address.h"
#include "config/node_config.h"
#include "raftkv/client.h"
#include "rpc/tls.h"
#include "tools/prompt.h"
#include "tools/status_table.h"

namespace {

using raftkv::client::Client;
using raftkv::client::ClientOptions;
using raftkv::client::Millis;

constexpr int kFailed = 1;
constexpr int kUsage = 2;
constexpr int kNotFound = 3;

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "raftkv: %s\n", message.c_str());
  return code;
}

absl::StatusOr<Millis> ParseMillis(const std::string& text, const std::string& flag) {
  absl::StatusOr<raftkv::Duration> duration = raftkv::config::ParseDuration(text);
  if (!duration.ok() || *duration <= raftkv::Duration::zero()) {
    return absl::InvalidArgumentError(flag + ": \"" + text +
                                      "\" is not a positive duration (e.g. 500ms, 10s, 1m)");
  }
  return std::chrono::duration_cast<Millis>(*duration);
}

// --nodes, else $RAFTKV_NODES, else [cluster] NODES of --config.
absl::StatusOr<std::vector<std::string>> ResolveNodes(const std::string& nodes_flag,
                                                      const std::string& config_path) {
  if (!nodes_flag.empty()) return raftkv::ParseAddressList(nodes_flag);
  if (const char* env = std::getenv("RAFTKV_NODES"); env != nullptr && *env != '\0') {
    absl::StatusOr<std::vector<std::string>> nodes = raftkv::ParseAddressList(env);
    if (!nodes.ok())
      return absl::InvalidArgumentError("RAFTKV_NODES: " + std::string(nodes.status().message()));
    return nodes;
  }
  if (!config_path.empty()) {
    absl::StatusOr<raftkv::config::NodeConfig> config = raftkv::config::LoadNodeConfig(config_path);
    if (!config.ok()) return config.status();
    if (config->nodes.empty()) {
      return absl::InvalidArgumentError(config_path + " has no [cluster] NODES");
    }
    return config->nodes;
  }
  return absl::InvalidArgumentError(
      "which cluster? Give --nodes host:port,host:port,… or set RAFTKV_NODES, or --config FILE "
      "with [cluster] NODES");
}

int Run(int argc, char** argv) {
  raftkv::rpc::ReportTlsRefusalsOnce("raftkv", /*report_refusals=*/false);
  CLI::App app{"raftkv: client for a raftkv cluster (GET/SET with leader leases)"};
  app.footer(
      "With no command: an interactive prompt taking SET key value / GET key / STATUS / HELP / "
      "QUIT,\nor, from a pipe, one such request a line (printf 'SET a 1\\nGET a\\n' | raftkv).\n"
      "Exit status: 0 success, 1 request failed, 2 bad usage, 3 key not found.");
  std::string nodes_flag, config_path, timeout_text = "10s", rpc_timeout_text = "1s";
  app.add_option("--nodes,-n", nodes_flag,
                 "every node's host:port, comma-separated, in node-id order "
                 "(default: $RAFTKV_NODES)");
  app.add_option("--config,-c", config_path, "read the node list from [cluster] NODES of FILE");
  app.add_option("--timeout,-t", timeout_text,
                 "how long a request keeps retrying before it fails (default 10s)");
  app.add_option("--rpc-timeout", rpc_timeout_text, "timeout of each single RPC (default 1s)");
  raftkv::client::TlsOptions tls;
  app.add_option("--cacert", tls.ca_file,
                 "mutual TLS: the cluster CA's certificate, PEM (default: $RAFTKV_CACERT)")
      ->envname("RAFTKV_CACERT");
  app.add_option("--cert", tls.cert_file,
                 "mutual TLS: this client's certificate, PEM (default: $RAFTKV_CERT)")
      ->envname("RAFTKV_CERT");
  app.add_option("--key", tls.key_file, "mutual TLS: its private key, PEM (default: $RAFTKV_KEY)")
      ->envname("RAFTKV_KEY");

  // Before the subcommands, which inherit it: global options may also follow the command.
  app.fallthrough();
  std::string key, value;
  CLI::App* get = app.add_subcommand("get", "print the value of KEY");
  get->add_option("key", key, "the key")->required();
  CLI::App* set = app.add_subcommand("set", "set KEY to VALUE (one argument: quote spaces)");
  set->add_option("key", key, "the key")->required();
  set->add_option("value", value, "the value")->required();
  CLI::App* status = app.add_subcommand("status", "show every node of the cluster as a table");
  CLI::App* snapshot = app.add_subcommand("snapshot", "backups of the whole state");
  std::string backup_path;
  CLI::App* save = snapshot->add_subcommand(
      "save",
      "write to FILE a snapshot from the leader holding every write acknowledged so far "
      "(start a new cluster from it with raftkv-node … --restore FILE)");
  save->add_option("file", backup_path, "where to write it")->required();
  snapshot->require_subcommand(1);
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    return kUsage;
  }

  absl::StatusOr<std::vector<std::string>> nodes = ResolveNodes(nodes_flag, config_path);
  if (!nodes.ok()) return Fail(kUsage, std::string(nodes.status().message()));
  absl::StatusOr<Millis> timeout = ParseMillis(timeout_text, "--timeout");
  if (!timeout.ok()) return Fail(kUsage, std::string(timeout.status().message()));
  absl::StatusOr<Millis> rpc_timeout = ParseMillis(rpc_timeout_text, "--rpc-timeout");
  if (!rpc_timeout.ok()) return Fail(kUsage, std::string(rpc_timeout.status().message()));

  ClientOptions options;
  options.addresses = *nodes;
  options.tls = tls;
  options.deadline = *timeout;
  options.rpc_timeout = std::min(*rpc_timeout, *timeout);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  if (!client.ok()) return Fail(kUsage, std::string(client.status().message()));

  if (get->parsed()) {
    absl::StatusOr<raftkv::client::GetResult> result = (*client)->Get(key);
    if (!result.ok()) return Fail(kFailed, std::string(result.status().message()));
    if (!result->found) return Fail(kNotFound, "key not found: " + key);
    std::fwrite(result->value.data(), 1, result->value.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  }
  if (set->parsed()) {
    absl::Status result = (*client)->Set(key, value);
    if (!result.ok()) return Fail(kFailed, std::string(result.message()));
    std::puts("OK");
    return 0;
  }
  if (save->parsed()) {
    absl::StatusOr<raftkv::client::SnapshotInfo> saved = (*client)->SaveSnapshot(backup_path);
    if (!saved.ok()) return Fail(kFailed, std::string(saved.status().message()));
    std::printf("saved snapshot at index %llu (term %llu, %llu bytes) from node %d to %s\n",
                static_cast<unsigned long long>(saved->index),
                static_cast<unsigned long long>(saved->term),
                static_cast<unsigned long long>(saved->bytes), saved->node, backup_path.c_str());
    return 0;
  }
  if (status->parsed()) {
    const std::vector<raftkv::client::NodeStatus> table =
        (*client)->ClusterStatus(options.rpc_timeout);
    std::fputs(raftkv::tools::FormatStatusTable(table).c_str(), stdout);
    const int down = raftkv::tools::CountUnreachable(table);
    if (down == 0) return 0;
    return Fail(kFailed, std::to_string(down) + " of " + std::to_string(table.size()) +
                             " nodes did not answer");
  }
  const bool interactive = isatty(STDIN_FILENO) != 0;
  return raftkv::tools::RunPrompt(**client, std::cin, std::cout, std::cerr, interactive) ? 0
                                                                                         : kFailed;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    return Fail(kFailed, std::string("unexpected error: ") + error.what());
  }
}

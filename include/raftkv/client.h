// raftkv's C++ client library: GET and SET against a raftkv cluster, with leader tracking,
// redirects, retries and exactly-once SETs. docs/api.md documents it with examples.
//
//   absl::StatusOr<std::unique_ptr<raftkv::client::Client>> client =
//       raftkv::client::Client::Create({.addresses = {"127.0.0.1:50051", "127.0.0.1:50052",
//                                                     "127.0.0.1:50053"}});
//   absl::Status set = (*client)->Set("greeting", "hello world");
//   absl::StatusOr<raftkv::client::GetResult> got = (*client)->Get("greeting");
//
// Every call retries until it succeeds or its deadline passes: it goes to the node it believes is
// leader, follows the leader hints that nodes give, tries the other nodes when there is no hint,
// and backs off exponentially with jitter between rounds. Each RPC has its own timeout, so one
// frozen node cannot hold a call for its whole deadline. Requests go over one ServeClientStream
// per node, so concurrent calls share messages (docs/api.md).
//
// Exactly-once SETs: the client opens a session with the cluster before its first SET and numbers
// its SETs; a retried SET keeps its number, so a SET that committed but whose reply was lost is
// deduplicated by the cluster instead of applied twice.
//
// Thread-safety: every method may be called from any number of threads at once. The callbacks of
// the asynchronous calls run on the library's threads (rarely, gRPC completes a request inside
// another call's send, on that caller's thread): keep them short, and never wait in one for
// another call of the same client.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace raftkv::client {

using Millis = std::chrono::milliseconds;

// Mutual TLS (like etcdctl's --cacert/--cert/--key): PEM files; all three, or none for plaintext.
// The nodes must be started with [tls] set, and the client certificate signed by their CA
// (scripts/make-certs DIR N writes DIR/ca.crt, DIR/client.crt and DIR/client.key).
struct TlsOptions {
  std::string ca_file = {};    // the cluster CA, which signed the nodes' certificates
  std::string cert_file = {};  // this client's certificate
  std::string key_file = {};   // its private key
};

struct ClientOptions {
  // Every node's host:port in node-id order: the same list the nodes were started with. With
  // TLS, each host must be a name the node's certificate is valid for.
  std::vector<std::string> addresses = {};
  TlsOptions tls = {};
  // How long a call keeps trying, unless the call says otherwise (CallOptions).
  Millis deadline{10'000};
  // The timeout of each attempt within a call (one request on the node's stream).
  Millis rpc_timeout{1'000};
  // Waits between retries grow from backoff_initial, doubling, up to backoff_max; each wait is
  // drawn at random from [half, all] of that ("equal jitter"), so clients do not retry in step.
  Millis backoff_initial{10};
  Millis backoff_max{200};
  // Test-only fault injection: called with every successful SET reply before it is used; if it
  // returns true the reply is thrown away as if the network had lost it, and the SET is retried.
  std::function<bool(uint64_t sequence, int attempt)> drop_set_reply_for_testing = nullptr;
};

struct CallOptions {
  std::optional<Millis> deadline = std::nullopt;  // overrides ClientOptions::deadline for this call
};

struct GetResult {
  bool found = false;
  std::string value;     // empty when not found
  uint64_t version = 0;  // how many SETs have been applied to the key (0 when not found)
};

// One node's answer to a status query, or why it gave none.
struct NodeStatus {
  int id = 0;
  std::string address;
  absl::Status error;  // not OK: the node did not answer; the fields below are unset
  std::string role;    // "leader", "follower" or "candidate"
  uint64_t term = 0;
  int leader = -1;  // the leader this node knows of, -1 for none
  uint64_t commit_index = 0;
  uint64_t last_applied = 0;
  uint64_t last_log_index = 0;
  int64_t lease_remaining_ms = 0;
};

// A backup written by SaveSnapshot.
struct SnapshotInfo {
  uint64_t index = 0;  // the last log entry it includes: every write acknowledged before the call
  uint64_t term = 0;
  uint64_t bytes = 0;
  int node = -1;  // the leader that sent it
};

// Errors, by absl::StatusCode:
//   kInvalidArgument   the request can never succeed (empty or too long key, too long value).
//   kDeadlineExceeded  no success before the deadline; the message gives the last reason. A SET
//                      that ends so may or may not have been applied.
//   kUnavailable       no node answered at all before the deadline (wrong addresses, all down).
//   kAborted           the cluster evicted this client's session (it idled past the cluster's
//                      SESSION_IDLE_TIMEOUT) after an attempt of the SET that may have been
//                      applied, so whether it was is unknown; later calls use a new session.
//   kCancelled         the client was destroyed before the call finished.
class Client {
 public:
  // Checks the options (addresses of the form host:port, positive timeouts) and reads the TLS
  // files (kInvalidArgument if one is missing, unreadable, or does not fit the others).
  static absl::StatusOr<std::unique_ptr<Client>> Create(ClientOptions options);
  // Cancels the requests in flight; every call still going ends with kCancelled (its callback
  // runs before this returns). Never destroy a Client from one of its own callbacks.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  absl::Status Set(std::string_view key, std::string_view value, CallOptions options = {});
  absl::StatusOr<GetResult> Get(std::string_view key, CallOptions options = {});

  // The same, without waiting: `done` is called exactly once, on one of the library's threads.
  // Any number of calls may be in flight at once.
  void SetAsync(std::string_view key, std::string_view value,
                std::function<void(absl::Status)> done, CallOptions options = {});
  void GetAsync(std::string_view key, std::function<void(absl::StatusOr<GetResult>)> done,
                CallOptions options = {});

  // Backup (like etcdctl snapshot save): fetches from the leader a snapshot holding every write
  // acknowledged before the call and writes it to `path` (snapshot.txt's format,
  // docs/file-formats.md): first to `path`.part, checked whole and synced, then renamed, so `path`
  // is never a partial file. A node started with --restore on it begins a new cluster from it.
  absl::StatusOr<SnapshotInfo> SaveSnapshot(const std::string& path, CallOptions options = {});

  // Asks every node for its status, in parallel; `timeout` bounds the whole query.
  std::vector<NodeStatus> ClusterStatus(Millis timeout = Millis{1'000});

  // The node this client currently believes is leader, or -1.
  int known_leader() const;
  const std::vector<std::string>& addresses() const;

 private:
  class Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace raftkv::client

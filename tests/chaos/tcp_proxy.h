// TcpProxy: a loopback TCP forwarder that the fault tests can cut, to make network partitions
// without root and without touching the node's code. Each node reaches each peer through its own
// proxy (one per directed pair), so cutting the proxy i→j loses everything node i sends to node j
// — its requests and the replies to them — while j's own requests to i still flow: a one-way
// partition in RPC terms. Cutting both i→j and j→i separates the pair completely.
//
// A cut is a blackhole, not a refusal: connections in progress are dropped, and new ones are
// accepted but never forwarded, so the sender sees what a real partition shows it — silence until
// its deadline — rather than a quick "connection refused". Healing closes the held connections so
// the sender reconnects at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mutex.h"

namespace raftkv::chaos {

class TcpProxy {
 public:
  // Listens on 127.0.0.1:listen_port and forwards each connection to 127.0.0.1:target_port.
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(int listen_port, int target_port);
  ~TcpProxy();

  void SetCut(bool cut) ABSL_LOCKS_EXCLUDED(mu_);
  // Holds every chunk this long before passing it on (0: none): a slow or distant link.
  void SetDelay(std::chrono::milliseconds delay) { delay_ms_.store(delay.count()); }
  bool cut() const { return cut_.load(); }
  int listen_port() const { return listen_port_; }

 private:
  TcpProxy(int listen_fd, int listen_port, int target_port);
  void AcceptLoop();
  void Pump(int a, int b, uint64_t generation);
  void ReapFinishedPumps() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct PumpThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  const int listen_fd_;
  const int listen_port_;
  const int target_port_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> cut_{false};
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<uint64_t> generation_{0};  // bumped by a cut: pumps of older generations close

  Mutex mu_;
  std::vector<int> held_ ABSL_GUARDED_BY(mu_);  // accepted while cut, never forwarded
  std::vector<PumpThread> pumps_ ABSL_GUARDED_BY(mu_);
  std::thread acceptor_;
};

}  // namespace raftkv::chaos

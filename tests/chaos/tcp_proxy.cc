#include "tests/chaos/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace raftkv::chaos {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t written = send(fd, data, size, MSG_NOSIGNAL);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    data += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(int listen_port, int target_port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const sockaddr_in address = Loopback(listen_port);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, 64) != 0) {
    const std::string error = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(
        "proxy cannot listen on 127.0.0.1:" + std::to_string(listen_port) + ": " + error);
  }
  return std::unique_ptr<TcpProxy>(new TcpProxy(fd, listen_port, target_port));
}

TcpProxy::TcpProxy(int listen_fd, int listen_port, int target_port)
    : listen_fd_(listen_fd), listen_port_(listen_port), target_port_(target_port) {
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TcpProxy::~TcpProxy() {
  stopping_.store(true);
  ++generation_;
  acceptor_.join();
  close(listen_fd_);
  std::vector<PumpThread> pumps;
  {
    MutexLock lock(&mu_);
    pumps.swap(pumps_);
    for (int fd : held_) close(fd);
    held_.clear();
  }
  for (PumpThread& pump : pumps) pump.thread.join();
}

void TcpProxy::SetCut(bool cut) {
  MutexLock lock(&mu_);
  cut_.store(cut);
  if (cut) {
    ++generation_;  // live connections close within one poll interval
  } else {
    for (int fd : held_) close(fd);
    held_.clear();
  }
}

void TcpProxy::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd waiting{listen_fd_, POLLIN, 0};
    if (poll(&waiting, 1, 50) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    const int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    MutexLock lock(&mu_);
    if (cut_.load()) {
      held_.push_back(client);
      continue;
    }
    const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in target = Loopback(target_port_);
    if (upstream < 0 ||
        connect(upstream, reinterpret_cast<const sockaddr*>(&target), sizeof(target)) != 0) {
      // The target is down: pass that on as a closed connection, as the network would.
      if (upstream >= 0) close(upstream);
      close(client);
      continue;
    }
    setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const uint64_t generation = generation_.load();
    ReapFinishedPumps();
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread thread([this, client, upstream, generation, done] {
      Pump(client, upstream, generation);
      done->store(true);
    });
    pumps_.push_back(PumpThread{std::move(thread), std::move(done)});
  }
}

void TcpProxy::ReapFinishedPumps() {
  for (auto it = pumps_.begin(); it != pumps_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = pumps_.erase(it);
    } else {
      ++it;
    }
  }
}

// Copies bytes both ways until either side closes, or a cut (a newer generation) or shutdown.
void TcpProxy::Pump(int a, int b, uint64_t generation) {
  char buffer[64 * 1024];
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  while (!stopping_.load() && generation_.load() == generation) {
    if (poll(fds, 2, 20) <= 0) continue;
    bool open = true;
    for (int i = 0; i < 2 && open; ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t got = recv(fds[i].fd, buffer, sizeof(buffer), 0);
      if (const int64_t delay = delay_ms_.load(); delay > 0 && got > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      }
      open = got > 0 && WriteAll(fds[1 - i].fd, buffer, static_cast<size_t>(got));
    }
    if (!open) break;
  }
  close(a);
  close(b);
}

}  // namespace raftkv::chaos

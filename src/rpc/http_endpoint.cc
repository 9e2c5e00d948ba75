#include "rpc/http_endpoint.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/address.h"

namespace raftkv::rpc {
namespace {

using Clock = std::chrono::steady_clock;

int MillisLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits until `fd` is ready for `events` or the deadline passes.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  pollfd entry{fd, events, 0};
  for (;;) {
    const int left = MillisLeft(deadline);
    if (left == 0) return false;
    const int ready = poll(&entry, 1, left);
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
  }
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

void WriteAll(int fd, const std::string& data, Clock::time_point deadline) {
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = send(fd, data.data() + written, data.size() - written, MSG_NOSIGNAL);
    if (n > 0) {
      written += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFor(fd, POLLOUT, deadline)) return;
    } else {
      return;
    }
  }
}

void Answer(int fd, const HttpEndpoint::Response& response, bool head, Clock::time_point deadline) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + Reason(response.status) +
                    "\r\nContent-Type: " + response.content_type +
                    "\r\nContent-Length: " + std::to_string(response.body.size()) +
                    "\r\nConnection: close\r\n\r\n";
  if (!head) out += response.body;
  WriteAll(fd, out, deadline);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(const std::string& listen,
                                                                  Handler handler) {
  if (absl::Status status = CheckAddress(listen); !status.ok()) {
    return absl::InvalidArgumentError("metrics address: " + std::string(status.message()));
  }
  const size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = listen.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return absl::InvalidArgumentError("cannot resolve the metrics address " + listen);
  }
  auto endpoint = std::unique_ptr<HttpEndpoint>(new HttpEndpoint());
  endpoint->handler_ = std::move(handler);
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int yes = 1;
  // SO_REUSEADDR only: a port another process listens on must refuse (no SO_REUSEPORT sharing).
  const bool bound = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) == 0 &&
                     bind(fd, found->ai_addr, found->ai_addrlen) == 0 && ::listen(fd, 64) == 0;
  freeaddrinfo(found);
  if (!bound) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) close(fd);
    return absl::UnavailableError("cannot listen for metrics on " + listen + ": " + why +
                                  " (is the address right, and the port free?)");
  }
  endpoint->listen_fd_ = fd;
  if (pipe2(endpoint->wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError("cannot create a pipe for the metrics endpoint");
  }
  endpoint->thread_ = std::thread([raw = endpoint.get()] { raw->Loop(); });
  return endpoint;
}

HttpEndpoint::~HttpEndpoint() { Stop(); }

void HttpEndpoint::Stop() {
  if (thread_.joinable()) {
    (void)!write(wake_[1], "x", 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_[0], &wake_[1]}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

void HttpEndpoint::Loop() {
  for (;;) {
    pollfd entries[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(entries, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (entries[1].revents != 0) return;  // Stop
    // Through accept4, so the accept gate counts these too (and never hands out EMFILE).
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;  // EAGAIN, a connection gone, or out of descriptors: poll again
    Serve(fd);
    // A lingering close: the client may still be sending (a request head we refused); closing
    // with its bytes unread would reset the connection and could destroy our answer in flight.
    // So half-close, and discard what comes for a moment (bounded) before closing.
    shutdown(fd, SHUT_WR);
    const Clock::time_point linger = Clock::now() + std::chrono::milliseconds(500);
    char discard[4096];
    size_t discarded = 0;
    while (discarded < kMaxDiscardBytes && WaitFor(fd, POLLIN, linger)) {
      const ssize_t n = recv(fd, discard, sizeof discard, 0);
      if (n <= 0) break;
      discarded += static_cast<size_t>(n);
    }
    close(fd);
  }
}

void HttpEndpoint::Serve(int fd) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(kRequestMillis);
  std::string head;
  char buffer[1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos) {
    if (head.size() > kMaxRequestHeadBytes) {
      return Answer(fd, {431, "text/plain; charset=utf-8", "request head over 8 KiB\n"}, false,
                    deadline);
    }
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      head.append(buffer, static_cast<size_t>(n));
    } else if (n == 0) {
      return;  // the client went away
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!WaitFor(fd, POLLIN, deadline)) return;  // too slow: given up
    } else {
      return;
    }
  }
  // "GET /metrics?x HTTP/1.1"
  const size_t line_end = head.find_first_of("\r\n");
  const std::string line = head.substr(0, line_end);
  const size_t first = line.find(' ');
  const size_t second = first == std::string::npos ? first : line.find(' ', first + 1);
  if (first == std::string::npos || second == std::string::npos ||
      line.compare(second + 1, 5, "HTTP/") != 0) {
    return Answer(fd, {400, "text/plain; charset=utf-8", "not an HTTP request\n"}, false, deadline);
  }
  const std::string method = line.substr(0, first);
  std::string path = line.substr(first + 1, second - first - 1);
  path = path.substr(0, path.find('?'));
  if (method != "GET" && method != "HEAD") {
    return Answer(fd, {405, "text/plain; charset=utf-8", "only GET and HEAD\n"}, false, deadline);
  }
  Answer(fd, handler_(path), method == "HEAD", deadline);
}

}  // namespace raftkv::rpc

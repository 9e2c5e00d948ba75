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
#include "common/check.h"

namespace raftkv::rpc {
namespace {

using Clock = std::chrono::steady_clock;

int MillisLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits until `fd` is ready for `events`; false if the deadline passes first, or `wake` (if not
// -1) becomes readable: Stop() wants the thread back.
bool WaitFor(int fd, short events, Clock::time_point deadline, int wake) {
  pollfd entries[2] = {{fd, events, 0}, {wake, POLLIN, 0}};
  for (;;) {
    const int left = MillisLeft(deadline);
    if (left == 0) return false;
    const int ready = poll(entries, wake >= 0 ? 2 : 1, left);
    if (ready > 0) return entries[0].revents != 0 && (wake < 0 || entries[1].revents == 0);
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

void WriteAll(int fd, const std::string& data, Clock::time_point deadline, int wake) {
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = send(fd, data.data() + written, data.size() - written, MSG_NOSIGNAL);
    if (n > 0) {
      written += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFor(fd, POLLOUT, deadline, wake)) return;
    } else {
      return;
    }
  }
}

// Writes the answer within its own 2 s (however long reading the request took).
void Answer(int fd, const HttpEndpoint::Response& response, bool head, int wake) {
  for (const auto& [name, value] : response.headers) {
    // Header fields come from this binary, never from a request; a line break would split one.
    RAFTKV_CHECK(name.find_first_of("\r\n:") == std::string::npos &&
                     value.find_first_of("\r\n") == std::string::npos,
                 "a response header with a line break");
  }
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + Reason(response.status) +
                    "\r\nContent-Type: " + response.content_type +
                    "\r\nContent-Length: " + std::to_string(response.body.size()) +
                    (response.status == 405 ? "\r\nAllow: GET, HEAD" : "");
  for (const auto& [name, value] : response.headers) out += "\r\n" + name + ": " + value;
  out += "\r\nConnection: close\r\n\r\n";
  if (!head) out += response.body;
  WriteAll(fd, out, Clock::now() + std::chrono::milliseconds(HttpEndpoint::kRequestMillis), wake);
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
  std::string why = "no address";
  for (addrinfo* candidate = found; candidate != nullptr; candidate = candidate->ai_next) {
    const int fd = socket(candidate->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int yes = 1;
    // SO_REUSEADDR only: a port another process listens on must refuse (no SO_REUSEPORT).
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) == 0 &&
        bind(fd, candidate->ai_addr, candidate->ai_addrlen) == 0 && ::listen(fd, 64) == 0) {
      endpoint->listen_fd_ = fd;
      break;
    }
    why = std::strerror(errno);
    if (fd >= 0) close(fd);
  }
  freeaddrinfo(found);
  if (endpoint->listen_fd_ < 0) {
    return absl::UnavailableError("cannot listen for metrics on " + listen + ": " + why +
                                  " (is the address right, and the port free?)");
  }
  if (pipe2(endpoint->wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(std::string("cannot create a pipe for the metrics endpoint: ") +
                               std::strerror(errno));
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
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // Out of descriptors (the gate's EAGAIN with the connection still queued, ENOBUFS …): the
      // listen socket stays readable, so wait a moment (or for Stop) instead of spinning.
      pollfd wake{wake_[0], POLLIN, 0};
      if (poll(&wake, 1, 100) > 0) return;
      continue;
    }
    Serve(fd);
    // A lingering close: the client may still be sending (a request head we refused); closing
    // with its bytes unread would reset the connection and could destroy our answer in flight.
    // So half-close, and discard what comes for a moment (bounded) before closing.
    shutdown(fd, SHUT_WR);
    const Clock::time_point linger = Clock::now() + std::chrono::milliseconds(500);
    char discard[4096];
    size_t discarded = 0;
    while (discarded < kMaxDiscardBytes && WaitFor(fd, POLLIN, linger, wake_[0])) {
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
                    wake_[0]);
    }
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      head.append(buffer, static_cast<size_t>(n));
    } else if (n == 0) {
      return;  // the client went away
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!WaitFor(fd, POLLIN, deadline, wake_[0])) return;  // too slow (or Stop): given up
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
    return Answer(fd, {400, "text/plain; charset=utf-8", "not an HTTP request\n"}, false, wake_[0]);
  }
  const std::string method = line.substr(0, first);
  std::string path = line.substr(first + 1, second - first - 1);
  path = path.substr(0, path.find('?'));
  if (method != "GET" && method != "HEAD") {
    return Answer(fd, {405, "text/plain; charset=utf-8", "only GET and HEAD\n"}, false, wake_[0]);
  }
  Answer(fd, handler_(Request{path}), method == "HEAD", wake_[0]);
}

}  // namespace raftkv::rpc

#include "rpc/accept_gate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string_view>

#include "common/escape.h"
#include "common/mutex.h"

namespace raftkv::rpc {
namespace {

// 0: not armed (every accept passes through, as in the tools and tests that link gRPC).
std::atomic<int64_t> max_fd{0};
std::atomic<int64_t> shed{0};
// A descriptor held open so that, with none left, one waiting connection can still be taken (and
// shed). -1 while another thread holds its slot or the process is out of descriptors.
raftkv::Mutex reserve_mu;
int reserve_fd ABSL_GUARDED_BY(reserve_mu) = -1;
std::atomic<int64_t> last_report_ns{0};

int RealAccept4(int fd, sockaddr* address, socklen_t* length, int flags) {
  return static_cast<int>(syscall(SYS_accept4, fd, address, length, flags));
}

// Calls `visit(fd)` for each descriptor the process holds open (the listing's own excepted).
template <typename Visit>
void ForEachOpenDescriptor(Visit visit) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (const dirent* entry = readdir(dir)) {
    int fd = -1;
    if (ParseNumber(std::string_view(entry->d_name), &fd) && fd != dirfd(dir)) visit(fd);
  }
  closedir(dir);
}

int64_t OpenDescriptors() {
  int64_t count = 0;
  ForEachOpenDescriptor([&count](int) { ++count; });
  return count;
}

// The local port of socket `fd`, or -1 if it is not a TCP socket bound to one.
int LocalPort(int fd) {
  sockaddr_storage local{};
  socklen_t length = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) return -1;
  if (local.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
  }
  if (local.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
  }
  return -1;
}

// At most one line every 10 s, whatever the flood.
void ReportShedding(int64_t total) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const int64_t now_ns = now.tv_sec * 1'000'000'000LL + now.tv_nsec;
  int64_t last = last_report_ns.load();
  if (last != 0 && now_ns - last < 10'000'000'000LL) return;
  if (!last_report_ns.compare_exchange_strong(last, now_ns)) return;
  std::fprintf(stderr,
               "raftkv-node: refusing connections: the node holds its limit of open connections "
               "([limits] MAX_CONNECTIONS); %lld closed at once so far\n",
               static_cast<long long>(total));
}

}  // namespace

AcceptGateReport ArmAcceptGate(int64_t max_connections) {
  AcceptGateReport report;
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  report.soft_limit = limit.rlim_cur == RLIM_INFINITY ? INT64_MAX : limit.rlim_cur;
  report.hard_limit = limit.rlim_max == RLIM_INFINITY ? INT64_MAX : limit.rlim_max;
  {
    raftkv::MutexLock lock(&reserve_mu);
    if (reserve_fd < 0) reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  const int64_t in_use = OpenDescriptors();
  const int64_t room = report.soft_limit - kReservedFds - in_use;
  report.max_connections = std::max<int64_t>(0, std::min(max_connections, room));
  if (report.max_connections < max_connections) {
    report.warning = "the open-file limit (" + std::to_string(report.soft_limit) + ", hard " +
                     std::to_string(report.hard_limit) + ") leaves room for " +
                     std::to_string(report.max_connections) + " connections, not MAX_CONNECTIONS " +
                     std::to_string(max_connections) +
                     ": raise the limit (ulimit -n, systemd LimitNOFILE=) or lower the key";
  }
  max_fd.store(in_use + report.max_connections);
  return report;
}

int64_t ConnectionsShed() { return shed.load(); }

int64_t CountInboundConnections(int port) {
  int64_t count = 0;
  ForEachOpenDescriptor([&count, port](int fd) {
    int listening = 0;
    socklen_t length = sizeof listening;
    // Not a socket (ENOTSOCK), or a listener: not a connection.
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || listening != 0) {
      return;
    }
    if (LocalPort(fd) == port) ++count;
  });
  return count;
}

}  // namespace raftkv::rpc

// libgrpc's listener calls this (see the header). Outside a node (max_fd 0) it is accept4.
extern "C" int accept4(int fd, sockaddr* address, socklen_t* length, int flags) {
  using namespace raftkv::rpc;
  const int64_t limit = max_fd.load(std::memory_order_relaxed);
  if (limit == 0) return RealAccept4(fd, address, length, flags);
  const socklen_t length_given = length != nullptr ? *length : 0;
  int64_t closed = 0;
  int result = -1;
  int error = 0;
  for (;;) {
    if (length != nullptr) *length = length_given;  // a shed connection's address may be shorter
    const int accepted = RealAccept4(fd, address, length, flags);
    if (accepted >= 0 && accepted < limit) {
      result = accepted;
      break;
    }
    if (accepted >= 0) {  // over the limit: shed it, and drain the rest of the queue
      close(accepted);
      ++closed;
      continue;
    }
    error = errno;
    if (error != EMFILE && error != ENFILE) break;
    // Out of descriptors altogether: the reserve's slot takes one waiting connection, which is
    // shed. gRPC may accept on more than one thread: one at a time uses the reserve, and it is
    // taken back now, or by a later call if another thread got the slot meanwhile.
    bool drained_one = false;
    {
      raftkv::MutexLock lock(&reserve_mu);
      if (reserve_fd >= 0) {
        close(reserve_fd);
        const int taken = RealAccept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (taken >= 0) {
          close(taken);
          drained_one = true;
        }
      }
      reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (!drained_one) {
      error = EAGAIN;  // never EMFILE, which stops gRPC's listener: it waits for the next one
      break;
    }
    ++closed;
  }
  if (closed > 0) ReportShedding(shed.fetch_add(closed) + closed);
  if (result < 0) errno = error;  // last: nothing after it may touch errno
  return result;
}

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
#include <cstdlib>

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

int64_t OpenDescriptors() {
  int64_t count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (readdir(dir) != nullptr) ++count;
    closedir(dir);
    count -= 3;  // ".", "..", and the directory's own descriptor
  }
  return count;
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
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  int64_t count = 0;
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    int listening = 0;
    socklen_t option_length = sizeof listening;
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &listening, &option_length) !=
            0 ||
        listening != 0) {
      continue;  // not a socket (ENOTSOCK), or a listener
    }
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &length) != 0) {
      continue;
    }
    int local_port = -1;
    if (local.ss_family == AF_INET) {
      local_port = ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
    } else if (local.ss_family == AF_INET6) {
      local_port = ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
    }
    if (local_port == port) ++count;
  }
  closedir(dir);
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

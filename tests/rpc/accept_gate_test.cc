// The accept gate (rpc/accept_gate.h) on its own, in a process of its own (arming it is
// process-wide): past the limit every waiting connection is accepted and closed, and out of
// descriptors altogether the caller sees EAGAIN, never EMFILE (which stops gRPC 1.51's listener
// for good), while the queue is still drained.
#include "rpc/accept_gate.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

namespace raftkv::rpc {
namespace {

// A non-blocking listener on 127.0.0.1; `port` gets its port.
int Listen(int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(listen(fd, 1024), 0);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  *port = ntohs(address.sin_port);
  return fd;
}

// A child process that opens `count` connections to `port` and holds them until killed; returns
// once they are all queued.
pid_t ConnectFromChild(int port, int count) {
  int ready[2];
  EXPECT_EQ(pipe(ready), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    for (int i = 0; i < count; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    }
    (void)!write(ready[1], "x", 1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char done = 0;
  EXPECT_EQ(read(ready[0], &done, 1), 1);  // every connect returned: all are in the queue
  close(ready[0]);
  return pid;
}

// Accepts until the queue is empty; returns how many were handed over, and checks that the
// queue ends in EAGAIN, never EMFILE.
int AcceptAll(int listener, std::vector<int>* accepted) {
  for (;;) {
    sockaddr_in peer{};
    socklen_t length = sizeof peer;
    const int fd = accept4(listener, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC);
    if (fd < 0) {
      EXPECT_EQ(errno, EAGAIN) << "accept4 must never fail with " << strerror(errno);
      return static_cast<int>(accepted->size());
    }
    accepted->push_back(fd);
  }
}

TEST(AcceptGate, ConnectionsPastTheLimitAreShedAndRunningOutOfDescriptorsIsNeverEmfile) {
  const AcceptGateReport report = ArmAcceptGate(20);
  ASSERT_EQ(report.max_connections, 20) << report.warning;
  int port = 0;
  const int listener = Listen(&port);
  const pid_t child = ConnectFromChild(port, 50);
  std::vector<int> accepted;
  EXPECT_LE(AcceptAll(listener, &accepted), 20);
  EXPECT_GE(ConnectionsShed(), 30);
  for (int fd : accepted) close(fd);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);

  // Out of descriptors altogether: the limit lowered to just above what is open now.
  accepted.clear();
  const int64_t shed_before = ConnectionsShed();
  const pid_t second = ConnectFromChild(port, 50);
  rlimit old_limit{};
  getrlimit(RLIMIT_NOFILE, &old_limit);
  const int probe = dup(0);  // the lowest free descriptor: how many are open
  close(probe);
  rlimit low{static_cast<rlim_t>(probe + 3), old_limit.rlim_max};
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  const int handed = AcceptAll(listener, &accepted);
  setrlimit(RLIMIT_NOFILE, &old_limit);
  EXPECT_LE(handed, 3);
  EXPECT_GE(ConnectionsShed() - shed_before, 40) << "the queue was drained through the reserve";
  for (int fd : accepted) close(fd);
  kill(second, SIGKILL);
  waitpid(second, nullptr, 0);
  close(listener);
}

}  // namespace
}  // namespace raftkv::rpc

// ForkSnapshotWorker: the child writes the state as it was at Start, whatever the parent does
// meanwhile, and its result (or its failure) comes back through Poll.
#include "node/fork_snapshot_worker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace raftkv::node {
namespace {

absl::StatusOr<uint64_t> WaitFor(SnapshotWorker& worker) {
  for (int i = 0; i < 3000; ++i) {
    if (std::optional<absl::StatusOr<uint64_t>> done = worker.Poll()) return *done;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::DeadlineExceededError("the worker did not finish in 30 s");
}

std::string TempPath(const char* name) {
  return std::string(::testing::TempDir()) + "/" + name + std::to_string(getpid());
}

TEST(ForkSnapshotWorker, TheChildWritesTheStateAsItWasAtStart) {
  const std::string path = TempPath("fork-state");
  std::string state(1 << 20, 'a');  // the "state machine"
  ForkSnapshotWorker worker;
  ASSERT_TRUE(worker
                  .Start([&state, &path]() -> absl::StatusOr<uint64_t> {
                    std::this_thread::sleep_for(std::chrono::milliseconds(200));
                    std::ofstream out(path);
                    out << state;
                    return state.size();
                  })
                  .ok());
  EXPECT_EQ(worker.Poll(), std::nullopt);  // still sleeping
  // One job at a time.
  EXPECT_TRUE(absl::IsFailedPrecondition(worker.Start([] { return uint64_t{0}; })));
  state.assign(10, 'b');  // the parent goes on changing its state
  absl::StatusOr<uint64_t> bytes = WaitFor(worker);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, uint64_t{1} << 20);
  std::ifstream in(path);
  std::stringstream written;
  written << in.rdbuf();
  EXPECT_EQ(written.str(), std::string(1 << 20, 'a'));
  std::remove(path.c_str());
  // Idle again: another job may start.
  ASSERT_TRUE(worker.Start([] { return uint64_t{7}; }).ok());
  EXPECT_EQ(WaitFor(worker).value_or(0), 7u);
}

TEST(ForkSnapshotWorker, TheJobsErrorComesBackWithItsCodeAndMessage) {
  ForkSnapshotWorker worker;
  ASSERT_TRUE(worker
                  .Start([]() -> absl::StatusOr<uint64_t> {
                    return absl::ResourceExhaustedError("disk full: snapshot.txt.tmp");
                  })
                  .ok());
  absl::StatusOr<uint64_t> result = WaitFor(worker);
  EXPECT_TRUE(absl::IsResourceExhausted(result.status())) << result.status();
  EXPECT_EQ(result.status().message(), "disk full: snapshot.txt.tmp");
}

TEST(ForkSnapshotWorker, AChildThatDiesWithoutAResultIsAnError) {
  ForkSnapshotWorker worker;
  ASSERT_TRUE(worker
                  .Start([]() -> absl::StatusOr<uint64_t> {
                    _exit(0);  // exits "successfully" without writing its report
                  })
                  .ok());
  absl::StatusOr<uint64_t> result = WaitFor(worker);
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("without a result"), absl::string_view::npos)
      << result.status();
}

TEST(ForkSnapshotWorker, CancelKillsTheChildAndLeavesTheWorkerIdle) {
  ForkSnapshotWorker worker;
  ASSERT_TRUE(worker
                  .Start([]() -> absl::StatusOr<uint64_t> {
                    std::this_thread::sleep_for(std::chrono::seconds(60));
                    return uint64_t{1};
                  })
                  .ok());
  const auto before = std::chrono::steady_clock::now();
  worker.Cancel();
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(10));
  EXPECT_EQ(worker.Poll(), std::nullopt);  // nothing running, nothing to report
  ASSERT_TRUE(worker.Start([] { return uint64_t{3}; }).ok());
  EXPECT_EQ(WaitFor(worker).value_or(0), 3u);
}

}  // namespace
}  // namespace raftkv::node

// The simulated disk's crash model (sim/sim_disk.h): what survives a process kill and a power
// loss, checked against the contract in storage/env.h.
#include "sim/sim_disk.h"

#include <gtest/gtest.h>

#include <set>

namespace raftkv::sim {
namespace {

constexpr uint64_t kSector = SimDisk::kBlockBytes;

std::string Read(SimDisk& disk, const std::string& path) {
  absl::StatusOr<std::string> text = disk.ReadFile(path);
  return text.ok() ? *text : "<missing>";
}

TEST(SimDisk, SyncedDataSurvivesPowerLoss) {
  SimDisk disk;
  Rng rng(1);
  auto file = disk.OpenWritable("/d/f", false);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->WriteAt(0, "durable").ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE(disk.SyncDir("/d").ok());
  for (int i = 0; i < 50; ++i) {
    disk.Crash(SimDisk::CrashKind::kPowerLoss, rng);
    EXPECT_EQ(Read(disk, "/d/f"), "durable");
  }
}

TEST(SimDisk, ProcessKillKeepsWritesButPowerLossMayStillLoseThem) {
  SimDisk disk;
  Rng rng(2);
  auto file = disk.OpenWritable("/d/f", false);
  ASSERT_TRUE(disk.SyncDir("/d").ok());
  ASSERT_TRUE((*file)->WriteAt(0, "unsynced").ok());
  disk.Crash(SimDisk::CrashKind::kProcess, rng);
  EXPECT_EQ(Read(disk, "/d/f"), "unsynced") << "the page cache outlives the process";
  std::set<std::string> seen;
  for (int i = 0; i < 50 && seen.size() < 2; ++i) {
    SimDisk copy = disk;
    copy.Crash(SimDisk::CrashKind::kPowerLoss, rng);
    seen.insert(Read(copy, "/d/f"));
  }
  EXPECT_TRUE(seen.count("")) << "still not durable after the kill";
}

// A write across a sector boundary lands in part; a lost truncation under a landed write leaves
// a line half new, half old — the state behind defect 2.
TEST(SimDisk, PowerLossTearsAtSectorsAndLosesTruncationsIndependently) {
  SimDisk disk;
  auto file = disk.OpenWritable("/d/f", false);
  ASSERT_TRUE(disk.SyncDir("/d").ok());
  const std::string old_text(2 * kSector, 'o');
  ASSERT_TRUE((*file)->WriteAt(0, old_text).ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Truncate(kSector - 10).ok());
  ASSERT_TRUE((*file)->WriteAt(kSector - 10, std::string(20, 'n')).ok());
  std::set<std::string> outcomes;
  Rng rng(3);
  for (int i = 0; i < 400; ++i) {
    SimDisk copy = disk;
    copy.Crash(SimDisk::CrashKind::kPowerLoss, rng);
    outcomes.insert(Read(copy, "/d/f"));
  }
  const std::string prefix(kSector - 10, 'o');
  EXPECT_TRUE(outcomes.count(prefix + std::string(20, 'n'))) << "all landed";
  EXPECT_TRUE(outcomes.count(old_text)) << "nothing landed";
  EXPECT_TRUE(outcomes.count(prefix)) << "only the truncation landed";
  // The truncation lost, the write's second sector landed: new bytes inside the old text.
  EXPECT_TRUE(outcomes.count(std::string(kSector, 'o') + std::string(10, 'n') +
                             std::string(kSector - 10, 'o')));
  for (const std::string& outcome : outcomes) {
    EXPECT_EQ(outcome.substr(0, kSector - 10), prefix) << "synced bytes before the cut changed";
  }
}

TEST(SimDisk, RenamesAreDurableOnlyAfterSyncDir) {
  SimDisk disk;
  Rng rng(4);
  for (const char* name : {"/d/a.tmp", "/d/b.tmp"}) {
    auto file = disk.OpenWritable(name, true);
    ASSERT_TRUE((*file)->WriteAt(0, name).ok());
    ASSERT_TRUE((*file)->Sync().ok());
  }
  ASSERT_TRUE(disk.Rename("/d/a.tmp", "/d/meta").ok());
  ASSERT_TRUE(disk.SyncDir("/d").ok());
  ASSERT_TRUE(disk.Rename("/d/b.tmp", "/d/meta").ok());
  std::set<std::string> outcomes;
  for (int i = 0; i < 50; ++i) {
    SimDisk copy = disk;
    copy.Crash(SimDisk::CrashKind::kPowerLoss, rng);
    outcomes.insert(Read(copy, "/d/meta"));
  }
  EXPECT_EQ(outcomes, (std::set<std::string>{"/d/a.tmp", "/d/b.tmp"}));
}

TEST(SimDisk, NothingChangesOnceThePowerIsOff) {
  SimDisk disk;
  Rng rng(5);
  auto file = disk.OpenWritable("/d/f", false);
  ASSERT_TRUE(disk.SyncDir("/d").ok());
  disk.SetCrashHook([](SimDisk::Op op, SimDisk::Risk) { return op == SimDisk::Op::kWrite; });
  EXPECT_TRUE((*file)->WriteAt(0, "lost").ok()) << "a dead process sees no error";
  EXPECT_TRUE(disk.powered_off());
  EXPECT_TRUE((*file)->Sync().ok());
  disk.SetCrashHook(nullptr);
  disk.Crash(SimDisk::CrashKind::kProcess, rng);
  EXPECT_EQ(Read(disk, "/d/f"), "");
}

}  // namespace
}  // namespace raftkv::sim

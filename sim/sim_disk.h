// SimDisk: one simulated node's disk, a storage::Env kept in memory that, after a crash, holds
// what a real disk may hold (LevelDB's fault_injection_test and TigerBeetle's storage faults are
// the models). The node's real storage code (storage/log_file.h, storage/metadata_file.h) runs on
// it unchanged.
//
// What survives a crash (the contract in storage/env.h):
//   * kProcess (kill -9): everything written survives (the page cache outlives the process), but
//     what was not synced is still not durable: a later power loss may yet lose it;
//   * kPowerLoss: for each file, the state at its last Sync, then each later change replayed in
//     part: every 512-byte sector of a write lands or not independently, and of the size changes
//     (truncate, allocate, a write past the end) a prefix in order lands (a journal commits in
//     order). So a truncation can be lost while a later write over the cut lands — a line half
//     new, half old. Renames and creations since the directory's last SyncDir: a prefix lands.
//
// Power can also go mid-turn: the crash hook, asked before every operation that changes the disk,
// may cut it right there. That operation and every later one then do nothing, though they report
// success to a process that is, in truth, already dead; the simulator drops whatever the node
// sends after that moment and crashes it when its turn returns.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/rng.h"
#include "storage/env.h"

namespace raftkv::sim {

class SimDisk : public storage::Env {
 public:
  enum class Op { kCreate, kWrite, kTruncate, kAllocate, kSync, kRename, kDelete, kSyncDir };
  enum class CrashKind { kProcess, kPowerLoss };
  // How much a crash right before an operation can tear: kUnsynced when the file holds writes not
  // yet synced, kTruncation inside the window between a truncation and the sync that makes it
  // durable. The simulator aims more crashes at the riskier ones.
  enum class Risk { kNone, kUnsynced, kTruncation };
  using CrashHook = std::function<bool(Op op, Risk risk)>;

  void SetCrashHook(CrashHook hook) { crash_hook_ = std::move(hook); }
  bool powered_off() const { return powered_off_; }
  // Cuts the power now: every later operation does nothing until Crash().
  void PowerOff() { powered_off_ = true; }
  // The node is gone: what stays on the disk is decided (see the header comment), and the disk is
  // ready for the node's restart.
  void Crash(CrashKind kind, Rng& rng);

  // storage::Env
  absl::StatusOr<std::string> ReadFile(const std::string& path) override;
  absl::StatusOr<std::string> ReadAt(const std::string& path, uint64_t offset,
                                     uint64_t length) override;
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override;
  absl::Status DeleteFile(const std::string& path) override;
  absl::Status CreateDir(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<storage::WritableFile>> OpenWritable(const std::string& path,
                                                                      bool truncate) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status SyncDir(const std::string& dir) override;
  // Process state, not disk state: held until the lock is destroyed, power or not (a dead node's
  // replica is destroyed, which releases it, as the kernel would).
  absl::StatusOr<std::unique_ptr<storage::DirLock>> LockDir(const std::string& dir) override;

  // The unit a write lands in, or not: a disk sector.
  static constexpr uint64_t kBlockBytes = 512;

 private:
  class File;
  // One change to a file since its last Sync, with what it replaced, so that the synced state can
  // be rebuilt and the change replayed in part.
  struct Change {
    enum class Kind { kWrite, kTruncate, kAllocate } kind = Kind::kWrite;
    uint64_t offset = 0;  // write, allocate; truncate: the new size
    std::string data;     // write
    uint64_t length = 0;  // allocate
    uint64_t old_size = 0;
    std::string replaced;  // the bytes it overwrote or cut off
    bool changes_size = false;
  };
  struct Inode {
    std::string bytes;  // what reads see; its size is the file's size
    std::vector<Change> unsynced;
  };
  struct NameChange {
    std::string from;  // empty: a creation
    std::string to;    // empty: a deletion
    int inode;
  };

  // Asks the crash hook; true when the operation must do nothing (the power is off).
  bool Skip(Op op, Risk risk = Risk::kNone);
  Risk RiskOf(int inode) const;
  absl::Status WriteAt(int inode, uint64_t offset, std::string_view data);
  absl::Status Truncate(int inode, uint64_t size);
  absl::Status Allocate(int inode, uint64_t offset, uint64_t length);
  absl::Status Sync(int inode);
  void Commit(const NameChange& change);  // makes it durable
  static void Undo(Inode& inode);
  static void ReplayTorn(Inode& inode, Rng& rng);

  CrashHook crash_hook_;
  bool powered_off_ = false;
  std::vector<Inode> inodes_;
  std::map<std::string, int> names_;          // what the running node sees
  std::map<std::string, int> durable_names_;  // as of the last SyncDir
  std::vector<NameChange> unsynced_names_;    // since then, in order
  std::set<std::string> locked_dirs_;
};

}  // namespace raftkv::sim

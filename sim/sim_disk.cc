#include "sim/sim_disk.h"

#include <algorithm>

namespace raftkv::sim {
namespace {

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

}  // namespace

class SimDisk::File : public storage::WritableFile {
 public:
  File(SimDisk* disk, int inode) : disk_(disk), inode_(inode) {}
  absl::Status WriteAt(uint64_t offset, std::string_view data) override {
    return disk_->WriteAt(inode_, offset, data);
  }
  absl::Status Truncate(uint64_t size) override { return disk_->Truncate(inode_, size); }
  absl::Status Allocate(uint64_t offset, uint64_t length) override {
    return disk_->Allocate(inode_, offset, length);
  }
  absl::Status Sync() override { return disk_->Sync(inode_); }

 private:
  SimDisk* disk_;
  int inode_;
};

bool SimDisk::Skip(Op op, Risk risk) {
  if (powered_off_) return true;
  if (crash_hook_ && crash_hook_(op, risk)) powered_off_ = true;
  return powered_off_;
}

SimDisk::Risk SimDisk::RiskOf(int inode) const {
  const std::vector<Change>& changes = inodes_[inode].unsynced;
  if (std::any_of(changes.begin(), changes.end(),
                  [](const Change& c) { return c.kind == Change::Kind::kTruncate; })) {
    return Risk::kTruncation;
  }
  return changes.empty() ? Risk::kNone : Risk::kUnsynced;
}

absl::StatusOr<std::string> SimDisk::ReadFile(const std::string& path) {
  auto it = names_.find(path);
  if (it == names_.end()) return absl::NotFoundError("cannot open " + path + ": no such file");
  return inodes_[it->second].bytes;
}

absl::StatusOr<std::string> SimDisk::ReadAt(const std::string& path, uint64_t offset,
                                            uint64_t length) {
  auto it = names_.find(path);
  if (it == names_.end()) return absl::NotFoundError("cannot open " + path + ": no such file");
  const std::string& bytes = inodes_[it->second].bytes;
  if (offset >= bytes.size()) return std::string();
  return bytes.substr(offset, length);
}

absl::StatusOr<uint64_t> SimDisk::FileSize(const std::string& path) {
  auto it = names_.find(path);
  if (it == names_.end()) return absl::NotFoundError("cannot open " + path + ": no such file");
  return inodes_[it->second].bytes.size();
}

absl::Status SimDisk::DeleteFile(const std::string& path) {
  auto it = names_.find(path);
  if (it == names_.end()) return absl::OkStatus();
  if (Skip(Op::kDelete)) return absl::OkStatus();
  unsynced_names_.push_back(NameChange{path, "", it->second});
  names_.erase(it);
  return absl::OkStatus();
}

absl::Status SimDisk::CreateDir(const std::string&) {
  // Directories are taken as always present: the node's directory is made once, at first start.
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<storage::WritableFile>> SimDisk::OpenWritable(
    const std::string& path, bool truncate) {
  auto it = names_.find(path);
  int inode;
  if (it != names_.end()) {
    inode = it->second;
  } else {
    inode = static_cast<int>(inodes_.size());
    inodes_.emplace_back();
    if (!Skip(Op::kCreate)) {
      names_[path] = inode;
      unsynced_names_.push_back(NameChange{"", path, inode});
    }
  }
  if (truncate) {
    if (absl::Status status = Truncate(inode, 0); !status.ok()) return status;
  }
  return std::unique_ptr<storage::WritableFile>(new File(this, inode));
}

absl::Status SimDisk::Rename(const std::string& from, const std::string& to) {
  if (Skip(Op::kRename)) return absl::OkStatus();
  auto it = names_.find(from);
  if (it == names_.end()) return absl::NotFoundError("cannot rename " + from + ": no such file");
  const int inode = it->second;
  names_.erase(it);
  names_[to] = inode;
  unsynced_names_.push_back(NameChange{from, to, inode});
  return absl::OkStatus();
}

absl::Status SimDisk::SyncDir(const std::string& dir) {
  if (Skip(Op::kSyncDir)) return absl::OkStatus();
  // Commit, in order, the name changes inside `dir`; the others stay pending.
  std::vector<NameChange> still_pending;
  for (const NameChange& change : unsynced_names_) {
    if (DirOf(change.to.empty() ? change.from : change.to) != dir) {
      still_pending.push_back(change);
      continue;
    }
    Commit(change);
  }
  unsynced_names_ = std::move(still_pending);
  return absl::OkStatus();
}

absl::Status SimDisk::WriteAt(int id, uint64_t offset, std::string_view data) {
  if (Skip(Op::kWrite, RiskOf(id))) return absl::OkStatus();
  Inode& inode = inodes_[id];
  Change change;
  change.kind = Change::Kind::kWrite;
  change.offset = offset;
  change.data = std::string(data);
  change.old_size = inode.bytes.size();
  if (offset < inode.bytes.size()) change.replaced = inode.bytes.substr(offset, data.size());
  const uint64_t end = offset + data.size();
  change.changes_size = end > inode.bytes.size();
  if (change.changes_size) inode.bytes.resize(end, '\0');
  inode.bytes.replace(offset, data.size(), data);
  inode.unsynced.push_back(std::move(change));
  return absl::OkStatus();
}

absl::Status SimDisk::Truncate(int id, uint64_t size) {
  Inode& inode = inodes_[id];
  if (size == inode.bytes.size()) return absl::OkStatus();  // nothing changes, nothing to lose
  if (Skip(Op::kTruncate, size < inode.bytes.size() ? Risk::kTruncation : RiskOf(id))) {
    return absl::OkStatus();
  }
  Change change;
  change.kind = Change::Kind::kTruncate;
  change.offset = size;
  change.old_size = inode.bytes.size();
  if (size < inode.bytes.size()) change.replaced = inode.bytes.substr(size);
  change.changes_size = true;
  inode.bytes.resize(size, '\0');
  inode.unsynced.push_back(std::move(change));
  return absl::OkStatus();
}

absl::Status SimDisk::Allocate(int id, uint64_t offset, uint64_t length) {
  if (Skip(Op::kAllocate, RiskOf(id))) return absl::OkStatus();
  Inode& inode = inodes_[id];
  Change change;
  change.kind = Change::Kind::kAllocate;
  change.offset = offset;
  change.length = length;
  change.old_size = inode.bytes.size();
  change.changes_size = offset + length > inode.bytes.size();
  if (change.changes_size) inode.bytes.resize(offset + length, '\0');
  inode.unsynced.push_back(std::move(change));
  return absl::OkStatus();
}

absl::Status SimDisk::Sync(int id) {
  if (Skip(Op::kSync, RiskOf(id))) return absl::OkStatus();
  inodes_[id].unsynced.clear();
  return absl::OkStatus();
}

void SimDisk::Commit(const NameChange& change) {
  if (!change.from.empty()) durable_names_.erase(change.from);
  if (!change.to.empty()) durable_names_[change.to] = change.inode;
}

void SimDisk::Undo(Inode& inode) {
  for (auto it = inode.unsynced.rbegin(); it != inode.unsynced.rend(); ++it) {
    // A write's `replaced` bytes start at its offset; a truncation's at the cut, its offset too.
    const Change& change = *it;
    inode.bytes.resize(change.old_size, '\0');
    if (!change.replaced.empty()) {
      inode.bytes.replace(change.offset, change.replaced.size(), change.replaced);
    }
  }
}

void SimDisk::ReplayTorn(Inode& inode, Rng& rng) {
  int size_changes = 0;
  for (const Change& change : inode.unsynced) size_changes += change.changes_size ? 1 : 0;
  // The size changes that reached the journal: a prefix, in order.
  int size_changes_landed = static_cast<int>(rng.Below(static_cast<uint64_t>(size_changes) + 1));
  uint64_t size = inode.bytes.size();
  std::string& blocks = inode.bytes;  // may run past `size` while replaying
  auto land_size_change = [&]() {
    if (size_changes_landed == 0) return false;
    --size_changes_landed;
    return true;
  };
  bool journal_open = true;  // false once a size change was lost: none after it lands either
  for (const Change& change : inode.unsynced) {
    switch (change.kind) {
      case Change::Kind::kWrite: {
        const uint64_t end = change.offset + change.data.size();
        for (uint64_t at = change.offset; at < end;) {
          const uint64_t block_end = std::min(end, (at / kBlockBytes + 1) * kBlockBytes);
          if (rng.Chance(0.5)) {
            if (blocks.size() < block_end) blocks.resize(block_end, '\0');
            blocks.replace(at, block_end - at, change.data, at - change.offset, block_end - at);
          }
          at = block_end;
        }
        if (change.changes_size) {
          journal_open = journal_open && land_size_change();
          if (journal_open) size = std::max(size, end);
        }
        break;
      }
      case Change::Kind::kTruncate:
        if (change.changes_size) {
          journal_open = journal_open && land_size_change();
          if (journal_open) {
            size = change.offset;
            if (blocks.size() > size) blocks.resize(size);  // the cut blocks are freed
          }
        }
        break;
      case Change::Kind::kAllocate:
        if (change.changes_size) {
          journal_open = journal_open && land_size_change();
          if (journal_open) size = std::max(size, change.offset + change.length);
        }
        break;
    }
  }
  blocks.resize(size, '\0');
}

void SimDisk::Crash(CrashKind kind, Rng& rng) {
  powered_off_ = false;
  if (kind == CrashKind::kProcess) return;  // the kernel keeps what was written
  for (Inode& inode : inodes_) {
    if (inode.unsynced.empty()) continue;
    Undo(inode);
    ReplayTorn(inode, rng);
    inode.unsynced.clear();
  }
  const size_t landed = rng.Below(unsynced_names_.size() + 1);
  for (size_t i = 0; i < landed; ++i) Commit(unsynced_names_[i]);
  unsynced_names_.clear();
  names_ = durable_names_;
}

namespace {
class SimDirLock : public storage::DirLock {
 public:
  SimDirLock(std::set<std::string>* locked, std::string dir) : locked_(locked), dir_(dir) {}
  ~SimDirLock() override { locked_->erase(dir_); }

 private:
  std::set<std::string>* locked_;
  std::string dir_;
};
}  // namespace

absl::StatusOr<std::unique_ptr<storage::DirLock>> SimDisk::LockDir(const std::string& dir) {
  if (absl::Status status = CreateDir(dir); !status.ok()) return status;
  if (!locked_dirs_.insert(dir).second) {
    return absl::FailedPreconditionError(dir + " is in use by another replica on this disk");
  }
  return std::make_unique<SimDirLock>(&locked_dirs_, dir);
}

}  // namespace raftkv::sim

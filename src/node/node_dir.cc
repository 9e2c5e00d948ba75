#include "node/node_dir.h"

#include "node/replica.h"
#include "storage/log_file.h"
#include "storage/metadata_file.h"
#include "storage/snapshot_file.h"

namespace raftkv::node {
namespace {

// Files a node keeps in its directory that a rebuild or a restore replaces (dump.txt stays: it
// is the node's history, not its state).
const char* const kStateFiles[] = {"logs.txt", "logs.txt.tmp", "snapshot.txt", "snapshot.txt.tmp",
                                   "snapshot.txt.incoming"};

absl::Status DeleteStateFiles(storage::Env* env, const std::string& dir) {
  for (const char* name : kStateFiles) {
    if (absl::Status s = env->DeleteFile(dir + "/" + name); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// An empty logs.txt after (base_index, base_term): created, synced, directory synced.
absl::Status WriteEmptyLog(storage::Env* env, const std::string& dir, LogIndex base_index,
                           Term base_term) {
  absl::StatusOr<std::unique_ptr<storage::LogFile>> log =
      storage::LogFile::Open(dir, storage::LogFile::Recovered{}, kCommandCodec, env);
  if (!log.ok()) return log.status();
  if (base_index == 0) return absl::OkStatus();
  return (*log)->Rewrite(base_index, base_term, 0);
}

}  // namespace

absl::StatusOr<std::string> RebuildNodeDir(storage::Env* env, const std::string& dir,
                                           int cluster_size) {
  if (cluster_size < 2) {
    return absl::FailedPreconditionError(
        "--rebuild needs other nodes to catch up from; a cluster of one has none: restore its "
        "directory from a backup (raftkv-node … --restore FILE)");
  }
  absl::StatusOr<std::unique_ptr<storage::DirLock>> lock = env->LockDir(dir);
  if (!lock.ok()) return lock.status();
  if (absl::IsNotFound(env->FileSize(dir + "/metadata.txt").status())) {
    // A fresh node, or one whose metadata.txt is gone: either way its term and vote are unknown,
    // and a rebuild must know the term it may have acknowledged entries in.
    return absl::FailedPreconditionError(
        dir +
        " has no metadata.txt: --rebuild must keep this node's term and vote, which that "
        "file held. Restore the directory from a backup (or, for a node that never ran, "
        "start it without --rebuild)");
  }
  absl::StatusOr<raft::HardState> saved = storage::LoadMetadata(dir, env);
  if (!saved.ok()) {
    return absl::FailedPreconditionError(
        std::string(saved.status().message()) +
        "; --rebuild must keep this node's term and vote, which that file held: restore the "
        "directory from a backup instead");
  }
  absl::StatusOr<uint64_t> log_bytes = env->FileSize(dir + "/logs.txt");
  absl::StatusOr<uint64_t> snapshot_bytes = env->FileSize(dir + "/" + storage::kSnapshotFile);
  // The node comes back one term ahead, having voted in it for nobody (true: it never saw that
  // term): the leader, meeting the higher term, steps down, and the others elect one of a term
  // after the rebuild, whose first committed entry ends it. Otherwise a node rebuilt under a
  // long-lived leader would stay without a vote until the next election, and a cluster of three
  // would then not survive the loss of another node.
  raft::HardState rebuilt;
  rebuilt.rebuilt_at_term = std::max(saved->rebuilt_at_term, saved->term);
  rebuilt.term = saved->term + 1;
  rebuilt.voted_for = kNoNode;
  rebuilt.commit_index = 0;
  if (saved->term == 0) rebuilt = raft::HardState{};  // it never acknowledged anything
  // The rebuild is recorded before anything is deleted: a crash in between leaves a node that
  // waits (no votes) with its old files, never one that votes from an emptied log.
  if (absl::Status s = storage::SaveMetadata(dir, rebuilt, env); !s.ok()) return s;
  if (absl::Status s = DeleteStateFiles(env, dir); !s.ok()) return s;
  if (absl::Status s = WriteEmptyLog(env, dir, 0, 0); !s.ok()) return s;
  return "rebuilt " + dir + ": discarded logs.txt (" + std::to_string(log_bytes.value_or(0)) +
         " bytes)" +
         (snapshot_bytes.ok() ? " and snapshot.txt (" + std::to_string(*snapshot_bytes) + " bytes)"
                              : std::string()) +
         "; it was in term " + std::to_string(saved->term) + " and comes back in term " +
         std::to_string(rebuilt.term) +
         " (the leader steps down once, and the others elect one). "
         "It catches up from the leader and neither votes nor campaigns until it holds a "
         "committed entry of a term after " +
         std::to_string(saved->term);
}

absl::StatusOr<std::string> RestoreNodeDir(storage::Env* env, const std::string& dir,
                                           const std::string& file, int cluster_size) {
  if (absl::Status s = env->CreateDir(dir); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<storage::DirLock>> lock = env->LockDir(dir);
  if (!lock.ok()) return lock.status();
  // metadata.txt is written last: without it, anything here is what an interrupted restore left.
  const std::string refusal =
      dir +
      " already holds a node's state; --restore starts a new cluster on empty directories "
      "only: move it aside (or give another --data-dir)";
  if (env->FileSize(dir + "/metadata.txt").ok()) return absl::FailedPreconditionError(refusal);
  absl::StatusOr<storage::LogFile::Recovered> log = storage::LogFile::Read(dir, kCommandCodec, env);
  if (!log.ok() || !log->entries.empty()) return absl::FailedPreconditionError(refusal);

  absl::StatusOr<LoadedSnapshot> loaded = LoadSnapshot(env, file);
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        "--restore " + file + ": " + std::string(loaded.status().message()));
  }
  // Written again, not copied: for this cluster's size, and by this version's writer.
  const raft::SnapshotMeta meta{loaded->meta.index, loaded->meta.term, cluster_size, 0};
  const std::string path = dir + "/" + storage::kSnapshotFile;
  absl::StatusOr<uint64_t> bytes = WriteSnapshot(env, path + ".tmp", meta, *loaded->kv);
  if (!bytes.ok()) return bytes.status();
  if (absl::Status s = env->DeleteFile(dir + "/logs.txt"); !s.ok()) return s;
  if (absl::Status s = env->Rename(path + ".tmp", path); !s.ok()) return s;
  if (absl::Status s = env->SyncDir(dir); !s.ok()) return s;
  if (absl::Status s = WriteEmptyLog(env, dir, meta.index, meta.term); !s.ok()) return s;
  const raft::HardState state{meta.term, kNoNode, meta.index, 0};
  if (absl::Status s = storage::SaveMetadata(dir, state, env); !s.ok()) return s;
  return "restored " + file + " into " + dir + ": snapshot at index " + std::to_string(meta.index) +
         " term " + std::to_string(meta.term) + " (" + std::to_string(*bytes) +
         " bytes) for a cluster of " + std::to_string(cluster_size) +
         " nodes; restore every node of the new cluster from the same file";
}

}  // namespace raftkv::node

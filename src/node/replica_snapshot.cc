// Replica: taking snapshots, compacting the log, and the two ends of InstallSnapshot (Raft §7).
// The order of every step is what makes a crash anywhere recoverable (docs/file-formats.md,
// "Recovery"): a snapshot is durable (written, synced, renamed, directory synced) before the log
// entries it covers are cut, and a received one is checked whole before it replaces anything.
#include <algorithm>

#include "kv/kv_state_machine.h"
#include "node/replica.h"

namespace raftkv::node {

absl::StatusOr<uint64_t> WriteSnapshot(storage::Env* env, const std::string& path,
                                       const raft::SnapshotMeta& meta, const kv::KvStateMachine& kv,
                                       bool sessions) {
  absl::StatusOr<std::unique_ptr<storage::SnapshotWriter>> writer =
      storage::SnapshotWriter::Create(env, path, meta, kv.SnapshotHeaderFields(sessions));
  if (!writer.ok()) return writer.status();
  absl::Status status = kv.WriteSnapshotLines(
      [&](std::string_view line) { return (*writer)->AddLine(line); }, sessions);
  if (!status.ok()) return status;
  return (*writer)->Finish();
}

absl::StatusOr<LoadedSnapshot> LoadSnapshot(
    storage::Env* env, const std::string& path,
    const std::function<void(std::string_view line)>& on_line) {
  kv::KvStateMachine::SnapshotLoader loader;
  absl::StatusOr<raft::SnapshotMeta> meta = storage::ReadSnapshot(
      env, path, [&](std::string_view fields) { return loader.Header(fields); },
      [&](std::string_view line) {
        if (on_line) on_line(line);
        return loader.Line(line);
      });
  if (!meta.ok()) return meta.status();
  absl::StatusOr<std::unique_ptr<kv::KvStateMachine>> kv = loader.Finish();
  if (!kv.ok()) {
    return absl::DataLossError(path + ": " + std::string(kv.status().message()) +
                               ": the snapshot is damaged");
  }
  return LoadedSnapshot{*meta, std::move(*kv)};
}

namespace {
// How long a node whose snapshot could not be written waits before it tries again (meanwhile
// the log only grows).
constexpr Duration kSnapshotRetry = std::chrono::seconds(10);
// A writer that has added nothing to snapshot.txt.tmp for this long is taken as stuck and stopped
// (the snapshot is then retried). It flushes every MiB, so a live one grows the file far faster;
// a stuck one is a forked child deadlocked at birth on a lock another thread held at the fork
// (suspected under GCC 12's AddressSanitizer: its libasan has no fork interceptor, so its
// allocator's locks are not reset in the child), or a disk that no longer answers. Without this
// the node would never snapshot again.
constexpr Duration kSnapshotStall = std::chrono::seconds(30);
}  // namespace

void Replica::MaybeTakeSnapshot(TimePoint now) {
  if (snapshot_writing_) {
    std::optional<absl::StatusOr<uint64_t>> written = snapshot_worker_->Poll();
    if (!written) return WatchSnapshotProgress(now);
    FinishSnapshot(std::move(*written), now);
    if (failed_) return;
  }
  const LogIndex applied = core_->applied_index();
  if (applied == 0 || applied <= core_->snapshot().index || now < snapshot_retry_at_) return;
  // About every snapshot_entries entries, each node at its own phase of that interval: when the
  // applied index crosses (k * every - phase), and at least half an interval after the last.
  // The replicas of a cluster then never all write one at once, which would slow a leader and
  // the followers it needs for a majority together (and, on one machine, make them compete for
  // CPU and disk). The log still holds at most about `every` entries past the snapshot.
  const uint64_t every = static_cast<uint64_t>(std::max<int64_t>(0, options_.snapshot_entries));
  const LogIndex last = core_->snapshot().index;
  const uint64_t phase = every * static_cast<uint64_t>(options_.raft.id) /
                         static_cast<uint64_t>(options_.raft.cluster_size);
  const bool due = every > 0 && applied - last >= (every + 1) / 2 &&
                   (applied + phase) / every > (last + phase) / every;
  const bool awaited = !snapshot_waiters_.empty() && snapshot_waiters_.begin()->first <= applied;
  if (due || awaited) StartSnapshot(now);
}

void Replica::StartSnapshot(TimePoint now) {
  const LogIndex index = core_->applied_index();
  const raft::SnapshotMeta meta{index, core_->log().TermAt(index), options_.raft.cluster_size, 0};
  const bool sessions = !options_.raft.Injected(raft::InjectedBug::kSnapshotWithoutSessions);
  // The job must not outlive this replica: Shutdown cancels it, and so does the destructor of
  // the worker the owner keeps.
  const TimePoint before = Clock(now);
  absl::Status started =
      snapshot_worker_->Start([this, meta, sessions] { return WriteSnapshotFile(meta, sessions); });
  if (!started.ok()) return FinishSnapshot(started, now);
  snapshot_writing_ = meta;
  // What taking it cost this turn (the fork, for the server's worker): dump.txt says it when the
  // snapshot is done.
  snapshot_start_pause_ = Clock(now) - before;
  snapshot_started_at_ = now;
  snapshot_progress_bytes_ = 0;
  snapshot_progress_at_ = now;
}

void Replica::WatchSnapshotProgress(TimePoint now) {
  absl::StatusOr<uint64_t> size = env_->FileSize(SnapshotPath() + ".tmp");
  const uint64_t bytes = size.ok() ? *size : 0;  // not created yet: nothing written
  if (bytes != snapshot_progress_bytes_) {
    snapshot_progress_bytes_ = bytes;
    snapshot_progress_at_ = now;
    return;
  }
  if (now - snapshot_progress_at_ < kSnapshotStall) return;
  snapshot_worker_->Cancel();
  FinishSnapshot(
      absl::DeadlineExceededError(
          "the snapshot writer added nothing to " + SnapshotPath() + ".tmp for " +
          std::to_string(kSnapshotStall / std::chrono::seconds(1)) + " s and was stopped as stuck"),
      now);
}

absl::StatusOr<uint64_t> Replica::WriteSnapshotFile(const raft::SnapshotMeta& meta,
                                                    bool sessions) const {
  return WriteSnapshot(env_, SnapshotPath() + ".tmp", meta, kv_, sessions);
}

void Replica::FinishSnapshot(absl::StatusOr<uint64_t> written, TimePoint now) {
  std::optional<raft::SnapshotMeta> meta = snapshot_writing_;
  snapshot_writing_.reset();
  if (!written.ok()) {
    ++storage_counts_.snapshot_failures;
    // The node can go on without it (its log only grows): it says so and tries again later.
    Record("WARNING could not write a snapshot (" + std::string(written.status().message()) +
           "); the log keeps every entry until one is written; trying again in " +
           std::to_string(kSnapshotRetry / std::chrono::seconds(1)) + " s");
    (void)env_->DeleteFile(SnapshotPath() + ".tmp");  // absent or not: recovery deletes it too
    snapshot_retry_at_ = now + kSnapshotRetry;
    snapshot_error_ = std::string(written.status().message());
    FailSnapshotWaiters("the snapshot could not be written: " +
                        std::string(written.status().message()));
    return;
  }
  if (!meta) return;
  meta->bytes = *written;
  ++storage_counts_.snapshots_taken;
  snapshot_write_seconds_.Observe(now - snapshot_started_at_);
  Record("snapshot at index " + std::to_string(meta->index) + " written in " +
         std::to_string(
             std::chrono::duration_cast<std::chrono::milliseconds>(now - snapshot_started_at_)
                 .count()) +
         " ms; starting it held the node for " +
         std::to_string(
             std::chrono::duration_cast<std::chrono::microseconds>(snapshot_start_pause_).count()) +
         " us");
  if (meta->index <= core_->snapshot().index) {
    // A leader's newer snapshot was installed while this one was written: it is worth nothing.
    if (absl::Status s = env_->DeleteFile(SnapshotPath() + ".tmp"); !s.ok()) return Fatal(s);
    return;
  }
  CompleteSnapshot(*meta);
}

void Replica::AnswerSnapshotWaiters(const raft::SnapshotMeta& taken) {
  ClientResult result = ClientResult::Ok(std::nullopt, options_.raft.id);
  result.snapshot = taken;
  while (!snapshot_waiters_.empty() && snapshot_waiters_.begin()->first <= taken.index) {
    ClientCallback done = std::move(snapshot_waiters_.begin()->second.done);
    snapshot_waiters_.erase(snapshot_waiters_.begin());
    done(result);
  }
}

void Replica::CompleteSnapshot(const raft::SnapshotMeta& meta) {
  const LogIndex keep = static_cast<LogIndex>(std::max<int64_t>(0, options_.snapshot_keep_entries));
  const LogIndex compact_to = meta.index > keep ? meta.index - keep : 0;
  const bool bug = options_.raft.Injected(raft::InjectedBug::kCompactBeforeSnapshotDurable);
  const TimePoint started = options_.clock ? options_.clock() : TimePoint{};
  auto cut_log = [&]() -> absl::Status {
    const LogIndex base = std::max(log_->BaseIndex(), compact_to);
    if (base <= log_->BaseIndex()) return absl::OkStatus();
    return log_->Rewrite(base, core_->log().TermAt(base), log_->LastIndex());
  };
  if (bug) {
    if (absl::Status s = cut_log(); !s.ok()) return Fatal(s);
  }
  if (absl::Status s = env_->Rename(SnapshotPath() + ".tmp", SnapshotPath()); !s.ok()) {
    return Fatal(s);
  }
  if (absl::Status s = env_->SyncDir(options_.dir); !s.ok()) return Fatal(s);
  // Durable: the entries it covers may go.
  if (!bug) {
    if (absl::Status s = cut_log(); !s.ok()) return Fatal(s);
  }
  core_->SnapshotTaken(meta, log_->BaseIndex());
  AnswerSnapshotWaiters(meta);
  const Duration took = (options_.clock ? options_.clock() : TimePoint{}) - started;
  Record("snapshot taken at index " + std::to_string(meta.index) + " term " +
         std::to_string(meta.term) + " (" + std::to_string(meta.bytes) +
         " bytes); the log starts after " + std::to_string(log_->BaseIndex()) +
         " (renaming and cutting held the node for " +
         std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(took).count()) +
         " us)");
}

void Replica::FillSnapshotChunks(std::vector<raft::Message>& messages) {
  for (raft::Message& message : messages) {
    auto* chunk = std::get_if<raft::InstallSnapshot>(&message.body);
    if (chunk == nullptr || chunk->length == 0) continue;
    // The core asks only for its current snapshot, which is snapshot.txt (SnapshotTaken follows
    // the rename within the same turn).
    absl::StatusOr<std::string> data = env_->ReadAt(SnapshotPath(), chunk->offset, chunk->length);
    if (!data.ok()) return Fatal(data.status());
    if (data->size() != chunk->length) {
      return Fatal(absl::DataLossError(SnapshotPath() + " is shorter than the snapshot recorded"));
    }
    chunk->data = std::move(*data);
    if (chunk->offset == 0) ++storage_counts_.snapshot_sends_started;
    storage_counts_.snapshot_bytes_sent += chunk->length;
  }
}

void Replica::WriteSnapshotChunks(const std::vector<raft::InstallSnapshot>& chunks, TimePoint now) {
  if (chunks.empty()) return;
  const std::string path = SnapshotPath() + ".incoming";
  for (const raft::InstallSnapshot& chunk : chunks) {
    if (chunk.offset == 0) {
      absl::StatusOr<std::unique_ptr<storage::WritableFile>> file =
          env_->OpenWritable(path, /*truncate=*/true);
      if (!file.ok()) return Fatal(file.status());
      incoming_ = std::move(*file);
      receive_started_at_ = now;
    }
    if (!incoming_) {
      return Fatal(absl::InternalError("a snapshot chunk past offset 0 with no file open"));
    }
    if (absl::Status s = incoming_->WriteAt(chunk.offset, chunk.data); !s.ok()) return Fatal(s);
  }
  if (absl::Status s = incoming_->Sync(); !s.ok()) return Fatal(s);
}

void Replica::InstallReceivedSnapshot(const raft::SnapshotMeta& meta, TimePoint now) {
  incoming_.reset();
  const std::string path = SnapshotPath() + ".incoming";
  absl::StatusOr<LoadedSnapshot> loaded = LoadSnapshot(env_, path);
  if (loaded.ok() && loaded->meta != meta) {
    loaded = absl::DataLossError("the received file describes snapshot " +
                                 std::to_string(loaded->meta.index) + "/" +
                                 std::to_string(loaded->meta.term) + ", not the one announced");
  }
  if (!loaded.ok() && !absl::IsDataLoss(loaded.status())) {
    return Fatal(loaded.status());  // this node cannot read its own disk: not the leader's fault
  }
  if (!loaded.ok()) {
    // Another process's fault (or the link's): discarded, and the leader sends it again.
    Record("WARNING a snapshot received from the leader failed its check and was discarded (" +
           std::string(loaded.status().message()) + "); the leader sends it again");
    if (absl::Status s = env_->DeleteFile(path); !s.ok()) return Fatal(s);
    ++storage_counts_.snapshots_rejected;
    core_->SnapshotInstalled(false, now);
    return;
  }
  if (absl::Status s = env_->Rename(path, SnapshotPath()); !s.ok()) return Fatal(s);
  if (absl::Status s = env_->SyncDir(options_.dir); !s.ok()) return Fatal(s);
  {
    WriterLock lock(&kv_mu_);
    kv_ = std::move(*loaded->kv);
  }
  applied_log_time_at_ = now;
  core_->SnapshotInstalled(true, now);
  // The core kept its entries after the snapshot's (if it had that entry) or none: so must the
  // file, before the reply (sent with the next Ready) says the follower holds them.
  const raft::RaftLog& log = core_->log();
  const LogIndex keep_through = std::min(log.LastIndex(), log_->LastIndex());
  if (absl::Status s = log_->Rewrite(log.BaseIndex(), log.BaseTerm(), keep_through); !s.ok()) {
    return Fatal(s);
  }
  if (observer_ != nullptr) observer_->OnSnapshotInstalled(*core_, meta);
  AnswerSnapshotWaiters(meta);  // it holds everything committed up to its index
  ++storage_counts_.snapshots_installed;
  snapshot_receive_seconds_.Observe(now - receive_started_at_);
  Record("installed a snapshot from the leader at index " + std::to_string(meta.index) + " term " +
         std::to_string(meta.term) + " (" + std::to_string(meta.bytes) + " bytes)");
}

}  // namespace raftkv::node

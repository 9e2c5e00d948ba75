#include "node/raft_driver.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <random>

#include "node/fork_snapshot_worker.h"

namespace raftkv::node {

// The test-only slow disk (TestingOptions::fsync_delay): the real file system, with every sync
// delayed while it is switched on.
class RaftDriver::SlowDisk : public storage::Env {
 public:
  SlowDisk(Duration delay, bool slow) : delay_(delay), slow_(slow) {}
  void SetSlow(bool slow) { slow_.store(slow); }

  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    return real_->ReadFile(path);
  }
  absl::StatusOr<std::string> ReadAt(const std::string& path, uint64_t offset,
                                     uint64_t length) override {
    return real_->ReadAt(path, offset, length);
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    return real_->FileSize(path);
  }
  absl::Status DeleteFile(const std::string& path) override { return real_->DeleteFile(path); }
  absl::Status CreateDir(const std::string& path) override { return real_->CreateDir(path); }
  absl::StatusOr<std::unique_ptr<storage::WritableFile>> OpenWritable(const std::string& path,
                                                                      bool truncate) override {
    absl::StatusOr<std::unique_ptr<storage::WritableFile>> file =
        real_->OpenWritable(path, truncate);
    if (!file.ok()) return file.status();
    return std::unique_ptr<storage::WritableFile>(new File(this, std::move(*file)));
  }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    return real_->Rename(from, to);
  }
  absl::Status SyncDir(const std::string& dir) override { return real_->SyncDir(dir); }
  void CloseInBackground(std::unique_ptr<storage::WritableFile> file) override {
    real_->CloseInBackground(std::move(file));
  }
  absl::StatusOr<std::unique_ptr<storage::DirLock>> LockDir(const std::string& dir) override {
    return real_->LockDir(dir);
  }

 private:
  class File : public storage::WritableFile {
   public:
    File(SlowDisk* disk, std::unique_ptr<storage::WritableFile> real)
        : disk_(disk), real_(std::move(real)) {}
    absl::Status WriteAt(uint64_t offset, std::string_view data) override {
      return real_->WriteAt(offset, data);
    }
    absl::Status Truncate(uint64_t size) override { return real_->Truncate(size); }
    absl::Status Allocate(uint64_t offset, uint64_t length) override {
      return real_->Allocate(offset, length);
    }
    absl::Status Sync() override {
      if (disk_->slow_.load()) std::this_thread::sleep_for(disk_->delay_);
      return real_->Sync();
    }

   private:
    SlowDisk* disk_;
    std::unique_ptr<storage::WritableFile> real_;
  };

  storage::Env* const real_ = storage::PosixEnv();
  const Duration delay_;
  std::atomic<bool> slow_;
};

absl::StatusOr<std::unique_ptr<RaftDriver>> RaftDriver::Start(const NodeConfig& config,
                                                              PeerTransport* transport) {
  if (absl::Status status = config::ValidateNodeConfig(config); !status.ok()) return status;
  const std::string dir = config.node_dir();
  // The directory is ours before anything in it is opened, dump.txt included: a second process
  // refused here must not write to, or rotate, the running node's event log.
  absl::StatusOr<std::unique_ptr<storage::DirLock>> lock = storage::PosixEnv()->LockDir(dir);
  if (!lock.ok()) return lock.status();
  EventLog::Options log_options;
  log_options.verbosity = config.verbosity;
  log_options.to_stdout = config.log_to_stdout;
  log_options.max_bytes = config.dump_max_bytes;
  log_options.keep_files = static_cast<int>(config.dump_keep_files);
  absl::StatusOr<std::unique_ptr<EventLog>> events =
      EventLog::Open(dir, config.raft.id, log_options);
  if (!events.ok()) return events.status();
  if (config.testing.any() || config.raft.injected_bug != raft::InjectedBug::kNone) {
    (*events)->Record("TESTING: fault injection on: clock rate " +
                      std::to_string(config.testing.clock_rate) + ", fsync delay " +
                      std::to_string(ToMillis(config.testing.fsync_delay)) + "ms" +
                      (config.testing.slow_disk_at_start ? " (from the start)" : " (on SIGUSR1)") +
                      ", injected bug " + raft::InjectedBugName(config.raft.injected_bug));
  }
  const NodeClock clock(config.testing.clock_rate);
  auto driver = std::unique_ptr<RaftDriver>(new RaftDriver(config, clock, std::move(*events)));
  driver->lock_ = std::move(*lock);
  storage::Env* env = storage::PosixEnv();
  if (config.testing.fsync_delay.count() > 0) {
    driver->slow_disk_ =
        std::make_unique<SlowDisk>(config.testing.fsync_delay, config.testing.slow_disk_at_start);
    env = driver->slow_disk_.get();
  }
  node::ReplicaOptions options;
  options.raft = config.raft;
  options.dir = dir;
  options.dir_locked_by_owner = true;
  options.max_key_bytes = config.max_key_bytes;
  options.max_value_bytes = config.max_value_bytes;
  options.max_sessions = config.max_sessions;
  options.session_idle_timeout = config.session_idle_timeout;
  options.snapshot_entries = config.snapshot_entries;
  options.snapshot_keep_entries = config.snapshot_keep_entries;
  options.snapshot_worker = std::make_shared<ForkSnapshotWorker>();
  options.clock = [clock] { return clock.Now(); };
  options.on_fatal = [raw = driver.get()](const absl::Status& status) {
    (void)raw->events_->Flush();
    std::fprintf(stderr, "raftkv-node %d: fatal: %s\n", raw->config_.raft.id,
                 std::string(status.message()).c_str());
    std::abort();
  };
  absl::StatusOr<std::unique_ptr<node::Replica>> replica =
      node::Replica::Open(std::move(options), env, transport, driver->events_.get(),
                          /*observer=*/nullptr, clock.Now(), std::random_device{}());
  if (!replica.ok()) return replica.status();
  driver->replica_ = std::move(*replica);
  driver->thread_ = std::thread([raw = driver.get()] { raw->Loop(); });
  return driver;
}

RaftDriver::RaftDriver(const NodeConfig& config, NodeClock clock, std::unique_ptr<EventLog> events)
    : config_(config), clock_(clock), events_(std::move(events)) {}

RaftDriver::~RaftDriver() { Stop(); }

void RaftDriver::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void RaftDriver::SetSlowDisk(bool slow) {
  if (slow_disk_) slow_disk_->SetSlow(slow);
}

void RaftDriver::Post(Input input) {
  bool wake = false;
  bool refused = false;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      refused = true;
    } else {
      mailbox_.push_back(std::move(input));
      // A busy driver takes the whole mailbox at its next turn: waking it would only cost a futex
      // call per request.
      wake = driver_waiting_;
    }
  }
  if (wake) wake_.notify_one();
  if (refused) AnswerWhileStopped(input);
}

void RaftDriver::AnswerWhileStopped(Input& input) {
  // Too late: answer requests at once rather than never (outside mu_: an answer finishes an RPC).
  if (auto* request = std::get_if<PeerRequest>(&input)) {
    request->reply(std::nullopt);
  } else if (auto* set = std::get_if<SetRequest>(&input)) {
    set->done(ClientResult::ShuttingDown());
  } else if (auto* open = std::get_if<OpenSessionRequest>(&input)) {
    open->done(ClientResult::ShuttingDown());
  } else if (auto* get = std::get_if<GetRequest>(&input)) {
    get->done(ClientResult::ShuttingDown());
  } else if (auto* status = std::get_if<StatusRequest>(&input)) {
    status->done(ShutdownStatus());
  } else if (auto* save = std::get_if<SaveSnapshotRequest>(&input)) {
    save->done(ClientResult::ShuttingDown());
  }
}

NodeStatus RaftDriver::ShutdownStatus() const {
  return NodeStatus{
      config_.raft.id, raft::Role::kFollower, 0, kNoNode, 0, 0, 0, Duration(0), {}, 0, {}, {}, {}};
}

void RaftDriver::Deliver(raft::Message message) { Post(std::move(message)); }
void RaftDriver::HandlePeerRequest(raft::Message request, ReplyFn reply) {
  Post(PeerRequest{std::move(request), std::move(reply)});
}
void RaftDriver::ReportPeerError(NodeId peer) { Post(PeerError{peer}); }
void RaftDriver::Set(kv::SetCommand command, ClientCallback done, AnswerBy answer_by) {
  Post(SetRequest{std::move(command), std::move(done), answer_by});
}
void RaftDriver::OpenSession(ClientCallback done, AnswerBy answer_by) {
  Post(OpenSessionRequest{std::move(done), answer_by});
}
void RaftDriver::Get(std::string key, ClientCallback done, AnswerBy answer_by) {
  if (replica_->TryLeaseRead(key, done)) return;
  Post(GetRequest{std::move(key), std::move(done), answer_by});
}

void RaftDriver::SaveSnapshot(ClientCallback done, AnswerBy answer_by) {
  Post(SaveSnapshotRequest{std::move(done), answer_by});
}

std::string RaftDriver::snapshot_path() const {
  return config_.node_dir() + "/" + storage::kSnapshotFile;
}

NodeStatus RaftDriver::Status() {
  auto promise = std::make_shared<std::promise<NodeStatus>>();
  std::future<NodeStatus> future = promise->get_future();
  Status([promise](const NodeStatus& status) { promise->set_value(status); });
  if (future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    return ShutdownStatus();
  }
  return future.get();
}

void RaftDriver::Status(std::function<void(const NodeStatus&)> done) {
  Post(StatusRequest{std::move(done)});
}

TimePoint RaftDriver::Local(AnswerBy answer_by) const {
  if (answer_by == kNoAnswerBy) return TimePoint::max();
  // Real time left, as the node's clock will count it (the test clock may run at another rate).
  const auto left = answer_by - std::chrono::steady_clock::now();
  return Now() + std::chrono::duration_cast<Duration>(left * config_.testing.clock_rate);
}

void RaftDriver::Loop() {
  for (;;) {
    std::deque<Input> batch;
    {
      MutexLock lock(&mu_);
      // Sleep until there is work or the replica's next wake-up (capped, to stay responsive).
      const Duration until_wake = replica_->NextWake() - Now();
      const auto timeout =
          std::clamp(until_wake, Duration(0), Duration(std::chrono::milliseconds(100)));
      if (mailbox_.empty() && !stopping_ && timeout.count() > 0) {
        driver_waiting_ = true;
        wake_.wait_for(mu_, timeout);
        driver_waiting_ = false;
      }
      batch.swap(mailbox_);
      if (stopping_ && batch.empty()) break;
    }
    const TimePoint now = Now();
    for (Input& input : batch) Handle(input, now);
    replica_->Process(Now());
    if (absl::Status status = events_->Flush(); !status.ok()) {
      std::fprintf(stderr, "raftkv-node %d: %s\n", config_.raft.id,
                   std::string(status.message()).c_str());
    }
  }
  replica_->Shutdown();
  (void)events_->Flush();
}

void RaftDriver::Handle(Input& input, TimePoint now) {
  if (auto* message = std::get_if<raft::Message>(&input)) {
    replica_->Step(*message, now);
  } else if (auto* request = std::get_if<PeerRequest>(&input)) {
    replica_->StepRequest(request->message, std::move(request->reply), now);
  } else if (auto* error = std::get_if<PeerError>(&input)) {
    replica_->ReportPeerError(error->peer, now);
  } else if (auto* set = std::get_if<SetRequest>(&input)) {
    replica_->Set(std::move(set->command), std::move(set->done), Local(set->answer_by), now);
  } else if (auto* open = std::get_if<OpenSessionRequest>(&input)) {
    replica_->OpenSession(std::move(open->done), Local(open->answer_by), now);
  } else if (auto* get = std::get_if<GetRequest>(&input)) {
    replica_->Get(std::move(get->key), std::move(get->done), Local(get->answer_by), now);
  } else if (auto* status = std::get_if<StatusRequest>(&input)) {
    status->done(replica_->Status(now));
  } else if (auto* save = std::get_if<SaveSnapshotRequest>(&input)) {
    replica_->SaveSnapshot(std::move(save->done), Local(save->answer_by), now);
  }
}

}  // namespace raftkv::node

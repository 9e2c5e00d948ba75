#include "node/event_log.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <utility>

#include "storage/file_util.h"

namespace raftkv::node {
namespace {

std::string Id(NodeId id) { return std::to_string(id); }

}  // namespace

std::optional<std::string> RenderEvent(NodeId self, const raft::Event& event, Verbosity verbosity) {
  using Kind = raft::Event::Kind;
  const bool chatty = event.kind == Kind::kHeartbeatRound || event.kind == Kind::kAppendAccepted;
  if (chatty && verbosity <= Verbosity::kQuiet) return std::nullopt;
  switch (event.kind) {
    case Kind::kHeartbeatRound:
      return "Leader " + Id(self) + " sending heartbeat & Renewing Lease";
    case Kind::kLeaseRenewalFailed:
      return "Leader " + Id(self) + " lease renewal failed. Stepping Down.";
    case Kind::kWaitingForOldLease:
      return std::string("New Leader waiting for Old Leader Lease to timeout.");
    case Kind::kElectionTimeout:
      return "Node " + Id(self) + " election timer timed out, Starting election.";
    case Kind::kBecameLeader:
      return "Node " + Id(self) + " became the leader for term " + std::to_string(event.term) + ".";
    case Kind::kSteppedDown:
      return Id(self) + " Stepping down";
    case Kind::kVoteGranted:
      return "Vote granted for Node " + Id(event.peer) + " in term " + std::to_string(event.term) +
             ".";
    case Kind::kVoteDenied:
      return "Vote denied for Node " + Id(event.peer) + " in term " + std::to_string(event.term) +
             ".";
    case Kind::kAppendAccepted:
      return "Node " + Id(self) + " accepted AppendEntries RPC from " + Id(event.peer) + ".";
    case Kind::kAppendRejected:
      return "Node " + Id(self) + " rejected AppendEntries RPC from " + Id(event.peer) + ".";
    case Kind::kRebuildEnded:
      return "Node " + Id(self) + " caught up after its rebuild (an entry of term " +
             std::to_string(event.term) + " is committed here): it votes and campaigns again.";
  }
  return std::nullopt;
}

std::string CommittedLine(NodeId self, bool leader, const std::string& operation) {
  return "Node " + Id(self) + (leader ? " (leader)" : " (follower)") + " committed the entry " +
         operation + " to the state machine.";
}

std::string ReceivedLine(NodeId self, const std::string& operation) {
  return "Node " + Id(self) + " (leader) received an " + operation + " request.";
}

std::string RpcErrorLine(NodeId peer) {
  return "Error occurred while sending RPC to Node " + Id(peer) + ".";
}

std::string UtcTimestampNow() {
  const auto now = std::chrono::system_clock::now();
  const int64_t epoch_millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  // Lines come in bursts (a batch of commits): format once per millisecond.
  thread_local int64_t cached_millis = -1;
  thread_local std::string cached;
  if (epoch_millis == cached_millis) return cached;
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis = epoch_millis % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[96];  // room for any int the compiler imagines in each field
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(millis));
  cached_millis = epoch_millis;
  cached = text;
  return cached;
}

absl::StatusOr<std::unique_ptr<EventLog>> EventLog::Open(const std::string& dir, NodeId self,
                                                         Options options) {
  if (absl::Status status = storage::CreateDirectories(dir); !status.ok()) return status;
  if (!options.timestamp) options.timestamp = UtcTimestampNow;
  const std::string path = dir + "/dump.txt";
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (file == nullptr) return storage::ErrnoError("cannot open", path);
  std::fseek(file, 0, SEEK_END);
  const int64_t size = std::ftell(file);
  return std::unique_ptr<EventLog>(new EventLog(dir, self, std::move(options), file, size));
}

EventLog::EventLog(std::string dir, NodeId self, Options options, std::FILE* file, int64_t size)
    : dir_(std::move(dir)), self_(self), options_(std::move(options)), file_(file), size_(size) {}

EventLog::~EventLog() {
  (void)Flush();
  if (file_ != nullptr) std::fclose(file_);
}

void EventLog::Record(const std::string& statement) {
  buffer_ += options_.timestamp();
  buffer_ += ' ';
  buffer_ += statement;
  buffer_ += '\n';
  // A turn that applies a long backlog (a restart replaying its log) records a line per entry:
  // written out as it goes, not held until the turn ends (that held 10 MB and more).
  if (buffer_.size() >= kFlushBytes) {
    if (absl::Status status = FlushBuffer(); !status.ok() && deferred_error_.ok()) {
      deferred_error_ = status;
    }
  }
}

void EventLog::RecordEvent(const raft::Event& event) {
  if (std::optional<std::string> line = RenderEvent(self_, event, options_.verbosity)) {
    Record(*line);
  }
}

absl::Status EventLog::Flush() {
  // An earlier flush's error is reported once, after this one has tried (and cleared the buffer).
  absl::Status earlier = std::exchange(deferred_error_, absl::OkStatus());
  absl::Status status = FlushBuffer();
  return earlier.ok() ? status : earlier;
}

absl::Status EventLog::FlushBuffer() {
  if (buffer_.empty()) return absl::OkStatus();
  if (options_.to_stdout) {
    std::fwrite(buffer_.data(), 1, buffer_.size(), stdout);
    std::fflush(stdout);
  }
  const std::string path = dir_ + "/dump.txt";
  if (file_ == nullptr && (file_ = std::fopen(path.c_str(), "a")) == nullptr) {
    buffer_.clear();
    return storage::ErrnoError("cannot reopen", path);
  }
  if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size() ||
      std::fflush(file_) != 0) {
    buffer_.clear();  // a diagnostic log must not grow memory while the disk is full
    return storage::ErrnoError("cannot write", path);
  }
  size_ += static_cast<int64_t>(buffer_.size());
  buffer_.clear();
  return size_ > options_.max_bytes ? Rotate() : absl::OkStatus();
}

absl::Status EventLog::Rotate() {
  const std::string path = dir_ + "/dump.txt";
  const auto rotated = [&path](int n) { return path + "." + std::to_string(n); };
  std::fclose(file_);
  file_ = nullptr;  // reopened here, or by the next Flush if that fails
  // dump.txt is moved aside first: if that fails, the rotated files stay as they are, and the
  // next try waits for another max_bytes (a lasting failure must not eat the history).
  const std::string staged = path + ".rotating";
  if (std::rename(path.c_str(), staged.c_str()) != 0) {
    absl::Status status = storage::ErrnoError("cannot rotate", path);
    file_ = std::fopen(path.c_str(), "a");
    size_ = 0;
    return status;
  }
  // Oldest first, so that no rename lands on a file still to be moved; then whatever lies past
  // the last kept one (left by an earlier, larger DUMP_KEEP_FILES) goes.
  std::remove(rotated(options_.keep_files).c_str());
  for (int n = options_.keep_files - 1; n >= 1; --n) {
    std::rename(rotated(n).c_str(), rotated(n + 1).c_str());  // absent files: nothing to move
  }
  for (int n = options_.keep_files + 1; std::remove(rotated(n).c_str()) == 0; ++n) {
  }
  const bool renamed = std::rename(staged.c_str(), rotated(1).c_str()) == 0;
  absl::Status status = renamed ? absl::OkStatus() : storage::ErrnoError("cannot rotate", staged);
  file_ = std::fopen(path.c_str(), "a");
  size_ = 0;
  if (!renamed) return status;
  if (file_ == nullptr) return storage::ErrnoError("cannot reopen", path);
  return absl::OkStatus();
}

}  // namespace raftkv::node

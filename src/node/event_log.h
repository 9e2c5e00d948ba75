// dump.txt: the node's event log for operators, one event a line with a UTC timestamp prefix, in
// the wording below (braces filled in), echoed to stdout when configured:
//
//   Leader {NodeID} sending heartbeat & Renewing Lease
//   Leader {NodeID} lease renewal failed. Stepping Down.
//   New Leader waiting for Old Leader Lease to timeout.
//   Node {NodeID} election timer timed out, Starting election.
//   Node {NodeID} became the leader for term {TermNumber}.
//   Error occurred while sending RPC to Node {followerNodeID}.
//   Node {NodeID} (follower) committed the entry {entry operation} to the state machine.
//   Node {NodeID} (leader) received an {entry operation} request.
//   Node {NodeID} (leader) committed the entry {entry operation} to the state machine.
//   Node {NodeID} accepted AppendEntries RPC from {LeaderID}.
//   Node {NodeID} rejected AppendEntries RPC from {LeaderID}.
//   Vote granted for Node {CandidateID} in term {Term}.
//   Vote denied for Node {CandidateID} in term {Term}.
//   {NodeID} Stepping down
//
// Cost: lines are buffered and written with one write() per Flush() (the driver flushes once per
// batch of work), never fsync'ed: the log is diagnostic, not state. VERBOSITY=quiet drops the
// per-heartbeat lines (heartbeat rounds and accepted AppendEntries), VERBOSITY=minimal also the
// per-request ones (received, committed). While the node runs, the file is rotated when it passes
// DUMP_MAX_BYTES: dump.txt.1 becomes .2 and so on, dump.txt becomes .1, and files past
// DUMP_KEEP_FILES are deleted, so the event log never takes more than (keep + 1) × max bytes.
//
// Thread-safety: none; the node's driver thread owns it.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "config/node_config.h"
#include "node/replica.h"
#include "raft/ready.h"

namespace raftkv::node {

using config::Verbosity;

// The statement for a core event, or nullopt when `verbosity` leaves it out.
std::optional<std::string> RenderEvent(NodeId self, const raft::Event& event, Verbosity verbosity);
// `operation` is the entry as in logs.txt without its term: "SET k v" or "NO-OP".
std::string CommittedLine(NodeId self, bool leader, const std::string& operation);
std::string ReceivedLine(NodeId self, const std::string& operation);
std::string RpcErrorLine(NodeId peer);

class EventLog : public node::EventSink {
 public:
  struct Options {
    Verbosity verbosity = Verbosity::kNormal;
    bool to_stdout = true;
    int64_t max_bytes = 64 << 20;
    int keep_files = 3;  // rotated files kept: dump.txt.1 (newest) … dump.txt.<keep_files>
    // Returns the timestamp prefix; injectable for tests.
    std::function<std::string()> timestamp;
  };

  static absl::StatusOr<std::unique_ptr<EventLog>> Open(const std::string& dir, NodeId self,
                                                        Options options);
  ~EventLog() override;
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  void Record(const std::string& statement) override;
  bool RecordsRequests() const override { return options_.verbosity > Verbosity::kMinimal; }
  void RecordEvent(const raft::Event& event) override;
  void RecordReceived(const std::string& operation) override {
    Record(ReceivedLine(self_, operation));
  }
  void RecordCommitted(bool leader, const std::string& operation) override {
    Record(CommittedLine(self_, leader, operation));
  }
  void RecordPeerError(NodeId peer) override { Record(RpcErrorLine(peer)); }
  // Writes what is buffered; rotates the file when it has grown past max_bytes.
  absl::Status Flush();

 private:
  EventLog(std::string dir, NodeId self, Options options, std::FILE* file, int64_t size);
  absl::Status Rotate();
  absl::Status FlushBuffer();  // writes buffer_ out and clears it, whatever happens

  std::string dir_;
  NodeId self_;
  Options options_;
  std::FILE* file_;
  int64_t size_;
  std::string buffer_;
  // An error of a flush that Record made on its own (buffer_ reached kFlushBytes), for the next
  // Flush() to report.
  absl::Status deferred_error_;
  static constexpr size_t kFlushBytes = 1 << 20;
};

std::string UtcTimestampNow();

}  // namespace raftkv::node

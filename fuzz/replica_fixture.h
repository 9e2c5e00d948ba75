// A node::Replica on the simulator's in-memory disk, for the fuzz targets that drive a whole node
// (its core, files and state machine) with untrusted input: what the server runs, minus gRPC.
// Every request's callback must be called exactly once, and the node must never report itself
// failed (on_fatal): both would be bugs an input from another process exposed.
#pragma once

#include <memory>

#include "fuzz/fuzz_support.h"
#include "node/replica.h"
#include "node/snapshot_worker.h"
#include "sim/sim_disk.h"

namespace raftkv::fuzz {

class NullLink : public node::PeerTransport {
 public:
  void Send(const raft::Message&) override {}
};

class ReplicaFixture {
 public:
  // Node 0 of `cluster_size`, snapshotting every `snapshot_entries` applied entries.
  ReplicaFixture(int cluster_size, int64_t snapshot_entries) {
    options_.raft.id = 0;
    options_.raft.cluster_size = cluster_size;
    options_.dir = "/node0";
    options_.max_key_bytes = 64;
    options_.max_value_bytes = 256;
    options_.max_sessions = 4;  // small, so that eviction and refusal are reached
    options_.session_idle_timeout = std::chrono::seconds(1);
    options_.snapshot_entries = snapshot_entries;
    options_.snapshot_keep_entries = 2;
    options_.clock = [this] { return now_; };
    options_.on_fatal = [](const absl::Status& status) {
      std::fprintf(stderr, "replica failed: %s\n", std::string(status.message()).c_str());
      Expect(false, "the node never fails on another process's input");
    };
    Open();
  }
  ~ReplicaFixture() { Close(); }

  node::Replica& replica() { return *replica_; }
  TimePoint now() const { return now_; }
  void Advance(Duration by) {
    now_ += by;
    replica_->Process(now_);
  }
  node::ClientCallback Callback() {
    ++outstanding_;
    auto called = std::make_shared<bool>(false);
    return [this, called](const node::ClientResult&) {
      Expect(!*called, "a request is answered once");
      *called = true;
      --outstanding_;
    };
  }
  node::ReplyFn ReplyCallback() {
    ++outstanding_;
    auto called = std::make_shared<bool>(false);
    return [this, called](std::optional<raft::Message>) {
      Expect(!*called, "a peer request is answered once");
      *called = true;
      --outstanding_;
    };
  }
  // Shuts the node down (everything waiting is answered) and opens it again from its disk, as a
  // restart would.
  void Restart() {
    Close();
    Open();
  }

 private:
  void Open() {
    options_.snapshot_worker = std::make_shared<node::InlineSnapshotWorker>();
    absl::StatusOr<std::unique_ptr<node::Replica>> opened =
        node::Replica::Open(options_, &disk_, &link_, nullptr, nullptr, now_, 1);
    if (!opened.ok()) {
      std::fprintf(stderr, "cannot open: %s\n", std::string(opened.status().message()).c_str());
    }
    Expect(opened.ok(), "the node opens from what it wrote");
    replica_ = std::move(*opened);
  }
  void Close() {
    if (replica_ == nullptr) return;
    replica_->Shutdown();
    Expect(outstanding_ == 0, "every request was answered by shutdown");
    replica_.reset();
  }

  node::ReplicaOptions options_;
  sim::SimDisk disk_;
  NullLink link_;
  TimePoint now_{};
  int64_t outstanding_ = 0;
  std::unique_ptr<node::Replica> replica_;
};

}  // namespace raftkv::fuzz

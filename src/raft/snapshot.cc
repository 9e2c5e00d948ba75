// Snapshots and InstallSnapshot (Raft §7, Figure 13), chunked with flow control.
//
// The core never holds a snapshot's bytes. The driver writes snapshots and tells the core when one
// is durable (SnapshotTaken); a leader's core then sends followers that need compacted entries
// InstallSnapshot chunks by offset and length, whose bytes the driver fills in from the file; a
// follower's core hands the chunks it accepts to its driver to write (Ready::snapshot_chunks) and,
// after the last, waits for the driver to check and load the file (SnapshotInstalled).
//
// Leases and timers (design.md §4): a chunk is, to the follower, what an AppendEntries is. It
// comes only from the leader of the current term, so it resets the election timer and records the
// lease it carries; its reply echoes the send time, which renews the leader's lease like an
// AppendEntries reply does.
#include <algorithm>

#include "common/check.h"
#include "raft/raft_node.h"

namespace raftkv::raft {

void RaftNode::SnapshotTaken(const SnapshotMeta& meta, LogIndex compact_to) {
  AcceptInput(last_now_);
  RAFTKV_CHECK(meta.index <= applied_index_, "a snapshot holds only applied entries");
  RAFTKV_CHECK(compact_to <= meta.index, "the log is cut only up to the snapshot");
  RAFTKV_CHECK(meta.index == 0 || meta.index >= snapshot_.index, "snapshots only move forward");
  RAFTKV_CHECK(log_.Holds(meta.index, meta.term), "the snapshot's last entry is in the log");
  snapshot_ = meta;
  log_.CompactTo(std::min(compact_to, log_.StableIndex()));
  // Transfers of an older snapshot start over with this one: its file is gone.
  for (NodeId peer = 0; peer < config_.cluster_size; ++peer) {
    Progress& progress = progress_[peer];
    if (peer != config_.id && progress.mode == Progress::Mode::kSnapshot &&
        progress.snapshot != meta) {
      progress.StartSnapshot(meta, last_now_);
    }
  }
  CheckInvariants();
}

bool RaftNode::SendSnapshotChunks(NodeId peer, TimePoint now) {
  Progress& progress = progress_[peer];
  const uint64_t chunk = static_cast<uint64_t>(config_.snapshot_chunk_bytes);
  const uint64_t window = chunk * static_cast<uint64_t>(config_.max_inflight_snapshot_chunks);
  bool sent = false;
  while (progress.snapshot_sent < progress.snapshot.bytes &&
         progress.snapshot_sent - progress.snapshot_acked < window) {
    const uint64_t length = std::min(chunk, progress.snapshot.bytes - progress.snapshot_sent);
    SendSnapshotChunk(peer, progress.snapshot_sent, length, now);
    progress.snapshot_sent += length;
    sent = true;
  }
  return sent;
}

void RaftNode::SendSnapshotChunk(NodeId peer, uint64_t offset, uint64_t length, TimePoint now) {
  const Progress& progress = progress_[peer];
  InstallSnapshot chunk;
  chunk.snapshot = progress.snapshot;
  chunk.offset = offset;
  chunk.length = length;
  chunk.done = length > 0 && offset + length == progress.snapshot.bytes;
  chunk.lease_duration = config_.lease_duration;
  chunk.sent_at = now;
  Send(peer, std::move(chunk));
}

void RaftNode::HandleInstallSnapshot(const Message& message, TimePoint now) {
  const auto& request = std::get<InstallSnapshot>(message.body);
  InstallSnapshotReply reply;
  reply.snapshot_index = request.snapshot.index;
  reply.echoed_sent_at = request.sent_at;
  if (!FollowLeader(message, request.lease_duration, now)) {
    Send(message.from, reply);
    return;
  }
  const SnapshotMeta& meta = request.snapshot;
  if (meta.index <= commit_index_ && !config_.Injected(InjectedBug::kInstallOlderSnapshot)) {
    // We already hold everything it covers, committed, so our log matches the leader's up to its
    // end (Leader Completeness, §5.4.3). Installing it would roll our state back.
    if (receiving_ && receiving_->meta.index <= commit_index_) receiving_.reset();  // obsolete
    reply.received = meta.bytes;
    reply.installed = true;
    reply.match_index = meta.index;
    Send(message.from, reply);
    return;
  }
  const bool well_formed =
      meta.index > 0 && meta.index <= kMaxLogIndex && meta.term > 0 && meta.term <= message.term &&
      meta.cluster_size == config_.cluster_size && request.offset <= meta.bytes &&
      request.data.size() <= meta.bytes - request.offset &&
      request.done ==
          (request.data.size() > 0 && request.offset + request.data.size() == meta.bytes);
  if (!well_formed) {
    Send(message.from, reply);  // received 0: nothing a correct leader would send
    return;
  }
  if (request.offset == 0 && (!receiving_ || receiving_->meta != meta)) {
    receiving_ = Receiving{meta, 0};  // a new transfer (a chunk at 0 of the same one resumes)
  }
  if (receiving_ && receiving_->meta == meta && request.offset == receiving_->received &&
      !request.data.empty()) {
    chunks_to_write_.push_back(request);
    receiving_->received += request.data.size();
    if (request.done) {
      install_pending_ = message;  // answered by SnapshotInstalled, once the driver checked it
      install_pending_->body = InstallSnapshot{meta, 0, 0, {}, true, {}, request.sent_at};
      return;
    }
  }
  // Out of order (a chunk lost before it) or a repeat: say what we hold; the leader resends.
  reply.received = receiving_ && receiving_->meta == meta ? receiving_->received : 0;
  Send(message.from, reply);
}

void RaftNode::MaybeDropOvertakenInstall() {
  const auto& last_chunk = std::get<InstallSnapshot>(install_pending_->body);
  const SnapshotMeta meta = last_chunk.snapshot;
  if (meta.index > commit_index_ || config_.Injected(InjectedBug::kInstallOlderSnapshot)) return;
  // Since its last chunk came, this node learned a commit index at or past the snapshot (the same
  // turn stepped the leader's AppendEntries): the entries up to it are applied from the log, and
  // installing the older image on top would lose those after it. Nothing to install, or write.
  InstallSnapshotReply reply;
  reply.snapshot_index = meta.index;
  reply.received = meta.bytes;
  reply.installed = true;
  reply.match_index = meta.index;
  reply.echoed_sent_at = last_chunk.sent_at;
  if (current_term_ == install_pending_->term) Send(install_pending_->from, reply);
  std::erase_if(chunks_to_write_,
                [&](const InstallSnapshot& chunk) { return chunk.snapshot == meta; });
  install_pending_.reset();
  receiving_.reset();
}

void RaftNode::SnapshotInstalled(bool ok, TimePoint now) {
  RAFTKV_CHECK(install_handed_out_ && install_pending_.has_value() && !ready_outstanding_,
               "SnapshotInstalled answers the Ready that carried snapshot_to_install");
  const Message request = std::move(*install_pending_);
  install_pending_.reset();
  install_handed_out_ = false;
  AcceptInput(now);
  const SnapshotMeta meta = std::get<InstallSnapshot>(request.body).snapshot;
  InstallSnapshotReply reply;
  reply.snapshot_index = meta.index;
  reply.echoed_sent_at = std::get<InstallSnapshot>(request.body).sent_at;
  receiving_.reset();
  if (ok) {
    // Figure 13, steps 6 and 7: keep the entries after the snapshot's own if our log has it;
    // otherwise the whole log is superseded.
    if (meta.index <= commit_index_) {
      // The driver rolled the state machine back to an older state; the log stays as it is.
      RAFTKV_CHECK(config_.Injected(InjectedBug::kInstallOlderSnapshot),
                   "TakeReady hands out no snapshot the commit index has overtaken");
    } else if (log_.Holds(meta.index, meta.term)) {
      log_.CompactTo(meta.index);
    } else {
      log_.ResetTo(meta.index, meta.term);
    }
    if (meta.index > snapshot_.index) snapshot_ = meta;
    commit_index_ = std::max(commit_index_, meta.index);
    applied_index_ = std::max(applied_index_, meta.index);
    MaybeEndRebuild();
    reply.received = meta.bytes;
    reply.installed = true;
    reply.match_index = meta.index;
    // Checking and loading the file took time that no leader message could reset the timer in.
    ResetElectionTimer(now);
  }
  // Not ok: received 0 makes the leader start the transfer over.
  if (current_term_ == request.term) Send(request.from, reply);
  CheckInvariants();
}

void RaftNode::HandleInstallSnapshotReply(const Message& message, TimePoint now) {
  if (role_ != Role::kLeader || message.term != current_term_) return;  // stale
  const auto& reply = std::get<InstallSnapshotReply>(message.body);
  Progress& progress = progress_[message.from];
  progress.RecordAck(reply.echoed_sent_at, leader_since_, now);  // renews our lease (lease.cc)
  if (reply.installed) {
    if (reply.match_index > log_.LastIndex()) return;  // cannot be ours: ignore
    if (progress.mode == Progress::Mode::kSnapshot) {
      progress.SnapshotInstalled(reply.match_index);
    } else {
      progress.Acknowledged(reply.match_index);
    }
    MaybeAdvanceCommit(now);
    SendAppendsTo(message.from, now);
    return;
  }
  if (progress.mode != Progress::Mode::kSnapshot ||
      reply.snapshot_index != progress.snapshot.index) {
    return;  // about a transfer we are no longer making
  }
  progress.SnapshotReceived(reply.received, reply.echoed_sent_at, now);
  SendSnapshotChunks(message.from, now);
}

}  // namespace raftkv::raft

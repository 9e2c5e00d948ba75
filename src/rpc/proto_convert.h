// Mapping between the core's messages (raft/message.h) and the peer protocol (proto/raftkv.proto).
// Decoding validates everything a peer could get wrong — node ids outside the cluster, a request
// addressed to another node, entries that are not contiguous after prev_log_index, negative
// durations — so a malformed request is refused with a clear error and never reaches the core.
#pragma once

#include "absl/status/statusor.h"
#include "raft/message.h"
#include "raftkv.pb.h"

namespace raftkv::rpc {

// Each Encode* requires the matching body type in `message`.
AppendEntriesRequest EncodeAppendEntries(const raft::Message& message);
AppendEntriesResponse EncodeAppendEntriesReply(const raft::Message& message);
RequestVoteRequest EncodeRequestVote(const raft::Message& message);
RequestVoteResponse EncodeRequestVoteReply(const raft::Message& message);
InstallSnapshotRequest EncodeInstallSnapshot(const raft::Message& message);
InstallSnapshotResponse EncodeInstallSnapshotReply(const raft::Message& message);

// `self` is the receiving node; `cluster_size` bounds every node id.
absl::StatusOr<raft::Message> Decode(const AppendEntriesRequest& request, NodeId self,
                                     int cluster_size);
absl::StatusOr<raft::Message> Decode(const AppendEntriesResponse& response, NodeId self,
                                     int cluster_size);
absl::StatusOr<raft::Message> Decode(const RequestVoteRequest& request, NodeId self,
                                     int cluster_size);
absl::StatusOr<raft::Message> Decode(const RequestVoteResponse& response, NodeId self,
                                     int cluster_size);
absl::StatusOr<raft::Message> Decode(const InstallSnapshotRequest& request, NodeId self,
                                     int cluster_size);
absl::StatusOr<raft::Message> Decode(const InstallSnapshotResponse& response, NodeId self,
                                     int cluster_size);

}  // namespace raftkv::rpc

// metadata.txt: the node's Raft hard state, human readable, replaced atomically (temp file, fsync,
// rename, fsync directory), so a crash leaves either the old or the new version:
//
//   # raftkv node metadata (replaced atomically; do not edit while the node runs)
//   term 5
//   voted_for 1
//   commit_index 12
//
// voted_for is a node id or `none`. A missing file is a fresh node (term 0, no vote).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "raft/ready.h"
#include "storage/env.h"

namespace raftkv::storage {

absl::StatusOr<raft::HardState> LoadMetadata(const std::string& dir, Env* env = PosixEnv());
absl::Status SaveMetadata(const std::string& dir, const raft::HardState& state,
                          Env* env = PosixEnv());
std::string FormatMetadata(const raft::HardState& state);

}  // namespace raftkv::storage

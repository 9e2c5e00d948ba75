// Preparing a node's directory before it starts, on an operator's explicit request: rebuilding a
// node whose log or snapshot was lost or damaged, and restoring a backup to begin a new cluster.
// Both change files only in the order docs/file-formats.md ("Recovery") allows: a crash anywhere
// leaves either the old state or a directory the node refuses to start from (and the operator
// runs the same command again).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "storage/env.h"

namespace raftkv::node {

// raftkv-node --rebuild: discards the node's log and snapshot so that it catches up from the
// leader (by InstallSnapshot). Its term T is not forgotten (it may have voted in it): the node
// comes back in term T + 1, having voted for nobody there, with rebuilt_at_term T in
// metadata.txt; until it holds a committed entry of a term after T, it grants no vote and starts
// no election (raft::HardState::rebuilt_at_term says why this keeps every acknowledged write).
// Coming back a term ahead makes the leader step down once, so that the others elect one of a
// later term at once and the rebuild ends as soon as the node has caught up. Refused when
// metadata.txt itself is damaged (the term and vote a rebuild must keep are unknown) and in a
// cluster of one (there is nobody to catch up from). Returns what was done, for the operator.
absl::StatusOr<std::string> RebuildNodeDir(storage::Env* env, const std::string& dir,
                                           int cluster_size);

// raftkv-node --restore FILE: makes an empty node directory start from the backup `file`
// (raftkv snapshot save): the file is checked whole and loaded, written as this node's
// snapshot.txt for a cluster of `cluster_size` nodes, with an empty log after it and a term and
// commit index at its own. Every node of the new cluster is restored from the same file. Refused
// when the directory already holds a node's state. Returns what was done, for the operator.
absl::StatusOr<std::string> RestoreNodeDir(storage::Env* env, const std::string& dir,
                                           const std::string& file, int cluster_size);

}  // namespace raftkv::node

// metadata.txt: the node's Raft hard state, human readable, replaced atomically (temp file, fsync,
// rename, fsync directory), so a crash leaves either the old or the new version:
//
//   # raftkv node metadata (replaced atomically; do not edit while the node runs)
//   term 5
//   voted_for 1
//   commit_index 12
//   crc 1a2b3c4d
//
// voted_for is a node id or `none`; crc is a CRC-32 of every byte before its line (files written
// before checksums have none). A missing file is a fresh node (term 0, no vote). The grammar is in
// docs/file-formats.md.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "raft/ready.h"
#include "storage/env.h"

namespace raftkv::storage {

// `checksummed`, if given, tells whether the file had its crc line (files from before checksums
// have none).
absl::StatusOr<raft::HardState> LoadMetadata(const std::string& dir, Env* env = PosixEnv(),
                                             bool* checksummed = nullptr);
absl::Status SaveMetadata(const std::string& dir, const raft::HardState& state,
                          Env* env = PosixEnv());
std::string FormatMetadata(const raft::HardState& state);

// The recovery rules that need both files (docs/file-formats.md, Recovery): DataLoss, saying what
// to do, when logs.txt is missing but metadata.txt records a term (the node has run), or when the
// log holds fewer entries than the commit index metadata.txt records (acknowledged entries were
// lost). `log_entries` counts what logs.txt recovered; `log_missing` says there was none. The
// second rule holds only for metadata written with a checksum: older versions saved the commit
// index before the log that covers it (a restart clamps such a one to the log).
absl::Status CheckLogAgainstMetadata(const std::string& dir, const raft::HardState& state,
                                     uint64_t log_entries, bool log_missing,
                                     bool metadata_checksummed);

}  // namespace raftkv::storage

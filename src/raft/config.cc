#include "raft/config.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace raftkv::raft {
namespace {

struct BugName {
  InjectedBug bug;
  const char* name;
};

constexpr BugName kBugNames[] = {
    {InjectedBug::kNone, "none"},
    {InjectedBug::kSkipOldLeaseWait, "skip-old-lease-wait"},
    {InjectedBug::kCommitOldTermByCount, "commit-old-term-by-count"},
    {InjectedBug::kForgetToPersistVote, "forget-to-persist-vote"},
    {InjectedBug::kReadWithoutLease, "read-without-lease"},
    {InjectedBug::kSkipNoopBeforeRead, "skip-noop-before-read"},
    {InjectedBug::kSaveCommitBeforeLogCut, "save-commit-before-log-cut"},
    {InjectedBug::kOneSyncForCutAndAppend, "one-sync-for-cut-and-append"},
    {InjectedBug::kCompactBeforeSnapshotDurable, "compact-before-snapshot-durable"},
    {InjectedBug::kInstallOlderSnapshot, "install-older-snapshot"},
    {InjectedBug::kSnapshotWithoutSessions, "snapshot-without-sessions"},
    {InjectedBug::kVoteWhileRebuilding, "vote-while-rebuilding"},
};

Duration Scale(Duration duration, double factor) {
  return Duration(static_cast<int64_t>(std::floor(static_cast<double>(duration.count()) * factor)));
}

std::string Ms(Duration d) { return absl::StrCat(static_cast<double>(d.count()) / 1e6, "ms"); }

}  // namespace

InjectedBug ParseInjectedBug(const std::string& name, bool* ok) {
  for (const BugName& entry : kBugNames) {
    if (name == entry.name) {
      *ok = true;
      return entry.bug;
    }
  }
  *ok = false;
  return InjectedBug::kNone;
}

const char* InjectedBugName(InjectedBug bug) {
  for (const BugName& entry : kBugNames) {
    if (bug == entry.bug) return entry.name;
  }
  return "unknown";
}

Duration RaftConfig::LeaderLeaseDuration() const {
  return Scale(lease_duration, (1.0 - max_clock_drift) / (1.0 + max_clock_drift));
}

Duration RaftConfig::InflateRemoteDuration(Duration remote) const {
  // Round up: a wait that is one nanosecond short is a wait that is unsafe.
  const double scaled =
      static_cast<double>(remote.count()) * (1.0 + max_clock_drift) / (1.0 - max_clock_drift);
  return Duration(static_cast<int64_t>(std::ceil(scaled)));
}

absl::Status RaftConfig::Validate() const {
  if (cluster_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster size is ", cluster_size, ": give at least one node address"));
  }
  if (id < 0 || id >= cluster_size) {
    return absl::InvalidArgumentError(absl::StrCat("node id ", id, " is outside 0..",
                                                   cluster_size - 1,
                                                   ": it must be a position in the address list"));
  }
  // First: the checks below scale durations by the drift margin, which a drift of 1 or more
  // makes infinite (found by fuzz_config).
  if (!(max_clock_drift >= 0.0 && max_clock_drift < 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("MAX_CLOCK_DRIFT is ", max_clock_drift,
                     ": it must be a fraction in [0, 0.5), for example 0.01"));
  }
  if (heartbeat_interval.count() <= 0) {
    return absl::InvalidArgumentError("HEARTBEAT_INTERVAL must be positive");
  }
  for (const auto& [name, value] :
       {std::pair<const char*, Duration>{"HEARTBEAT_INTERVAL", heartbeat_interval},
        {"ELECTION_TIMEOUT_MIN", election_timeout_min},
        {"ELECTION_TIMEOUT_MAX", EffectiveElectionTimeoutMax()},
        {"LEASE_DURATION", InflateRemoteDuration(lease_duration)}}) {
    if (value > kMaxDuration) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " (", Ms(value), ", with any drift margin) must not exceed ",
                       Ms(kMaxDuration), ": peers refuse longer durations as impossible"));
    }
  }
  if (lease_duration <= heartbeat_interval) {
    return absl::InvalidArgumentError(
        absl::StrCat("LEASE_DURATION (", Ms(lease_duration), ") must exceed HEARTBEAT_INTERVAL (",
                     Ms(heartbeat_interval), "): the leader renews its lease once per heartbeat"));
  }
  if (election_timeout_min.count() <= 0) {
    return absl::InvalidArgumentError("ELECTION_TIMEOUT_MIN must be positive");
  }
  if (EffectiveElectionTimeoutMax() < election_timeout_min) {
    return absl::InvalidArgumentError(
        absl::StrCat("ELECTION_TIMEOUT_MAX (", Ms(EffectiveElectionTimeoutMax()),
                     ") must be at least ELECTION_TIMEOUT_MIN (", Ms(election_timeout_min), ")"));
  }
  if (election_timeout_min <= heartbeat_interval) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ELECTION_TIMEOUT_MIN (", Ms(election_timeout_min), ") must exceed HEARTBEAT_INTERVAL (",
        Ms(heartbeat_interval), "), or followers time out between heartbeats"));
  }
  const Duration held_by_followers = InflateRemoteDuration(lease_duration);
  if (!allow_long_lease && held_by_followers >= election_timeout_min) {
    return absl::InvalidArgumentError(
        absl::StrCat("LEASE_DURATION (", Ms(lease_duration), ", ", Ms(held_by_followers),
                     " with the MAX_CLOCK_DRIFT margin) must be below ELECTION_TIMEOUT_MIN (",
                     Ms(election_timeout_min),
                     "); lower the lease, raise the timeout, or set ALLOW_LONG_LEASE to accept "
                     "slower failover"));
  }
  if (snapshot_chunk_bytes < 1 || snapshot_chunk_bytes > (64 << 20) ||
      max_inflight_snapshot_chunks < 1) {
    return absl::InvalidArgumentError(
        "snapshot chunks must be 1 byte to 64 MiB, with at least one in flight");
  }
  if (max_entries_per_append < 1 || max_bytes_per_append < 1 || max_inflight_appends < 1) {
    return absl::InvalidArgumentError(
        "max entries/bytes per AppendEntries and max in-flight appends must be at least 1");
  }
  return absl::OkStatus();
}

}  // namespace raftkv::raft

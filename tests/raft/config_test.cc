#include <gtest/gtest.h>

#include "raft/config.h"

namespace raftkv::raft {
namespace {

using std::chrono::milliseconds;

TEST(Config, DefaultsAreValid) { EXPECT_TRUE(RaftConfig{}.Validate().ok()); }

TEST(Config, ErrorsNameTheKeyAndTheRule) {
  struct Case {
    void (*mutate)(RaftConfig&);
    const char* expected;
  } cases[] = {
      {[](RaftConfig& c) { c.heartbeat_interval = milliseconds(500); }, "LEASE_DURATION"},
      {[](RaftConfig& c) { c.lease_duration = milliseconds(600); }, "ELECTION_TIMEOUT_MIN"},
      {[](RaftConfig& c) { c.max_clock_drift = 0.7; }, "MAX_CLOCK_DRIFT"},
      // Checked before anything is scaled by it: a drift of 1 made the lease margin infinite, and
      // its conversion to nanoseconds undefined (fuzz_config found it).
      {[](RaftConfig& c) { c.max_clock_drift = 1.0; }, "MAX_CLOCK_DRIFT"},
      {[](RaftConfig& c) { c.election_timeout_max = milliseconds(100); }, "ELECTION_TIMEOUT_MAX"},
      {[](RaftConfig& c) { c.id = 3; }, "node id"},
      {[](RaftConfig& c) { c.max_inflight_appends = 0; }, "in-flight"},
      {[](RaftConfig& c) { c.election_timeout_min = std::chrono::seconds(40); },
       "ELECTION_TIMEOUT_MAX (80000ms, with any drift margin) must not exceed 60000ms"},
  };
  for (const Case& c : cases) {
    RaftConfig config;
    config.cluster_size = 3;
    c.mutate(config);
    absl::Status status = config.Validate();
    EXPECT_FALSE(status.ok()) << c.expected;
    EXPECT_NE(status.message().find(c.expected), std::string::npos) << status.message();
  }
}

TEST(Config, LongLeaseNeedsExplicitConsent) {
  RaftConfig config;
  config.lease_duration = milliseconds(600);
  EXPECT_FALSE(config.Validate().ok());
  config.allow_long_lease = true;
  EXPECT_TRUE(config.Validate().ok());
}

TEST(Config, DriftMarginsCoverBothClocks) {
  RaftConfig config;
  config.lease_duration = milliseconds(1000);
  config.max_clock_drift = 0.01;
  // Leader: 1000 × 0.99/1.01; a remote wait of 1000: × 1.01/0.99.
  EXPECT_EQ(config.LeaderLeaseDuration().count(), 980198019);
  EXPECT_EQ(config.InflateRemoteDuration(milliseconds(1000)).count(), 1020202021);
}

TEST(Config, InjectedBugNamesRoundTrip) {
  for (const char* name :
       {"skip-old-lease-wait", "commit-old-term-by-count", "forget-to-persist-vote",
        "read-without-lease", "skip-noop-before-read"}) {
    bool ok = false;
    EXPECT_STREQ(InjectedBugName(ParseInjectedBug(name, &ok)), name);
    EXPECT_TRUE(ok);
  }
  bool ok = true;
  ParseInjectedBug("nonsense", &ok);
  EXPECT_FALSE(ok);
}

}  // namespace
}  // namespace raftkv::raft

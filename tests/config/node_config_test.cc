#include "config/node_config.h"

#include <gtest/gtest.h>

#include <limits>

namespace raftkv::config {
namespace {

using std::chrono::milliseconds;

TEST(NodeConfig, ParsesEverySection) {
  const char* text =
      "; a comment\n"
      "[raft]\n"
      "LEASE_DURATION = 2.5s\n"
      "HEARTBEAT_INTERVAL = 100ms\n"
      "ELECTION_TIMEOUT_MIN = 5s\n"
      "ELECTION_TIMEOUT_MAX = 10s\n"
      "MAX_CLOCK_DRIFT = 0.02\n"
      "[storage]\n"
      "DATA_DIR = /var/lib/raftkv\n"
      "[cluster]\n"
      "NODES = 10.0.0.1:7000, 10.0.0.2:7000,10.0.0.3:7000\n"
      "[logging]\n"
      "VERBOSITY = verbose\n"
      "STDOUT = false\n"
      "DUMP_MAX_BYTES = 8MiB\n"
      "[limits]\n"
      "MAX_KEY_BYTES = 1KiB\n";
  auto config = ParseNodeConfig(text, "config.ini");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->raft.lease_duration, milliseconds(2500));
  EXPECT_EQ(config->raft.heartbeat_interval, milliseconds(100));
  EXPECT_EQ(config->raft.election_timeout_min, milliseconds(5000));
  EXPECT_EQ(config->raft.election_timeout_max, milliseconds(10000));
  EXPECT_DOUBLE_EQ(config->raft.max_clock_drift, 0.02);
  EXPECT_EQ(config->data_dir, "/var/lib/raftkv");
  EXPECT_EQ(config->nodes,
            (std::vector<std::string>{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}));
  EXPECT_EQ(config->verbosity, Verbosity::kVerbose);
  EXPECT_FALSE(config->log_to_stdout);
  EXPECT_EQ(config->dump_max_bytes, 8 << 20);
  EXPECT_EQ(config->max_key_bytes, 1024);
  EXPECT_EQ(config->max_value_bytes, 1 << 20) << "keys not given keep their defaults";
  config->raft.cluster_size = 3;
  EXPECT_TRUE(ValidateNodeConfig(*config).ok());
}

TEST(NodeConfig, EveryVerbosityLevelParses) {
  const std::pair<const char*, Verbosity> levels[] = {{"minimal", Verbosity::kMinimal},
                                                      {"quiet", Verbosity::kQuiet},
                                                      {"normal", Verbosity::kNormal},
                                                      {"verbose", Verbosity::kVerbose}};
  for (const auto& [text, level] : levels) {
    auto config = ParseNodeConfig(std::string("[logging]\nVERBOSITY = ") + text + "\n", "c");
    ASSERT_TRUE(config.ok()) << text << ": " << config.status();
    EXPECT_EQ(config->verbosity, level) << text;
  }
}

TEST(NodeConfig, ErrorsNameTheKey) {
  const struct {
    const char* text;
    const char* expected;
  } cases[] = {
      {"[raft]\nLEASE_DURATIONS = 1s\n", "LEASE_DURATIONS: unknown key"},
      {"[raft]\nLEASE_DURATION = 250\n", "[raft] LEASE_DURATION: \"250\" is not a duration"},
      {"[raft]\nMAX_CLOCK_DRIFT = lots\n", "MAX_CLOCK_DRIFT"},
      {"[storage]\nLEASE_DURATION = 1s\n", "[storage] LEASE_DURATION: unknown key"},
      {"[logging]\nVERBOSITY = loud\n", "VERBOSITY"},
      {"[limits]\nMAX_VALUE_BYTES = 1TB\n", "MAX_VALUE_BYTES"},
      {"[raft]\nthis line is broken\n", "config.ini:2"},
      {"[cluster]\nNODES = 127.0.0.1:1,localhost\n",
       "[cluster] NODES: bad node address 'localhost'"},
      {"[cluster]\nNODES = 127.0.0.1:99999\n", "port must be a number in 1..65535"},
  };
  for (const auto& c : cases) {
    auto config = ParseNodeConfig(c.text, "config.ini");
    ASSERT_FALSE(config.ok()) << c.text;
    EXPECT_NE(config.status().message().find(c.expected), std::string::npos)
        << config.status().message();
  }
}

TEST(NodeConfig, ImpossibleCombinationsAreRefused) {
  auto config = ParseNodeConfig("[raft]\nLEASE_DURATION = 2s\nELECTION_TIMEOUT_MIN = 1s\n", "c");
  ASSERT_TRUE(config.ok());
  config->raft.cluster_size = 3;
  absl::Status status = ValidateNodeConfig(*config);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("LEASE_DURATION"), std::string::npos) << status.message();

  auto big = ParseNodeConfig("[limits]\nMAX_VALUE_BYTES = 2MiB\n", "c");
  ASSERT_TRUE(big.ok());
  big->raft.cluster_size = 3;
  status = ValidateNodeConfig(*big);
  ASSERT_FALSE(status.ok()) << "a 2 MiB value and a 4 KiB key could outgrow a gRPC message";
  EXPECT_NE(status.message().find("MAX_KEY_BYTES + MAX_VALUE_BYTES"), std::string::npos)
      << status.message();
  big->max_value_bytes = std::numeric_limits<int64_t>::max();  // the sum would wrap negative
  EXPECT_FALSE(ValidateNodeConfig(*big).ok());
  big->max_key_bytes = 1024;
  big->max_value_bytes = (2 << 20) - 1024;
  EXPECT_TRUE(ValidateNodeConfig(*big).ok());
}

TEST(NodeConfig, MissingFileSaysSo) {
  auto config = LoadNodeConfig("/nonexistent/raftkv/config.ini");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("/nonexistent/raftkv/config.ini"), std::string::npos);
}

TEST(Units, DurationsAndSizes) {
  EXPECT_EQ(*ParseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(*ParseDuration("2.5s"), milliseconds(2500));
  EXPECT_EQ(*ParseDuration("1m"), milliseconds(60000));
  EXPECT_EQ(*ParseDuration("800us"), std::chrono::microseconds(800));
  // The last: past 2^61 ns, which validation's drift margin could overflow.
  for (const char* bad : {"", "5", "ms", "1.2.3s", "-1s", "5 ms", "5h", "99999999999999999999s"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
  EXPECT_EQ(*ParseByteSize("4096"), 4096);
  EXPECT_EQ(*ParseByteSize("4KiB"), 4096);
  EXPECT_EQ(*ParseByteSize("1MiB"), 1 << 20);
  for (const char* bad : {"", "KiB", "4kb", "-1", "1.5MiB", "999999999999GiB"})
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
}

}  // namespace
}  // namespace raftkv::config

namespace raftkv::config {
namespace {

// The config.ini shipped at the top of the repository documents every key with its default: it
// must parse, and it must equal the built-in defaults.
TEST(NodeConfig, ShippedConfigIsTheDefaults) {
  auto shipped = LoadNodeConfig(RAFTKV_SOURCE_DIR "/config.ini");
  ASSERT_TRUE(shipped.ok()) << shipped.status();
  const NodeConfig defaults;
  EXPECT_EQ(shipped->raft.lease_duration, defaults.raft.lease_duration);
  EXPECT_EQ(shipped->raft.heartbeat_interval, defaults.raft.heartbeat_interval);
  EXPECT_EQ(shipped->raft.election_timeout_min, defaults.raft.election_timeout_min);
  EXPECT_EQ(shipped->raft.EffectiveElectionTimeoutMax(),
            defaults.raft.EffectiveElectionTimeoutMax());
  EXPECT_EQ(shipped->raft.max_clock_drift, defaults.raft.max_clock_drift);
  EXPECT_EQ(shipped->raft.max_entries_per_append, defaults.raft.max_entries_per_append);
  EXPECT_EQ(shipped->raft.max_inflight_appends, defaults.raft.max_inflight_appends);
  EXPECT_EQ(shipped->data_dir, defaults.data_dir);
  EXPECT_EQ(shipped->nodes, defaults.nodes);
  EXPECT_EQ(shipped->verbosity, defaults.verbosity);
  EXPECT_EQ(shipped->dump_max_bytes, defaults.dump_max_bytes);
  EXPECT_EQ(shipped->max_key_bytes, defaults.max_key_bytes);
  EXPECT_EQ(shipped->max_value_bytes, defaults.max_value_bytes);
  EXPECT_EQ(shipped->max_sessions, defaults.max_sessions);
  EXPECT_EQ(shipped->session_idle_timeout, defaults.session_idle_timeout);
  EXPECT_EQ(shipped->dump_keep_files, defaults.dump_keep_files);
}

TEST(NodeConfig, SessionAndDumpLimitsAreValidated) {
  for (const char* bad :
       {"[limits]\nSESSION_IDLE_TIMEOUT = 500ms\n", "[limits]\nSESSION_IDLE_TIMEOUT = 50000m\n",
        "[limits]\nMAX_SESSIONS = 20000000\n", "[logging]\nDUMP_KEEP_FILES = 0\n",
        "[logging]\nDUMP_KEEP_FILES = 101\n"}) {
    auto config = ParseNodeConfig(bad, "test.ini");
    ASSERT_TRUE(config.ok()) << bad;
    config->raft.id = 0;
    config->raft.cluster_size = 3;
    EXPECT_FALSE(ValidateNodeConfig(*config).ok()) << bad;
  }
  auto good = ParseNodeConfig(
      "[limits]\nSESSION_IDLE_TIMEOUT = 1s\n[logging]\nDUMP_KEEP_FILES = 100\n", "test.ini");
  ASSERT_TRUE(good.ok());
  good->raft.id = 0;
  good->raft.cluster_size = 3;
  EXPECT_TRUE(ValidateNodeConfig(*good).ok());
}

}  // namespace
}  // namespace raftkv::config

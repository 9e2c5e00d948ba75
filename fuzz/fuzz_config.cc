// config.ini (config/node_config.h): any text is parsed and validated, or refused with a message,
// without a crash; so are the duration and size parsers on their own.
#include <cstddef>
#include <cstdint>

#include "config/node_config.h"
#include "fuzz/fuzz_support.h"

using namespace raftkv;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (size < 64) {
    (void)config::ParseDuration(text);
    (void)config::ParseByteSize(text);
  }
  absl::StatusOr<config::NodeConfig> parsed = config::ParseNodeConfig(text, "config.ini");
  if (!parsed.ok()) {
    fuzz::Expect(!parsed.status().message().empty(), "a refusal says why");
    return 0;
  }
  parsed->raft.id = 0;
  parsed->raft.cluster_size = 3;
  // The sanitizers are the check here (overflow, infinities, bad casts in the rules).
  if (!config::ValidateNodeConfig(*parsed).ok()) return 0;
  // What validates is usable as is: the lease the leader counts on is never longer than the one
  // it asks for, and the wait a follower owes never shorter (the drift margin, README).
  const Duration lease = parsed->raft.LeaderLeaseDuration();
  const Duration inflated = parsed->raft.InflateRemoteDuration(parsed->raft.lease_duration);
  fuzz::Expect(lease.count() >= 0 && lease <= parsed->raft.lease_duration,
               "the leader's own lease is not negative and no longer than granted");
  fuzz::Expect(inflated >= parsed->raft.lease_duration, "a follower waits at least the lease");
  (void)parsed->node_tls();
  return 0;
}

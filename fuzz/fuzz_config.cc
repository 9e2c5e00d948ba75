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
  absl::Status valid = config::ValidateNodeConfig(*parsed);
  fuzz::Expect(valid.ok() || !valid.message().empty(), "a refusal says why");
  (void)parsed->node_tls();
  return 0;
}

// metadata.txt (storage/metadata_file.h): any input is loaded or refused without a crash, and
// what loads is written back to the same state.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "storage/metadata_file.h"

using namespace raftkv;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::OneFileEnv env("node/metadata.txt", text);
  absl::StatusOr<raft::HardState> state = storage::LoadMetadata("node", &env);
  if (!state.ok()) return 0;
  fuzz::OneFileEnv again("node/metadata.txt", storage::FormatMetadata(*state));
  absl::StatusOr<raft::HardState> reloaded = storage::LoadMetadata("node", &again);
  fuzz::Expect(reloaded.ok() && *reloaded == *state, "metadata round-trips");
  return 0;
}

// snapshot.txt (storage/snapshot_file.h read into a state machine by node::LoadSnapshot, as at
// start-up, on --restore, and for a leader's InstallSnapshot): any input is loaded or refused
// whole without a crash, and what loads is written back to a file that loads the same.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "node/replica.h"
#include "sim/sim_disk.h"

using namespace raftkv;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::OneFileEnv env("snapshot.txt", text);
  absl::StatusOr<node::LoadedSnapshot> loaded = node::LoadSnapshot(&env, "snapshot.txt");
  if (!loaded.ok()) return 0;
  sim::SimDisk disk;
  raft::SnapshotMeta meta = loaded->meta;
  absl::StatusOr<uint64_t> written = node::WriteSnapshot(&disk, "again.txt", meta, *loaded->kv);
  fuzz::Expect(written.ok(), "a loaded snapshot can be written again");
  absl::StatusOr<node::LoadedSnapshot> reloaded = node::LoadSnapshot(&disk, "again.txt");
  fuzz::Expect(reloaded.ok(), "a written snapshot loads");
  fuzz::Expect(reloaded->meta.index == meta.index && reloaded->meta.term == meta.term,
               "the same index and term");
  fuzz::Expect(reloaded->kv->SnapshotHeaderFields() == loaded->kv->SnapshotHeaderFields(),
               "the same counts");
  return 0;
}

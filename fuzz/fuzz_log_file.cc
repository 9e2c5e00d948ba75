// logs.txt recovery (storage/log_file.h): the whole-text parser and the streamed reader the node
// uses at start-up must agree on every input, and neither may crash.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "kv/command_text.h"
#include "storage/log_file.h"

using namespace raftkv;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const storage::EntryCodec codec{&kv::FormatCommandText, &kv::ParseCommandText};
  absl::StatusOr<storage::LogFile::Recovered> parsed =
      storage::LogFile::Parse(text, "logs.txt", codec);
  fuzz::OneFileEnv env("node/logs.txt", text);
  absl::StatusOr<storage::LogFile::Recovered> read = storage::LogFile::Read("node", codec, &env);
  fuzz::Expect(parsed.ok() == read.ok(), "Parse and Read agree on whether the log is good");
  if (!parsed.ok()) return 0;
  fuzz::Expect(parsed->entries.size() == read->entries.size(), "same number of entries");
  fuzz::Expect(parsed->base_index == read->base_index, "same base");
  for (size_t i = 0; i < parsed->entries.size(); ++i) {
    const raft::Entry& entry = parsed->entries[i];
    fuzz::Expect(entry.index == parsed->base_index + 1 + i, "entries are contiguous");
    // What recovery accepts, the node can write again (compaction copies lines; a leader resends).
    fuzz::Expect(storage::FormatEntryLine(entry, codec).ok(), "a recovered entry can be written");
  }
  return 0;
}

// The client request path: a ClientRequestBatch as a client sends it on ServeClientStream, each
// request handed to a single-node cluster's leader as KvService hands it (rpc/services.cc), the
// node's files and state machine real, snapshots every 10 entries, a restart at the end. Any
// bytes are refused or served; none may crash the node, fail it, or leave a request unanswered.
#include <cstddef>
#include <cstdint>

#include "fuzz/replica_fixture.h"
#include "raftkv.pb.h"

using namespace raftkv;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ClientRequestBatch batch;
  if (!batch.ParseFromArray(data, static_cast<int>(size))) return 0;
  if (batch.requests_size() > 64) return 0;  // one batch's worth; the rest is repetition
  fuzz::ReplicaFixture node(/*cluster_size=*/1, /*snapshot_entries=*/10);
  node.replica().Campaign(node.now());
  node.Advance(std::chrono::milliseconds(1));
  for (const StreamedRequest& request : batch.requests()) {
    const ServeClientArgs& args = request.args();
    // As KvService: no timeout, or a longer one, is the node's limit of 5 s.
    const uint32_t timeout_ms = request.timeout_ms() == 0 ? 5000 : request.timeout_ms();
    const TimePoint answer_by =
        node.now() + std::chrono::milliseconds(std::min<uint32_t>(timeout_ms, 5000));
    switch (args.op()) {
      case ServeClientArgs::SET:
        node.replica().Set(
            kv::SetCommand{args.key(), args.value(), args.client_id(), args.sequence()},
            node.Callback(), answer_by, node.now());
        break;
      case ServeClientArgs::OPEN_SESSION:
        node.replica().OpenSession(node.Callback(), answer_by, node.now());
        break;
      case ServeClientArgs::GET: {
        node::ClientCallback done = node.Callback();
        if (!node.replica().TryLeaseRead(args.key(), done)) {
          node.replica().Get(args.key(), done, answer_by, node.now());
        }
        break;
      }
      default:
        break;  // KvService refuses an unknown op itself (INVALID_ARGUMENT)
    }
    node.Advance(std::chrono::milliseconds(1 + request.id() % 700));
  }
  node.Advance(std::chrono::seconds(6));
  node.Restart();
  node.Advance(std::chrono::seconds(1));
  return 0;
}

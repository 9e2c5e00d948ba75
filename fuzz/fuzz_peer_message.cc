// The peer-message boundary: bytes as a peer sends them (a sequence of Raft RPCs, each a kind
// byte, a 2-byte length and the protobuf), converted by rpc/proto_convert (Decode), and what it
// admits stepped into node 0 of a 3-node cluster that already holds a log with committed entries
// of term 1, its files and state machine real, then restarted. Decode may refuse anything; what
// it admits must never crash or fail the node (an abort is for this node's own broken invariant,
// never for what another process sent).
#include <cstddef>
#include <cstdint>

#include "fuzz/replica_fixture.h"
#include "kv/command.h"
#include "rpc/proto_convert.h"

using namespace raftkv;

namespace {

constexpr NodeId kSelf = 0;
constexpr int kClusterSize = 3;

// Node 1 led term 1 and replicated four entries to node 0, three of them committed.
void GiveHistory(fuzz::ReplicaFixture& node) {
  raft::AppendEntries append;
  append.prev_log_index = 0;
  append.prev_log_term = 0;
  append.entries = {raft::Entry{1, 1, raft::EntryType::kNoop, ""},
                    raft::Entry{1, 2, raft::EntryType::kCommand, kv::EncodeSet({"a", "1", 0, 0})},
                    raft::Entry{1, 3, raft::EntryType::kCommand, kv::EncodeSet({"b", "2", 0, 0})},
                    raft::Entry{1, 4, raft::EntryType::kCommand, kv::EncodeSet({"c", "3", 0, 0})}};
  append.leader_commit = 3;
  append.lease_duration = std::chrono::milliseconds(400);
  append.sent_at = node.now();
  node.replica().StepRequest(raft::Message{1, kSelf, 1, append}, node.ReplyCallback(), node.now());
  node.Advance(std::chrono::milliseconds(1));
}

template <typename Proto>
absl::StatusOr<raft::Message> Parse(const uint8_t* data, size_t size) {
  Proto proto;
  if (!proto.ParseFromArray(data, static_cast<int>(size))) {
    return absl::InvalidArgumentError("not a protobuf");
  }
  return rpc::Decode(proto, kSelf, kClusterSize);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ReplicaFixture node(kClusterSize, /*snapshot_entries=*/0);
  GiveHistory(node);
  int messages = 0;
  while (size >= 3 && messages++ < 16) {
    // Kinds 6 and 7 make node 0 campaign (so that the replies it then gets are news to a
    // candidate or a leader) or let an election timeout pass.
    const uint8_t kind = data[0] % 8;
    if (kind >= 6) {
      if (kind == 6) node.replica().Campaign(node.now());
      node.Advance(kind == 6 ? std::chrono::milliseconds(1) : std::chrono::milliseconds(1100));
      data += 1;
      size -= 1;
      continue;
    }
    const size_t length = std::min<size_t>(size - 3, data[1] | (size_t{data[2]} << 8));
    const uint8_t* body = data + 3;
    data += 3 + length;
    size -= 3 + length;
    absl::StatusOr<raft::Message> message;
    switch (kind) {
      case 0:
        message = Parse<AppendEntriesRequest>(body, length);
        break;
      case 1:
        message = Parse<AppendEntriesResponse>(body, length);
        break;
      case 2:
        message = Parse<RequestVoteRequest>(body, length);
        break;
      case 3:
        message = Parse<RequestVoteResponse>(body, length);
        break;
      case 4:
        message = Parse<InstallSnapshotRequest>(body, length);
        break;
      default:
        message = Parse<InstallSnapshotResponse>(body, length);
        break;
    }
    if (!message.ok()) continue;
    if (kind == 0 || kind == 2) {
      node.replica().StepRequest(*message, node.ReplyCallback(), node.now());
    } else {
      node.replica().Step(*message, node.now());
    }
    node.Advance(std::chrono::milliseconds(7));
  }
  node.Advance(std::chrono::seconds(2));
  node.Restart();
  node.Advance(std::chrono::seconds(1));
  // Nothing a peer sent took back what node 0 had committed (a snapshot may stand in for it).
  fuzz::Expect(node.replica().core().commit_index() >= 3, "committed entries survive");
  return 0;
}

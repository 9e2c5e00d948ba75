#include "rpc/proto_convert.h"

#include <gtest/gtest.h>

#include "kv/command.h"

namespace raftkv::rpc {
namespace {

using std::chrono::milliseconds;

raft::Message Append() {
  raft::AppendEntries body;
  body.prev_log_index = 4;
  body.prev_log_term = 2;
  body.entries = {raft::Entry{3, 5, raft::EntryType::kNoop, {}},
                  raft::Entry{3, 6, raft::EntryType::kCommand,
                              kv::EncodeSet({std::string("a\0b", 3), "v", 0, 0})}};
  body.leader_commit = 4;
  body.lease_duration = milliseconds(400);
  body.sent_at = TimePoint(milliseconds(123456));
  return raft::Message{0, 2, 3, body};
}

TEST(ProtoConvert, AppendEntriesRoundTrips) {
  const raft::Message original = Append();
  auto decoded = Decode(EncodeAppendEntries(original), 2, 3);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->from, 0);
  EXPECT_EQ(decoded->to, 2);
  EXPECT_EQ(decoded->term, 3u);
  const auto& a = std::get<raft::AppendEntries>(original.body);
  const auto& b = std::get<raft::AppendEntries>(decoded->body);
  EXPECT_EQ(b.prev_log_index, a.prev_log_index);
  EXPECT_EQ(b.prev_log_term, a.prev_log_term);
  EXPECT_EQ(b.entries, a.entries);
  EXPECT_EQ(b.leader_commit, a.leader_commit);
  EXPECT_EQ(b.lease_duration, a.lease_duration);
  EXPECT_EQ(b.sent_at, a.sent_at);
}

TEST(ProtoConvert, RepliesAndVotesRoundTrip) {
  raft::AppendEntriesReply reply;
  reply.success = false;
  reply.match_index = 0;
  reply.rejected_prev_index = 9;
  reply.conflict_term = 2;
  reply.conflict_index = 7;
  reply.echoed_sent_at = TimePoint(milliseconds(5));
  auto r = Decode(EncodeAppendEntriesReply(raft::Message{2, 0, 3, reply}), 0, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& got = std::get<raft::AppendEntriesReply>(r->body);
  EXPECT_EQ(got.rejected_prev_index, 9u);
  EXPECT_EQ(got.conflict_term, 2u);
  EXPECT_EQ(got.conflict_index, 7u);
  EXPECT_EQ(got.echoed_sent_at, reply.echoed_sent_at);

  auto v = Decode(EncodeRequestVote(raft::Message{1, 0, 8, raft::RequestVote{10, 7}}), 0, 3);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::get<raft::RequestVote>(v->body).last_log_index, 10u);
  EXPECT_EQ(std::get<raft::RequestVote>(v->body).last_log_term, 7u);

  auto g = Decode(EncodeRequestVoteReply(
                      raft::Message{1, 0, 8, raft::RequestVoteReply{true, milliseconds(37)}}),
                  0, 3);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(std::get<raft::RequestVoteReply>(g->body).granted);
  EXPECT_EQ(std::get<raft::RequestVoteReply>(g->body).old_lease_remaining, milliseconds(37));
}

TEST(ProtoConvert, MalformedPeerRequestsAreRefused) {
  AppendEntriesRequest good = EncodeAppendEntries(Append());
  auto refused = [](const AppendEntriesRequest& request, NodeId self, const char* expected) {
    auto decoded = Decode(request, self, 3);
    ASSERT_FALSE(decoded.ok()) << expected;
    EXPECT_NE(decoded.status().message().find(expected), std::string::npos)
        << decoded.status().message();
  };
  AppendEntriesRequest bad = good;
  bad.set_leader_id(7);
  refused(bad, 2, "not a node of this 3-node cluster");
  bad = good;
  bad.set_leader_id(2);
  refused(bad, 2, "two nodes share an id");
  refused(good, 1, "address lists disagree");
  bad = good;
  bad.mutable_entries(1)->set_index(9);
  refused(bad, 2, "contiguously");
  bad = good;
  bad.mutable_entries(0)->set_term(1);
  refused(bad, 2, "non-decreasing");
  bad = good;
  bad.set_lease_duration_ns(-1);
  refused(bad, 2, "lease_duration_ns");
  // Payloads this node could never apply (a forged entry used to stop the node when it committed).
  bad = good;
  bad.mutable_entries(1)->set_data("garbage");
  refused(bad, 2, "not a well-formed command");
  bad = good;
  bad.mutable_entries(0)->set_data("x");
  refused(bad, 2, "not a well-formed command");
  bad = good;
  bad.mutable_entries(1)->set_type(static_cast<LogEntry::Type>(5));
  refused(bad, 2, "unknown entry type");
  RequestVoteResponse vote;
  vote.set_voter_id(1);
  vote.set_old_lease_remaining_ns(-5);
  EXPECT_FALSE(Decode(vote, 0, 3).ok());
}

// Terms and durations no correct peer can send are refused at the boundary: a term near 2^64
// would make the next election's term + 1 wrap, and a huge lease overflows now + lease.
TEST(ProtoConvert, AbsurdTermsAndDurationsAreRefused) {
  auto refused = [](const absl::StatusOr<raft::Message>& decoded, const char* expected) {
    ASSERT_FALSE(decoded.ok()) << expected;
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(decoded.status().message().find(expected), std::string::npos)
        << decoded.status().message();
  };
  constexpr uint64_t kHuge = ~uint64_t{0};
  AppendEntriesRequest append = EncodeAppendEntries(Append());
  append.set_term(kHuge);
  refused(Decode(append, 2, 3), "term");
  append = EncodeAppendEntries(Append());
  append.set_lease_duration_ns(1'000'000'000'000'000);  // 10^15 ns, 11.6 days
  refused(Decode(append, 2, 3), "lease_duration_ns");
  append = EncodeAppendEntries(Append());
  append.set_prev_log_term(kHuge);
  refused(Decode(append, 2, 3), "term");

  RequestVoteRequest vote = EncodeRequestVote(raft::Message{1, 0, 8, raft::RequestVote{10, 7}});
  vote.set_term(kHuge);
  refused(Decode(vote, 0, 3), "term");
  vote = EncodeRequestVote(raft::Message{1, 0, 8, raft::RequestVote{10, 7}});
  vote.set_last_log_term(kHuge);
  refused(Decode(vote, 0, 3), "term");

  RequestVoteResponse grant;
  grant.set_voter_id(1);
  grant.set_term(8);
  grant.set_old_lease_remaining_ns(1'000'000'000'000'000);
  refused(Decode(grant, 0, 3), "old_lease_remaining_ns");
  grant.set_old_lease_remaining_ns(0);
  grant.set_term(kHuge);
  refused(Decode(grant, 0, 3), "term");

  AppendEntriesResponse ack =
      EncodeAppendEntriesReply(raft::Message{2, 0, 3, raft::AppendEntriesReply{}});
  ack.set_term(kHuge);
  refused(Decode(ack, 0, 3), "term");
  ack.set_term(3);
  ack.set_conflict_term(kHuge);
  refused(Decode(ack, 0, 3), "term");
}

// InstallSnapshot chunks and replies round-trip, and a chunk no correct leader sends (one that
// does not fit its snapshot, a `done` that lies, an index no log reaches, another cluster's
// snapshot) is refused at the boundary.
TEST(ProtoConvert, SnapshotChunksRoundTripAndMisfitsAreRefused) {
  raft::InstallSnapshot chunk;
  chunk.snapshot = raft::SnapshotMeta{40, 3, 3, 10};
  chunk.offset = 6;
  chunk.length = 4;
  chunk.data = "6789";
  chunk.done = true;
  chunk.lease_duration = milliseconds(400);
  chunk.sent_at = TimePoint(milliseconds(99));
  const raft::Message original{0, 2, 3, chunk};
  auto decoded = Decode(EncodeInstallSnapshot(original), 2, 3);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const auto& got = std::get<raft::InstallSnapshot>(decoded->body);
  EXPECT_EQ(got.snapshot, chunk.snapshot);
  EXPECT_EQ(got.offset, 6u);
  EXPECT_EQ(got.length, 4u);
  EXPECT_EQ(got.data, "6789");
  EXPECT_TRUE(got.done);
  EXPECT_EQ(got.sent_at, chunk.sent_at);

  raft::InstallSnapshotReply reply{40, 10, true, 40, TimePoint(milliseconds(99))};
  auto back = Decode(EncodeInstallSnapshotReply(raft::Message{2, 0, 3, reply}), 0, 3);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(std::get<raft::InstallSnapshotReply>(back->body).match_index, 40u);
  EXPECT_TRUE(std::get<raft::InstallSnapshotReply>(back->body).installed);

  auto refused = [&](auto mutate) {
    InstallSnapshotRequest request = EncodeInstallSnapshot(original);
    mutate(request);
    return !Decode(request, 2, 3).ok();
  };
  EXPECT_TRUE(refused([](InstallSnapshotRequest& r) { r.set_offset(8); }));  // past the end
  EXPECT_TRUE(refused([](InstallSnapshotRequest& r) { r.set_done(false); }));
  EXPECT_TRUE(refused([](InstallSnapshotRequest& r) { r.set_offset(~uint64_t{0}); }));
  EXPECT_TRUE(refused([](InstallSnapshotRequest& r) { r.set_snapshot_index(~uint64_t{0}); }));
  EXPECT_TRUE(refused([](InstallSnapshotRequest& r) { r.set_snapshot_nodes(5); }));
  EXPECT_TRUE(refused([](InstallSnapshotRequest& r) { r.set_receiver_id(1); }));
  EXPECT_TRUE(refused([](InstallSnapshotRequest& r) { r.set_lease_duration_ns(-1); }));
}

}  // namespace
}  // namespace raftkv::rpc

// node::Replica on its own: recovery of files written by older versions, and sessions applied
// alike by replicas whose local limits differ.
#include "node/replica.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "node/node_dir.h"
#include "sim/sim_disk.h"
#include "storage/metadata_file.h"
#include "tests/raft/test_cluster.h"

namespace raftkv::node {
namespace {

using raft::testing::At;

class NullLink : public PeerTransport {
 public:
  void Send(const raft::Message&) override {}
};

// metadata.txt from before checksums may hold a commit index past the log (that version saved it
// before the log). The replica clamps it, and never writes it back: the metadata it saves next
// (now checksummed, so held to "the log covers the commit index") passes the check on restart.
TEST(Replica, OldMetadataWithACommitIndexPastTheLogIsClampedNotWrittenBack) {
  sim::SimDisk disk;
  const std::string dir = "/node";
  auto write = [&](const std::string& name, const std::string& text) {
    auto file = disk.OpenWritable(dir + "/" + name, true);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->WriteAt(0, text).ok());
    ASSERT_TRUE((*file)->Sync().ok());
  };
  write("metadata.txt", "term 1\nvoted_for 0\ncommit_index 5\n");
  write("logs.txt", "NO-OP 1\nSET a b 1\nSET c d 1\n");
  NullLink link;
  ReplicaOptions options;
  options.raft = raft::testing::TestConfig(0, 3);
  options.dir = dir;
  options.clock = [] { return At(0); };
  auto replica = Replica::Open(options, &disk, &link, nullptr, nullptr, At(0), 1);
  ASSERT_TRUE(replica.ok()) << replica.status();
  EXPECT_EQ((*replica)->core().commit_index(), 3u);
  (*replica)->Campaign(At(1));  // a new term: metadata.txt is saved
  (*replica)->Process(At(1));
  bool checksummed = false;
  auto saved = storage::LoadMetadata(dir, &disk, &checksummed);
  ASSERT_TRUE(saved.ok());
  EXPECT_TRUE(checksummed);
  EXPECT_EQ(saved->term, 2u);
  EXPECT_LE(saved->commit_index, 3u);
  replica->reset();
  EXPECT_TRUE(Replica::Open(options, &disk, &link, nullptr, nullptr, At(2), 1).ok());
}

// Proposes through `send` on `id` and runs the cluster until the answer comes.
ClientResult Await(raft::testing::TestCluster& cluster,
                   const std::function<void(ClientCallback, TimePoint)>& send) {
  auto answer = std::make_shared<std::optional<ClientResult>>();
  send([answer](const ClientResult& result) { *answer = result; },
       cluster.now() + std::chrono::seconds(2));
  for (int i = 0; i < 3000 && !answer->has_value(); ++i) cluster.Run(1);
  EXPECT_TRUE(answer->has_value());
  return answer->value_or(ClientResult::ShuttingDown());
}

// Defect 4: session capacity used to come from each node's own config, so replicas with different
// MAX_SESSIONS (or one restarted with a new value, which replays the log) applied the same
// committed SETs differently. Now each OPEN-SESSION entry carries the limits it is applied by.
TEST(Replica, ReplicasWithDifferentLocalSessionLimitsApplyIdentically) {
  int64_t capacity[3] = {1, 2, 100};
  raft::testing::TestCluster cluster(3, nullptr, [&capacity](NodeId id, ReplicaOptions& options) {
    options.max_sessions = capacity[id];
    options.session_idle_timeout = std::chrono::seconds(1);
  });
  std::map<std::string, int> outcomes;  // what the clients saw, for the record
  int sets = 0;
  // Each leader in turn: clients open sessions and write, some idle past the timeout.
  for (int round = 0; round < 3; ++round) {
    const NodeId leader = cluster.ElectLeader();
    std::vector<uint64_t> sessions;
    for (int client = 0; client < 3; ++client) {
      const ClientResult opened = Await(cluster, [&](ClientCallback done, TimePoint by) {
        cluster.replica(leader).OpenSession(std::move(done), by, cluster.now());
      });
      ++outcomes[opened.kind == ClientResult::Kind::kOk ? "opened" : "refused"];
      if (opened.kind == ClientResult::Kind::kOk) sessions.push_back(opened.client_id);
      for (uint64_t id : sessions) {
        const kv::SetCommand set{"x", "r" + std::to_string(round) + "c" + std::to_string(id), id,
                                 static_cast<uint64_t>(++sets)};
        const ClientResult written = Await(cluster, [&](ClientCallback done, TimePoint by) {
          cluster.replica(leader).Set(set, std::move(done), by, cluster.now());
        });
        ++outcomes[written.kind == ClientResult::Kind::kOk ? "set" : written.error];
      }
      cluster.Run(700);  // the earlier sessions idle
    }
    cluster.Crash(leader);
    cluster.Run(1);
    cluster.Start(leader);  // replays its log; the next round has another leader
  }
  cluster.Run(3000);  // everyone catches up
  auto same_everywhere = [&] {
    const LogIndex applied = cluster.node(0).applied_index();
    for (NodeId id = 1; id < 3; ++id) {
      ASSERT_EQ(cluster.node(id).applied_index(), applied);
      EXPECT_EQ(cluster.replica(id).Find("x")->value, cluster.replica(0).Find("x")->value);
      EXPECT_EQ(cluster.replica(id).Find("x")->version, cluster.replica(0).Find("x")->version);
      EXPECT_EQ(cluster.replica(id).SessionCount(), cluster.replica(0).SessionCount());
    }
  };
  same_everywhere();
  // A node restarted with another limit replays the log to the same state.
  capacity[2] = 7;
  cluster.Crash(2);
  cluster.Start(2);
  cluster.Run(1000);
  same_everywhere();
  // Both the refusal and the eviction paths ran (otherwise the limits never mattered).
  EXPECT_GT(outcomes["opened"], 3) << testing::PrintToString(outcomes);
  EXPECT_GT(outcomes["refused"], 0) << testing::PrintToString(outcomes);
}

// Backup (SaveSnapshot): the leader answers with a snapshot that holds every write acknowledged
// before the request — here one it takes for the request, written over several turns while the
// cluster keeps taking writes; a follower refuses (it may lag).
TEST(Replica, SaveSnapshotAnswersWithASnapshotHoldingEveryAcknowledgedWrite) {
  raft::testing::TestCluster cluster(3, nullptr, [](NodeId, ReplicaOptions& options) {
    options.snapshot_entries = 0;  // none of its own: only the one asked for
    options.snapshot_worker = std::make_shared<InlineSnapshotWorker>([] { return 5; });
  });
  const NodeId leader = cluster.ElectLeader();
  LogIndex last_acknowledged = 0;
  for (int i = 0; i < 5; ++i) {
    const kv::SetCommand set{"k" + std::to_string(i), "v" + std::to_string(i), 0, 0};
    const ClientResult written = Await(cluster, [&](ClientCallback done, TimePoint by) {
      cluster.replica(leader).Set(set, std::move(done), by, cluster.now());
    });
    ASSERT_EQ(written.kind, ClientResult::Kind::kOk) << written.error;
    last_acknowledged = cluster.node(leader).applied_index();
  }
  const NodeId follower = (leader + 1) % 3;
  const ClientResult refused = Await(cluster, [&](ClientCallback done, TimePoint by) {
    cluster.replica(follower).SaveSnapshot(std::move(done), by, cluster.now());
  });
  EXPECT_EQ(refused.reason, ClientResult::Reason::kNotLeader);
  EXPECT_EQ(refused.leader_hint, leader);

  const ClientResult saved = Await(cluster, [&](ClientCallback done, TimePoint by) {
    cluster.replica(leader).SaveSnapshot(std::move(done), by, cluster.now());
    // Writes go on while the snapshot is being written; they may or may not be in it.
    cluster.replica(leader).Set(
        {"later", "x", 0, 0}, [](const ClientResult&) {}, by, cluster.now());
  });
  ASSERT_EQ(saved.kind, ClientResult::Kind::kOk) << saved.error;
  ASSERT_TRUE(saved.snapshot.has_value());
  EXPECT_GE(saved.snapshot->index, last_acknowledged);
  auto loaded =
      LoadSnapshot(&cluster.disk(leader), "/test/node" + std::to_string(leader) + "/snapshot.txt");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->meta, *saved.snapshot);
  for (int i = 0; i < 5; ++i) {
    auto value = loaded->kv->Find("k" + std::to_string(i));
    ASSERT_TRUE(value.has_value()) << i;
    EXPECT_EQ(value->value, "v" + std::to_string(i));
  }
  // Asked again with nothing new applied: the same snapshot, at once.
  cluster.Run(100);
  const LogIndex applied = cluster.node(leader).applied_index();
  const ClientResult again = Await(cluster, [&](ClientCallback done, TimePoint by) {
    cluster.replica(leader).SaveSnapshot(std::move(done), by, cluster.now());
  });
  ASSERT_EQ(again.kind, ClientResult::Kind::kOk) << again.error;
  EXPECT_GE(again.snapshot->index, applied);
}

// A snapshot is written while the node goes on: entries applied meanwhile stay in the log (they
// are not in the snapshot), and a restart recovers the snapshot plus those entries.
TEST(Replica, EntriesAppliedWhileASnapshotIsWrittenStayInTheLog) {
  raft::testing::TestCluster cluster(3, nullptr, [](NodeId, ReplicaOptions& options) {
    options.snapshot_entries = 4;
    options.snapshot_keep_entries = 0;
    options.snapshot_worker = std::make_shared<InlineSnapshotWorker>([] { return 30; });
  });
  const NodeId leader = cluster.ElectLeader();
  for (int i = 0; i < 20; ++i) {
    const kv::SetCommand set{"k" + std::to_string(i), "v" + std::to_string(i), 0, 0};
    const ClientResult written = Await(cluster, [&](ClientCallback done, TimePoint by) {
      cluster.replica(leader).Set(set, std::move(done), by, cluster.now());
    });
    ASSERT_EQ(written.kind, ClientResult::Kind::kOk) << written.error;
  }
  // Each write took fewer turns than a snapshot's window: the snapshot lags the applied index.
  const raft::SnapshotMeta taken = cluster.node(leader).snapshot();
  EXPECT_GT(taken.index, 0u);
  EXPECT_LT(taken.index, cluster.node(leader).applied_index());
  EXPECT_EQ(cluster.node(leader).log().BaseIndex(), taken.index);
  const LogIndex applied = cluster.node(leader).applied_index();
  cluster.Crash(leader);
  cluster.Start(leader);
  // Recovered from its own files: the snapshot, and after it every entry it had applied.
  EXPECT_EQ(cluster.node(leader).snapshot(), taken);
  EXPECT_GE(cluster.node(leader).log().LastIndex(), applied);
  cluster.Run(2000);
  for (int i = 0; i < 20; ++i) {
    auto value = cluster.replica(leader).Find("k" + std::to_string(i));
    ASSERT_TRUE(value.has_value()) << i;
    EXPECT_EQ(value->value, "v" + std::to_string(i));
  }
}

// A snapshot writer that never finishes nor writes (a forked child deadlocked at birth, a disk
// that hangs) is stopped once it has written nothing for 30 s; the snapshot fails, is counted,
// and is tried again, and the node serves throughout.
class StuckSnapshotWorker : public SnapshotWorker {
 public:
  absl::Status Start(Job) override {
    ++starts;
    return absl::OkStatus();
  }
  std::optional<absl::StatusOr<uint64_t>> Poll() override { return std::nullopt; }
  void Cancel() override { ++cancels; }
  int starts = 0, cancels = 0;
};

TEST(Replica, AStuckSnapshotWriterIsStoppedAndTheSnapshotTriedAgain) {
  std::map<NodeId, std::shared_ptr<StuckSnapshotWorker>> workers;
  raft::testing::TestCluster cluster(3, nullptr, [&](NodeId id, ReplicaOptions& options) {
    options.snapshot_entries = 4;
    options.snapshot_keep_entries = 0;
    if (!workers.count(id)) workers[id] = std::make_shared<StuckSnapshotWorker>();
    options.snapshot_worker = workers[id];
  });
  const NodeId leader = cluster.ElectLeader();
  for (int i = 0; i < 10; ++i) {
    const kv::SetCommand set{"k" + std::to_string(i), "v", 0, 0};
    ASSERT_EQ(Await(cluster,
                    [&](ClientCallback done, TimePoint by) {
                      cluster.replica(leader).Set(set, std::move(done), by, cluster.now());
                    })
                  .kind,
              ClientResult::Kind::kOk);
  }
  StuckSnapshotWorker& worker = *workers[leader];
  ASSERT_EQ(worker.starts, 1);
  cluster.Run(29'000);
  EXPECT_EQ(worker.cancels, 0) << "stopped before 30 s without progress";
  cluster.Run(2'000);
  EXPECT_EQ(worker.cancels, 1);
  EXPECT_EQ(cluster.replica(leader).Status(cluster.now()).storage.snapshot_failures, 1u);
  cluster.Run(11'000);  // the retry, 10 s later
  EXPECT_EQ(worker.starts, 2);
  EXPECT_EQ(cluster.node(leader).role(), raft::Role::kLeader);
  const kv::SetCommand later{"later", "v", 0, 0};
  EXPECT_EQ(Await(cluster,
                  [&](ClientCallback done, TimePoint by) {
                    cluster.replica(leader).Set(later, std::move(done), by, cluster.now());
                  })
                .kind,
            ClientResult::Kind::kOk);
}

// --rebuild (node/node_dir.h, raft::HardState::rebuilt_at_term). An entry is committed by the
// leader and B while C is cut off; then the leader dies and B's log is lost and rebuilt. B and C
// are a majority, but B must not vote: C lacks the entry, and B's vote would make it leader and
// the committed entry would be lost. With the rule, nobody leads until the old leader is back; it
// wins C's vote, commits in a new term, and B catches up and votes again. With the rule switched
// off (the injected bug), the test shows the loss it prevents.
void RebuildScenario(bool bug) {
  raft::testing::TestCluster cluster(
      3,
      [bug](raft::RaftConfig& config) {
        if (bug) config.injected_bug = raft::InjectedBug::kVoteWhileRebuilding;
      },
      nullptr);
  const NodeId a = cluster.ElectLeader();
  const NodeId b = (a + 1) % 3, c = (a + 2) % 3;
  auto cut_off_c = [c](const raft::Message& m) { return m.from == c || m.to == c; };
  const LogIndex index = cluster.Propose(a, "committed").index;  // SET committed v
  cluster.Run(50, cut_off_c);
  ASSERT_GE(cluster.node(a).commit_index(), index);
  const Term rebuilt_in = cluster.node(b).term();
  cluster.Crash(a);
  cluster.Crash(b);
  const std::string dir_b = "/test/node" + std::to_string(b);
  absl::StatusOr<std::string> rebuilt = RebuildNodeDir(&cluster.disk(b), dir_b, 3);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  auto metadata = storage::LoadMetadata(dir_b, &cluster.disk(b));
  ASSERT_TRUE(metadata.ok());
  EXPECT_EQ(metadata->rebuilt_at_term, rebuilt_in);
  EXPECT_EQ(metadata->term, rebuilt_in + 1);  // a term ahead, voted for nobody in it
  EXPECT_EQ(metadata->voted_for, kNoNode);
  cluster.Start(b);
  EXPECT_EQ(cluster.node(b).log().LastIndex(), 0u);
  cluster.Run(3000);  // C campaigns, again and again
  if (bug) {
    // B voted from its empty log: C leads, and the entry a majority had acknowledged is gone.
    ASSERT_EQ(cluster.Leader(), std::optional<NodeId>(c));
    cluster.Propose(c, "later");
    cluster.Run(100);
    ASSERT_TRUE(cluster.replica(c).Find("later").has_value());
    EXPECT_FALSE(cluster.replica(c).Find("committed").has_value());
    EXPECT_FALSE(cluster.replica(b).Find("committed").has_value());
    return;
  }
  EXPECT_EQ(cluster.Leader(), std::nullopt) << "B must not vote, nor lead";
  EXPECT_EQ(cluster.node(b).role(), raft::Role::kFollower);
  cluster.Start(a);
  const NodeId leader = cluster.ElectLeader();
  EXPECT_NE(leader, b);
  cluster.Run(500);
  for (NodeId id : {a, b, c}) {
    EXPECT_TRUE(cluster.replica(id).Find("committed").has_value()) << id;
  }
  // B holds a committed entry of a later term: it votes again, and says so once, durably.
  EXPECT_EQ(cluster.CountEvents(raft::Event::Kind::kRebuildEnded), 1);
  metadata = storage::LoadMetadata(dir_b, &cluster.disk(b));
  ASSERT_TRUE(metadata.ok());
  EXPECT_EQ(metadata->rebuilt_at_term, 0u);
  cluster.Crash(leader);
  cluster.Run(3000);
  EXPECT_TRUE(cluster.Leader().has_value()) << "the two others elect a leader again";
}

// Rebuilt under a leader that stays: the node comes back a term ahead, so the leader steps down
// once and the others elect one of a later term; the rebuilt node catches up, ends its rebuild,
// and the cluster then survives the loss of any one other node.
TEST(Replica, ANodeRebuiltUnderAStableLeaderVotesAgainAfterOneElection) {
  raft::testing::TestCluster cluster(3, nullptr, [](NodeId, ReplicaOptions& options) {
    options.snapshot_entries = 5;
    options.snapshot_keep_entries = 0;
  });
  const NodeId a = cluster.ElectLeader();
  const NodeId b = (a + 1) % 3;
  for (int i = 0; i < 20; ++i) cluster.Propose(a, "k" + std::to_string(i));
  cluster.Run(200);
  cluster.Crash(b);
  ASSERT_TRUE(RebuildNodeDir(&cluster.disk(b), "/test/node" + std::to_string(b), 3).ok());
  cluster.Start(b);
  cluster.Run(3000);
  ASSERT_TRUE(cluster.Leader().has_value());
  EXPECT_FALSE(cluster.node(b).rebuilding());
  EXPECT_EQ(cluster.CountEvents(raft::Event::Kind::kRebuildEnded), 1);
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(cluster.replica(b).Find("k" + std::to_string(i)).has_value()) << i;
  }
  const NodeId leader = *cluster.Leader();
  cluster.Crash(leader == b ? (b + 1) % 3 : leader);
  cluster.Run(3000);
  EXPECT_TRUE(cluster.Leader().has_value()) << "b's vote counts again";
}

TEST(Replica, ARebuiltNodeVotesOnlyOnceItHoldsALaterTermsCommittedEntry) { RebuildScenario(false); }

// A rebuild must know the term the node may have voted and acknowledged in: without
// metadata.txt (a fresh disk, or that file lost) it is refused and nothing is deleted.
TEST(Replica, RebuildWithoutMetadataIsRefusedAndDeletesNothing) {
  sim::SimDisk disk;
  auto file = disk.OpenWritable("/node/logs.txt", true);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->WriteAt(0, "NO-OP 1\n").ok());
  ASSERT_TRUE((*file)->Sync().ok());
  absl::StatusOr<std::string> rebuilt = RebuildNodeDir(&disk, "/node", 3);
  EXPECT_TRUE(absl::IsFailedPrecondition(rebuilt.status())) << rebuilt.status();
  EXPECT_NE(rebuilt.status().message().find("no metadata.txt"), absl::string_view::npos);
  EXPECT_TRUE(disk.FileSize("/node/logs.txt").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(RebuildNodeDir(&disk, "/empty", 3).status()));
}
TEST(Replica, WithoutThatRuleARebuiltNodesVoteLosesACommittedEntry) { RebuildScenario(true); }

// --restore: a new cluster of another size starts from a backup, with every key, and its
// sessions (a retried SET is still recognised); a directory holding a node is refused.
TEST(Replica, ANewClusterStartsFromARestoredBackup) {
  raft::testing::TestCluster old_cluster(
      3, nullptr, [](NodeId, ReplicaOptions& options) { options.snapshot_entries = 0; });
  const NodeId leader = old_cluster.ElectLeader();
  const ClientResult opened = Await(old_cluster, [&](ClientCallback done, TimePoint by) {
    old_cluster.replica(leader).OpenSession(std::move(done), by, old_cluster.now());
  });
  ASSERT_EQ(opened.kind, ClientResult::Kind::kOk);
  const kv::SetCommand set{"k", "v", opened.client_id, 1};
  ASSERT_EQ(Await(old_cluster,
                  [&](ClientCallback done, TimePoint by) {
                    old_cluster.replica(leader).Set(set, std::move(done), by, old_cluster.now());
                  })
                .kind,
            ClientResult::Kind::kOk);
  const ClientResult saved = Await(old_cluster, [&](ClientCallback done, TimePoint by) {
    old_cluster.replica(leader).SaveSnapshot(std::move(done), by, old_cluster.now());
  });
  ASSERT_EQ(saved.kind, ClientResult::Kind::kOk) << saved.error;
  absl::StatusOr<std::string> backup =
      old_cluster.disk(leader).ReadFile("/test/node" + std::to_string(leader) + "/snapshot.txt");
  ASSERT_TRUE(backup.ok());

  // Five nodes, each restored from the backup before it starts.
  raft::testing::TestCluster cluster(5, nullptr, [&](NodeId id, ReplicaOptions& options) {
    sim::SimDisk& disk = cluster.disk(id);
    if (disk.FileSize(options.dir + "/metadata.txt").ok()) return;  // restored already
    auto file = disk.OpenWritable("/backup.txt", true);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->WriteAt(0, *backup).ok());
    ASSERT_TRUE((*file)->Sync().ok());
    absl::StatusOr<std::string> restored = RestoreNodeDir(&disk, options.dir, "/backup.txt", 5);
    ASSERT_TRUE(restored.ok()) << restored.status();
  });
  const NodeId new_leader = cluster.ElectLeader();
  EXPECT_EQ(cluster.node(new_leader).snapshot().index, saved.snapshot->index);
  EXPECT_EQ(cluster.node(new_leader).snapshot().cluster_size, 5);
  for (NodeId id = 0; id < 5; ++id) EXPECT_EQ(cluster.replica(id).Find("k")->value, "v") << id;
  // The session came along: the same SET again is recognised as a retry, not applied twice.
  ASSERT_EQ(Await(cluster,
                  [&](ClientCallback done, TimePoint by) {
                    cluster.replica(new_leader).Set(set, std::move(done), by, cluster.now());
                  })
                .kind,
            ClientResult::Kind::kOk);
  EXPECT_EQ(cluster.replica(new_leader).Find("k")->version, 1u);
  // A directory that holds a node is never overwritten.
  cluster.Crash(0);
  absl::StatusOr<std::string> again =
      RestoreNodeDir(&cluster.disk(0), "/test/node0", "/backup.txt", 5);
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status())) << again.status();
}

}  // namespace
}  // namespace raftkv::node

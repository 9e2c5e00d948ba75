// node::Replica on its own: recovery of files written by older versions.
#include "node/replica.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace raftkv::node

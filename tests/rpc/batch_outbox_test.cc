// The stream outbox's batching: everything queued while a write is in flight leaves in one
// message, but a message is closed to new items once it holds the soft limit, so no batch of large
// values outgrows gRPC's 4 MiB receive limit.
#include <gtest/gtest.h>

#include <string>

#include "raftkv.pb.h"
#include "rpc/batch_stream.h"

namespace raftkv {
namespace {

size_t AddRequest(BatchOutbox<AppendEntriesBatch>& outbox, size_t data_bytes) {
  size_t added = 0;
  outbox.Add([&](AppendEntriesBatch* batch) {
    AppendEntriesRequest* request = batch->add_requests();
    request->add_entries()->set_data(std::string(data_bytes, 'x'));
    added = request->ByteSizeLong();
    return added;
  });
  return added;
}

TEST(BatchOutbox, SmallItemsShareOneBatch) {
  BatchOutbox<AppendEntriesBatch> outbox;
  EXPECT_TRUE(outbox.empty());
  for (int i = 0; i < 1000; ++i) AddRequest(outbox, 100);
  EXPECT_EQ(outbox.items(), 1000u);
  AppendEntriesBatch batch;
  outbox.TakeFront(&batch);
  EXPECT_EQ(batch.requests_size(), 1000);
  EXPECT_TRUE(outbox.empty());
  EXPECT_EQ(outbox.items(), 0u);
}

TEST(BatchOutbox, ABatchClosesAtTheSoftLimit) {
  BatchOutbox<AppendEntriesBatch> outbox;
  const size_t item = AddRequest(outbox, 300 * 1024);
  ASSERT_GT(item, 300u * 1024);
  for (int i = 1; i < 9; ++i) AddRequest(outbox, 300 * 1024);
  // Four items reach 1 MiB and close a batch; the fifth opens the next.
  AppendEntriesBatch batch;
  outbox.TakeFront(&batch);
  EXPECT_EQ(batch.requests_size(), 4);
  EXPECT_LT(batch.ByteSizeLong(), kBatchSoftLimitBytes + item + 64);
  batch.Clear();
  outbox.TakeFront(&batch);
  EXPECT_EQ(batch.requests_size(), 4);
  EXPECT_FALSE(outbox.empty());
  EXPECT_EQ(outbox.items(), 9u) << "a bound on what waits, reset only when the outbox empties";
  batch.Clear();
  outbox.TakeFront(&batch);
  EXPECT_EQ(batch.requests_size(), 1);
  EXPECT_TRUE(outbox.empty());
  // One item larger than the limit still goes, alone.
  AddRequest(outbox, 3 * 1024 * 1024);
  AddRequest(outbox, 10);
  batch.Clear();
  outbox.TakeFront(&batch);
  EXPECT_EQ(batch.requests_size(), 1);
  batch.Clear();
  outbox.TakeFront(&batch);
  EXPECT_EQ(batch.requests_size(), 1);
}

// The bytes it holds (what the server's stream throttles and cuts off on) follow every batch in
// and out, and Clear drops them all.
TEST(BatchOutbox, CountsTheBytesItHolds) {
  BatchOutbox<AppendEntriesBatch> outbox;
  size_t total = 0;
  for (int i = 0; i < 9; ++i) total += AddRequest(outbox, 300 * 1024);
  EXPECT_EQ(outbox.bytes(), total);
  AppendEntriesBatch batch;
  const size_t first = outbox.TakeFront(&batch);
  size_t in_batch = 0;
  for (const AppendEntriesRequest& request : batch.requests()) in_batch += request.ByteSizeLong();
  EXPECT_EQ(first, in_batch);
  EXPECT_EQ(outbox.bytes(), total - first);
  outbox.Clear();
  EXPECT_TRUE(outbox.empty());
  EXPECT_EQ(outbox.bytes(), 0u);
  EXPECT_EQ(outbox.items(), 0u);
}

}  // namespace
}  // namespace raftkv

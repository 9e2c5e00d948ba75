// ClientSession's two rules (src/client/session.h), and the address parser.
#include "client/session.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "common/address.h"

namespace raftkv::client {
namespace {

using Outcome = ClientSession::Outcome;

struct Recorder {
  std::vector<SessionTicket> started;
  // Acquires a ticket, recording it whether it is issued now or later.
  void Acquire(ClientSession& session) {
    uint64_t queued_id = 0;
    std::optional<SessionTicket> now =
        session.Acquire([this](SessionTicket ticket) { started.push_back(ticket); }, &queued_id);
    if (now) started.push_back(*now);
  }
};

// Counts the opens a session asks for; the test answers them.
struct Opens {
  int asked = 0;
  std::function<void()> Callback() {
    return [this] { ++asked; };
  }
};

TEST(ClientSession, SetsWaitForTheSessionToOpen) {
  Opens opens;
  ClientSession session(/*window=*/100, opens.Callback());
  Recorder recorder;
  for (int i = 0; i < 5; ++i) recorder.Acquire(session);
  EXPECT_TRUE(recorder.started.empty()) << "nothing goes out before the cluster has the session";
  EXPECT_EQ(opens.asked, 1) << "one open, however many SETs wait";
  session.Opened(42);
  ASSERT_EQ(recorder.started.size(), 5u);
  for (uint64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(recorder.started[i].sequence, i + 1);
    EXPECT_EQ(recorder.started[i].client_id, 42u);
  }
  recorder.Acquire(session);
  EXPECT_EQ(recorder.started.size(), 6u);
  EXPECT_EQ(opens.asked, 1);
}

TEST(ClientSession, AFailedOpenIsRetriedWhileSetsWait) {
  Opens opens;
  ClientSession session(100, opens.Callback());
  Recorder recorder;
  recorder.Acquire(session);
  session.OpenFailed(/*retry=*/true);
  EXPECT_EQ(opens.asked, 2);
  session.OpenFailed(/*retry=*/false);  // the client is shutting down
  EXPECT_EQ(opens.asked, 2);
  EXPECT_TRUE(recorder.started.empty());
  recorder.Acquire(session);  // a new SET asks again
  EXPECT_EQ(opens.asked, 3);
  session.Opened(7);
  EXPECT_EQ(recorder.started.size(), 2u);
}

// Rule 2: a SET is issued only within the cluster's dedup window of the oldest SET still in
// flight, so a slow old SET can never be mistaken for a duplicate.
TEST(ClientSession, NothingIsIssuedBeyondTheWindowOfTheOldestInFlight) {
  Opens opens;
  ClientSession session(/*window=*/4, opens.Callback());
  Recorder recorder;
  recorder.Acquire(session);
  session.Opened(1);
  session.Release(recorder.started[0], Outcome::kApplied);
  for (int i = 0; i < 6; ++i) recorder.Acquire(session);
  // In flight: 2, 3, 4, 5 (5 - 2 < 4); 6 must wait for 2.
  ASSERT_EQ(recorder.started.size(), 5u);
  session.Release(recorder.started[2], Outcome::kApplied);  // sequence 3: 2 still holds the window
  EXPECT_EQ(recorder.started.size(), 5u);
  session.Release(recorder.started[1], Outcome::kApplied);  // sequence 2
  ASSERT_EQ(recorder.started.size(), 7u);
  EXPECT_EQ(recorder.started[6].sequence, 7u);
}

// Rule 3: never more than the window above the highest acknowledged sequence (the cluster
// refuses those); a session that cannot go on that way is replaced.
TEST(ClientSession, NothingIsIssuedBeyondTheWindowAboveTheHighestApplied) {
  Opens opens;
  ClientSession session(/*window=*/4, opens.Callback());
  Recorder recorder;
  recorder.Acquire(session);
  session.Opened(1);
  for (int i = 0; i < 3; ++i) recorder.Acquire(session);
  ASSERT_EQ(recorder.started.size(), 4u);  // 1..4 in flight
  for (const SessionTicket& ticket : recorder.started) session.Release(ticket, Outcome::kUnknown);
  EXPECT_EQ(opens.asked, 1);
  recorder.Acquire(session);  // sequence 5 > 0 + 4: this session can go no further
  EXPECT_EQ(recorder.started.size(), 4u);
  EXPECT_EQ(opens.asked, 2);
  EXPECT_EQ(session.client_id(), 0u);
  session.Opened(9);
  ASSERT_EQ(recorder.started.size(), 5u);
  EXPECT_EQ(recorder.started[4].client_id, 9u);
  EXPECT_EQ(recorder.started[4].sequence, 1u);
}

TEST(ClientSession, AQueuedSetCanBeWithdrawn) {
  Opens opens;
  ClientSession session(100, opens.Callback());
  uint64_t queued_id = 0;
  bool started = false;
  EXPECT_FALSE(session.Acquire([&](SessionTicket) { started = true; }, &queued_id));
  EXPECT_TRUE(session.Cancel(queued_id));
  EXPECT_FALSE(session.Cancel(queued_id));
  session.Opened(3);
  EXPECT_FALSE(started);
  Recorder recorder;
  recorder.Acquire(session);
  EXPECT_EQ(recorder.started.back().sequence, 1u) << "the withdrawn SET used no sequence";
}

TEST(ClientSession, AnExpiredSessionIsReplacedAndStaleReleasesAreIgnored) {
  Opens opens;
  ClientSession session(100, opens.Callback());
  Recorder recorder;
  recorder.Acquire(session);
  session.Opened(5);
  recorder.Acquire(session);
  session.Release(recorder.started[0], Outcome::kExpired);
  EXPECT_EQ(session.client_id(), 0u);
  EXPECT_EQ(opens.asked, 1) << "nothing waits, so nothing is opened yet";
  session.Release(recorder.started[1], Outcome::kApplied);  // old session: changes nothing
  recorder.Acquire(session);
  EXPECT_EQ(opens.asked, 2);
  session.Opened(8);
  ASSERT_EQ(recorder.started.size(), 3u);
  EXPECT_EQ(recorder.started[2].client_id, 8u);
  EXPECT_EQ(recorder.started[2].sequence, 1u);
}

// Many threads acquiring and releasing at once (run under TSan by `make test`): every SET gets a
// ticket exactly once, all in one session, sequence numbers unique.
TEST(ClientSession, ManyThreadsAtOnce) {
  ClientSession session(/*window=*/8, [&session] { session.Opened(42); });
  Mutex mu;
  std::deque<SessionTicket> started;
  std::vector<SessionTicket> released;
  constexpr int kThreads = 4, kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        uint64_t queued_id = 0;
        std::optional<SessionTicket> now = session.Acquire(
            [&](SessionTicket ticket) {
              MutexLock lock(&mu);
              started.push_back(ticket);
            },
            &queued_id);
        if (now) {
          MutexLock lock(&mu);
          started.push_back(*now);
        }
        // Release whatever has started, as replies would arrive.
        while (true) {
          std::optional<SessionTicket> ticket;
          {
            MutexLock lock(&mu);
            if (!started.empty()) {
              ticket = started.front();
              started.pop_front();
              released.push_back(*ticket);
            }
          }
          if (!ticket) break;
          session.Release(*ticket, Outcome::kApplied);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  MutexLock lock(&mu);
  ASSERT_EQ(released.size(), static_cast<size_t>(kThreads * kPerThread));
  std::set<uint64_t> sequences;
  for (const SessionTicket& ticket : released) {
    EXPECT_EQ(ticket.client_id, released[0].client_id);
    sequences.insert(ticket.sequence);
  }
  EXPECT_EQ(sequences.size(), released.size());
  EXPECT_EQ(*sequences.rbegin(), released.size());
}

TEST(AddressList, ParsesAndExplainsMistakes) {
  auto list = ParseAddressList(" 127.0.0.1:1, node-b:50051,,[::1]:7 ");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(*list, (std::vector<std::string>{"127.0.0.1:1", "node-b:50051", "[::1]:7"}));
  EXPECT_NE(ParseAddressList("localhost").status().message().find("expected host:port"),
            std::string::npos);
  EXPECT_NE(ParseAddressList("a:0").status().message().find("1..65535"), std::string::npos);
  EXPECT_NE(ParseAddressList("a:12x").status().message().find("1..65535"), std::string::npos);
  EXPECT_NE(ParseAddressList(" , ").status().message().find("no node addresses"),
            std::string::npos);
}

}  // namespace
}  // namespace raftkv::client

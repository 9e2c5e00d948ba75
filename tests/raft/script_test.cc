// Script tests for the core, in the manner of etcd-raft's datadriven interaction tests: each file
// in tests/raft/testdata/ is a sequence of commands run against a TestCluster (real replicas on
// simulated disks), each followed by the output it must produce, rendered with raft::Describe.
//
//   <command>
//   ----
//   <expected output, no blank lines; "ok" when there is nothing to show>
//   <blank line>
//
// Lines starting with '#' between blocks are comments. Run with --rewrite to regenerate the
// expected outputs (then read the diff!):
//
//   build/tests/raft_script_test --rewrite
//
// Commands:
//   cluster N [max-entries=K]  a fresh cluster of N nodes (ids 0..N-1), the TestConfig timings
//   campaign I                 node I starts an election now, as if its timer had fired
//   tick Dms                   D milliseconds pass, every live node ticked each millisecond;
//                              nothing is delivered (messages wait in flight)
//   sleep Dms                  D milliseconds pass and no node is ticked (every process paused)
//   run Dms                    D milliseconds pass as in a healthy network: each millisecond every
//                              live node is ticked and everything is delivered (blocks apply);
//                              shows the events only, accepted heartbeats left out
//   deliver                    delivers the messages now in flight, once, and shows what each
//                              delivery causes
//   stabilize                  delivers until nothing is in flight
//   propose I KEY...           client SETs of each KEY on node I, arriving together (one turn)
//   read I                     a lease read on node I: ok (read index) or the refusal
//   crash I / restart I        node I's process dies (its disk keeps what it wrote) / restarts
//   block A->B ... | block I   drop messages on those links / to and from node I, until unblock
//   unblock                    lift every block
//   status                     each node: role, term, leader, commit, applied, last index/term
//   log I                      node I's log
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "raft/describe.h"
#include "tests/raft/test_cluster.h"

namespace raftkv::raft::testing {
namespace {

bool rewrite = false;

std::string SetKey(const std::string& data) {
  absl::StatusOr<kv::Command> command = kv::DecodeCommand(data);
  if (!command.ok()) return "cmd?";
  if (const auto* set = std::get_if<kv::SetCommand>(&*command)) return "SET " + set->key;
  return "OPEN-SESSION";
}

std::vector<std::string> Split(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

class ScriptRunner {
 public:
  // Runs one command; returns its output, or an error line starting with "error: ".
  std::string Run(const std::string& command) {
    out_.str("");
    const std::vector<std::string> args = Split(command);
    if (args.empty()) return "error: empty command";
    const std::string& verb = args[0];
    if (verb == "cluster") {
      int size = std::stoi(args.at(1));
      int max_entries = 0;
      for (size_t i = 2; i < args.size(); ++i) {
        if (args[i].rfind("max-entries=", 0) == 0) max_entries = std::stoi(args[i].substr(12));
      }
      cluster_ = std::make_unique<TestCluster>(size, [max_entries](RaftConfig& c) {
        if (max_entries > 0) c.max_entries_per_append = max_entries;
      });
      blocked_.clear();
      Flush();
      ShowEmitted(/*quiet=*/true);
      return "ok";
    }
    if (!cluster_) return "error: no cluster yet (cluster N)";
    if (verb == "campaign") {
      const NodeId id = Id(args.at(1));
      if (!cluster_->up(id)) return "error: node " + args[1] + " is down";
      cluster_->replica(id).Campaign(cluster_->now());
      cluster_->Process(id);
    } else if (verb == "tick") {
      const std::string& d = args.at(1);
      if (d.size() < 3 || d.substr(d.size() - 2) != "ms") return "error: tick takes Nms";
      for (int ms = std::stoi(d); ms > 0; --ms) {
        cluster_->AdvanceTo(cluster_->now() + std::chrono::milliseconds(1));
        for (NodeId id = 0; id < Size(); ++id) cluster_->Process(id);
      }
    } else if (verb == "sleep") {
      const std::string& d = args.at(1);
      if (d.size() < 3 || d.substr(d.size() - 2) != "ms") return "error: sleep takes Nms";
      cluster_->AdvanceTo(cluster_->now() + std::chrono::milliseconds(std::stoi(d)));
    } else if (verb == "run") {
      const std::string& d = args.at(1);
      if (d.size() < 3 || d.substr(d.size() - 2) != "ms") return "error: run takes Nms";
      quiet_messages_ = true;
      for (int ms = std::stoi(d); ms > 0; --ms) {
        cluster_->AdvanceTo(cluster_->now() + std::chrono::milliseconds(1));
        for (NodeId id = 0; id < Size(); ++id) cluster_->Process(id);
        for (int round = 0; round < 100 && !cluster_->in_flight().empty(); ++round) DeliverOnce();
      }
      quiet_messages_ = false;
    } else if (verb == "deliver") {
      DeliverOnce();
    } else if (verb == "stabilize") {
      for (int round = 0; round < 100 && !cluster_->in_flight().empty(); ++round) DeliverOnce();
    } else if (verb == "propose") {
      const NodeId id = Id(args.at(1));
      for (size_t i = 2; i < args.size(); ++i) {
        const ProposeResult result = cluster_->Propose(id, args[i]);
        if (result.accepted) {
          out_ << args[i] << ": accepted at " << result.index << "/" << result.term << "\n";
        } else {
          out_ << args[i] << ": refused, not leader (hint " << Hint(result.leader_hint) << ")\n";
        }
      }
      cluster_->Process(id);
    } else if (verb == "read") {
      const NodeId id = Id(args.at(1));
      const LeaseReadResult read = cluster_->node(id).LeaseRead(cluster_->now());
      static constexpr const char* kRefusals[] = {"ok", "not leader", "waiting for old lease",
                                                  "no lease", "NO-OP not applied"};
      out_ << kRefusals[static_cast<int>(read.refusal)];
      if (read.ok()) out_ << " read_index=" << read.read_index;
      if (read.refusal == ReadRefusal::kNotLeader)
        out_ << " (hint " << Hint(read.leader_hint) << ")";
      out_ << "\n";
    } else if (verb == "crash") {
      cluster_->Crash(Id(args.at(1)));
    } else if (verb == "restart") {
      cluster_->Start(Id(args.at(1)));
    } else if (verb == "block") {
      for (size_t i = 1; i < args.size(); ++i) {
        const size_t arrow = args[i].find("->");
        if (arrow == std::string::npos) {
          const NodeId id = Id(args[i]);
          for (NodeId other = 0; other < Size(); ++other) {
            blocked_.insert({id, other});
            blocked_.insert({other, id});
          }
        } else {
          blocked_.insert({Id(args[i].substr(0, arrow)), Id(args[i].substr(arrow + 2))});
        }
      }
    } else if (verb == "unblock") {
      blocked_.clear();
    } else if (verb == "status") {
      for (NodeId id = 0; id < Size(); ++id) {
        if (!cluster_->up(id)) {
          out_ << id << ": down\n";
          continue;
        }
        const RaftNode& n = cluster_->node(id);
        static constexpr const char* kRoles[] = {"follower", "candidate", "leader"};
        out_ << id << ": " << kRoles[static_cast<int>(n.role())] << " term=" << n.term()
             << " leader=" << Hint(n.leader_id()) << " commit=" << n.commit_index()
             << " applied=" << n.applied_index() << " last=" << n.log().LastIndex() << "/"
             << n.log().LastTerm() << "\n";
      }
    } else if (verb == "log") {
      const RaftLog& log = cluster_->node(Id(args.at(1))).log();
      for (LogIndex i = 1; i <= log.LastIndex(); ++i) out_ << Describe(log.At(i), SetKey) << "\n";
    } else {
      return "error: unknown command '" + verb + "'";
    }
    ShowEmitted(false);
    std::string text = out_.str();
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text.empty() ? "ok" : text;
  }

 private:
  int Size() const { return static_cast<int>(cluster_->size()); }
  NodeId Id(const std::string& text) const {
    const NodeId id = std::stoi(text);
    if (id < 0 || id >= Size()) throw std::out_of_range("node " + text);
    return id;
  }
  static std::string Hint(NodeId id) { return id == kNoNode ? "none" : std::to_string(id); }
  bool Blocked(const Message& m) const { return blocked_.count({m.from, m.to}) > 0; }

  // Delivers what is in flight now, once; what the deliveries send goes out in the next round.
  void DeliverOnce() {
    ShowEmitted(false);
    std::vector<Message> batch;
    batch.swap(cluster_->in_flight());
    sent_ = 0;
    for (const Message& m : batch) {
      if (Blocked(m) || !cluster_->up(m.to)) {
        if (!quiet_messages_) {
          out_ << (Blocked(m) ? "dropped " : "lost (node down) ") << Describe(m, SetKey) << "\n";
        }
      } else {
        cluster_->Step(m);
        ShowEmitted(false);
      }
    }
  }

  // Prints the events and messages emitted since the last call (heartbeat rounds left out).
  void ShowEmitted(bool quiet) {
    const auto& events = cluster_->events();
    for (; events_seen_ < events.size(); ++events_seen_) {
      const auto& [id, event] = events[events_seen_];
      if (quiet || event.kind == Event::Kind::kHeartbeatRound) continue;
      // `run` shows what changes the cluster, not the heartbeats of a healthy one.
      if (quiet_messages_ && event.kind == Event::Kind::kAppendAccepted) continue;
      out_ << id << ": " << Describe(event) << "\n";
    }
    const std::vector<Message>& flight = cluster_->in_flight();
    for (; sent_ < flight.size(); ++sent_) {
      if (!quiet && !quiet_messages_) out_ << "  " << Describe(flight[sent_], SetKey) << "\n";
    }
  }
  void Flush() {
    events_seen_ = 0;
    sent_ = 0;
  }

  std::unique_ptr<TestCluster> cluster_;
  std::set<std::pair<NodeId, NodeId>> blocked_;
  std::ostringstream out_;
  size_t events_seen_ = 0;
  size_t sent_ = 0;              // messages in flight already shown
  bool quiet_messages_ = false;  // `run`: events only
};

// One script: runs every block, compares (or rewrites) the outputs.
void RunScript(const std::filesystem::path& path) {
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ScriptRunner runner;
  std::string rewritten;
  for (size_t i = 0; i < lines.size();) {
    const std::string& line = lines[i];
    if (line.empty() || line[0] == '#') {
      rewritten += line + "\n";
      ++i;
      continue;
    }
    const std::string command = line;
    const size_t command_line = i + 1;
    ++i;
    ASSERT_TRUE(i < lines.size() && lines[i] == "----")
        << path.filename() << ":" << command_line << ": expected ---- after the command";
    ++i;
    std::string expected;
    for (; i < lines.size() && !lines[i].empty(); ++i) expected += lines[i] + "\n";
    if (!expected.empty()) expected.pop_back();
    std::string actual;
    try {
      actual = runner.Run(command);
    } catch (const std::exception& e) {
      actual = std::string("error: ") + e.what();
    }
    rewritten += command + "\n----\n" + actual + "\n";
    if (!rewrite) {
      EXPECT_EQ(actual, expected) << path.filename() << ":" << command_line << ": " << command;
    }
  }
  if (rewrite) {
    std::ofstream(path, std::ios::trunc) << rewritten;
  }
}

std::vector<std::string> Scripts() {
  std::vector<std::string> names;
  for (const auto& entry :
       std::filesystem::directory_iterator(RAFTKV_SOURCE_DIR "/tests/raft/testdata")) {
    if (entry.path().extension() == ".txt") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class Script : public ::testing::TestWithParam<std::string> {};

TEST_P(Script, MatchesGoldenOutput) {
  RunScript(std::filesystem::path(RAFTKV_SOURCE_DIR "/tests/raft/testdata") /
            (GetParam() + ".txt"));
}

INSTANTIATE_TEST_SUITE_P(Testdata, Script, ::testing::ValuesIn(Scripts()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace raftkv::raft::testing

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--rewrite") raftkv::raft::testing::rewrite = true;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

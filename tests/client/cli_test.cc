// The raftkv command line: exit codes and messages for bad usage and unreachable clusters, the
// argument commands, the status table, and the prompt's pipe mode, against a real cluster.
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "tests/process/process_cluster.h"

namespace raftkv {
namespace {

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `raftkv ARGS` through the shell, with `input` on stdin and without RAFTKV_NODES.
Outcome RunCli(const std::string& args, const std::string& input = "") {
  char pattern[] = "/tmp/raftkv-cli-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  std::ofstream(dir + "/in") << input;
  const std::string command = "env -u RAFTKV_NODES " RAFTKV_CLI_BINARY " " + args + " <" + dir +
                              "/in >" + dir + "/out 2>" + dir + "/err";
  const int status = std::system(command.c_str());
  Outcome outcome;
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream out, err;
  out << std::ifstream(dir + "/out").rdbuf();
  err << std::ifstream(dir + "/err").rdbuf();
  outcome.out = out.str();
  outcome.err = err.str();
  std::filesystem::remove_all(dir);
  return outcome;
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "in: " << (haystack)

TEST(Cli, BadUsageExitsTwoWithAMessage) {
  Outcome no_nodes = RunCli("get a");
  EXPECT_EQ(no_nodes.exit_code, 2);
  EXPECT_CONTAINS(no_nodes.err, "--nodes");

  Outcome bad_address = RunCli("--nodes localhost get a");
  EXPECT_EQ(bad_address.exit_code, 2);
  EXPECT_CONTAINS(bad_address.err, "expected host:port");

  Outcome unknown = RunCli("--nodes 127.0.0.1:1 frobnicate");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_CONTAINS(unknown.err, "frobnicate");

  Outcome missing_value = RunCli("--nodes 127.0.0.1:1 set a");
  EXPECT_EQ(missing_value.exit_code, 2);
  EXPECT_CONTAINS(missing_value.err, "value");

  Outcome bad_timeout = RunCli("--nodes 127.0.0.1:1 --timeout fast get a");
  EXPECT_EQ(bad_timeout.exit_code, 2);
  EXPECT_CONTAINS(bad_timeout.err, "positive duration");

  Outcome help = RunCli("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_CONTAINS(help.out, "status");
}

TEST(Cli, UnreachableClusterExitsOneAndSaysSo) {
  Outcome get = RunCli("--nodes 127.0.0.1:1,127.0.0.1:2 --timeout 1s get a");
  EXPECT_EQ(get.exit_code, 1);
  EXPECT_CONTAINS(get.err, "cluster unavailable");

  Outcome status = RunCli("--nodes 127.0.0.1:1,127.0.0.1:2 status");
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_CONTAINS(status.out, "unreachable");
  EXPECT_CONTAINS(status.err, "2 of 2 nodes did not answer");
}

TEST(Cli, CommandsTableAndPromptAgainstARealCluster) {
  ProcessCluster cluster(3);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  std::string nodes;
  for (const std::string& address : cluster.addresses())
    nodes += (nodes.empty() ? "" : ",") + address;
  const std::string flags = "--nodes " + nodes + " ";

  Outcome set = RunCli(flags + "set greeting 'hello world'");
  EXPECT_EQ(set.exit_code, 0) << set.err;
  EXPECT_EQ(set.out, "OK\n");
  Outcome get = RunCli(flags + "get greeting");
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "hello world\n");
  Outcome missing = RunCli(flags + "get nothing-here");
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_CONTAINS(missing.err, "not found");

  // The node list may also come from the cluster's config file.
  std::ofstream(cluster.dir() + "/client.ini") << "[cluster]\nNODES = " << nodes << "\n";
  Outcome from_config = RunCli("--config " + cluster.dir() + "/client.ini get greeting");
  EXPECT_EQ(from_config.out, "hello world\n") << from_config.err;

  Outcome status = RunCli(flags + "status");
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_CONTAINS(status.out, "| ROLE ");
  EXPECT_CONTAINS(status.out, "| leader ");
  EXPECT_CONTAINS(status.out, cluster.addresses()[leader]);

  // The seed's requests, any case; the value is the rest of the line; errors go to stderr with
  // the line number and the prompt goes on.
  Outcome piped = RunCli(flags, "SET a hello big world\nget A\nGET a\nset b 2\nFOO\nGET zzz\n");
  EXPECT_EQ(piped.exit_code, 1) << "one line failed";
  EXPECT_EQ(piped.out, "OK\n(not found)\nhello big world\nOK\n(not found)\n");
  EXPECT_CONTAINS(piped.err, "line 5: error: unknown command 'FOO'");

  // A node down: the table says which, and the exit status says it is not all well.
  cluster.Kill((leader + 1) % 3, SIGKILL);
  Outcome degraded = RunCli(flags + "status");
  EXPECT_EQ(degraded.exit_code, 1);
  EXPECT_CONTAINS(degraded.out, "unreachable");
  EXPECT_CONTAINS(degraded.err, "1 of 3 nodes did not answer");
}

}  // namespace
}  // namespace raftkv

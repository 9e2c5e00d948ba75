// The gRPC services of a node: `Raft` for peers and `KV` for clients (proto/raftkv.proto). Both
// run on gRPC's handler threads and only post to the RaftDriver, then wait for its answer.
#pragma once

#include <string>
#include <vector>

#include "raftkv.grpc.pb.h"
#include "server/raft_driver.h"

namespace raftkv::server {

class RaftService final : public Raft::Service {
 public:
  RaftService(RaftDriver* driver, NodeId self, int cluster_size, Duration timeout);
  grpc::Status AppendEntries(grpc::ServerContext* context, const AppendEntriesRequest* request,
                             AppendEntriesResponse* response) override;
  grpc::Status RequestVote(grpc::ServerContext* context, const RequestVoteRequest* request,
                           RequestVoteResponse* response) override;

 private:
  template <typename Request>
  grpc::Status Forward(const Request& request, std::optional<raft::Message>* reply);

  RaftDriver* driver_;
  NodeId self_;
  int cluster_size_;
  Duration timeout_;
};

class KvService final : public KV::Service {
 public:
  KvService(RaftDriver* driver, std::vector<std::string> addresses, Duration timeout);
  grpc::Status ServeClient(grpc::ServerContext* context, const ServeClientArgs* request,
                           ServeClientReply* reply) override;
  grpc::Status Status(grpc::ServerContext* context, const StatusArgs* request,
                      StatusReply* reply) override;

 private:
  RaftDriver* driver_;
  std::vector<std::string> addresses_;
  Duration timeout_;
};

}  // namespace raftkv::server

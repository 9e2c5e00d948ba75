// Mutual TLS for the node's services and its peer and client channels (docs/design.md,
// "Authentication"). With TLS on, every connection to a node, in either direction, presents a
// certificate signed by the cluster CA, and the node binds node ids to certificate names: a Raft
// message from node i is accepted only over a connection whose certificate's common name is
// "node<i>" (scripts/make-certs issues them so). A client certificate, or node j's, therefore
// cannot speak for node i. With TLS off (no [tls] files), everything is plaintext and unchecked.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/tls_files.h"
#include "common/types.h"

namespace raftkv::rpc {

// The PEM text of the three files, checked.
struct TlsMaterial {
  std::string ca;
  std::string cert;
  std::string key;
  std::string common_name;  // the certificate's subject CN
};

// Reads the files and checks what would otherwise fail only at the first handshake, with a
// message naming the file: all three are given; each parses as PEM; the key is the certificate's;
// the certificate is signed by the CA and valid today. Errors name the node's [tls] keys, or, with
// `for_client`, the client's --cacert/--cert/--key (ClientOptions::tls).
absl::StatusOr<TlsMaterial> LoadTls(const TlsFiles& files, bool for_client);

// True when the certificate in `tls` is valid for host name `name` (its subject alternative
// names, as a TLS client checks them).
bool CertificateValidFor(const TlsMaterial& tls, const std::string& name);

// Plaintext when `tls` is nullopt. The server requires and verifies a client certificate.
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const std::optional<TlsMaterial>& tls);
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const std::optional<TlsMaterial>& tls);

// Routes gRPC's own log lines to stderr, prefixed with `program`, except that a refused TLS
// handshake (a plaintext client, a missing certificate, one from another CA), which gRPC logs at
// every attempt, is reported once per reason in words an operator can act on (or, without
// `report_refusals`, not at all: the CLI's own error says it). Process-wide; for programs
// (raftkv-node, raftkv), not for the client library to impose on its users.
void ReportTlsRefusalsOnce(const std::string& program, bool report_refusals = true);

// The certificate name node `id` must present: "node<id>", as its common name (checked by the
// nodes it sends to) and among its subject alternative names (checked by the nodes that call it).
std::string NodeCertificateName(NodeId id);
// The node a certificate's common name names ("node<id>" with 0 <= id < cluster_size), if any.
std::optional<NodeId> NodeOfCertificate(const std::string& common_name, int cluster_size);
// The common name of the certificate the caller presented ("" for none, as on plaintext).
std::string PeerCommonName(const grpc::ServerContextBase& context);
// OK when a caller presenting `common_name` may send Raft messages as node `from`; otherwise
// PERMISSION_DENIED saying which certificate was expected.
grpc::Status CheckSender(const std::string& common_name, NodeId from);

}  // namespace raftkv::rpc

// Where a node's or a client's TLS material lives ([tls] in config.ini; raftkv --cacert/--cert/
// --key). All three paths are set, or none: then the connection is plaintext (the `make run`
// demo). rpc/tls.h reads and checks them.
#pragma once

#include <string>

namespace raftkv {

struct TlsFiles {
  std::string ca_file;    // PEM: the cluster CA; a peer's certificate must be signed by it
  std::string cert_file;  // PEM: this process's certificate (node<i> for node i, or a client's)
  std::string key_file;   // PEM: its private key

  bool any() const { return !ca_file.empty() || !cert_file.empty() || !key_file.empty(); }
};

}  // namespace raftkv

// HttpEndpoint: a deliberately small HTTP/1.1 server for a node's operator endpoints (/metrics,
// /health, /status): GET and HEAD only, one connection at a time on one thread, the request head
// read within 8 KiB and 2 s, the answer written within 2 s, then the connection closed.
//
// Why not cpp-httplib (Debian 12 has 0.11.4): it reads a header line without a bound before it
// checks the line's length, queues connections without a bound while its workers are busy, and
// accepts with accept() rather than accept4(), so its connections would escape the accept gate
// (accept_gate.h). Anyone who can reach the port could then grow the node's memory or take the
// descriptors its files need. Here a client can cost at most 8 KiB and one descriptor for 2 s,
// and a flood only waits in the kernel's listen queue. The port has no authentication: listen on
// loopback or an internal network.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace raftkv::rpc {

class HttpEndpoint {
 public:
  struct Response {
    Response() = default;
    Response(int status, std::string content_type, std::string body,
             std::vector<std::pair<std::string, std::string>> headers = {})
        : status(status),
          content_type(std::move(content_type)),
          body(std::move(body)),
          headers(std::move(headers)) {}
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // more header fields, if any
  };
  struct Request {
    std::string path;  // without its query string
  };
  // Called on the endpoint's thread for each GET or HEAD.
  using Handler = std::function<Response(const Request& request)>;

  static constexpr size_t kMaxRequestHeadBytes = 8 << 10;
  static constexpr int kRequestMillis = 2000;  // to read the request head, and to write the answer
  static constexpr size_t kMaxDiscardBytes = 256 << 10;  // read and dropped after the answer

  // Listens on `listen` (host:port) at once: an error if it cannot (the port in use, a bad host).
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(const std::string& listen,
                                                             Handler handler);
  ~HttpEndpoint();  // Stop()
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;
  // Stops listening; the connection being served, if any, is given up within 2 s. Idempotent.
  void Stop();

 private:
  HttpEndpoint() = default;
  void Loop();
  void Serve(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe: Stop writes to it to end Loop's poll
  std::thread thread_;
};

}  // namespace raftkv::rpc

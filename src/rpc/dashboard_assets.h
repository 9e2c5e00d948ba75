// The dashboard's files (src/rpc/dashboard/), embedded in the binary at build time
// (cmake/embed_files.cmake) and served by every node's metrics endpoint.
#pragma once

#include <optional>
#include <string>

#include "rpc/http_endpoint.h"

namespace raftkv::rpc {

// The dashboard file at `path` ("/" is the page, then /dashboard.js and /dashboard.css), or
// nullopt for any other path.
std::optional<HttpEndpoint::Response> DashboardAsset(const std::string& path);

}  // namespace raftkv::rpc

#include "rpc/dashboard_assets.h"

#include <string_view>

namespace raftkv::rpc {

// Defined in the generated dashboard_files.cc.
extern const std::string_view kDashboardHtml;
extern const std::string_view kDashboardJs;
extern const std::string_view kDashboardCss;

std::optional<HttpEndpoint::Response> DashboardAsset(const std::string& path) {
  const auto asset = [](std::string_view type, std::string_view body) {
    // no-cache: after an upgrade the browser asks again rather than run the old script.
    // The page runs only its own script and styles, and fetches only nodes' /status.
    return HttpEndpoint::Response{
        200,
        std::string(type),
        std::string(body),
        {{"Cache-Control", "no-cache"},
         {"X-Content-Type-Options", "nosniff"},
         {"Content-Security-Policy", "default-src 'self'; connect-src *; frame-ancestors 'none'"}}};
  };
  if (path == "/" || path == "/index.html") {
    return asset("text/html; charset=utf-8", kDashboardHtml);
  }
  if (path == "/dashboard.js") return asset("text/javascript; charset=utf-8", kDashboardJs);
  if (path == "/dashboard.css") return asset("text/css; charset=utf-8", kDashboardCss);
  return std::nullopt;
}

}  // namespace raftkv::rpc

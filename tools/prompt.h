// The raftkv prompt: reads requests a line at a time — `SET key value`, `GET key`, `STATUS`,
// `HELP`, `QUIT` (command words in any case; the value is the rest of the line, spaces included)
// — and prints `OK`, the value, or `(not found)`. Interactive mode adds a banner, a prompt that
// shows the current leader, and a notice when the leader changes. A failed request prints an
// error and the prompt goes on.
#pragma once

#include <istream>
#include <ostream>

#include "raftkv/client.h"

namespace raftkv::tools {

// Returns true when every request succeeded.
bool RunPrompt(client::Client& client, std::istream& in, std::ostream& out, std::ostream& err,
               bool interactive);

}  // namespace raftkv::tools

// The accept gate: a cap on the connections a node holds open, which also keeps gRPC's listener
// alive when file descriptors run short.
//
// Why not gRPC's own: Debian 12's gRPC (1.51) has no connection limit, and its listener gives up
// for good on the first accept4 that fails with EMFILE ("Failed accept4: Too many open files"):
// the node then never accepts another connection, from a client or a peer, until restarted. A
// flood of idle connections did that with nothing but connect(). So this file defines accept4
// itself: the dynamic linker binds libgrpc's calls to the executable's definition (symbol
// interposition; the linker exports it because libgrpc refers to it). The gate accepts as usual
// while fewer than the limit of descriptors are open; past it, it accepts and at once closes
// every waiting connection (the client sees the connection reset and retries elsewhere or later)
// and tells gRPC "try again" (EAGAIN), never EMFILE. A descriptor kept in reserve lets it drain
// the queue even when the process is out of descriptors altogether.
//
// The limit is a descriptor number: descriptors are allocated lowest-first, so an accepted
// descriptor numbered at least `max_fd` means at least that many are open. The node's own files
// and its connections to peers keep the room above it (kReservedFds): they never starve.
#pragma once

#include <cstdint>
#include <string>

namespace raftkv::rpc {

struct AcceptGateReport {
  int64_t soft_limit = 0;  // RLIMIT_NOFILE after raising it
  int64_t hard_limit = 0;
  int64_t max_connections = 0;  // what the gate lets in (may be below what was asked)
  std::string warning;          // non-empty when the limit forced fewer connections than asked
};

// Descriptors kept free above the connections for the node's own files, its outgoing peer
// connections and gRPC's internals.
inline constexpr int64_t kReservedFds = 256;

// Raises RLIMIT_NOFILE's soft limit as far as the hard limit allows, and arms the gate for
// `max_connections` accepted connections beyond the descriptors open now. Call once at start-up,
// before the server listens.
AcceptGateReport ArmAcceptGate(int64_t max_connections);

// Connections the gate has closed at once since start-up (for logs and tests).
int64_t ConnectionsShed();

// The connections open now that were accepted on local port `port` (for /metrics): the process's
// TCP sockets bound to that port that are not listening. Outgoing connections (to peers) have
// other local ports and are not counted. Reads /proc/self/fd: O(descriptors), for a scrape.
int64_t CountInboundConnections(int port);

}  // namespace raftkv::rpc

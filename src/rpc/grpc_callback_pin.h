// Keeps gRPC's callback-API completion queue alive for the whole process.
//
// Why: with Debian's gRPC 1.51, the C++ callback API runs every callback on one process-wide
// completion queue served by its own "nexting" threads; the queue is created on its first
// reference and destroyed on its last. Each channel that made a callback call holds a reference
// until it is destroyed. If the last reference goes away on one of the queue's own threads — the
// call behind a just-finished callback releasing the last channel while its owner destroys that
// channel on another thread — the queue is torn down under its own thread and the process aborts
// ("assertion failed: prior > 0" in grpc_cq_internal_unref; grpc/grpc#32584 describes the
// mechanism). We saw it in about one run in fifteen of a client test that destroys its Client
// right after the last reply.
//
// The cure: one channel that is never destroyed makes one callback call, so the queue's last
// reference is never dropped. Every program that uses the callback API calls this first (the
// client library, the node's transport and the benchmark do).
#pragma once

namespace raftkv {

void PinGrpcCallbackQueue();

}  // namespace raftkv

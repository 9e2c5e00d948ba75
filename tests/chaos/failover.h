// Failover time, measured on real processes: kill -9 the leader, then time the first successful
// SET and the first successful GET from clients that still believe in the old leader.
#pragma once

#include "tests/chaos/chaos_cluster.h"

namespace raftkv::chaos {

// Kills the leader `rounds` times (restarting it after each) and prints every round plus the
// median and worst. Returns false if a round did not recover.
bool MeasureFailover(const ClusterOptions& options, int rounds);

}  // namespace raftkv::chaos

#!/usr/bin/env bash
# `make bench`: the standard raftkv table on a local 3-node cluster (raftkv-bench), then the
# Google Benchmark micro-benchmarks. BENCH_DURATION (default 10s) per point.
# `make bench-vs-etcd` runs the same points against etcd too and writes docs/benchmarks.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
duration="${BENCH_DURATION:-10s}"
work="$(mktemp -d /tmp/raftkv-bench-XXXXXX)"
export RAFTKV_CLUSTER_DIR="$work/raftkv" RAFTKV_BASE_PORT=23891 RAFTKV_CONFIG="$work/raftkv.ini"
trap '"$repo/scripts/raftkv-cluster" down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
sed -e 's/^VERBOSITY *=.*/VERBOSITY = minimal/' "$repo/config.ini" >"$RAFTKV_CONFIG"
"$repo/scripts/raftkv-cluster" up 3 >/dev/null
nodes="$("$repo/scripts/raftkv-cluster" nodes)"
echo "== raftkv-bench: 3 nodes on loopback, 16 B keys, 100 B values, 10,000 keys, $duration per point"
for point in "set 1" "set 256" "get 1" "get 256" "mixed:0.9 256"; do
  read -r op concurrency <<<"$point"
  "$repo/build/bench/raftkv-bench" --nodes "$nodes" --op "$op" --concurrency "$concurrency" \
    --duration "$duration" --warmup 2s
done
echo "== micro-benchmarks"
"$repo/build/bench/raftkv-micro-bench"

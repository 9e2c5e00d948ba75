#!/usr/bin/env bash
# A/B of two built raftkv checkouts on this machine, for a change on the hot path:
#
#   scripts/bench-ab.sh OLD_CHECKOUT NEW_CHECKOUT [ROUNDS]
#
# e.g. `git worktree add /tmp/old main~3 && (cd /tmp/old && make build)`, then
# `scripts/bench-ab.sh /tmp/old .`. Each round starts a 3-node cluster from one checkout, runs
# raftkv-bench's GET and SET points at 256 in flight (BENCH_DURATION each, default 10s), stops it,
# and does the same with the other: alternating, so that the machine's drift hits both alike.
# Compare the two as ratios of their means; absolute numbers move with the machine's load.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 OLD_CHECKOUT NEW_CHECKOUT [ROUNDS]" >&2; exit 2; }
old="$(cd "$1" && pwd)" new="$(cd "$2" && pwd)" rounds="${3:-3}"
duration="${BENCH_DURATION:-10s}"
for repo in "$old" "$new"; do
  for binary in build/tools/raftkv-node build/tools/raftkv build/bench/raftkv-bench; do
    [[ -x "$repo/$binary" ]] || { echo "$repo/$binary missing: run make build there" >&2; exit 2; }
  done
done
work="$(mktemp -d /tmp/raftkv-ab-XXXXXX)"
current=""
trap '[[ -z "$current" ]] || "$current/scripts/raftkv-cluster" down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
printf '%-6s %-4s %-8s %12s\n' round side point ops/s
for round in $(seq 1 "$rounds"); do
  for side in old new; do
    repo="$old"; [[ "$side" == new ]] && repo="$new"
    export RAFTKV_CLUSTER_DIR="$work/$side" RAFTKV_BASE_PORT=24891 RAFTKV_CONFIG="$work/$side.ini"
    sed -e 's/^VERBOSITY *=.*/VERBOSITY = minimal/' "$repo/config.ini" >"$RAFTKV_CONFIG"
    current="$repo"
    "$repo/scripts/raftkv-cluster" up 3 >/dev/null
    nodes="$("$repo/scripts/raftkv-cluster" nodes)"
    for op in get set; do
      ops="$("$repo/build/bench/raftkv-bench" --nodes "$nodes" --op "$op" --concurrency 256 \
        --duration "$duration" --warmup 2s --json | grep -o '"ops_per_sec":[0-9.]*' | cut -d: -f2)"
      printf '%-6s %-4s %-8s %12.0f\n' "$round" "$side" "$op-256" "$ops"
    done
    "$repo/scripts/raftkv-cluster" down >/dev/null 2>&1
    current=""
    rm -rf "${RAFTKV_CLUSTER_DIR:?}"
  done
done

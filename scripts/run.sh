#!/usr/bin/env bash
# `make run`: start a local 3-node cluster and talk to it.
#
# With a terminal: opens the raftkv prompt (SET key value / GET key / STATUS / HELP / QUIT); the
# cluster keeps running after you leave it, so you can kill nodes and watch failover
# (scripts/raftkv-cluster); `make stop` stops it.
# Without a terminal (CI, pipes): runs a short demo — SET/GET, kill the leader, SET/GET again on
# the new leader, restart the old leader and watch it catch up — then stops the cluster. Exits 0
# only if every step worked.
#
# Environment (as for scripts/raftkv-cluster): RAFTKV_CLUSTER_DIR (default ./run), RAFTKV_BASE_PORT,
# RAFTKV_BIN.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RAFTKV_CLUSTER_DIR="${RAFTKV_CLUSTER_DIR:-$repo/run}"
cluster="$repo/scripts/raftkv-cluster"
raftkv="${RAFTKV_BIN:-$repo/build/tools}/raftkv"
config="$RAFTKV_CLUSTER_DIR/config.ini"

step() { if [[ -t 1 ]]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
fail() { echo "make run: FAILED: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

if [[ -f "$config" ]] && "$cluster" leader >/dev/null 2>&1; then
  step "A cluster is already running in $RAFTKV_CLUSTER_DIR"
else
  step "Starting a 3-node cluster in $RAFTKV_CLUSTER_DIR"
  "$cluster" up 3
fi
nodes="$("$cluster" nodes)"
cat <<EOF

Nodes:        $nodes
Config:       $config
Event logs:   $RAFTKV_CLUSTER_DIR/logs_node_<id>/dump.txt   (elections, leases, commits)
Raft logs:    $RAFTKV_CLUSTER_DIR/logs_node_<id>/logs.txt   and metadata.txt
Node output:  $RAFTKV_CLUSTER_DIR/node<id>.out
Dashboard:    http://127.0.0.1:${RAFTKV_METRICS_BASE_PORT:-$(( ${RAFTKV_BASE_PORT:-50051} + 1000 ))}/   (live: kill a node and watch)
Metrics:      http://127.0.0.1:${RAFTKV_METRICS_BASE_PORT:-$(( ${RAFTKV_BASE_PORT:-50051} + 1000 ))}/metrics, /health, /status   (node i: port +i)
Client:       $raftkv --nodes $nodes get KEY   (or export RAFTKV_NODES=$nodes)
Break it:     scripts/raftkv-cluster kill <id> | start <id> | pause <id> | resume <id> | status
Stop it:      make stop   (or scripts/raftkv-cluster down)
EOF

if [[ -t 0 && -t 1 ]]; then
  step "raftkv prompt (QUIT or Ctrl-D to leave; the cluster keeps running until 'make stop')"
  "$raftkv" --config "$config" || true
  echo "The cluster is still running: 'make stop' stops it."
  exit 0
fi

# No terminal: the demo, on a fresh cluster. The cluster is stopped however the demo ends.
trap '"$cluster" down >/dev/null 2>&1 || true' EXIT

step "SET and GET through the prompt's pipe mode"
printf 'SET greeting hello world\nGET greeting\nSET name1 Jaggu\nGET name1\nGET missing\n' |
  tee /dev/stderr | "$raftkv" --config "$config" || fail "the first SET/GET round"

step "The cluster"
"$cluster" status

old_leader="$("$cluster" leader)" || fail "no leader"
step "Killing the leader, node $old_leader (SIGKILL)"
"$cluster" kill "$old_leader"
start="$(now_ms)"
"$raftkv" --config "$config" --timeout 20s set after-failover "written by the new leader" ||
  fail "SET after killing the leader"
set_ms=$(($(now_ms) - start))
value="$("$raftkv" --config "$config" --timeout 20s get greeting)" || fail "GET after failover"
get_ms=$(($(now_ms) - start))
[[ "$value" == "hello world" ]] || fail "GET greeting returned '$value' after failover"
new_leader="$("$cluster" leader)" || fail "no leader after failover"
echo "new leader: node $new_leader; first SET succeeded ${set_ms} ms after the kill," \
  "first GET ${get_ms} ms after it; greeting is still '$value'"
echo "election, from node $new_leader's dump.txt:"
grep -E "Starting election|became the leader|Old Leader Lease|Vote granted" \
  "$RAFTKV_CLUSTER_DIR/logs_node_$new_leader/dump.txt" | tail -5 || true

step "Restarting node $old_leader; it catches up from the new leader"
"$cluster" start "$old_leader"
caught_up=""
for _ in $(seq 50); do
  row="$("$raftkv" --config "$config" status 2>/dev/null | awk -F'|' -v id="$old_leader" \
    '{ gsub(/ /, "", $2); gsub(/ /, "", $8) } $2 == id { print $8 }')" || true
  leader_applied="$("$raftkv" --config "$config" status 2>/dev/null | awk -F'|' \
    '$4 ~ /leader/ { gsub(/ /, "", $8); print $8 }')" || true
  if [[ -n "$row" && "$row" == "$leader_applied" ]]; then caught_up=yes; break; fi
  sleep 0.2
done
[[ -n "$caught_up" ]] || fail "node $old_leader did not catch up within 10 s"
"$cluster" status

step "Demo complete: SET/GET worked, the leader was killed, a new one took over, nothing was lost"

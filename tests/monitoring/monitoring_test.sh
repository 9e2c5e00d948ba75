#!/usr/bin/env bash
# docs/operations.md's monitoring recipe, checked by Prometheus itself. Debian's prometheus package
# (unpacked into the build directory with apt-get download and dpkg -x; never installed or run as a
# service) checks the documented alert rules and scrape config, and lints a live node's /metrics.
# Then a real Prometheus server scrapes a local 3-node cluster with the documented config and rules,
# and the test queries it: every node up, one leader, request and fsync histograms that
# histogram_quantile reads, the leader's followers; after the leader is killed, a new leader, the
# leader change counted, the dead node seen down and no alert; with a second node frozen, and then
# the third, the documented RaftkvNoLeader alert raised.
#
#   tests/monitoring/monitoring_test.sh BUILD_DIR
set -euo pipefail

build="$(cd "${1:?usage: monitoring_test.sh BUILD_DIR}" && pwd)"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/raftkv-monitoring.XXXXXX)"
prometheus_pid=""
say() { echo "monitoring_test: $*"; }
fail() {
  echo "monitoring_test: FAILED: $*" >&2
  [[ -f "$work/prometheus.log" ]] && tail -20 "$work/prometheus.log" >&2
  exit 1
}
# Ports of its own (tests/lib/ports.sh lists the bands).
source "$repo/tests/lib/ports.sh"
base="$(free_port_run 5000 500 8)"  # nodes base+0..2, metrics base+3..5, Prometheus base+6
export RAFTKV_CLUSTER_DIR="$work/cluster" RAFTKV_BASE_PORT="$base"
export RAFTKV_METRICS_BASE_PORT=$((base + 3)) RAFTKV_BIN="$build/tools"
cleanup() {
  [[ -z "$prometheus_pid" ]] || kill "$prometheus_pid" 2>/dev/null || true
  "$repo/scripts/raftkv-cluster" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Debian's Prometheus, once per build directory.
tools="$build/prometheus/usr/bin"
if [[ ! -x "$tools/promtool" ]]; then
  (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1) ||
    fail "apt-get download prometheus (Debian's package) failed: needs the Debian mirror and \
package lists (scripts/install-deps.sh runs apt-get update)"
  # Unpacked aside, then moved into place: an interrupted unpack leaves nothing half there.
  dpkg -x "$work"/prometheus_*.deb "$work/prometheus"
  rm -rf "$build/prometheus"
  mv "$work/prometheus" "$build/prometheus"
fi
say "$("$tools/prometheus" --version 2>&1 | head -1)"

# The two YAML blocks of docs/operations.md: the scrape config, then the rules.
yaml_block() {  # yaml_block N: the Nth ```yaml block
  awk -v want="$1" '/^```yaml/ { n++; if (n == want) { f = 1; next } } f && /^```/ { exit } f { print }' \
    "$repo/docs/operations.md"
}
yaml_block 1 >"$work/documented.yml"
yaml_block 2 >"$work/raftkv-rules.yml"
grep -q "job_name: raftkv" "$work/documented.yml" || fail "no scrape config in docs/operations.md"
"$tools/promtool" check rules "$work/raftkv-rules.yml" >"$work/check.log" 2>&1 ||
  { cat "$work/check.log" >&2; fail "promtool check rules: the documented alert rules"; }
say "promtool: $(grep -o '[0-9]* rules found' "$work/check.log")"

"$repo/scripts/raftkv-cluster" up 3 >/dev/null
nodes="$("$repo/scripts/raftkv-cluster" nodes)"
"$build/tools/raftkv" --nodes "$nodes" set monitored yes >/dev/null
"$build/tools/raftkv" --nodes "$nodes" get monitored >/dev/null
metrics_url="http://127.0.0.1:$RAFTKV_METRICS_BASE_PORT/metrics"
curl -fsS "$metrics_url" >"$work/metrics.txt"
# promtool's lint: format errors fail; naming advice would too (it prints it and exits 3).
"$tools/promtool" check metrics <"$work/metrics.txt" >"$work/lint.log" 2>&1 ||
  { cat "$work/lint.log" >&2; fail "promtool check metrics on $metrics_url"; }
say "promtool check metrics: $(grep -c '^# TYPE' "$work/metrics.txt") families, no complaints"

# The documented scrape config with this cluster's targets, scraped every second.
targets="$(for i in 0 1 2; do printf "'127.0.0.1:%d'," $((RAFTKV_METRICS_BASE_PORT + i)); done)"
sed -e "s|targets: \[.*\]|targets: [${targets%,}]|" -e "s|scrape_interval: 5s|scrape_interval: 1s|" \
  -e "s|/etc/prometheus/raftkv-rules.yml|$work/raftkv-rules.yml|" "$work/documented.yml" \
  >"$work/prometheus.yml"
printf 'global:\n  evaluation_interval: 1s\n' >>"$work/prometheus.yml"  # rules every second here
"$tools/promtool" check config "$work/prometheus.yml" >"$work/check.log" 2>&1 ||
  { cat "$work/check.log" >&2; fail "promtool check config: the documented scrape config"; }
prometheus_port=$((base + 6))
"$tools/prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!

query() {  # query PROMQL: the result's values, one per line
  curl -fsS --get "http://127.0.0.1:$prometheus_port/api/v1/query" --data-urlencode "query=$1" |
    grep -o '"value":\[[^]]*\]' | sed 's/.*,"\(.*\)"\]/\1/'
}
wait_query() {  # wait_query WHAT PROMQL EXPECTED [SECONDS]: until the values are EXPECTED
  local got=""
  for _ in $(seq 1 $((${4:-20} * 5))); do
    got="$(query "$2" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')" || true
    [[ "$got" == "$3" ]] && { say "$1: $2 = $got"; return 0; }
    sleep 0.2
  done
  fail "$1: $2 gave '$got', not '$3'"
}
wait_query "every node scraped" 'count(up{job="raftkv"} == 1)' 3
wait_query "one leader" 'sum(raftkv_role{role="leader"})' 1
# Load, so the histograms have something in the last minute.
"$build/bench/raftkv-bench" --nodes "$nodes" --op set --concurrency 8 --duration 4s --warmup 0s \
  >/dev/null
wait_query "SET p99 readable" \
  'count(histogram_quantile(0.99, sum by (le) (rate(raftkv_request_duration_seconds_bucket{op="set"}[1m]))) > 0)' 1
wait_query "fsync p99 readable on every node" \
  'count(histogram_quantile(0.99, sum by (instance, le) (rate(raftkv_log_fsync_duration_seconds_bucket[1m]))) > 0)' 3
wait_query "followers tracked by the leader" 'count(raftkv_peer_lag_entries)' 2
leader="$("$repo/scripts/raftkv-cluster" leader)"
"$repo/scripts/raftkv-cluster" kill "$leader" >/dev/null
wait_query "a new leader" 'sum(raftkv_role{role="leader"} and on (instance) up == 1)' 1
wait_query "the leader change counted by both survivors" \
  'count(increase(raftkv_leader_changes_total[1m]) > 0 and on (instance) up == 1)' 2
wait_query "the dead node seen down" 'count(up{job="raftkv"} == 0)' 1
wait_query "no alert while a leader serves" 'count(ALERTS{alertname="RaftkvNoLeader"}) or vector(0)' 0
# One of the two survivors frozen: the other cannot keep or elect a leader, and the documented
# RaftkvNoLeader rule goes pending (it fires after its `for: 10s`).
survivor="$(( (leader + 1) % 3 ))"
"$repo/scripts/raftkv-cluster" pause "$survivor" >/dev/null
# Firing, not only pending: the rule's `for: 10s` has passed.
wait_query "RaftkvNoLeader firing with a majority gone" \
  'count(ALERTS{alertname="RaftkvNoLeader",alertstate="firing"})' 1 40
# And with every node gone (no series left to say "no leader"), it stays raised.
other="$(( (leader + 2) % 3 ))"
"$repo/scripts/raftkv-cluster" pause "$other" >/dev/null
wait_query "every node unreachable" 'count(up{job="raftkv"} == 0)' 3
sleep 3  # a few rule evaluations (every second here) with no series at all
wait_query "RaftkvNoLeader still firing with no node answering" \
  'count(ALERTS{alertname="RaftkvNoLeader",alertstate="firing"})' 1
"$repo/scripts/raftkv-cluster" resume "$survivor" >/dev/null
"$repo/scripts/raftkv-cluster" resume "$other" >/dev/null
say "passed"

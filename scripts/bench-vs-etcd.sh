#!/usr/bin/env bash
# `make bench-vs-etcd`: raftkv and etcd side by side, same machine, same tool, same settings.
#
# Starts a 3-member etcd cluster (Debian's etcd-server, installed if missing; default durability)
# and a 3-node raftkv cluster on loopback, then measures each point of the standard table on both,
# alternating raftkv and etcd point by point, with raftkv-bench. Writes docs/benchmarks.md: both
# systems, the ratio per row, the machine, versions, date and command.
#
# BENCH_DURATION (default 10s) per point; BENCH_MEMORY_KEYS (default 1000000) keys for the memory
# rows (0 skips them): once after the table, once on fresh clusters; BENCH_OUT (default
# docs/benchmarks.md); BENCH_SCRAPE_INTERVAL (default 1, seconds; 0: none): every node of both
# systems has its /metrics scraped that often throughout, as a Prometheus server would.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
duration="${BENCH_DURATION:-10s}"
memory_keys="${BENCH_MEMORY_KEYS:-1000000}"
scrape_interval="${BENCH_SCRAPE_INTERVAL:-1}"
out="${BENCH_OUT:-$repo/docs/benchmarks.md}"
bench="$repo/build/bench/raftkv-bench"
work="$(mktemp -d /tmp/raftkv-vs-etcd-XXXXXX)"
results="$work/results.jsonl"

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  echo "== installing etcd-server and etcd-client (Debian packages)"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server etcd-client
fi

etcd_pids=()
scraper=""
cleanup() {
  [[ -z "$scraper" ]] || kill "$scraper" 2>/dev/null || true
  for pid in "${etcd_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  RAFTKV_CLUSTER_DIR="$work/raftkv" "$repo/scripts/raftkv-cluster" down >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_etcd() {  # a fresh 3-member cluster in $work/etcd{0,1,2}; sets etcd_pids and etcd_leader
  etcd_pids=()
  local initial="" i
  for i in 0 1 2; do initial+="${initial:+,}e$i=http://127.0.0.1:$((23801 + i))"; done
  for i in 0 1 2; do
    rm -rf "$work/etcd$i"
    etcd --name "e$i" --data-dir "$work/etcd$i" \
      --listen-client-urls "http://127.0.0.1:$((23791 + i))" \
      --advertise-client-urls "http://127.0.0.1:$((23791 + i))" \
      --listen-peer-urls "http://127.0.0.1:$((23801 + i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((23801 + i))" \
      --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token raftkv-bench \
      --log-level error >"$work/etcd$i.log" 2>&1 &
    etcd_pids+=($!)
  done
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints "$etcd_endpoints" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
  done
  etcd_leader="$(ETCDCTL_API=3 etcdctl --endpoints "$etcd_endpoints" endpoint status |
    awk -F', ' '$5 == "true" { print $1 }')"
  [[ -n "$etcd_leader" ]] || { echo "etcd elected no leader; see $work/etcd*.log" >&2; exit 1; }
  echo "   etcd leader: $etcd_leader"
}
stop_etcd() {
  local pid
  for pid in "${etcd_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${etcd_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  etcd_pids=()
}

echo "== starting etcd (3 members, 127.0.0.1:23791-23793)"
etcd_endpoints="127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793"
start_etcd

echo "== starting raftkv (3 nodes, 127.0.0.1:23891-23893)"
sed -e 's/^VERBOSITY *=.*/VERBOSITY = minimal/' "$repo/config.ini" >"$work/raftkv.ini"
export RAFTKV_CLUSTER_DIR="$work/raftkv" RAFTKV_BASE_PORT=23891 RAFTKV_CONFIG="$work/raftkv.ini"
export RAFTKV_METRICS_BASE_PORT=24891
"$repo/scripts/raftkv-cluster" up 3 >/dev/null
raftkv_nodes="$("$repo/scripts/raftkv-cluster" nodes)"

if [[ "$scrape_interval" != 0 ]]; then
  # Both systems' metrics, scraped like Prometheus would: raftkv's on its metrics ports, etcd's on
  # its client ports.
  scrape_urls=()
  for i in 0 1 2; do
    scrape_urls+=("http://127.0.0.1:$((RAFTKV_METRICS_BASE_PORT + i))/metrics" "http://127.0.0.1:$((23791 + i))/metrics")
  done
  for url in "${scrape_urls[@]}"; do  # every node answers within 10 s (up waits for 2 of 3)
    for try in $(seq 1 50); do
      curl -fs -o /dev/null --max-time 2 "$url" && break
      [[ $try -lt 50 ]] || { echo "cannot scrape $url" >&2; exit 1; }
      sleep 0.2
    done
  done
  echo "== scraping /metrics of all six nodes every ${scrape_interval}s"
  (
    while true; do
      # Quiet: the memory rows restart both clusters under it.
      for url in "${scrape_urls[@]}"; do curl -fs -o /dev/null --max-time 2 "$url" || true; done
      sleep "$scrape_interval"
    done
  ) &
  scraper=$!
fi

common=(--duration "$duration" --warmup 2s --key-size 16 --value-size 100 --keyspace 10000 --json)
point() {  # point LABEL RAFTKV_OP ETCD_OP CONCURRENCY [RAFTKV_RPC]
  local label="$1" raftkv_op="$2" etcd_op="$3" concurrency="$4" rpc="${5:-stream}"
  echo "== $label"
  "$bench" --target raftkv --nodes "$raftkv_nodes" --op "$raftkv_op" --concurrency "$concurrency" \
    --rpc "$rpc" --label "$label|raftkv" "${common[@]}" | tee -a "$results"
  "$bench" --target etcd --endpoints "$etcd_leader" --op "$etcd_op" --concurrency "$concurrency" \
    --label "$label|etcd" "${common[@]}" | tee -a "$results"
}
point "SET, 1 client" set set 1
point "SET, 256 in flight" set set 256
point "GET, 1 client (raftkv lease vs etcd linearizable)" get get 1
point "GET, 256 in flight (raftkv lease vs etcd linearizable)" get get 256
point "GET, 1 client (raftkv lease vs etcd serializable)" get get-serializable 1
point "GET, 256 in flight (raftkv lease vs etcd serializable)" get get-serializable 256
point "mixed 90% GET / 10% SET, 256 in flight" mixed:0.9 mixed:0.9 256
# References: raftkv loaded the way a plain gRPC client would, one unary call per request, which
# shows what the client library's batching stream adds.
point "SET, 256 in flight, raftkv over unary calls" set set 256 unary
point "GET, 256 in flight, raftkv over unary calls" get get 256 unary

rss_mib() {  # the average resident set size, in MiB, of the given pids
  local total=0 pid
  for pid in "$@"; do total=$((total + $(awk '/VmRSS/ { print $2 }' "/proc/$pid/status"))); done
  echo $((total / $# / 1024))
}
raftkv_pids() { for i in 0 1 2; do cat "$RAFTKV_CLUSTER_DIR/node$i.pid"; done; }
memory_row() {  # memory_row LABEL: fills $memory_keys keys on both systems, prints the table row
  "$bench" --target raftkv --nodes "$raftkv_nodes" --op get --concurrency 1 --duration 1s \
    --warmup 0s --keyspace "$memory_keys" --label "fill" >/dev/null
  "$bench" --target etcd --endpoints "$etcd_leader" --op get --concurrency 1 --duration 1s \
    --warmup 0s --keyspace "$memory_keys" --label "fill" >/dev/null
  local raftkv_rss etcd_rss
  # shellcheck disable=SC2046
  raftkv_rss="$(rss_mib $(raftkv_pids))"
  etcd_rss="$(rss_mib "${etcd_pids[@]}")"
  echo "   $1: raftkv $raftkv_rss MiB, etcd $etcd_rss MiB" >&2
  printf '| RSS per node, %s | %s MiB | %s MiB | %s |' "$1" "$raftkv_rss" "$etcd_rss" \
    "$(awk -v a="$etcd_rss" -v b="$raftkv_rss" 'BEGIN { printf "%.2f× etcd", b / a }')"
}
memory_rows=""
if [[ "$memory_keys" -gt 0 ]]; then
  # After the table: besides the keys, raftkv holds up to [snapshot] ENTRIES + KEEP_ENTRIES
  # entries of its log, so this row also reflects the table's writes.
  echo "== memory after the table: $memory_keys keys of 100 B on each system"
  memory_rows+="$(memory_row "$memory_keys keys of 100 B, after the table's writes") (reference) |"$'\n'
  # Fresh clusters holding just the keys: the target row.
  echo "== memory on fresh clusters: $memory_keys keys of 100 B on each system"
  stop_etcd
  "$repo/scripts/raftkv-cluster" down >/dev/null
  rm -rf "$RAFTKV_CLUSTER_DIR"
  start_etcd
  "$repo/scripts/raftkv-cluster" up 3 >/dev/null
  memory_rows+="$(memory_row "$memory_keys keys of 100 B, fresh clusters") RSS per node ≤ etcd's |"$'\n'
fi

# The table. Each JSON line: {"label":"POINT|SYSTEM", …, "ops_per_sec":N, "p50_us":N, …}.
field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }
{
  echo "# raftkv vs etcd"
  echo
  echo "Generated by \`make bench-vs-etcd\` on $(date -u '+%Y-%m-%d %H:%M UTC'). Same machine, same"
  echo "tool (\`raftkv-bench\`), same settings, run alternately point by point: 3 nodes each on"
  echo "loopback, fsync on (etcd's defaults; raftkv's shipped \`config.ini\` with \`VERBOSITY = minimal\`),"
  echo "16-byte keys, 100-byte values, 10,000 keys, uniform, $duration per point after a 2 s warm-up."
  echo "etcd is loaded through its leader; raftkv through its leader (the only node that serves)."
  echo "raftkv's load goes over \`ServeClientStream\` as the client library sends it (requests that"
  echo "meet in flight share a message); the last two rows load raftkv with one unary call per"
  echo "request instead. etcd's load is unary calls, as its clients send it. Memory is measured twice:"
  echo "after the table's writes (raftkv also holds the log entries since its last snapshot, up to"
  echo "[snapshot] ENTRIES + KEEP_ENTRIES) and on fresh clusters holding just the keys. Growth over a"
  echo "long run, restarts and catch-up are in the Growth section (make bench-growth)."
  if [[ "$scrape_interval" != 0 ]]; then
    echo "Metrics on: every node of both systems had its \`/metrics\` scraped every ${scrape_interval} s throughout."
  fi
  echo
  echo "* Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "* etcd: $(etcd --version | head -1)"
  echo "* raftkv: commit $(git -C "$repo" rev-parse --short HEAD)"
  echo
  echo "| point | raftkv | etcd | ratio | target |"
  echo "|---|---|---|---|---|"
  while IFS= read -r raftkv_line && IFS= read -r etcd_line; do
    label="$(sed -n 's/.*"label":"\([^|]*\)|.*/\1/p' <<<"$raftkv_line")"
    r_ops="$(field "$raftkv_line" ops_per_sec)"; e_ops="$(field "$etcd_line" ops_per_sec)"
    r_p50="$(field "$raftkv_line" p50_us)"; e_p50="$(field "$etcd_line" p50_us)"
    r_p99="$(field "$raftkv_line" p99_us)"; e_p99="$(field "$etcd_line" p99_us)"
    case "$label" in
      *"1 client"*)
        ratio="$(awk -v r="$r_p50" -v e="$e_p50" 'BEGIN { printf "p50 %.2f× etcd", r / e }')"
        ;;
      *) ratio="$(awk -v r="$r_ops" -v e="$e_ops" 'BEGIN { printf "%.2f× etcd ops/s", r / e }')" ;;
    esac
    case "$label" in
      *unary*) target="(reference: no batching)" ;;
      "SET, 256"*) target="≥ 3× etcd ops/s" ;;
      "SET, 1"*) target="p50 ≤ 0.7× etcd" ;;
      "GET, 256"*linearizable*) target="≥ 4× etcd ops/s" ;;
      "GET, 256"*serializable*) target="≥ 2× etcd ops/s" ;;
      "GET, 1"*linearizable*) target="p50 ≤ 0.4× etcd" ;;
      "GET, 1"*serializable*) target="(reference)" ;;
      mixed*) target="≥ 3× etcd ops/s" ;;
    esac
    printf '| %s | %.0f ops/s, p50 %s µs, p99 %s µs | %.0f ops/s, p50 %s µs, p99 %s µs | %s | %s |\n' \
      "$label" "$r_ops" "$r_p50" "$r_p99" "$e_ops" "$e_p50" "$e_p99" "$ratio" "$target"
  done <"$results"
  [[ -z "$memory_rows" ]] || printf '%s' "$memory_rows"
  echo
  echo "Command: \`make bench-vs-etcd\` (BENCH_DURATION=$duration BENCH_MEMORY_KEYS=$memory_keys BENCH_SCRAPE_INTERVAL=$scrape_interval)."
} >"$work/benchmarks.md"
# The hand-kept sections from "## Design figures" on (micro-benchmarks and the measurements that
# design choices rest on) survive a new run.
if [[ -f "$out" ]] && grep -q '^## Design figures' "$out"; then
  { echo; sed -n '/^## Design figures/,$p' "$out"; } >>"$work/benchmarks.md"
elif [[ -f "$out" ]]; then
  echo "warning: no '## Design figures' section in $out; nothing hand-kept to carry over" >&2
fi
cp "$work/benchmarks.md" "$out"
echo "== wrote $out"
cat "$out"

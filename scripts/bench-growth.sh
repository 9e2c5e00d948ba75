#!/usr/bin/env bash
# `make bench-growth`: memory, disk and restart time after a long run of writes, raftkv and etcd
# side by side (issue: snapshots and log compaction).
#
# For each system, a fresh 3-node cluster on loopback with its shipped settings (raftkv's
# config.ini; etcd's defaults): the keys written once (the "fresh" RSS), then GROWTH_WRITES SETs
# (default 10,000,000) of 100-byte values over GROWTH_KEYS keys (default 10,000), 256 in flight, in
# ten equal steps. A follower is killed before the last two steps and restarted after them, while
# clients keep writing: the time it takes to catch up, and the clients' p99 meanwhile. Then RSS and
# data-directory size per node, and a restart of the whole cluster (kill -9 of all three, start all
# three): the time to the first served GET and the peak RSS while recovering (VmHWM).
#
# p99 inside and outside snapshot windows: raftkv-bench records every request (--timeline); the
# windows come from each node's own log (raftkv: dump.txt, "snapshot at index … written in N ms"
# to "snapshot taken"; etcd: "triggering snapshot" to "saved snapshot"), any node's counting.
#
# Writes a "## Growth" section at the end of BENCH_OUT (default docs/benchmarks.md), replacing
# the previous one. Takes about 20 minutes at the defaults (etcd's 10 M writes are most of it).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
writes="${GROWTH_WRITES:-10000000}"
keys="${GROWTH_KEYS:-10000}"
out="${BENCH_OUT:-$repo/docs/benchmarks.md}"
systems="${GROWTH_SYSTEMS:-raftkv etcd}"
step=$((writes / 10))
bench="$repo/build/bench/raftkv-bench"
cli="$repo/build/tools/raftkv"
# GROWTH_RESULTS=DIR: no run, only the section written again from a run kept with GROWTH_KEEP=1.
work="${GROWTH_RESULTS:-$(mktemp -d /tmp/raftkv-growth-XXXXXX)}"
[[ -z "${GROWTH_RESULTS:-}" ]] || GROWTH_KEEP=1

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
if [[ "$systems" == *etcd* ]] && ! command -v etcd >/dev/null; then
  echo "== installing etcd-server and etcd-client (Debian packages)"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server etcd-client
fi

etcd_pids=(0 0 0)
cleanup() {
  for pid in "${etcd_pids[@]}"; do [[ "$pid" == 0 ]] || kill -9 "$pid" 2>/dev/null || true; done
  RAFTKV_CLUSTER_DIR="$work/raftkv" "$repo/scripts/raftkv-cluster" down >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  [[ -n "${GROWTH_KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
kib() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }  # kib PID VmRSS|VmHWM
iso_to_us() { echo $(($(date -u -d "$1" +%s%6N))); }

# ---- raftkv ----
export RAFTKV_CLUSTER_DIR="$work/raftkv" RAFTKV_BASE_PORT=24891 RAFTKV_CONFIG="$repo/config.ini"
raftkv_nodes="127.0.0.1:24891,127.0.0.1:24892,127.0.0.1:24893"
raftkv_cluster() { "$repo/scripts/raftkv-cluster" "$@"; }
raftkv_up() { raftkv_cluster up 3 >/dev/null; }
raftkv_down() { raftkv_cluster down >/dev/null; }
raftkv_pid() { cat "$RAFTKV_CLUSTER_DIR/node$1.pid"; }
raftkv_leader() { raftkv_cluster leader; }
raftkv_leader_endpoint() { echo "127.0.0.1:$((24891 + $(raftkv_leader)))"; }
raftkv_kill() { raftkv_cluster kill "$1" >/dev/null; }
raftkv_start() { raftkv_cluster start "$1" >/dev/null; }
raftkv_column() {  # raftkv_column NODE FIELD: 7 commit, 8 applied (the status table's columns)
  { "$cli" --nodes "$raftkv_nodes" status --rpc-timeout 300ms 2>/dev/null || true; } |
    awk -F'|' -v id="$1" -v f="$2" '{ gsub(/ /, "", $2) } $2 == id { gsub(/ /, "", $f); print $f }'
}
raftkv_applied() { raftkv_column "$1" 8; }
raftkv_commit() { raftkv_column "$1" 7; }
raftkv_get_ok() {  # served (found or not): exit 0 or 3
  local rc=0
  "$cli" --nodes "$raftkv_nodes" --timeout 200ms --rpc-timeout 100ms get k0 >/dev/null 2>&1 || rc=$?
  [[ $rc == 0 || $rc == 3 ]]
}
raftkv_dir() { echo "$RAFTKV_CLUSTER_DIR/logs_node_$1"; }
raftkv_snapshot_bytes() { stat -c %s "$(raftkv_dir "$1")/snapshot.txt" 2>/dev/null || echo 0; }
raftkv_windows() {  # prints "start_us end_us" for every snapshot still in some dump.txt
  local i line ts ms start
  for i in 0 1 2; do
    cat "$(raftkv_dir "$i")"/dump.txt* 2>/dev/null |
      grep -E ' snapshot at index [0-9]+ written in | snapshot taken at index ' || true
  done | while read -r ts line; do
    if [[ "$line" =~ written\ in\ ([0-9]+)\ ms ]]; then
      ms="${BASH_REMATCH[1]}"
      start=$(($(iso_to_us "$ts") - ms * 1000))
    elif [[ -n "${start:-}" ]]; then
      echo "$start $(iso_to_us "$ts")"
      start=""
    fi
  done
}

# ---- etcd ----
etcd_endpoint() { echo "127.0.0.1:$((25791 + $1))"; }
etcd_nodes="127.0.0.1:25791,127.0.0.1:25792,127.0.0.1:25793"
etcd_start() {
  local i="$1" initial="" j
  for j in 0 1 2; do initial+="${initial:+,}e$j=http://127.0.0.1:$((25801 + j))"; done
  etcd --name "e$i" --data-dir "$work/etcd$i" \
    --listen-client-urls "http://$(etcd_endpoint "$i")" \
    --advertise-client-urls "http://$(etcd_endpoint "$i")" \
    --listen-peer-urls "http://127.0.0.1:$((25801 + i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((25801 + i))" \
    --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token growth \
    --logger zap --log-level info >>"$work/etcd$i.log" 2>&1 &
  etcd_pids[$i]=$!
}
etcd_status() { ETCDCTL_API=3 etcdctl --endpoints "$(etcd_endpoint "$1")" --command-timeout=300ms endpoint status -w json 2>/dev/null; }
etcd_up() {
  local i
  for i in 0 1 2; do rm -rf "$work/etcd$i"; etcd_start "$i"; done
  for _ in $(seq 100); do [[ -n "$(etcd_leader)" ]] && return 0; sleep 0.2; done
  echo "etcd elected no leader; see $work/etcd*.log" >&2
  exit 1
}
etcd_down() { local i; for i in 0 1 2; do etcd_kill "$i"; done; }
etcd_pid() { echo "${etcd_pids[$1]}"; }
etcd_leader() {
  local i
  for i in 0 1 2; do
    local s
    s="$(etcd_status "$i")" || continue
    local member leader
    member="$(sed -n 's/.*"member_id":\([0-9]*\).*/\1/p' <<<"$s")"
    leader="$(sed -n 's/.*"leader":\([0-9]*\).*/\1/p' <<<"$s")"
    if [[ -n "$member" && "$member" == "$leader" ]]; then echo "$i"; return 0; fi
  done
}
etcd_leader_endpoint() { etcd_endpoint "$(etcd_leader)"; }
etcd_kill() {
  [[ "${etcd_pids[$1]}" == 0 ]] || { kill -9 "${etcd_pids[$1]}" 2>/dev/null || true; wait "${etcd_pids[$1]}" 2>/dev/null || true; }
  etcd_pids[$1]=0
}
etcd_applied() { etcd_status "$1" | sed -n 's/.*"raftAppliedIndex":\([0-9]*\).*/\1/p'; }
etcd_commit() { etcd_status "$1" | sed -n 's/.*"raftIndex":\([0-9]*\).*/\1/p'; }
etcd_get_ok() { ETCDCTL_API=3 etcdctl --endpoints "$etcd_nodes" --command-timeout=200ms get k0 >/dev/null 2>&1; }
etcd_dir() { echo "$work/etcd$1"; }
etcd_snapshot_bytes() { stat -c %s "$work/etcd$1/member/snap/db" 2>/dev/null || echo 0; }
etcd_windows() {  # "triggering snapshot" to "saved snapshot", per member
  local i ts msg start
  for i in 0 1 2; do
    { grep -E '"msg":"(triggering snapshot|saved snapshot)"' "$work/etcd$i.log" || true; } |
      sed -n 's/.*"ts":"\([^"]*\)".*"msg":"\([a-z ]*\)".*/\1 \2/p' |
      while read -r ts msg; do
        if [[ "$msg" == "triggering snapshot" ]]; then
          start="$(iso_to_us "$ts")"
        elif [[ -n "${start:-}" ]]; then
          echo "$start $(iso_to_us "$ts")"
          start=""
        fi
      done
  done
}

# p99 (µs) of the timeline requests inside (IN=1) or outside (IN=0) the windows in file $2.
p99_split() {  # p99_split TIMELINE_GLOB WINDOWS IN
  local windows="$2" want="$3"
  # shellcheck disable=SC2086
  cat $1 | awk -v want="$want" -v wfile="$windows" '
    BEGIN { n = 0; while ((getline line < wfile) > 0) { split(line, w, " "); s[n] = w[1]; e[n] = w[2]; n++ } }
    { t = $1; lo = 0; hi = n - 1; hit = 0
      while (lo <= hi) { mid = int((lo + hi) / 2); if (s[mid] <= t) { if (e[mid] >= t) { hit = 1; break } lo = mid + 1 } else hi = mid - 1 }
      # windows may overlap: also try the few before the found position
      if (!hit) for (k = hi; k >= 0 && k > hi - 4; k--) if (s[k] <= t && e[k] >= t) { hit = 1; break }
      if (hit == want) print $2 }' | sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; if (NR == 0) print "-"; else print v[i] " (" NR " requests)" }'
}

field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }

run_system() {
  local sys="$1" i m
  echo "== $sys: fresh cluster, $keys keys"
  "${sys}_up"
  local leader_ep
  leader_ep="$("${sys}_leader_endpoint")"
  local target_flags=(--target "$sys" --nodes "$([[ $sys == raftkv ]] && echo "$raftkv_nodes" || echo "$leader_ep")")
  # GET with prefill writes every key once.
  "$bench" "${target_flags[@]}" --op get --concurrency 64 --duration 1s --warmup 0s --keyspace "$keys" >/dev/null
  sleep 3
  local fresh=0
  for i in 0 1 2; do fresh=$((fresh + $(kib "$("${sys}_pid" "$i")" VmRSS))); done
  fresh=$((fresh / 3))
  echo "   fresh RSS per node: $((fresh / 1024)) MiB"

  : >"$work/$sys.windows.raw"
  local follower=-1 commit_at_restart=0
  for m in $(seq 1 10); do
    if [[ $m == 9 ]]; then
      leader_ep="$("${sys}_leader_endpoint")"
      follower=$(( ($("${sys}_leader") + 1) % 3 ))
      echo "   killing follower $follower before the last two steps"
      "${sys}_kill" "$follower"
    fi
    [[ $sys == etcd ]] && target_flags=(--target etcd --nodes "$("${sys}_leader_endpoint")")
    line="$("$bench" "${target_flags[@]}" --op set --concurrency 256 --keyspace "$keys" \
      --requests "$step" --warmup 0s --json --label "$sys step $m" --timeline "$work/$sys.tl.$m")"
    echo "$line" >>"$work/$sys.steps.jsonl"
    echo "   step $m: $(field "$line" ops_per_sec) ops/s, p99 $(field "$line" p99_us) µs"
    "${sys}_windows" >>"$work/$sys.windows.raw"
  done

  # The follower returns while clients keep writing: how long until it has applied what the
  # leader had committed when it came back.
  local leader
  leader="$("${sys}_leader")"
  commit_at_restart="$("${sys}_commit" "$leader")"
  [[ $sys == etcd ]] && target_flags=(--target etcd --nodes "$(etcd_endpoint "$leader")")
  "$bench" "${target_flags[@]}" --op set --concurrency 256 --keyspace "$keys" --duration 20s \
    --warmup 0s --json --label "$sys during catch-up" >"$work/$sys.catchup.json" &
  local load=$!
  local t0 caught=""
  t0="$(now_ms)"
  "${sys}_start" "$follower"
  for _ in $(seq 400); do
    local applied
    applied="$("${sys}_applied" "$follower" || true)"
    if [[ "$applied" =~ ^[0-9]+$ && "$applied" -ge "$commit_at_restart" ]]; then
      caught=$(($(now_ms) - t0)); break
    fi
    sleep 0.05
  done
  # How it caught up: raftkv says so in dump.txt (looked at now, before rotation takes the line).
  local by_snapshot="-"
  if [[ $sys == raftkv ]]; then
    by_snapshot=no
    cat "$(raftkv_dir "$follower")"/dump.txt* 2>/dev/null |
      grep -q "installed a snapshot from the leader" && by_snapshot=yes
  fi
  wait "$load"
  local catchup_line
  catchup_line="$(cat "$work/$sys.catchup.json")"
  echo "   follower $follower caught up in ${caught:-(not within 20 s)} ms; clients meanwhile: p99 $(field "$catchup_line" p99_us) µs"

  sleep 5
  local rss=0 rss_max=0 dir=0 dir_max=0 snap=0 r d
  for i in 0 1 2; do
    r="$(kib "$("${sys}_pid" "$i")" VmRSS)"; rss=$((rss + r)); ((r > rss_max)) && rss_max=$r
    d="$(du -sb "$("${sys}_dir" "$i")" | cut -f1)"; dir=$((dir + d)); ((d > dir_max)) && dir_max=$d
    local s; s="$("${sys}_snapshot_bytes" "$i")"; ((s > snap)) && snap=$s
  done
  rss=$((rss / 3)); dir=$((dir / 3))
  echo "   after the run: RSS per node $((rss / 1024)) MiB (max $((rss_max / 1024))), data dir $((dir / 1048576)) MiB (max $((dir_max / 1048576))), snapshot $((snap / 1024)) KiB"

  # Restart: kill -9 of all three, start all three.
  for i in 0 1 2; do "${sys}_kill" "$i"; done
  t0="$(now_ms)"
  for i in 0 1 2; do "${sys}_start" "$i"; done
  local first=""
  for _ in $(seq 600); do
    if "${sys}_get_ok"; then first=$(($(now_ms) - t0)); break; fi
  done
  sleep 1
  local peak=0 h
  for i in 0 1 2; do h="$(kib "$("${sys}_pid" "$i")" VmHWM)"; ((h > peak)) && peak=$h; done
  sleep 10
  local steady=0
  for i in 0 1 2; do steady=$((steady + $(kib "$("${sys}_pid" "$i")" VmRSS))); done
  steady=$((steady / 3))
  echo "   restart: first GET served after ${first:-(none in 60 s)} ms; peak RSS while recovering $((peak / 1024)) MiB, steady $((steady / 1024)) MiB"
  "${sys}_down"

  sort -n -u "$work/$sys.windows.raw" >"$work/$sys.windows"
  local p99_in p99_out first_ops last_ops
  p99_in="$(p99_split "$work/$sys.tl.*" "$work/$sys.windows" 1)"
  p99_out="$(p99_split "$work/$sys.tl.*" "$work/$sys.windows" 0)"
  first_ops="$(field "$(sed -n 1p "$work/$sys.steps.jsonl")" ops_per_sec)"
  last_ops="$(field "$(sed -n 10p "$work/$sys.steps.jsonl")" ops_per_sec)"
  echo "   p99 inside snapshot windows $p99_in µs, outside $p99_out µs ($(wc -l <"$work/$sys.windows") windows)"
  cat >"$work/$sys.result" <<EOF
fresh_mib=$((fresh / 1024))
rss_mib=$((rss / 1024))
rss_max_mib=$((rss_max / 1024))
dir_mib=$((dir / 1048576))
dir_max_mib=$((dir_max / 1048576))
snapshot_kib=$((snap / 1024))
first_ops=$first_ops
last_ops=$last_ops
p99_in="$p99_in"
p99_out="$p99_out"
windows=$(wc -l <"$work/$sys.windows")
catchup_ms=${caught:-none}
catchup_p99=$(field "$catchup_line" p99_us)
catchup_by_snapshot=$by_snapshot
first_get_ms=${first:-none}
peak_mib=$((peak / 1024))
steady_mib=$((steady / 1024))
EOF
}

if [[ -z "${GROWTH_RESULTS:-}" ]]; then
  git -C "$repo" rev-parse --short HEAD >"$work/commit"
  for sys in $systems; do run_system "$sys"; done
fi

value() { sed -n "s/^$2=\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" "$work/$1.result" 2>/dev/null; }
cell() { local v; v="$(value "$1" "$2")"; echo "${v:--}"; }
row() {  # row LABEL KEY UNIT [TARGET [MAX_KEY]]: with MAX_KEY, the largest node in parentheses
  local r e
  r="$(cell raftkv "$2")$3"; e="$(cell etcd "$2")$3"
  if [[ -n "${5:-}" ]]; then
    r+=" (max $(cell raftkv "$5")$3)"; e+=" (max $(cell etcd "$5")$3)"
  fi
  printf '| %s | %s | %s | %s |\n' "$1" "$r" "$e" "${4:-}"
}
{
  echo "## Growth"
  echo
  echo "Generated by \`make bench-growth\` on $(date -u -r "$work/raftkv.result" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || date -u '+%Y-%m-%d %H:%M UTC')"
  echo "(raftkv commit $(cat "$work/commit" 2>/dev/null || git -C "$repo" rev-parse --short HEAD); $(etcd --version 2>/dev/null | sed -n 1p)). Each system: 3 nodes on"
  echo "loopback with its shipped settings (raftkv's config.ini, etcd's defaults), $keys keys written"
  echo "once, then $writes SETs of 100-byte values over them, 256 in flight, in ten steps of $step."
  echo "A follower is killed before the last two steps and restarted after them while clients keep"
  echo "writing. Then the whole cluster is killed (-9) and restarted. RSS and sizes are per node:"
  echo "the average of the three, and the largest where it matters."
  echo
  echo "| | raftkv | etcd | target (raftkv) |"
  echo "|---|---|---|---|"
  row "RSS, fresh cluster holding the keys" fresh_mib " MiB"
  row "RSS after the run" rss_mib " MiB" "≤ 1.25 × fresh + 32 MiB" rss_max_mib
  row "data directory after the run" dir_mib " MiB" "≤ 3 × snapshot + log tail + dump.txt rotation" dir_max_mib
  row "snapshot" snapshot_kib " KiB"
  row "throughput, first step" first_ops " ops/s"
  row "throughput, last step" last_ops " ops/s" "≥ 90 % of the first"
  row "p99 inside snapshot windows" p99_in " µs" "≤ 2 × outside"
  row "p99 outside snapshot windows" p99_out " µs"
  row "snapshot windows seen" windows ""
  row "follower back after 2 steps away: time to catch up" catchup_ms " ms"
  row "client p99 while it catches up" catchup_p99 " µs"
  row "it caught up by InstallSnapshot (its dump.txt says so)" catchup_by_snapshot ""
  row "restart of all three: first GET served after" first_get_ms " ms" "≤ 1000 ms"
  row "peak RSS while recovering" peak_mib " MiB" "≤ 1.5 × steady"
  row "RSS once recovered (steady)" steady_mib " MiB"
  echo
  echo "Most of raftkv's data directory is dump.txt and its rotated files (the shipped VERBOSITY"
  echo "logs every request; they are kept to DUMP_MAX_BYTES × (DUMP_KEEP_FILES + 1)); logs.txt and"
  echo "snapshot.txt stay within [snapshot] ENTRIES + KEEP_ENTRIES entries and the keys. Snapshot"
  echo "windows run from the fork to the log cut on any node; p99 counts the requests completed"
  echo "inside them. etcd with its defaults never compacts its MVCC history"
  echo "(\`--auto-compaction-retention\` is off), so its database, memory and restart time grow with"
  echo "every write."
  echo
  echo "Command: \`make bench-growth\` (GROWTH_WRITES=$writes GROWTH_KEYS=$keys)."
} >"$work/growth.md"
cat "$work/growth.md"
if [[ -f "$out" ]]; then
  # Replace the previous Growth section (it runs to the next "## " heading or the end).
  awk 'BEGIN { skip = 0 } /^## Growth$/ { skip = 1; next } skip && /^## / { skip = 0 } !skip' "$out" >"$work/out.md"
  sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$work/out.md"
  { cat "$work/out.md"; echo; cat "$work/growth.md"; } >"$out"
  echo "== wrote $out"
fi

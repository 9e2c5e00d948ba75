#!/usr/bin/env bash
# fuzz.sh BUILD_DIR SECONDS [TARGET...]: runs each libFuzzer target (default: all of fuzz/) for
# SECONDS, starting from its seeds and regression inputs in fuzz/corpus/<target>/ plus what earlier
# runs found (BUILD_DIR/fuzz-corpus/<target>/). A crash leaves its input in
# BUILD_DIR/fuzz-crashes/ and fails the run: reproduce it with BUILD_DIR/fuzz/<target> FILE, fix
# the bug, and add the file to fuzz/corpus/<target>/ as a regression input.
set -euo pipefail
build=$1
seconds=$2
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_log_file fuzz_metadata fuzz_snapshot fuzz_config fuzz_peer_message fuzz_client_request)
fi
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$build/fuzz-crashes"
failed=()
for target in "${targets[@]}"; do
  mkdir -p "$build/fuzz-corpus/$target"
  log="$build/fuzz-crashes/$target.log"
  if "$build/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/fuzz-crashes/$target-" \
      "$build/fuzz-corpus/$target" "$root/fuzz/corpus/$target" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz: $target: ${seconds}s, $runs inputs, $cov, no crash"
  else
    echo "fuzz: $target FAILED (log: $log):"
    grep -B2 -A25 -m1 -E 'runtime error|==[0-9]+==ERROR|fuzz property failed|deadly signal' "$log" | head -40 || tail -30 "$log"
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}: inputs in $build/fuzz-crashes/" >&2
  exit 1
fi

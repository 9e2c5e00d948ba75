# Sourced by the shell tests: a run of free local ports in a band of the test's own.
#
#   base="$(free_port_run FIRST SLOTS WIDTH)"
#
# prints the first port of WIDTH consecutive ports none of which anything listens on, trying the
# slots FIRST + k*WIDTH (k < SLOTS) from one chosen by this process's id. Bands keep tests that
# run at once apart; they stay below Linux's ephemeral ports (32768): install_test 2000-4999,
# monitoring_test 5000-8999, dashboard_test 9000-10999, MakeRunDemo 11051-11153, ProcessCluster
# 12000-21999, metrics_process_test 22000-31999.

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port_run() {
  local first="$1" slots="$2" width="$3" slot=$(($$ % $2)) base port busy
  for _ in $(seq 1 "$slots"); do
    base=$((first + slot * width))
    busy=""
    for port in $(seq "$base" $((base + width - 1))); do
      port_in_use "$port" && busy=1 && break
    done
    [[ -z "$busy" ]] && { echo "$base"; return 0; }
    slot=$(((slot + 1) % slots))
  done
  echo "no $width free ports in $first..$((first + slots * width))" >&2
  return 1
}

#!/usr/bin/env bash
# Installs raftkv as a machine would get it and starts a 3-node cluster from the installed files:
# each node runs the command line of the installed raftkv@.service (with %i its id) and the
# installed config.ini, filled in as docs/operations.md says. The installed CLI then writes and
# reads through the cluster, and every node's /health must say ok.
#
#   tests/install/install_test.sh BUILD_DIR install   DESTDIR=ROOT cmake --install BUILD_DIR
#   tests/install/install_test.sh BUILD_DIR deb       cpack's .deb, unpacked with dpkg -x ROOT
#   tests/install/install_test.sh BUILD_DIR chroot    the .deb installed with apt into a clean
#                                                     Debian 12 chroot with systemd (debootstrap;
#                                                     opt-in: make test-deb), the unit checked by
#                                                     systemd-analyze, nodes run as user raftkv
#
# In the first two, ROOT stands for /: every absolute path the unit and config name is looked up
# under it, as a chroot would. Exit status 0 when every check held.
set -euo pipefail

build="$(cd "${1:?usage: install_test.sh BUILD_DIR install|deb|chroot}" && pwd)"
mode="${2:-install}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/raftkv-install.XXXXXX)"
root="$work/root"
pids=()

say() { echo "install_test ($mode): $*"; }
fail() {
  echo "install_test ($mode): FAILED: $*" >&2
  for f in "$work"/node*.out; do [[ -f "$f" ]] && { echo "--- $f" >&2; tail -5 "$f" >&2; }; done
  exit 1
}
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "$mode" == chroot ]] && mountpoint -q "$root/proc"; then
    umount "$root/proc" || { echo "install_test: $root/proc is still mounted; left $work" >&2; return; }
  fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# A deb built from this build directory (Release), in $work.
make_deb() {
  (cd "$build" && cpack -G DEB -B "$work/deb" >"$work/cpack.log" 2>&1) ||
    { cat "$work/cpack.log" >&2; fail "cpack could not build the .deb"; }
  deb="$(ls "$work"/deb/raftkv_*.deb)"
  say "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
  dpkg-deb --info "$deb" | grep -E "^ (Depends|Version):" | sed 's/^/  /'
}

case "$mode" in
  install)
    DESTDIR="$root" cmake --install "$build" >"$work/install.log" ||
      { cat "$work/install.log" >&2; fail "cmake --install"; }
    ;;
  deb)
    make_deb
    dpkg -x "$deb" "$root"
    ;;
  chroot)
    [[ $(id -u) -eq 0 ]] || fail "the chroot test needs root (debootstrap, mount, chroot)"
    make_deb
    # A clean bookworm with systemd (so postinst takes the sysusers path real machines take, and
    # systemd-analyze can check the unit), debootstrapped once per build directory.
    cache="$build/debian12-systemd-root.tar"
    if [[ ! -f "$cache" ]]; then
      say "debootstrap bookworm (once; cached in $cache)"
      debootstrap --variant=minbase --include=systemd bookworm "$work/fresh" \
        http://deb.debian.org/debian \
        >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
      tar -C "$work/fresh" -cf "$cache" .
      rm -rf "$work/fresh"
    fi
    mkdir -p "$root"
    tar -C "$root" -xf "$cache"
    mount -t proc proc "$root/proc"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    cp "$deb" "$root/tmp/"
    chroot "$root" apt-get update -q >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; fail "apt-get update"; }
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      "/tmp/$(basename "$deb")" >>"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log" >&2; fail "apt-get install"; }
    say "apt installed the .deb and its dependencies into a clean Debian 12"
    chroot "$root" getent passwd raftkv >/dev/null || fail "postinst did not create the raftkv user"
    [[ "$(chroot "$root" stat -c %U /var/lib/raftkv)" == raftkv ]] ||
      fail "/var/lib/raftkv is not the raftkv user's"
    # systemd's own check of the installed unit: directives, paths, the user, the binary.
    chroot "$root" systemd-analyze verify /usr/lib/systemd/system/raftkv@.service \
      >"$work/verify.log" 2>&1 || { cat "$work/verify.log" >&2; fail "systemd-analyze verify"; }
    # Only what it says of our unit counts (not of the chroot's own units).
    ! grep -i raftkv "$work/verify.log" >&2 || fail "systemd-analyze verify warned about raftkv@.service"
    say "systemd-analyze verify: the installed raftkv@.service is clean"
    ;;
  *) fail "unknown mode $mode" ;;
esac

unit="$(find "$root" -xdev -path '*/lib/systemd/system/raftkv@.service' | head -1)"
[[ -n "$unit" ]] || fail "no raftkv@.service installed"
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
say "the unit runs: $exec_start"
read -r -a command <<<"$exec_start"
# The config the unit names, and the installed CLI beside the node binary.
config=""
data_dir=""
for ((k = 0; k < ${#command[@]}; k++)); do
  [[ "${command[k]}" == --config ]] && config="${command[k + 1]}"
  [[ "${command[k]}" == --data-dir ]] && data_dir="${command[k + 1]}"
done
[[ -n "$data_dir" ]] || fail "the unit's command names no --data-dir"
[[ -d "$root$data_dir" ]] || fail "the unit's data directory $data_dir is not installed"
[[ -n "$config" ]] || fail "the unit's command names no --config"
[[ -f "$root$config" ]] || fail "the unit's config $config is not installed"
bin_dir="$(dirname "${command[0]}")"
for tool in raftkv-node raftkv raftkv-inspect raftkv-make-certs; do
  [[ -x "$root$bin_dir/$tool" ]] || fail "$bin_dir/$tool is not installed"
done
[[ -f "$(find "$root" -xdev -path '*/lib/sysusers.d/raftkv.conf' | head -1)" ]] || fail "no sysusers entry"
[[ -f "$(find "$root" -xdev -path '*/doc/raftkv/operations.md' | head -1)" ]] || fail "no docs"

# Fill in the config as an operator would: the cluster's addresses and metrics addresses.
# Ports of its own (tests/lib/ports.sh lists the bands).
source "$repo/tests/lib/ports.sh"
base="$(free_port_run 2000 500 6)"  # nodes base+0..2, metrics base+3..5
nodes="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
metrics="127.0.0.1:$((base + 3)),127.0.0.1:$((base + 4)),127.0.0.1:$((base + 5))"
sed -i -e "s|^NODES *=.*|NODES = $nodes|" -e "s|^LISTEN *=.*|LISTEN = $metrics|" "$root$config"

for id in 0 1 2; do
  args=()
  for word in "${command[@]}"; do
    word="${word//%i/$id}"
    args+=("$word")
  done
  if [[ "$mode" == chroot ]]; then
    # As systemd would run it: the unit's user, inside the machine's root.
    chroot "$root" setpriv --reuid=raftkv --regid=raftkv --init-groups "${args[@]}" \
      >"$work/node$id.out" 2>&1 &
  else
    # Every absolute path the unit names lives under $root here.
    for ((k = 0; k < ${#args[@]}; k++)); do
      [[ "${args[k]}" == /* ]] && args[k]="$root${args[k]}"
    done
    "${args[@]}" >"$work/node$id.out" 2>&1 &
  fi
  pids+=($!)
done

cli=("$root$bin_dir/raftkv")
[[ "$mode" == chroot ]] && cli=(chroot "$root" "$bin_dir/raftkv")
ok=""
for _ in $(seq 1 100); do
  if "${cli[@]}" --nodes "$nodes" set installed yes >/dev/null 2>&1; then
    ok=1
    break
  fi
  sleep 0.2
done
[[ -n "$ok" ]] || fail "the installed cluster took no write within 20 s"
value="$("${cli[@]}" --nodes "$nodes" get installed)"
[[ "$value" == yes ]] || fail "read back '$value', not 'yes'"
say "SET and GET through the installed CLI: installed = $value"
for id in 0 1 2; do
  port=$((base + 3 + id))
  healthy=""
  for _ in $(seq 1 50); do
    if answer="$(curl -fsS "http://127.0.0.1:$port/health" 2>/dev/null)"; then
      healthy="$answer"
      break
    fi
    sleep 0.2
  done
  [[ -n "$healthy" ]] || fail "node $id's /health is not 200"
  say "node $id /health: $healthy"
done
[[ -s "$root$data_dir/logs_node_0/logs.txt" ]] || fail "no logs.txt in the unit's data directory $data_dir"
say "passed"

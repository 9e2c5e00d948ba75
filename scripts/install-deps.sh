#!/usr/bin/env bash
# Installs raftkv's build and test dependencies from Debian 12 packages (with `ui`, also the
# browser test's; with `deb`, the chroot test's).
# Idempotent: packages already present are skipped, so a second run is quick.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache clang libclang-rt-14-dev clang-format
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  libabsl-dev libcli11-dev libinih-dev libfmt-dev zlib1g-dev libssl-dev openssl libcpp-httplib-dev nlohmann-json3-dev
  procps tmux curl dpkg-dev
)
# `install-deps.sh ui`: also what `make test-ui` needs (Debian's headless Chromium, driven over
# WebDriver by a Python script of the standard library's).
if [ "${1:-}" = ui ]; then
  packages+=(chromium chromium-driver python3)
fi
# `install-deps.sh deb`: what `make test-deb` needs to build a clean Debian 12 root.
if [ "${1:-}" = deb ]; then
  packages+=(debootstrap util-linux)
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

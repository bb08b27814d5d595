#!/usr/bin/env bash
# What the real libvirt lab needs (`numa-migrate lab`, tests/e2e), installed idempotently:
#   - Debian packages: libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients,
#     qemu-system-x86, and libvirt-dev + pkg-config (+ gcc) to build libvirt-python;
#     `apt-get update` runs only when something is missing;
#   - the kvm and libvirt-qemu groups and the libvirt-qemu user (libvirt's QEMU driver
#     fails to start without them: "Failed to parse group 'libvirt-qemu'");
#   - libvirt-python, at the version of the installed libvirt, in the venv given as $1
#     (default: the project's .venv).
# Usage: bash scripts/lab-deps.sh [VENV]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

venv="${1:-$VENV}"
packages=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
          libvirt-dev pkg-config)
command -v gcc >/dev/null 2>&1 || packages+=(gcc)

is_root() { [ "$(id -u)" = 0 ]; }

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii'; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: the lab needs ${missing[*]}; as root run:" \
         "apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  quiet apt-get update
  quiet apt-get install -y --no-install-recommends "${missing[@]}"
fi

need_root_for=()
getent group kvm >/dev/null || need_root_for+=("groupadd -r kvm")
getent group libvirt-qemu >/dev/null || need_root_for+=("groupadd -r libvirt-qemu")
getent passwd libvirt-qemu >/dev/null || need_root_for+=("useradd -r -g kvm libvirt-qemu")
for cmd in "${need_root_for[@]}"; do
  if ! is_root; then
    echo "error: libvirt's QEMU driver needs the kvm/libvirt-qemu groups and user; as root" \
         "run: $cmd" >&2
    exit 1
  fi
  log "$cmd"
  # shellcheck disable=SC2086  # the command is split into its words on purpose
  $cmd
done

version="$(pkg-config --modversion libvirt)"
if [ ! -x "$venv/bin/python" ]; then
  echo "error: no Python venv at $venv (create it first, e.g. with scripts/test.sh)" >&2
  exit 1
fi
have="$("$venv/bin/python" -c \
  'import importlib.metadata as m; print(m.version("libvirt-python"))' 2>/dev/null || true)"
if [ "$have" != "$version" ] || ! "$venv/bin/python" -c 'import libvirt, libvirt_qemu' 2>/dev/null
then
  log "installing libvirt-python==$version into $venv (built against libvirt $version)"
  quiet "$venv/bin/python" -m pip install --disable-pip-version-check "libvirt-python==$version"
fi

#!/usr/bin/env bash
# The main job on the embedded default: the bundled sample fleet (a placement and a refusal
# explained per NUMA cell), then -- as root -- a real pinned guest live-migrated on the
# two-daemon libvirt lab and back, with its pins before and after, claims in the default
# SQLite store, and `validate` after each move. Extra arguments go to `numa-migrate demo`
# (e.g. --keep-lab, --no-lab).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

ensure_venv
if [ "$(id -u)" = 0 ] && [[ " $* " != *" --no-lab "* ]]; then
  log "libvirt lab dependencies (packages, QEMU user, libvirt-python)"
  bash scripts/lab-deps.sh "$VENV"
fi
numa-migrate demo "$@"

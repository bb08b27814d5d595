#!/usr/bin/env bash
# The main job on the embedded default: the bundled sample fleet (a placement and a refusal
# explained per NUMA cell), then -- as root -- a real pinned guest live-migrated on the
# two-daemon libvirt lab and back, with its pins before and after, claims in the default
# SQLite store, and `validate` after each move; then a real OpenStack on that lab (Debian 12's
# Zed packages, installed the first time: a few minutes) where Nova live-migrates a pinned
# huge-page server to the compute numa-migrate explained and chose, and numa-migrate
# validates Nova's result; then the multi-node lab (a QEMU VM with 2 NUMA nodes, SMT and
# 1 GiB pages; its image built the first time) where a two-cell guest pinned across both
# nodes moves there and back. Extra arguments go to `numa-migrate demo` (e.g. --keep-lab,
# --no-lab).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

ensure_venv openstack
extra=()
if [ "$(id -u)" = 0 ] && [[ " $* " != *" --no-lab "* ]]; then
  log "libvirt lab dependencies (packages, QEMU user, libvirt-python)"
  bash scripts/lab-deps.sh "$VENV"
  extra=(--openstack --multi-node)
fi
numa-migrate demo "${extra[@]}" "$@"

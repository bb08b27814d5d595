#!/usr/bin/env bash
# The main job on the embedded default: the bundled sample fleet, a placement and a refusal
# explained per NUMA cell.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

ensure_venv
numa-migrate demo

#!/usr/bin/env bash
# The whole test suite, from a clean clone: lint, types, unit/property/CLI tests and the
# differential tests against Nova 34 (installed as a test-only oracle in its own venv).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

ensure_venv test
log "libvirt lab dependencies (packages, QEMU user, libvirt-python)"
bash scripts/lab-deps.sh "$VENV"
# the e2e tests run on the real two-daemon libvirt lab (root): they must not be skipped
export NUMA_MIGRATE_REQUIRE_LAB=1
log "setting up the Nova 34 test oracle"
NOVA_ORACLE_PYTHON="$(bash tests/oracle/setup_oracle.sh | tail -n 1)"
export NOVA_ORACLE_PYTHON NUMA_MIGRATE_REQUIRE_ORACLE=1
# the claims tests start a real PostgreSQL server (installed with apt-get when missing)
export NUMA_MIGRATE_REQUIRE_POSTGRES=1

log "ruff"
ruff check src tests bench
log "mypy (strict)"
mypy
log "pytest"
# pytest exits 5 when no test ran: that is a failure here too (set -e).
python -m pytest -q "$@"

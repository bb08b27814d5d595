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
if [ "$#" -gt 0 ]; then
  log "pytest $*"
  python -m pytest -q "$@"
  exit 0
fi
log "pytest (everything but the OpenStack and multi-node lab tests)"
# pytest exits 5 when no test ran: that is a failure here too (set -e).
python -m pytest -q --ignore=tests/openstack --ignore=tests/multinode
# last, on their own: they bring up a real OpenStack (Debian 12's Zed packages, installed
# with apt-get when missing) on the lab's default directory and take it down afterwards
log "pytest tests/openstack (the real OpenStack lab: numa-migrate lab openstack up)"
export NUMA_MIGRATE_REQUIRE_OPENSTACK=1
python -m pytest -q tests/openstack
# then the multi-node lab: a QEMU VM (TCG) with 2 NUMA nodes, SMT threads and 1 GiB pages,
# its image built with debootstrap the first time (cached in /var/cache/numa-migrate/lab-vm)
log "pytest tests/multinode (the lab in a VM with 2 NUMA nodes: numa-migrate lab up --multi-node)"
export NUMA_MIGRATE_REQUIRE_MULTINODE=1
python -m pytest -q --durations=0 tests/multinode

#!/usr/bin/env bash
# Install Nova 34 as a test-only oracle in its own venv (.oracle-venv), never in the project's.
# Prints the oracle's python path as its last line. Idempotent: a stamp skips reinstalling.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
source "$REPO/scripts/lib.sh"
ORACLE_VENV="${NOVA_ORACLE_VENV:-$REPO/.oracle-venv}"
NOVA_VERSION=34.0.0
stamp="$ORACLE_VENV/.nova-$NOVA_VERSION"

if [ ! -f "$stamp" ]; then
  py="$(python_bin)"
  log "creating the Nova $NOVA_VERSION oracle venv in $ORACLE_VENV (about a minute)"
  rm -rf "$ORACLE_VENV"
  "$py" -m venv "$ORACLE_VENV"
  quiet "$ORACLE_VENV/bin/python" -m pip install --disable-pip-version-check "nova==$NOVA_VERSION"
  # the driver must import and answer one trivial case, or the oracle is useless
  echo '{"id":"probe","host":{"cells":[{"id":0,"cpuset":[0],"pcpuset":[],"memory_mib":1024}]},"flavor":{"vcpus":1,"memory_mib":512,"extra_specs":{"hw:numa_nodes":"1"}}}' |
    "$ORACLE_VENV/bin/python" "$REPO/tests/oracle/nova_driver.py" | grep -q '"fits": true' || {
      echo "error: the Nova oracle does not answer a trivial case" >&2; exit 1; }
  touch "$stamp"
fi
echo "$ORACLE_VENV/bin/python"

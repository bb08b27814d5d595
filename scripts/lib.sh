# Shared helpers for scripts/demo.sh and scripts/test.sh (sourced, not run).
# Creates .venv with the project installed; reinstalls only when pyproject.toml changes.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NUMA_MIGRATE_VENV:-$REPO/.venv}"

log() { printf '==> %s\n' "$*" >&2; }

quiet() {
  # Run a command with its output in a log file; show the log only if it fails.
  local logfile
  logfile="$(mktemp)"
  if ! "$@" >"$logfile" 2>&1; then
    cat "$logfile" >&2
    rm -f "$logfile"
    return 1
  fi
  rm -f "$logfile"
}

python_bin() {
  local py
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 &&
       "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  echo "error: numa-migrate needs Python >= 3.11 (Debian 12: apt-get install python3)" >&2
  return 1
}

ensure_venv() {
  # ensure_venv [extra]: .venv with numa-migrate installed (editable), plus extras ("test").
  local extra="${1:-}" stamp py target
  py="$(python_bin)"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    if ! "$py" -m venv "$VENV" 2>/dev/null; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing python3-venv"
        quiet apt-get update && quiet apt-get install -y python3-venv
        "$py" -m venv "$VENV"
      else
        echo "error: '$py -m venv' failed; install python3-venv" >&2; return 1
      fi
    fi
  fi
  stamp="$VENV/.installed-$(sha1sum "$REPO/pyproject.toml" | cut -c1-12)-${extra:-base}"
  if [ ! -f "$stamp" ]; then
    log "installing numa-migrate${extra:+ with $extra dependencies} into $VENV"
    target="$REPO"
    [ -n "$extra" ] && target="$REPO[$extra]"
    quiet "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$target"
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

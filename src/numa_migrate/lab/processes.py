"""Processes from /proc: alive or not, mount namespace, command line; stop and wait."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

_PROC = Path("/proc")


def is_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (a killed daemon nobody reaped yet)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    # "pid (comm) S ..." -- comm may contain spaces and parentheses: split after the last ')'
    state = stat.rpartition(")")[2].split()[:1]
    return bool(state) and state[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def exe_name(pid: int) -> str:
    """Base name of the program ``pid`` runs ('' when unknown)."""
    try:
        return os.path.basename(os.readlink(_PROC / str(pid) / "exe")).removesuffix(" (deleted)")
    except OSError:
        args = cmdline(pid)
        return os.path.basename(args[0]) if args else ""


def mount_ns(pid: int | str) -> int | None:
    """Inode number of the mount namespace of ``pid`` ("self" for this process)."""
    try:
        return os.stat(_PROC / str(pid) / "ns" / "mnt").st_ino
    except OSError:
        return None


def mount_source(pid: int, mount_point: str) -> str | None:
    """The path inside its file system that is mounted at ``mount_point`` in the mount
    namespace of ``pid`` (the "root" field of /proc/<pid>/mountinfo), if anything is."""
    try:
        lines = (_PROC / str(pid) / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        parts = line.split()
        if len(parts) > 4 and unescape(parts[4]) == mount_point:
            found = unescape(parts[3])  # the last mount on a path is the visible one
    return found


def mounted_anywhere(path: str) -> bool:
    """True when some live process has a mount on ``path`` (in any mount namespace)."""
    seen: set[int] = set()
    for pid in all_pids():
        ns = mount_ns(pid)
        if ns is None or ns in seen:
            continue
        seen.add(ns)
        if mount_source(pid, path) is not None:
            return True
    return False


def unescape(field: str) -> str:
    """Undo the octal escapes of /proc/*/mountinfo (``\\040`` for a space...)."""
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def all_pids() -> list[int]:
    return [int(p.name) for p in _PROC.iterdir() if p.name.isdigit()]


def terminate(pids: Iterable[int], *, timeout: float = 10.0) -> list[int]:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the pids still alive after that."""
    targets = [pid for pid in pids if is_alive(pid)]
    _signal_all(targets, signal.SIGTERM)
    if not _wait_gone(targets, timeout):
        _signal_all(targets, signal.SIGKILL)
        _wait_gone(targets, 5.0)
    survivors = [pid for pid in targets if is_alive(pid)]
    _wait_reaped([pid for pid in targets if pid not in survivors], 3.0)
    return survivors


def _signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_reaped(pids: list[int], timeout: float) -> None:
    """Give whoever reaps orphans (init) a moment to remove the zombies from /proc."""
    deadline = time.monotonic() + timeout
    while any((_PROC / str(pid)).exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(is_alive(pid) for pid in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)

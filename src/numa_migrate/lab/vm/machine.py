"""The lab VM's QEMU process: start it on an overlay of the cached image, find it, stop it.

QEMU daemonizes and writes its pid file; the pid is recorded in the lab's state and a
process is only ever signalled after /proc shows it is a QEMU named :data:`VM_NAME` using
this lab's overlay (pids are reused). The overlay (qcow2 backed by the cached raw image)
takes every write of the VM and is deleted on ``down``: the cache is never written.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from numa_migrate.lab import processes
from numa_migrate.lab.errors import LabError, LabUnavailableError
from numa_migrate.lab.vm.shape import VM_NAME, BootFiles, VmShape, qemu_argv

QEMU_TOOLS: dict[str, str] = {"qemu-system-x86_64": "qemu-system-x86",
                              "qemu-img": "qemu-utils"}


def qemu_programs() -> tuple[str, str]:
    """(qemu-system-x86_64, qemu-img), or a LabUnavailableError naming the package."""
    from numa_migrate.lab.packages import find_program

    found = []
    for program, package in QEMU_TOOLS.items():
        path = find_program(program)
        if path is None:
            raise LabUnavailableError(
                f"{program} is missing (the multi-node lab runs a QEMU VM): "
                f"apt-get install {package}")
        found.append(path)
    return found[0], found[1]


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_overlay(qemu_img: str, backing: Path, overlay: Path) -> None:
    overlay.unlink(missing_ok=True)
    done = subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-F", "raw",
                           "-b", str(backing), str(overlay)],
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise LabError(f"cannot make the VM's disk overlay {overlay}: {done.stderr.strip()}")


def console_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_bytes()[-8192:].decode(errors="replace")
    except OSError:
        return "(no console output)"
    kept = [line.strip() for line in text.replace("\r", "").splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no console output)"


def start(qemu: str, shape: VmShape, files: BootFiles, port: int) -> int:
    """Start the VM (QEMU daemonizes once its devices are set up); its pid."""
    files.pid_file.unlink(missing_ok=True)
    files.console_log.unlink(missing_ok=True)
    argv = qemu_argv(qemu, shape, files, port)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise LabError("QEMU did not start the lab VM within 120 s") from None
    if done.returncode != 0:
        detail = " | ".join(done.stderr.strip().splitlines()[-3:]) or f"exit {done.returncode}"
        raise LabError(f"QEMU could not start the lab VM: {detail}")
    pid = read_pid(files.pid_file)
    if pid is None:
        raise LabError(f"QEMU started but wrote no pid to {files.pid_file}")
    return pid


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_lab_vm(pid: int, disk: Path) -> bool:
    """``pid`` is alive and is the QEMU of the lab VM whose disk is ``disk``."""
    if not processes.is_alive(pid):
        return False
    args = processes.cmdline(pid)
    return VM_NAME in args and any(str(disk) in a for a in args)


def stop(pid: int, disk: Path, wait_s: float = 15) -> bool:
    """Stop the lab VM's QEMU (SIGTERM, then SIGKILL); False when ``pid`` is not it."""
    if not is_lab_vm(pid, disk):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not processes.is_alive(pid):
            return True
        time.sleep(0.2)
    if processes.is_alive(pid):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while processes.is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    return True


def stray_vms(disk: Path) -> list[int]:
    """Lab VMs on ``disk`` not recorded anywhere (a crashed ``up``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_lab_vm(int(entry.name), disk):
            found.append(int(entry.name))
    return found


__all__ = ["QEMU_TOOLS", "console_tail", "free_port", "is_lab_vm", "make_overlay",
           "qemu_programs", "read_pid", "start", "stop", "stray_vms"]

"""The real CPU affinity of a running guest's QEMU threads, read from /proc.

QEMU's pid is in ``<daemon run dir>/qemu/<domain>.pid`` (the run dir is what the daemon
sees as /run/libvirt). Each thread's name is in ``/proc/<pid>/task/<tid>/comm``: vCPU threads
are ``CPU <n>/KVM`` (``CPU <n>/TCG`` under TCG); the main thread (tid == pid) carries the
emulator pin. The affinity is the ``Cpus_allowed_list`` line of
``/proc/<pid>/task/<tid>/status`` -- what the kernel enforces, not what the XML says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from numa_migrate.core.cpuset import format_cpu_spec, parse_cpu_spec
from numa_migrate.lab.errors import LabError

_VCPU_RE = re.compile(r"^CPU (\d+)/(KVM|TCG)$")


@dataclass(frozen=True)
class ThreadAffinity:
    """One QEMU thread: its id, name, vCPU id (None for other threads) and allowed CPUs."""

    tid: int
    name: str
    vcpu: int | None
    cpus: frozenset[int]

    @property
    def cpu_list(self) -> str:
        return format_cpu_spec(self.cpus)


@dataclass(frozen=True)
class DomainAffinity:
    """All threads of one guest's QEMU process."""

    domain: str
    pid: int
    threads: tuple[ThreadAffinity, ...]

    @property
    def vcpus(self) -> dict[int, frozenset[int]]:
        """vCPU id -> the host CPUs its thread may run on."""
        return {t.vcpu: t.cpus for t in self.threads if t.vcpu is not None}

    @property
    def main(self) -> ThreadAffinity:
        """QEMU's main thread (pinned by ``<emulatorpin>``)."""
        for thread in self.threads:
            if thread.tid == self.pid:
                return thread
        raise LabError(f"QEMU process {self.pid} of {self.domain} has no main thread")

    @property
    def others(self) -> tuple[ThreadAffinity, ...]:
        """Every thread that is not a vCPU thread (main thread, RCU, I/O workers)."""
        return tuple(t for t in self.threads if t.vcpu is None)

    @property
    def accelerator(self) -> str | None:
        """'KVM' or 'TCG', from the vCPU thread names."""
        for thread in self.threads:
            match = _VCPU_RE.match(thread.name)
            if match:
                return match.group(2)
        return None


def qemu_pid(run_dir: Path, domain: str) -> int:
    """The pid of ``domain``'s QEMU from the daemon's ``<run dir>/qemu/<domain>.pid``."""
    path = run_dir / "qemu" / f"{domain}.pid"
    try:
        pid = int(path.read_text().strip())
    except FileNotFoundError:
        raise LabError(f"{domain} is not running under {run_dir} (no {path})") from None
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read the QEMU pid of {domain} from {path}: {exc}") from None
    if not Path(f"/proc/{pid}").exists():
        raise LabError(f"the QEMU of {domain} (pid {pid} from {path}) is not running")
    return pid


def _thread(pid: int, task: Path) -> ThreadAffinity | None:
    try:
        name = (task / "comm").read_text().rstrip("\n")
        status = (task / "status").read_text()
    except OSError:
        return None  # the thread ended while we looked
    for line in status.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            cpus = parse_cpu_spec(line.partition(":")[2].strip(), field=f"{task}/status")
            break
    else:
        raise LabError(f"{task}/status has no Cpus_allowed_list line")
    match = _VCPU_RE.match(name)
    return ThreadAffinity(int(task.name), name, int(match.group(1)) if match else None, cpus)


def process_affinity(pid: int, domain: str = "") -> DomainAffinity:
    """The affinity of every thread of process ``pid``."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        entries = sorted(tasks.iterdir(), key=lambda p: int(p.name))
    except OSError as exc:
        raise LabError(f"cannot list the threads of process {pid}: {exc}") from None
    threads = tuple(t for t in (_thread(pid, e) for e in entries) if t is not None)
    return DomainAffinity(domain or str(pid), pid, threads)


def domain_affinity(run_dir: Path, domain: str) -> DomainAffinity:
    """The real affinity of the QEMU threads of ``domain`` run by the daemon of ``run_dir``."""
    return process_affinity(qemu_pid(run_dir, domain), domain)

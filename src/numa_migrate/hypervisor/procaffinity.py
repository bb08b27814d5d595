"""The real CPU affinity of a local process's threads (a QEMU guest's), read from /proc.

Each thread is ``/proc/<pid>/task/<tid>``: its name is in ``comm`` and the CPUs the kernel
lets it run on are the ``Cpus_allowed_list`` line of ``status``. QEMU names its vCPU
threads ``CPU <n>/KVM`` (``CPU <n>/TCG`` under TCG); the main thread (tid == pid) and the
other non-vCPU threads are the emulator threads ``<emulatorpin>`` governs, except IOThreads
(``IO iothread<n>``), which ``<iothreadpin>`` governs.

:func:`find_qemu_pid` finds the pid of a domain of a local QEMU daemon from the pid file
libvirt writes in its run directory (``<run dir>/qemu/<domain>.pid``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import parse_qs, urlsplit

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import NumaMigrateError

VCPU_THREAD = re.compile(r"CPU (\d+)/(KVM|TCG|HVF|WHPX)")
IOTHREAD_THREAD = re.compile(r"IO iothread(\d+)")
PROC = Path("/proc")
SYSTEM_RUN_DIR = Path("/run/libvirt")


class AffinityError(NumaMigrateError):
    """The affinity of a process could not be read; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ThreadAffinity:
    """One thread: ``vcpu`` is its vCPU id (None if it is not a vCPU thread)."""

    tid: int
    name: str
    cpus: frozenset[int]
    vcpu: int | None = None
    iothread: int | None = None


@dataclass(frozen=True)
class ProcessAffinity:
    pid: int
    threads: tuple[ThreadAffinity, ...]

    @property
    def main(self) -> ThreadAffinity | None:
        for thread in self.threads:
            if thread.tid == self.pid:
                return thread
        return None

    @property
    def vcpus(self) -> Mapping[int, frozenset[int]]:
        """vCPU id -> the host CPUs its thread may run on."""
        return MappingProxyType(
            {t.vcpu: t.cpus for t in self.threads if t.vcpu is not None}
        )

    @property
    def iothreads(self) -> Mapping[int, frozenset[int]]:
        return MappingProxyType(
            {t.iothread: t.cpus for t in self.threads if t.iothread is not None}
        )

    @property
    def emulator_threads(self) -> tuple[ThreadAffinity, ...]:
        """Every thread that is neither a vCPU nor an IOThread (the main thread first)."""
        return tuple(
            sorted(
                (t for t in self.threads if t.vcpu is None and t.iothread is None),
                key=lambda t: (t.tid != self.pid, t.tid),
            )
        )


def _cpus_allowed(status: str, where: Path) -> frozenset[int]:
    for line in status.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return CpuSet.parse(line.partition(":")[2].strip(), field=f"{where}")
    raise AffinityError(f"{where} has no Cpus_allowed_list line")


def thread_affinity(pid: int, tid: int, *, proc: Path = PROC) -> ThreadAffinity | None:
    """One thread's name and allowed CPUs; None if the thread has ended."""
    task = proc / str(pid) / "task" / str(tid)
    try:
        name = (task / "comm").read_text(encoding="utf-8", errors="replace").rstrip("\n")
        status = (task / "status").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except ProcessLookupError:
        return None
    except OSError as exc:
        raise AffinityError(f"cannot read {task}: {exc.strerror}") from None
    cpus = _cpus_allowed(status, task / "status")
    vcpu = VCPU_THREAD.fullmatch(name)
    io = IOTHREAD_THREAD.fullmatch(name)
    return ThreadAffinity(
        tid=tid,
        name=name,
        cpus=cpus,
        vcpu=int(vcpu[1]) if vcpu else None,
        iothread=int(io[1]) if io else None,
    )


def process_affinity(pid: int, *, proc: Path = PROC) -> ProcessAffinity:
    """The affinity of every thread of process ``pid`` (threads that end meanwhile are
    left out)."""
    if pid <= 0:
        raise AffinityError(f"pid {pid} is not a process id")
    tasks = proc / str(pid) / "task"
    try:
        tids = sorted(int(entry.name) for entry in tasks.iterdir() if entry.name.isdigit())
    except FileNotFoundError:
        raise AffinityError(f"no process {pid} (no {tasks})") from None
    except OSError as exc:
        raise AffinityError(f"cannot list the threads of process {pid}: {exc.strerror}") from None
    threads = tuple(t for t in (thread_affinity(pid, tid, proc=proc) for tid in tids) if t)
    if not threads:
        raise AffinityError(f"process {pid} ended while its threads were read")
    return ProcessAffinity(pid, threads)


# --------------------------------------------------------------------------- finding QEMU


def local_run_dir(uri: str) -> Path | None:
    """The run directory of the local QEMU daemon that ``uri`` reaches; None when the URI is
    not a local QEMU one (remote host, other driver) or names no run directory we know.

    ``qemu:///system`` -> /run/libvirt; ``qemu+unix:///system?socket=/X/virtqemud-sock``
    -> /X (the daemon's run directory holds its sockets); ``qemu:///session`` ->
    ``$XDG_RUNTIME_DIR/libvirt`` is not guessed (None).
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("qemu", "qemu+unix") or parts.hostname:
        return None
    socket = parse_qs(parts.query).get("socket")
    if socket:
        return Path(socket[0]).parent
    if parts.path.rstrip("/") == "/system":
        return SYSTEM_RUN_DIR
    return None


def is_local_qemu(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in ("qemu", "qemu+unix") and not parts.hostname


def find_qemu_pid(run_dir: Path, domain: str, *, proc: Path = PROC) -> int:
    """The pid of ``domain``'s QEMU from ``<run_dir>/qemu/<domain>.pid``, checked against the
    process's command line (a stale pid file is refused)."""
    path = run_dir / "qemu" / f"{domain}.pid"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise AffinityError(f"no pid file {path} for {domain}") from None
    except OSError as exc:
        raise AffinityError(f"cannot read the pid file {path}: {exc.strerror}") from None
    if not text.isdigit() or int(text) <= 0:
        raise AffinityError(f"{path} does not hold a pid ({text[:20]!r})")
    pid = int(text)
    try:
        cmdline = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        raise AffinityError(f"pid {pid} from {path} is not running (stale pid file)") from None
    if domain not in (_guest_name(arg) for arg in cmdline):
        raise AffinityError(
            f"pid {pid} from {path} is not the QEMU of {domain} (its command line has no "
            f"-name guest={domain})"
        )
    return pid


def _guest_name(arg: bytes) -> str | None:
    """NAME of QEMU's ``-name guest=NAME,...`` argument (``,,`` is an escaped comma)."""
    text = arg.decode("utf-8", errors="replace")
    if not text.startswith("guest="):
        return None
    out: list[str] = []
    rest = text[len("guest="):]
    i = 0
    while i < len(rest):
        if rest[i] == ",":
            if rest[i + 1 : i + 2] != ",":
                break
            i += 1
        out.append(rest[i])
        i += 1
    return "".join(out)

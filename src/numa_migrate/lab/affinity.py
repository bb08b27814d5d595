"""The real CPU affinity of a lab guest's QEMU threads, read from /proc.

The lab reads it with the product's one reader (:mod:`numa_migrate.hypervisor.procaffinity`):
QEMU's pid from ``<daemon run dir>/qemu/<domain>.pid`` (checked against the process's command
line), each thread's name and ``Cpus_allowed_list`` from ``/proc/<pid>/task/<tid>``. This
module only adds the lab's view: the domain's name, its main thread, the accelerator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from numa_migrate.hypervisor import procaffinity
from numa_migrate.hypervisor.procaffinity import AffinityError, ThreadAffinity
from numa_migrate.lab.errors import LabError


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
            match = procaffinity.VCPU_THREAD.fullmatch(thread.name)
            if match:
                return match.group(2)
        return None


def qemu_pid(run_dir: Path, domain: str) -> int:
    """The pid of ``domain``'s QEMU from the daemon's ``<run dir>/qemu/<domain>.pid``."""
    try:
        return procaffinity.find_qemu_pid(run_dir, domain)
    except AffinityError as exc:
        raise LabError(f"{domain} is not running under {run_dir} ({exc})") from None


def process_affinity(pid: int, domain: str = "") -> DomainAffinity:
    """The affinity of every thread of process ``pid``."""
    try:
        threads = procaffinity.process_affinity(pid).threads
    except AffinityError as exc:
        raise LabError(str(exc)) from None
    return DomainAffinity(domain or str(pid), pid, threads)


def domain_affinity(run_dir: Path, domain: str) -> DomainAffinity:
    """The real affinity of the QEMU threads of ``domain`` run by the daemon of ``run_dir``."""
    return process_affinity(qemu_pid(run_dir, domain), domain)

"""The hypervisor seam: what numa-migrate asks of ONE host connection, as typed protocols.

:class:`Hypervisor` is a connection to one host (read the host, find, define and migrate
domains); :class:`Domain` is a handle on one domain of that host. The libvirt implementation
is :mod:`numa_migrate.hypervisor.libvirt`, the in-memory one (for unit tests)
:mod:`numa_migrate.hypervisor.memory`. Everything an implementation raises is a
:class:`HypervisorError` whose one-line message names the host and what failed.

The value types of a migration (:class:`MigrateOptions`, :class:`JobProgress`,
:class:`JobResult`) and the post-copy switch policy live here too, so that every
implementation migrates the same way (:func:`run_migration`).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.validation import ThreadAffinities


class HypervisorError(NumaMigrateError):
    """A hypervisor call failed; the message names the host and what was being done.

    ``post_copy_started``: a migration that failed *after* its switch to post-copy (the
    guest's memory is then split between the hosts: the source can no longer run it)."""

    post_copy_started: bool = False

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail if detail is not None else message
        """What the hypervisor itself said (without the host and the step)."""


class NoDomainError(HypervisorError):
    """The domain is not (or no longer) there."""


class UnsupportedError(HypervisorError):
    """The host's driver does not support the call."""


class DomainState(enum.Enum):
    """What a domain is doing (libvirt's ``virDomainState``)."""

    NOSTATE = "no state"
    RUNNING = "running"
    BLOCKED = "blocked"
    PAUSED = "paused"
    SHUTDOWN = "shutting down"
    SHUTOFF = "shut off"
    CRASHED = "crashed"
    PMSUSPENDED = "suspended"

    @property
    def active(self) -> bool:
        return self not in (DomainState.SHUTOFF, DomainState.NOSTATE)


@dataclass(frozen=True)
class DomainStatus:
    """A domain's state and the driver's reason code for it."""

    state: DomainState
    reason: int = 0

    def __str__(self) -> str:
        return f"{self.state.value} (reason {self.reason})"


@dataclass(frozen=True)
class DomainSummary:
    """One domain of a host as listed: XML is the live one (the definition when inactive),
    ``persistent_xml`` the inactive definition (None for a transient domain)."""

    name: str
    uuid: str
    active: bool
    xml: str
    persistent_xml: str | None


@dataclass(frozen=True)
class Versions:
    """libvirt's and the hypervisor's versions as (major, minor, micro)."""

    libvirt: tuple[int, int, int]
    hypervisor: tuple[int, int, int]


def version_tuple(number: int) -> tuple[int, int, int]:
    """libvirt's packed version number (major * 1,000,000 + minor * 1,000 + micro)."""
    return number // 1_000_000, number // 1000 % 1000, number % 1000


@dataclass(frozen=True)
class JobProgress:
    """One poll of the migration job (bytes; None when the hypervisor did not say)."""

    elapsed_s: float
    data_total: int | None
    data_processed: int | None
    data_remaining: int | None
    bytes_per_s: int | None


@dataclass(frozen=True)
class JobResult:
    """The completed job's statistics."""

    seconds: float
    downtime_ms: int | None
    data_transferred: int | None
    raw: dict[str, Any]
    post_copy: bool = False
    """The migration switched to post-copy (see MigrateOptions.post_copy_after_s)."""


@dataclass(frozen=True)
class MigrateOptions:
    auto_converge: bool = False
    post_copy: bool = False
    post_copy_after_s: float | None = None
    """With ``post_copy``: switch to post-copy this many seconds after the job starts;
    None: once the first full pass over memory is done and it is still copying (memory
    iteration 2, as Nova does), so a migration that converges never switches."""
    bandwidth_mib_s: int | None = None
    uri: str = "tcp://127.0.0.1"
    listen_address: str | None = "127.0.0.1"


@dataclass(frozen=True)
class JobStats:
    """A migration job's statistics as the hypervisor gives them (``active``: a job runs,
    or for completed statistics: a job completed)."""

    active: bool
    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.values.get(key)


class Domain(Protocol):
    """A handle on one domain of one host."""

    @property
    def host(self) -> str:
        """The name of the host the handle is on (for messages)."""
        ...

    def name(self) -> str: ...
    def uuid(self) -> str: ...
    def status(self) -> DomainStatus: ...
    def is_active(self) -> bool: ...
    def is_persistent(self) -> bool: ...

    def xml(self) -> str:
        """The live XML (the definition for an inactive domain)."""
        ...

    def migratable_xml(self) -> str:
        """The live XML as a migration's destination XML starts from."""
        ...

    def persistent_xml(self, *, migratable: bool = True) -> str | None:
        """The inactive definition (None for a transient domain)."""
        ...

    def start(self) -> None: ...
    def resume(self) -> None: ...
    def destroy(self) -> None: ...
    def undefine(self) -> None: ...
    def attach_device(self, device_xml: str, *, persistent: bool) -> None: ...
    def detach_device(self, device_xml: str) -> None:
        """Ask for a live hot-unplug (it completes when the guest lets go)."""
        ...

    def vcpu_affinity(self) -> dict[int, frozenset[int]]:
        """vCPU -> host CPUs as the driver reports it (the QEMU driver: the threads')."""
        ...

    def job_stats(self, *, completed: bool = False) -> JobStats: ...
    def abort_job(self) -> None: ...
    def start_post_copy(self) -> None: ...
    def monitor_command(self, command: str) -> str:
        """A human monitor (HMP) command's answer (QEMU only)."""
        ...


class Hypervisor(Protocol):
    """A connection to one host."""

    @property
    def name(self) -> str:
        """The host's name in numa-migrate (inventory or lab), used in messages."""
        ...

    @property
    def uri(self) -> str: ...

    def close(self) -> None: ...
    def capabilities(self) -> str: ...
    def driver(self) -> str:
        """The driver's name (``QEMU``, ``Test``)."""
        ...

    def hostname(self) -> str: ...
    def versions(self) -> Versions: ...
    def free_pages(self, size_kib: int, cell: int) -> int | None:
        """Free pages of ``size_kib`` on NUMA ``cell`` per the kernel (None: no count given);
        :class:`UnsupportedError` when the driver cannot say."""
        ...

    def pci_devices(self) -> list[tuple[str, str]]:
        """(name, node-device XML) of every PCI function of the host."""
        ...

    def domains(self) -> list[DomainSummary]:
        """Every domain, running or not (ones that vanish while listed are left out)."""
        ...

    def lookup(self, name_or_uuid: str) -> Domain | None: ...
    def define(self, xml: str) -> Domain: ...
    def migrate(
        self,
        dom: Domain,
        dest: Hypervisor,
        *,
        live_xml: str,
        persistent_xml: str | None,
        options: MigrateOptions,
        on_progress: Callable[[JobProgress], None] | None = None,
        poll_s: float = 0.2,
        on_post_copy: Callable[[], None] | None = None,
    ) -> tuple[Domain, JobResult]:
        """Live-migrate ``dom`` (of this host) to ``dest`` with the given XML."""
        ...

    def thread_affinity(self, dom: Domain) -> tuple[ThreadAffinities | None, str]:
        """The real CPU affinity of ``dom``'s threads, or None and why it cannot be had."""
        ...


# ----------------------------------------------------------------------------- migration


def post_copy_due(stats: JobStats, options: MigrateOptions, moving: list[float],
                  now: float) -> bool:
    """Whether a running migration should switch to post-copy now (the clock of
    ``post_copy_after_s`` starts at the first poll that finds the job running, kept in
    ``moving``). QEMU refuses the switch until RAM is moving, so nothing is due before data
    flows."""
    if not moving:
        moving.append(now)
    if not stats.get("data_processed"):
        return False
    if options.post_copy_after_s is None:
        return int(stats.get("memory_iteration") or 0) >= 2
    return now - moving[0] >= options.post_copy_after_s


def maybe_post_copy(dom: Domain, stats: JobStats, options: MigrateOptions,
                    moving: list[float], switched: list[float]) -> None:
    """Switch to post-copy when :func:`post_copy_due`; a refusal lets pre-copy go on."""
    now = time.monotonic()
    if not post_copy_due(stats, options, moving, now):
        return
    try:
        dom.start_post_copy()
    except HypervisorError:
        return  # finished meanwhile, or not allowed: pre-copy simply goes on
    switched.append(now)


def progress_of(stats: JobStats, start: float) -> JobProgress:
    return JobProgress(
        elapsed_s=time.monotonic() - start,
        data_total=stats.get("data_total"),
        data_processed=stats.get("data_processed"),
        data_remaining=stats.get("data_remaining"),
        bytes_per_s=stats.get("memory_bps"),
    )


def run_migration(
    dom: Domain,
    transfer: Callable[[], Domain],
    *,
    dest: str,
    options: MigrateOptions,
    on_progress: Callable[[JobProgress], None] | None,
    poll_s: float,
    on_post_copy: Callable[[], None] | None,
) -> tuple[Domain, JobResult]:
    """Run the blocking ``transfer`` (of ``dom`` to the host named ``dest``) while another
    thread polls ``dom``'s job for progress and the post-copy switch; then collect the
    completed job's statistics (from either side)."""
    done = threading.Event()
    start = time.monotonic()
    switched: list[float] = []
    moving: list[float] = []

    def poll() -> None:
        while not done.wait(poll_s):
            try:
                stats = dom.job_stats()
            except HypervisorError:
                continue
            if stats.active and on_progress is not None:
                on_progress(progress_of(stats, start))
            if stats.active and options.post_copy and not switched:
                maybe_post_copy(dom, stats, options, moving, switched)
                if switched and on_post_copy is not None:
                    on_post_copy()

    poller = threading.Thread(target=poll, name="numa-migrate-progress", daemon=True)
    poller.start()
    try:
        new_dom = transfer()
    except HypervisorError as exc:
        done.set()
        poller.join()
        after = " after the switch to post-copy" if switched else ""
        error = HypervisorError(
            f"host {dom.host}: migration of {dom.name()} to {dest} failed{after}: "
            f"{exc.detail}", detail=exc.detail)
        error.post_copy_started = bool(switched)
        raise error from None
    finally:
        done.set()
        poller.join()
    seconds = time.monotonic() - start
    completed = JobStats(False)
    for holder in (new_dom, dom):  # libvirt keeps them on both sides; either may refuse
        try:
            completed = holder.job_stats(completed=True)
        except HypervisorError:
            continue
        if completed.active:
            break
    values = completed.values
    return new_dom, JobResult(
        seconds=seconds,
        downtime_ms=values.get("downtime"),
        data_transferred=values.get("data_processed"),
        raw={k: v for k, v in values.items() if isinstance(v, int | float | str)},
        post_copy=bool(switched),
    )


def has_pci_source(xml: str, address: str) -> bool:
    """Whether the domain XML has a ``<hostdev>`` of the PCI function at host ``address``."""
    from numa_migrate.adapters.domain import domain_from_xml

    return any(d.address == address for d in domain_from_xml(xml, source="live XML").hostdevs)


def detach_and_wait(dom: Domain, device_xml: str, address: str, *, timeout_s: float = 30.0,
                    poll_s: float = 0.2) -> None:
    """Hot-unplug the PCI device at host ``address`` from the running ``dom`` and wait until
    the live XML no longer has it (PCI unplug needs the guest's cooperation)."""
    try:
        dom.detach_device(device_xml)
    except HypervisorError as exc:
        raise HypervisorError(f"host {dom.host}: cannot detach PCI device {address} from "
                              f"{dom.name()}: {exc.detail}", detail=exc.detail) from None
    deadline = time.monotonic() + timeout_s
    while has_pci_source(dom.xml(), address):
        if time.monotonic() > deadline:
            raise HypervisorError(
                f"host {dom.host}: {dom.name()} did not release PCI device {address} within "
                f"{timeout_s:.0f} s (does the guest OS support PCI hot-unplug?)")
        time.sleep(poll_s)


def attach(dom: Domain, device_xml: str, address: str, *, persistent: bool) -> None:
    """Hot-plug a PCI device into the running ``dom`` (and its persistent definition)."""
    try:
        dom.attach_device(device_xml, persistent=persistent)
    except HypervisorError as exc:
        raise HypervisorError(f"host {dom.host}: cannot attach PCI device {address} to "
                              f"{dom.name()}: {exc.detail}", detail=exc.detail) from None


__all__: Sequence[str] = (
    "Domain", "DomainState", "DomainStatus", "DomainSummary", "Hypervisor", "HypervisorError",
    "JobProgress", "JobResult", "JobStats", "MigrateOptions", "NoDomainError",
    "UnsupportedError", "Versions", "attach", "detach_and_wait", "run_migration",
)

"""An in-memory implementation of the hypervisor seam, for unit tests.

A :class:`MemoryHost` is a host with a capabilities XML and domains (XML and state); it is
its own connection. ``migrate`` moves a domain to another :class:`MemoryHost` with the XML
given (live and persistent), as libvirt's ``migrate3`` with PERSIST_DEST and UNDEFINE_SOURCE
does. :meth:`MemoryHost.fail` makes a chosen call fail (once or more), and ``calls`` records
every call, so tests can check what the code under test did and how it copes with failures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from numa_migrate.adapters.hostdevxml import without_devices
from numa_migrate.adapters.xmlsafe import XmlDoc, parse_xml
from numa_migrate.core.validation import ThreadAffinities
from numa_migrate.hypervisor.base import (
    Domain,
    DomainState,
    DomainStatus,
    DomainSummary,
    Hypervisor,
    HypervisorError,
    JobProgress,
    JobResult,
    JobStats,
    MigrateOptions,
    NoDomainError,
    UnsupportedError,
    Versions,
    has_pci_source,
    run_migration,
)


@dataclass
class MemoryDomainRecord:
    """One domain as the in-memory host keeps it."""

    name: str
    uuid: str
    xml: str
    persistent_xml: str | None
    state: DomainState = DomainState.RUNNING
    reason: int = 1


@dataclass
class _Failure:
    error: HypervisorError
    times: int
    domain: str | None


def _identity(xml: str) -> tuple[str, str]:
    root = parse_xml(xml, source="domain XML")
    name = root.findtext("name")
    uuid = root.findtext("uuid")
    if not name or not uuid:
        raise HypervisorError("domain XML has no <name> or no <uuid>")
    return name.strip(), uuid.strip()


def _device_address(device_xml: str) -> str:
    doc = XmlDoc(parse_xml(device_xml, source="device XML"), "device XML")
    return doc.pci_address(doc.child(doc.root, "source/address"))


def _without_device(xml: str, address: str) -> tuple[str, bool]:
    if not has_pci_source(xml, address):
        return xml, False
    return without_devices(xml, [address], source="domain XML"), True


def _with_device(xml: str, device_xml: str) -> str:
    root = parse_xml(xml, source="domain XML")
    devices = root.find("devices")
    if devices is None:
        devices = etree.SubElement(root, "devices")
    devices.append(parse_xml(device_xml, source="device XML"))
    return etree.tostring(root, encoding="unicode")


class MemoryDomain:
    """A handle on a domain of a :class:`MemoryHost` (by UUID: it follows the record, and
    raises :class:`NoDomainError` once the domain is gone from that host)."""

    def __init__(self, host: MemoryHost, uuid: str) -> None:
        self._host = host
        self._uuid = uuid

    @property
    def host(self) -> str:
        return self._host.name

    @property
    def record(self) -> MemoryDomainRecord:
        found = self._host.records.get(self._uuid)
        if found is None:
            raise NoDomainError(f"host {self.host}: no domain {self._uuid}",
                                detail="Domain not found")
        return found

    def _call(self, call: str) -> MemoryDomainRecord:
        record = self.record
        self._host.check(call, record.name)
        return record

    def name(self) -> str:
        return self.record.name

    def uuid(self) -> str:
        return self._uuid

    def status(self) -> DomainStatus:
        record = self._call("status")
        return DomainStatus(record.state, record.reason)

    def is_active(self) -> bool:
        return self.record.state.active

    def is_persistent(self) -> bool:
        return self.record.persistent_xml is not None

    def xml(self) -> str:
        return self._call("xml").xml

    def migratable_xml(self) -> str:
        return self._call("migratable_xml").xml

    def persistent_xml(self, *, migratable: bool = True) -> str | None:
        return self._call("persistent_xml").persistent_xml

    def _set(self, call: str, state: DomainState, *, need: tuple[DomainState, ...]) -> None:
        record = self._call(call)
        if record.state not in need:
            raise HypervisorError(f"host {self.host}: cannot {call} {record.name}: domain is "
                                  f"{record.state.value}", detail=f"domain is {record.state.value}")
        record.state, record.reason = state, 1

    def start(self) -> None:
        self._set("start", DomainState.RUNNING, need=(DomainState.SHUTOFF,))

    def resume(self) -> None:
        self._set("resume", DomainState.RUNNING, need=(DomainState.PAUSED,))

    def pause(self) -> None:
        self._set("pause", DomainState.PAUSED, need=(DomainState.RUNNING,))

    def destroy(self) -> None:
        record = self._call("destroy")
        if not record.state.active:
            raise HypervisorError(f"host {self.host}: cannot destroy {record.name}: not running",
                                  detail="domain is not running")
        if record.persistent_xml is None:
            del self._host.records[self._uuid]
        else:
            record.state, record.reason = DomainState.SHUTOFF, 2
            record.xml = record.persistent_xml

    def undefine(self) -> None:
        record = self._call("undefine")
        if record.state.active:
            record.persistent_xml = None
        else:
            del self._host.records[self._uuid]

    def attach_device(self, device_xml: str, *, persistent: bool) -> None:
        record = self._call("attach_device")
        record.xml = _with_device(record.xml, device_xml)
        if persistent and record.persistent_xml is not None:
            record.persistent_xml = _with_device(record.persistent_xml, device_xml)

    def detach_device(self, device_xml: str) -> None:
        record = self._call("detach_device")
        xml, found = _without_device(record.xml, _device_address(device_xml))
        if self._host.unplug:
            record.xml = xml
        if not found:
            raise HypervisorError(f"host {self.host}: cannot detach a device from "
                                  f"{record.name}: device not found",
                                  detail="device not found")

    def vcpu_affinity(self) -> dict[int, frozenset[int]]:
        record = self._call("vcpu_affinity")
        return dict(self._host.vcpu_affinities.get(record.name, {}))

    def job_stats(self, *, completed: bool = False) -> JobStats:
        self._call("job_stats")
        if completed:
            return self._host.completed_jobs.get(self._uuid, JobStats(False))
        return self._host.job if self._host.job is not None else JobStats(False)

    def abort_job(self) -> None:
        self._call("abort_job")

    def start_post_copy(self) -> None:
        self._call("start_post_copy")

    def monitor_command(self, command: str) -> str:
        self._call("monitor_command")
        raise UnsupportedError(f"host {self.host}: no monitor on an in-memory domain")


@dataclass(eq=False)
class MemoryHost:
    """An in-memory host: it is also its own connection (:class:`Hypervisor`)."""

    name: str
    capabilities_xml: str
    driver_name: str = "QEMU"
    host_name: str | None = None
    version: Versions = field(default_factory=lambda: Versions((10, 0, 0), (8, 2, 0)))
    free: dict[tuple[int, int], int] = field(default_factory=dict)
    """(page size KiB, cell) -> free pages; others: no count."""
    pci: list[tuple[str, str]] = field(default_factory=list)
    records: dict[str, MemoryDomainRecord] = field(default_factory=dict)
    vcpu_affinities: dict[str, dict[int, frozenset[int]]] = field(default_factory=dict)
    affinities: dict[str, ThreadAffinities] = field(default_factory=dict)
    unplug: bool = True
    """The guests let go of a PCI device at once when asked to (False: never, like a guest
    OS without PCI hot-unplug)."""
    job: JobStats | None = None
    """What ``job_stats`` answers while a migration runs (None: no job)."""
    on_transfer: Callable[[], None] | None = None
    """Called in the middle of ``migrate`` (e.g. to let the progress poller see a job)."""
    completed_jobs: dict[str, JobStats] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    closed: bool = False
    _failures: dict[str, list[_Failure]] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"memory:///{self.name}"

    # -- test controls ---------------------------------------------------------------------

    def add(self, xml: str, *, persistent: bool = True,
            state: DomainState = DomainState.RUNNING) -> MemoryDomain:
        """Put a domain on the host (as if started there)."""
        name, uuid = _identity(xml)
        self.records[uuid] = MemoryDomainRecord(name, uuid, xml, xml if persistent else None,
                                                state, 1 if state.active else 0)
        return MemoryDomain(self, uuid)

    def fail(self, call: str, message: str = "injected failure", *, times: int = 1,
             domain: str | None = None, error: type[HypervisorError] = HypervisorError) -> None:
        """Make the next ``times`` calls of ``call`` (a method name, e.g. ``migrate``,
        ``detach_device``) fail with ``message`` (only on ``domain`` if given)."""
        failure = _Failure(error(f"host {self.name}: {call} failed: {message}", detail=message),
                           times, domain)
        self._failures.setdefault(call, []).append(failure)

    def check(self, call: str, domain: str | None = None) -> None:
        """Record the call; raise an injected failure if one is due."""
        self.calls.append(call if domain is None else f"{call} {domain}")
        for failure in self._failures.get(call, []):
            if failure.times > 0 and failure.domain in (None, domain):
                failure.times -= 1
                raise failure.error

    # -- the Hypervisor protocol --------------------------------------------------------------

    def close(self) -> None:
        self.closed = True

    def capabilities(self) -> str:
        self.check("capabilities")
        return self.capabilities_xml

    def driver(self) -> str:
        self.check("driver")
        return self.driver_name

    def hostname(self) -> str:
        self.check("hostname")
        return self.host_name or self.name

    def versions(self) -> Versions:
        self.check("versions")
        return self.version

    def free_pages(self, size_kib: int, cell: int) -> int | None:
        self.check("free_pages")
        return self.free.get((size_kib, cell))

    def pci_devices(self) -> list[tuple[str, str]]:
        self.check("pci_devices")
        return list(self.pci)

    def domains(self) -> list[DomainSummary]:
        self.check("domains")
        return [DomainSummary(r.name, r.uuid, r.state.active, r.xml, r.persistent_xml)
                for r in self.records.values()]

    def lookup(self, name_or_uuid: str) -> MemoryDomain | None:
        self.check("lookup", name_or_uuid)
        for record in self.records.values():
            if name_or_uuid in (record.name, record.uuid):
                return MemoryDomain(self, record.uuid)
        return None

    def define(self, xml: str) -> MemoryDomain:
        self.check("define")
        _name, uuid = _identity(xml)
        record = self.records.get(uuid)
        if record is None:
            return self.add(xml, state=DomainState.SHUTOFF)
        record.persistent_xml = xml
        return MemoryDomain(self, uuid)

    def migrate(
        self,
        dom: Domain,
        dest: Hypervisor,
        *,
        live_xml: str,
        persistent_xml: str | None,
        options: MigrateOptions,
        on_progress: Callable[[JobProgress], None] | None = None,
        poll_s: float = 0.01,
        on_post_copy: Callable[[], None] | None = None,
    ) -> tuple[Domain, JobResult]:
        if not isinstance(dest, MemoryHost) or not isinstance(dom, MemoryDomain):
            raise HypervisorError(f"host {self.name}: can only migrate to an in-memory host")
        record = dom.record

        def transfer() -> Domain:
            if self.on_transfer is not None:
                self.on_transfer()
            try:
                self.check("migrate", record.name)
            except HypervisorError as exc:
                raise HypervisorError(exc.detail) from None
            if record.uuid in dest.records:
                raise HypervisorError(f"domain {record.uuid} already exists on {dest.name}")
            moved = MemoryDomainRecord(record.name, record.uuid, live_xml,
                                       persistent_xml if persistent_xml is not None else live_xml)
            dest.records[record.uuid] = moved
            del self.records[record.uuid]
            dest.completed_jobs[record.uuid] = JobStats(
                True, {"type": 3, "downtime": 1, "data_processed": len(live_xml)})
            return MemoryDomain(dest, record.uuid)

        return run_migration(dom, transfer, dest=dest.name, options=options,
                             on_progress=on_progress, poll_s=poll_s, on_post_copy=on_post_copy)

    def thread_affinity(self, dom: Domain) -> tuple[ThreadAffinities | None, str]:
        self.check("thread_affinity")
        found = self.affinities.get(dom.name())
        if found is None:
            return None, f"{self.uri} is an in-memory host: it has no threads"
        return found, ""


def memory_pair(src_caps: str, dst_caps: str, **kwargs: Any) -> tuple[MemoryHost, MemoryHost]:
    """Two in-memory hosts ``src`` and ``dst``."""
    return MemoryHost("src", src_caps, **kwargs), MemoryHost("dst", dst_caps, **kwargs)

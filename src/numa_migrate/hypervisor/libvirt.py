"""The libvirt-python implementation of the hypervisor seam (the only module that calls it).

libvirt-python has no type information and is imported lazily: the rest of numa-migrate
works without it, and the first connection says how to install it. Everything libvirt raises
becomes a :class:`~numa_migrate.hypervisor.base.HypervisorError` whose one-line message names
the host and what failed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, NoReturn

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
    run_migration,
    version_tuple,
)
from numa_migrate.hypervisor.procaffinity import (
    AffinityError,
    find_qemu_pid,
    is_local_qemu,
    local_run_dir,
    process_affinity,
)

_silenced: list[bool] = []


def _import(name: str) -> ModuleType:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        what = f"`import {name}` failed ({exc})"
        raise HypervisorError(
            f"{what}: libvirt-python is not installed; run `bash scripts/lab-deps.sh` or "
            "`pip install libvirt-python==$(pkg-config --modversion libvirt)`", detail=what,
        ) from None
    if not _silenced:
        # libvirt prints every error on stderr by default; we raise them instead
        lib = importlib.import_module("libvirt")
        lib.registerErrorHandler(lambda _ctx, _err: None, None)
        _silenced.append(True)
    return module


def check_installed() -> None:
    """:class:`HypervisorError` unless both ``libvirt`` and ``libvirt_qemu`` import."""
    _import("libvirt")
    _import("libvirt_qemu")


def lv() -> ModuleType:
    """The ``libvirt`` module (untyped); :class:`HypervisorError` if it is not installed."""
    return _import("libvirt")


def detail(exc: Exception) -> str:
    """libvirt's own message of ``exc``, on one line."""
    get = getattr(exc, "get_error_message", None)
    text = str((get() if callable(get) else None) or exc).strip()
    return " ".join(text.split())


def _code(exc: Exception) -> int | None:
    get = getattr(exc, "get_error_code", None)
    code = get() if callable(get) else None
    return int(code) if isinstance(code, int) else None


_STATES = {
    0: DomainState.NOSTATE, 1: DomainState.RUNNING, 2: DomainState.BLOCKED,
    3: DomainState.PAUSED, 4: DomainState.SHUTDOWN, 5: DomainState.SHUTOFF,
    6: DomainState.CRASHED, 7: DomainState.PMSUSPENDED,
}
"""libvirt's ``virDomainState`` numbers (stable ABI)."""


class LibvirtDomain:
    """A libvirt ``virDomain`` handle behind the :class:`~numa_migrate.hypervisor.base.Domain`
    protocol."""

    def __init__(self, hypervisor: LibvirtHypervisor, handle: Any) -> None:
        self._hv = hypervisor
        self.handle = handle

    @property
    def host(self) -> str:
        return self._hv.name

    def _fail(self, what: str, exc: Exception) -> NoReturn:
        kind = NoDomainError if _code(exc) == lv().VIR_ERR_NO_DOMAIN else HypervisorError
        raise kind(f"host {self.host}: cannot {what} {self._name()}: {detail(exc)}",
                   detail=detail(exc)) from None

    def _call(self, what: str, method: str, *args: Any) -> Any:
        lib = lv()
        try:
            return getattr(self.handle, method)(*args)
        except lib.libvirtError as exc:
            self._fail(what, exc)

    def _name(self) -> str:
        try:
            return str(self.handle.name())
        except Exception:
            return "a domain"

    def name(self) -> str:
        return str(self._call("read the name of", "name"))

    def uuid(self) -> str:
        return str(self._call("read the UUID of", "UUIDString"))

    def status(self) -> DomainStatus:
        state, reason = self._call("read the state of", "state")
        return DomainStatus(_STATES.get(int(state), DomainState.NOSTATE), int(reason))

    def is_active(self) -> bool:
        return bool(self._call("read the state of", "isActive"))

    def is_persistent(self) -> bool:
        return bool(self._call("read the state of", "isPersistent"))

    def xml(self) -> str:
        return str(self._call("read the XML of", "XMLDesc", 0))

    def migratable_xml(self) -> str:
        return str(self._call("read the XML of", "XMLDesc", lv().VIR_DOMAIN_XML_MIGRATABLE))

    def persistent_xml(self, *, migratable: bool = True) -> str | None:
        if not self.is_persistent():
            return None
        lib = lv()
        flags = lib.VIR_DOMAIN_XML_INACTIVE
        if migratable:
            flags |= lib.VIR_DOMAIN_XML_MIGRATABLE
        return str(self._call("read the persistent XML of", "XMLDesc", flags))

    def start(self) -> None:
        self._call("start", "create")

    def resume(self) -> None:
        self._call("resume", "resume")

    def destroy(self) -> None:
        self._call("destroy", "destroy")

    def undefine(self) -> None:
        self._call("undefine", "undefine")

    def attach_device(self, device_xml: str, *, persistent: bool) -> None:
        lib = lv()
        flags = lib.VIR_DOMAIN_AFFECT_LIVE | (lib.VIR_DOMAIN_AFFECT_CONFIG if persistent else 0)
        self._call("attach a device to", "attachDeviceFlags", device_xml, flags)

    def detach_device(self, device_xml: str) -> None:
        self._call("detach a device from", "detachDeviceFlags", device_xml,
                   lv().VIR_DOMAIN_AFFECT_LIVE)

    def vcpu_affinity(self) -> dict[int, frozenset[int]]:
        info, cpumaps = self._call("read the vCPU affinity of", "vcpus")
        return {
            int(vcpu[0]): frozenset(i for i, allowed in enumerate(cpumap) if allowed)
            for vcpu, cpumap in zip(info, cpumaps, strict=True)
        }

    def job_stats(self, *, completed: bool = False) -> JobStats:
        lib = lv()
        flags = lib.VIR_DOMAIN_JOB_STATS_COMPLETED if completed else 0
        stats = dict(self._call("read the job statistics of", "jobStats", flags))
        active = stats.get("type", lib.VIR_DOMAIN_JOB_NONE) != lib.VIR_DOMAIN_JOB_NONE
        return JobStats(active, stats)

    def abort_job(self) -> None:
        self._call("abort the job of", "abortJob")

    def start_post_copy(self) -> None:
        self._call("switch to post-copy the migration of", "migrateStartPostCopy", 0)

    def monitor_command(self, command: str) -> str:
        qemu = _import("libvirt_qemu")
        try:
            return str(qemu.qemuMonitorCommand(
                self.handle, command, qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP))
        except lv().libvirtError as exc:
            self._fail(f"run the monitor command {command!r} on", exc)


class LibvirtHypervisor:
    """A libvirt connection to one host behind the
    :class:`~numa_migrate.hypervisor.base.Hypervisor` protocol."""

    def __init__(self, name: str, uri: str, conn: Any) -> None:
        self._name = name
        self._uri = uri
        self.conn = conn

    @classmethod
    def open(cls, uri: str, name: str | None = None) -> LibvirtHypervisor:
        """A read-write connection; :class:`HypervisorError` naming the host if refused."""
        lib = lv()
        try:
            conn = lib.open(uri)
        except lib.libvirtError as exc:
            raise HypervisorError(f"host {name or uri}: cannot connect to {uri}: {detail(exc)}",
                                  detail=detail(exc)) from None
        return cls(name or uri, uri, conn)

    @property
    def name(self) -> str:
        return self._name

    @property
    def uri(self) -> str:
        return self._uri

    def __repr__(self) -> str:
        return f"LibvirtHypervisor({self._name!r}, {self._uri!r})"

    def _call(self, what: str, method: str, *args: Any) -> Any:
        lib = lv()
        try:
            return getattr(self.conn, method)(*args)
        except lib.libvirtError as exc:
            kind = UnsupportedError if _code(exc) == lib.VIR_ERR_NO_SUPPORT else HypervisorError
            raise kind(f"host {self._name} ({self._uri}): cannot {what}: {detail(exc)}",
                       detail=detail(exc)) from None

    def close(self) -> None:
        try:
            self.conn.close()
        except lv().libvirtError:
            pass

    def capabilities(self) -> str:
        return str(self._call("read capabilities", "getCapabilities"))

    def driver(self) -> str:
        return str(self._call("read the driver type", "getType"))

    def hostname(self) -> str:
        return str(self._call("read the host name", "getHostname"))

    def versions(self) -> Versions:
        return Versions(
            version_tuple(int(self._call("read the libvirt version", "getLibVersion"))),
            version_tuple(int(self._call("read the hypervisor version", "getVersion"))),
        )

    def free_pages(self, size_kib: int, cell: int) -> int | None:
        answer = self._call(f"read the free {size_kib} KiB pages of cell {cell}",
                            "getFreePages", [size_kib], cell, 1, 0)
        free = (answer or {}).get(cell, {}).get(size_kib)
        return None if free is None else int(free)

    def pci_devices(self) -> list[tuple[str, str]]:
        lib = lv()
        devices = self._call("list PCI node devices", "listAllDevices",
                             lib.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV)
        out: list[tuple[str, str]] = []
        for dev in devices:
            try:
                out.append((str(dev.name()), str(dev.XMLDesc(0))))
            except lib.libvirtError:
                continue  # unplugged while we looked
        return out

    def domains(self) -> list[DomainSummary]:
        lib = lv()
        out: list[DomainSummary] = []
        for handle in self._call("list domains", "listAllDomains", 0):
            dom = LibvirtDomain(self, handle)
            try:
                out.append(DomainSummary(
                    name=dom.name(), uuid=dom.uuid(), active=dom.is_active(), xml=dom.xml(),
                    persistent_xml=dom.persistent_xml(migratable=False)))
            except NoDomainError:
                continue  # it went away while we looked
            except HypervisorError as exc:
                raise HypervisorError(f"host {self._name} ({self._uri}): cannot read a domain: "
                                      f"{exc.detail}", detail=exc.detail) from None
        del lib
        return out

    def lookup(self, name_or_uuid: str) -> LibvirtDomain | None:
        lib = lv()
        for find in (self.conn.lookupByName, self.conn.lookupByUUIDString):
            try:
                return LibvirtDomain(self, find(name_or_uuid))
            except lib.libvirtError:
                continue
        return None

    def define(self, xml: str) -> LibvirtDomain:
        return LibvirtDomain(self, self._call("define a domain", "defineXML", xml))

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
        if not isinstance(dom, LibvirtDomain) or not isinstance(dest, LibvirtHypervisor):
            raise HypervisorError(f"host {self._name}: can only migrate libvirt domains to "
                                  "libvirt hosts")
        lib = lv()
        params: dict[str, Any] = {
            lib.VIR_MIGRATE_PARAM_DEST_XML: live_xml,
            lib.VIR_MIGRATE_PARAM_URI: options.uri,
        }
        if persistent_xml is not None:
            params[lib.VIR_MIGRATE_PARAM_PERSIST_XML] = persistent_xml
        if options.listen_address:
            params[lib.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = options.listen_address
        if options.bandwidth_mib_s:
            params[lib.VIR_MIGRATE_PARAM_BANDWIDTH] = int(options.bandwidth_mib_s)
        flags = (lib.VIR_MIGRATE_LIVE | lib.VIR_MIGRATE_PERSIST_DEST
                 | lib.VIR_MIGRATE_UNDEFINE_SOURCE)
        if options.auto_converge:
            flags |= lib.VIR_MIGRATE_AUTO_CONVERGE
        if options.post_copy:
            flags |= lib.VIR_MIGRATE_POSTCOPY

        def transfer() -> Domain:
            try:
                return LibvirtDomain(dest, dom.handle.migrate3(dest.conn, params, flags))
            except lib.libvirtError as exc:
                raise HypervisorError(detail(exc)) from None

        return run_migration(dom, transfer, dest=dest.name, options=options,
                             on_progress=on_progress, poll_s=poll_s, on_post_copy=on_post_copy)

    def thread_affinity(self, dom: Domain) -> tuple[ThreadAffinities | None, str]:
        """A local QEMU daemon: /proc of the QEMU process (pid file in the daemon's run dir).
        A remote QEMU daemon (or a local one without a usable pid file): virDomainGetVcpus,
        whose QEMU implementation reads each vCPU thread's kernel affinity (vCPUs only)."""
        driver = self.driver()
        if driver.upper() != "QEMU":
            return None, (f"{self._uri} is libvirt's {driver} driver: there is no QEMU "
                          "process whose threads could be read")
        reasons: list[str] = []
        name = dom.name()
        if is_local_qemu(self._uri):
            run_dir = local_run_dir(self._uri)
            if run_dir is None:
                reasons.append(f"no known run directory for {self._uri}")
            else:
                try:
                    pid = find_qemu_pid(run_dir, name)
                    proc = process_affinity(pid)
                except AffinityError as exc:
                    reasons.append(str(exc))
                else:
                    return ThreadAffinities(
                        source=f"/proc/{pid}/task (QEMU of {name})",
                        vcpus=proc.vcpus,
                        emulator=tuple((f"{t.name} ({t.tid})", t.cpus)
                                       for t in proc.emulator_threads),
                        iothreads=proc.iothreads,
                    ), ""
        else:
            reasons.append(f"{self._uri} is remote: /proc cannot be read")
        try:
            vcpus = dom.vcpu_affinity()
        except HypervisorError as exc:
            reasons.append(f"cannot read the vCPU affinity of {name}: {exc.detail}")
            return None, "; ".join(reasons)
        return ThreadAffinities(
            source=f"virDomainGetVcpus on {self._uri} ({'; '.join(reasons)})", vcpus=vcpus
        ), ""


def connect(uri: str, name: str | None = None) -> LibvirtHypervisor:
    """A libvirt connection to the host ``name`` at ``uri``."""
    return LibvirtHypervisor.open(uri, name)


@contextmanager
def connection(uri: str, name: str | None = None) -> Iterator[LibvirtHypervisor]:
    """``with connection(uri, name) as hv:`` — closed at the end."""
    hv = connect(uri, name)
    try:
        yield hv
    finally:
        hv.close()

"""Read an inventory host live through libvirt-python: topology, domains, usage, PCI devices.

The I/O is kept thin: libvirt gives capabilities, every domain's live (and persistent) XML,
the PCI node devices and, where the driver has them, the kernel's free huge page counts;
:mod:`numa_migrate.core.domainusage` turns the running domains into usage. libvirt-python is
imported lazily, so the rest of numa-migrate works without it.

Huge pages in use come from the kernel's free counts (``virNodeGetFreePages``) when the
driver reports them, because processes other than the domains (or domains whose XML could
not be read) may hold pages; otherwise from the domains' XML alone. ``free_pages_source``
says which, and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.inventory import HostConfig, InventoryError, topology_for_host
from numa_migrate.adapters.nodedev import pci_functions_from_nodedevs
from numa_migrate.adapters.virt import lv as libvirt_module
from numa_migrate.core.domainusage import HostUsage, host_usage
from numa_migrate.core.errors import NumaMigrateError, ParseError
from numa_migrate.core.model.domain import DomainInfo
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool
from numa_migrate.core.model.pci import PciFunction

SOURCE_KERNEL = "kernel free counts (libvirt virNodeGetFreePages)"
SOURCE_DOMAINS = "running domains' XML"


class LiveHostError(NumaMigrateError):
    """A host could not be read through libvirt; the message names the host and URI."""


@dataclass(frozen=True)
class LiveDomain:
    """One domain of a host: ``info`` from its live XML (for an inactive domain, its
    definition), ``persistent`` from its persistent XML (None for a transient domain)."""

    name: str
    uuid: str
    active: bool
    info: DomainInfo
    persistent: DomainInfo | None


@dataclass(frozen=True)
class LiveHost:
    """A host as libvirt shows it now.

    - ``capacity``: the topology from capabilities and the inventory's CPU/page settings,
      without usage; ``topology``: the same with the running domains' usage applied (and
      huge pages in use per the kernel where the driver says);
    - ``domains``: every domain, running or not, sorted by name (unreadable ones are in
      ``unreadable`` as (name, reason) and in ``notes``);
    - ``usage``: the per-domain breakdown; ``pci_functions``: the host's PCI functions;
    - ``free_pages_source``: where the huge page counts came from;
    - ``notes``: what was inferred or approximated.
    """

    name: str
    uri: str
    driver: str
    config: HostConfig
    capacity: HostTopology
    topology: HostTopology
    domains: tuple[LiveDomain, ...]
    usage: HostUsage
    pci_functions: tuple[PciFunction, ...]
    free_pages_source: str
    notes: tuple[str, ...]
    unreadable: tuple[tuple[str, str], ...] = ()

    @property
    def active_domains(self) -> tuple[LiveDomain, ...]:
        return tuple(d for d in self.domains if d.active)

    def domain(self, name_or_uuid: str) -> LiveDomain | None:
        for dom in self.domains:
            if name_or_uuid in (dom.name, dom.uuid):
                return dom
        return None

    @property
    def devices_in_use(self) -> dict[str, tuple[str, ...]]:
        """PCI address -> the running domains that hold it."""
        return dict(self.usage.devices_in_use)

    @property
    def vfs_in_use(self) -> dict[str, tuple[str, ...]]:
        """VF address -> the running domains that hold it (VFs the host lists only)."""
        vfs = {f.address for f in self.pci_functions if f.is_vf}
        return {a: n for a, n in self.usage.devices_in_use.items() if a in vfs}


def _message(exc: Exception) -> str:
    get = getattr(exc, "get_error_message", None)
    text = get() if callable(get) else None
    return str(text or exc).strip()


def connect(config: HostConfig) -> Any:
    """An open libvirt connection to the host, or :class:`LiveHostError` saying why not."""
    lib = libvirt_module()
    try:
        return lib.open(config.uri)
    except lib.libvirtError as exc:
        raise LiveHostError(
            f"host {config.name}: cannot connect to {config.uri}: {_message(exc)}"
        ) from None


@contextmanager
def open_connection(config: HostConfig) -> Iterator[Any]:
    """``with open_connection(config) as conn:``; the connection is closed afterwards."""
    conn = connect(config)
    try:
        yield conn
    finally:
        try:
            conn.close()
        except libvirt_module().libvirtError:
            pass


def read_live_host(config: HostConfig, *, conn: Any | None = None) -> LiveHost:
    """Read the host now (on ``conn`` if given, else on a connection of its own)."""
    if conn is None:
        with open_connection(config) as own:
            return read_live_host(config, conn=own)
    lib = libvirt_module()
    notes: list[str] = []
    try:
        caps = conn.getCapabilities()
        driver = str(conn.getType())
    except lib.libvirtError as exc:
        raise LiveHostError(
            f"host {config.name} ({config.uri}): cannot read capabilities: {_message(exc)}"
        ) from None
    try:
        capacity = topology_for_host(config, caps)
    except InventoryError:
        raise
    except ParseError as exc:
        raise LiveHostError(f"host {config.name} ({config.uri}): {exc}") from None
    notes.extend(_config_notes(config))
    domains, unreadable = _read_domains(conn, config, notes)
    usage = host_usage(capacity, (d.info for d in domains if d.active))
    notes.extend(usage.notes)
    notes.extend(f"conflict: {c}" for c in usage.conflicts)
    cells, source = _kernel_pages(conn, usage.topology, notes)
    pci, pci_notes = read_pci_functions(conn, config)
    notes.extend(pci_notes)
    return LiveHost(
        name=config.name,
        uri=config.uri,
        driver=driver,
        config=config,
        capacity=capacity,
        topology=replace(usage.topology, cells=cells),
        domains=domains,
        usage=usage,
        pci_functions=pci,
        free_pages_source=source,
        notes=tuple(notes),
        unreadable=unreadable,
    )


def _config_notes(config: HostConfig) -> list[str]:
    notes = []
    if config.legacy_cpus:
        notes.append(
            "no cpu_dedicated_set/cpu_shared_set in the inventory: every host CPU serves "
            "pinned and floating guests (Nova's legacy behaviour)"
        )
    if config.reserved_host_memory_mb:
        notes.append(
            f"reserved_host_memory_mb = {config.reserved_host_memory_mb}: a host-wide "
            "reservation (as in Nova), not taken from any NUMA cell"
        )
    return notes


def _read_domains(
    conn: Any, config: HostConfig, notes: list[str]
) -> tuple[tuple[LiveDomain, ...], tuple[tuple[str, str], ...]]:
    lib = libvirt_module()
    try:
        handles = conn.listAllDomains(0)
    except lib.libvirtError as exc:
        raise LiveHostError(
            f"host {config.name} ({config.uri}): cannot list domains: {_message(exc)}"
        ) from None
    found: list[LiveDomain] = []
    unreadable: list[tuple[str, str]] = []
    for dom in handles:
        try:
            name = str(dom.name())
            active = bool(dom.isActive())
            live_xml = str(dom.XMLDesc(0))
            persistent_xml = (
                str(dom.XMLDesc(lib.VIR_DOMAIN_XML_INACTIVE)) if dom.isPersistent() else None
            )
            uuid = str(dom.UUIDString())
        except lib.libvirtError as exc:
            if exc.get_error_code() == lib.VIR_ERR_NO_DOMAIN:
                continue  # it went away while we looked
            raise LiveHostError(
                f"host {config.name} ({config.uri}): cannot read a domain: {_message(exc)}"
            ) from None
        where = f"{config.name}/{name}"
        try:
            info = domain_from_xml(live_xml, source=f"{where} (live XML)")
            persistent = (
                None if persistent_xml is None
                else domain_from_xml(persistent_xml, source=f"{where} (persistent XML)")
            )
        except ParseError as exc:
            unreadable.append((name, str(exc)))
            state = "running" if active else "defined"
            notes.append(f"{name} ({state}): XML not understood, its usage is not counted: {exc}")
            continue
        found.append(LiveDomain(name, uuid, active, info, persistent))
    found.sort(key=lambda d: d.name)
    return tuple(found), tuple(unreadable)


def read_pci_functions(
    conn: Any, config: HostConfig
) -> tuple[tuple[PciFunction, ...], tuple[str, ...]]:
    """The host's PCI functions (PFs, VFs with their NUMA node) and notes on what failed."""
    lib = libvirt_module()
    notes: list[str] = []
    try:
        devices = conn.listAllDevices(lib.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV)
    except lib.libvirtError as exc:
        return (), (f"no PCI device inventory from {config.uri}: {_message(exc)}",)
    out: list[PciFunction] = []
    for dev in devices:
        try:
            name = str(dev.name())
            xml = str(dev.XMLDesc(0))
        except lib.libvirtError:
            continue  # unplugged while we looked
        try:
            out.extend(pci_functions_from_nodedevs([(f"{config.name} node device {name}", xml)]))
        except ParseError as exc:
            notes.append(f"PCI device {name} not understood, left out: {exc}")
    if not out:
        notes.append(f"{config.uri} lists no PCI devices: VF NUMA nodes cannot be checked")
    return tuple(sorted(out, key=lambda f: f.address)), tuple(notes)


def _kernel_pages(
    conn: Any, topology: HostTopology, notes: list[str]
) -> tuple[tuple[HostCell, ...], str]:
    """Each cell's huge page pools with ``used`` from the kernel's free counts, if given."""
    lib = libvirt_module()
    cells: list[HostCell] = []
    used_kernel: list[str] = []
    missing: list[str] = []
    unsupported: str | None = None
    for cell in topology.cells:
        pools: list[PagePool] = []
        for pool in cell.mempages:
            if pool.size_kib == cell.smallest_page_kib or unsupported is not None:
                pools.append(pool)
                continue
            what = f"cell {cell.id} {pool.size_kib} KiB"
            try:
                answer = conn.getFreePages([pool.size_kib], cell.id, 1, 0)
            except lib.libvirtError as exc:
                if exc.get_error_code() == lib.VIR_ERR_NO_SUPPORT:
                    unsupported = f"the {conn.getType()} driver does not support it"
                else:
                    missing.append(f"{what}: {_message(exc)}")
                pools.append(pool)
                continue
            free = (answer or {}).get(cell.id, {}).get(pool.size_kib)
            if free is None:
                missing.append(f"{what}: no count returned")
                pools.append(pool)
                continue
            used = max(0, pool.total - int(free))
            if used != pool.used:
                notes.append(
                    f"host cell {cell.id}: {used} pages of {pool.size_kib} KiB in use per the "
                    f"kernel, {pool.used} per the running domains' XML; the kernel's count is used"
                )
            used_kernel.append(what)
            pools.append(replace(pool, used=used))
        cells.append(replace(cell, mempages=tuple(pools)))
    huge = [
        p for c in topology.cells for p in c.mempages if p.size_kib != c.smallest_page_kib
    ]
    if not huge:
        return tuple(cells), f"{SOURCE_DOMAINS} (the host has no huge page pools)"
    if unsupported is not None:
        source = f"{SOURCE_DOMAINS} (virNodeGetFreePages: {unsupported})"
    elif not used_kernel and all(m.endswith(": no count returned") for m in missing):
        source = f"{SOURCE_DOMAINS} (the {conn.getType()} driver's virNodeGetFreePages " \
            "returned no counts)"
    elif not used_kernel:
        source = f"{SOURCE_DOMAINS} (virNodeGetFreePages gave no counts: {'; '.join(missing)})"
    elif missing:
        source = f"{SOURCE_KERNEL} for {', '.join(used_kernel)}; {SOURCE_DOMAINS} for the rest"
        notes.append(f"no kernel free-page count for {'; '.join(missing)}")
    else:
        source = SOURCE_KERNEL
    notes.append(f"huge pages in use: {source}")
    return tuple(cells), source


def vcpu_affinity(conn: Any, domain: str) -> dict[int, frozenset[int]]:
    """vCPU -> host CPUs from ``virDomainGetVcpus``. The QEMU driver answers with each vCPU
    thread's real affinity (``sched_getaffinity``), also on a remote host."""
    lib = libvirt_module()
    try:
        try:
            dom = conn.lookupByName(domain)
        except lib.libvirtError:
            dom = conn.lookupByUUIDString(domain)
        info, cpumaps = dom.vcpus()
    except lib.libvirtError as exc:
        raise LiveHostError(f"cannot read the vCPU affinity of {domain}: {_message(exc)}") from None
    return {
        int(vcpu[0]): frozenset(i for i, allowed in enumerate(cpumap) if allowed)
        for vcpu, cpumap in zip(info, cpumaps, strict=True)
    }

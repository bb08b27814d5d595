"""Read an inventory host live through libvirt-python: topology, domains, usage, PCI devices.

The I/O is kept thin: libvirt gives capabilities, every domain's live (and persistent) XML,
the PCI node devices and, where the driver has them, the kernel's free huge page counts;
:mod:`numa_migrate.core.domainusage` turns the running domains into usage. libvirt-python is
reached through the hypervisor seam (:mod:`numa_migrate.hypervisor`), so this module works
on any implementation of it (libvirt, or the in-memory one in unit tests).

Huge pages in use come from the kernel's free counts (``virNodeGetFreePages``) when the
driver reports them, because processes other than the domains (or domains whose XML could
not be read) may hold pages; otherwise from the domains' XML alone. ``free_pages_source``
says which, and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.inventory import HostConfig, InventoryError, topology_for_host
from numa_migrate.adapters.nodedev import pci_functions_from_nodedevs
from numa_migrate.core.domainusage import HostUsage, host_usage
from numa_migrate.core.errors import NumaMigrateError, ParseError
from numa_migrate.core.model.domain import DomainInfo
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool
from numa_migrate.core.model.pci import PciFunction
from numa_migrate.hypervisor.base import Hypervisor, HypervisorError, UnsupportedError

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
    capabilities_xml: str = ""
    """The capabilities XML the topology was read from (a fleet snapshot keeps it)."""

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


def connect(config: HostConfig) -> Hypervisor:
    """An open connection to the host, or :class:`LiveHostError` saying why not."""
    from numa_migrate.hypervisor.libvirt import connect as libvirt_connect

    try:
        return libvirt_connect(config.uri, config.name)
    except HypervisorError as exc:
        raise LiveHostError(str(exc)) from None


@contextmanager
def open_connection(config: HostConfig) -> Iterator[Hypervisor]:
    """``with open_connection(config) as hv:``; the connection is closed afterwards."""
    hv = connect(config)
    try:
        yield hv
    finally:
        hv.close()


def read_live_host(config: HostConfig, *, conn: Hypervisor | None = None) -> LiveHost:
    """Read the host now (on ``conn`` if given, else on a connection of its own)."""
    if conn is None:
        with open_connection(config) as own:
            return read_live_host(config, conn=own)
    notes: list[str] = []
    try:
        caps = conn.capabilities()
        driver = conn.driver()
    except HypervisorError as exc:
        raise LiveHostError(
            f"host {config.name} ({config.uri}): cannot read capabilities: {exc.detail}"
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
        capabilities_xml=caps,
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
    conn: Hypervisor, config: HostConfig, notes: list[str]
) -> tuple[tuple[LiveDomain, ...], tuple[tuple[str, str], ...]]:
    try:
        listed = conn.domains()
    except HypervisorError as exc:
        raise LiveHostError(
            f"host {config.name} ({config.uri}): cannot list domains: {exc.detail}"
        ) from None
    found: list[LiveDomain] = []
    unreadable: list[tuple[str, str]] = []
    for dom in listed:
        name, active = dom.name, dom.active
        where = f"{config.name}/{name}"
        try:
            info = domain_from_xml(dom.xml, source=f"{where} (live XML)")
            persistent = (
                None if dom.persistent_xml is None
                else domain_from_xml(dom.persistent_xml, source=f"{where} (persistent XML)")
            )
        except ParseError as exc:
            unreadable.append((name, str(exc)))
            state = "running" if active else "defined"
            notes.append(f"{name} ({state}): XML not understood, its usage is not counted: {exc}")
            continue
        found.append(LiveDomain(name, dom.uuid, active, info, persistent))
    found.sort(key=lambda d: d.name)
    return tuple(found), tuple(unreadable)


def read_pci_functions(
    conn: Hypervisor, config: HostConfig
) -> tuple[tuple[PciFunction, ...], tuple[str, ...]]:
    """The host's PCI functions (PFs, VFs with their NUMA node) and notes on what failed."""
    notes: list[str] = []
    try:
        devices = conn.pci_devices()
    except HypervisorError as exc:
        return (), (f"no PCI device inventory from {config.uri}: {exc.detail}",)
    out: list[PciFunction] = []
    for name, xml in devices:
        try:
            out.extend(pci_functions_from_nodedevs([(f"{config.name} node device {name}", xml)]))
        except ParseError as exc:
            notes.append(f"PCI device {name} not understood, left out: {exc}")
    if not out:
        notes.append(f"{config.uri} lists no PCI devices: VF NUMA nodes cannot be checked")
    return tuple(sorted(out, key=lambda f: f.address)), tuple(notes)


def _kernel_pages(
    conn: Hypervisor, topology: HostTopology, notes: list[str]
) -> tuple[tuple[HostCell, ...], str]:
    """Each cell's huge page pools with ``used`` from the kernel's free counts, if given."""
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
                free = conn.free_pages(pool.size_kib, cell.id)
            except UnsupportedError:
                unsupported = f"the {conn.driver()} driver does not support it"
                pools.append(pool)
                continue
            except HypervisorError as exc:
                missing.append(f"{what}: {exc.detail}")
                pools.append(pool)
                continue
            if free is None:
                missing.append(f"{what}: no count returned")
                pools.append(pool)
                continue
            used = max(0, pool.total - free)
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
        source = f"{SOURCE_DOMAINS} (the {conn.driver()} driver's virNodeGetFreePages " \
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

"""Read a host live through libvirt: topology from capabilities, usage from its domains.

Huge page use is taken from the kernel's real free counts (``virNodeGetFreePages``) where
the driver reports them, because other daemons or processes may use pages too; pins,
shared vCPUs and memory come from every running domain's live XML
(:mod:`numa_migrate.hostusage`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import DomainInfo, domain_from_xml
from numa_migrate.adapters.hostsfile import HostEntry, InventoryError
from numa_migrate.errors import NumaMigrateError
from numa_migrate.hostusage import usage_from_domains
from numa_migrate.migrate import virt
from numa_migrate.model.host import HostCell, HostTopology


@dataclass(frozen=True)
class LiveHost:
    topology: HostTopology
    domains: tuple[DomainInfo, ...]
    notes: tuple[str, ...]


def running_domains(conn: Any, host: str) -> tuple[tuple[DomainInfo, ...], tuple[str, ...]]:
    lib = virt.lv()
    out: list[DomainInfo] = []
    notes: list[str] = []
    for dom in conn.listAllDomains(lib.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            out.append(domain_from_xml(dom.XMLDesc(0), source=f"{host}/{dom.name()}"))
        except NumaMigrateError as exc:
            notes.append(f"{dom.name()}: live XML not understood, usage not counted: {exc}")
        except lib.libvirtError:
            continue  # it went away while we looked
    return tuple(out), tuple(notes)


def _real_pages(conn: Any, cell: HostCell, notes: list[str]) -> HostCell:
    lib = virt.lv()
    pools = []
    for pool in cell.mempages:
        if pool.size_kib == cell.smallest_page_kib:
            pools.append(pool)
            continue
        try:
            free = conn.getFreePages([pool.size_kib], cell.id, 1)[cell.id][pool.size_kib]
        except (lib.libvirtError, KeyError, TypeError):
            notes.append(f"cell {cell.id}: no free-page count from the driver for "
                         f"{pool.size_kib} KiB pages; used counted from domains only")
            pools.append(pool)
            continue
        used = max(pool.used, pool.total - int(free))
        pools.append(replace(pool, used=min(used, pool.total)))
    return replace(cell, mempages=tuple(pools))


def read_live_host(conn: Any, entry: HostEntry) -> LiveHost:
    caps = conn.getCapabilities()
    try:
        topology = host_from_capabilities(
            caps, name=entry.name, cpu_dedicated_set=entry.cpu_dedicated_set,
            cpu_shared_set=entry.cpu_shared_set,
            reserved_huge_pages=dict(entry.reserved_huge_pages) or None,
            source=f"{entry.name} capabilities",
        )
    except NumaMigrateError as exc:
        raise InventoryError(f"host {entry.name}: {exc}") from None
    domains, notes = running_domains(conn, entry.name)
    topology, usage_notes = usage_from_domains(topology, domains)
    all_notes = [*notes, *usage_notes]
    topology = replace(topology, cells=tuple(_real_pages(conn, c, all_notes)
                                             for c in topology.cells))
    return LiveHost(topology, domains, tuple(all_notes))

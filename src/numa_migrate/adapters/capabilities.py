"""Host NUMA topology and host facts from libvirt capabilities XML (``virsh capabilities``).

CPU pools follow Nova: with neither ``cpu_dedicated_set`` nor ``cpu_shared_set`` every CPU of
a cell is in both pools (legacy ``vcpu_pin_set`` style); otherwise each pool is the cell's CPUs
in the given set. SMT sibling groups are kept only for CPUs in a pool, as Nova does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from numa_migrate.adapters.xmlsafe import XmlDoc, kib_to_mib
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import ParseError
from numa_migrate.core.limits import (
    MAX_CPUS,
    MAX_MEMORY_MIB,
    MAX_NUMA_NODES,
    MAX_PAGE_COUNT,
    MAX_PAGE_SIZE_KIB,
)
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool, normalise_siblings

_EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class CpuTopology:
    """``<host><cpu><topology>``; libvirt reports ``sockets`` per NUMA node, not per host."""

    sockets: int
    dies: int
    cores: int
    threads: int


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What preflight and migration need to know about a host besides its NUMA cells."""

    uuid: str
    arch: str
    cpu_model: str | None
    cpu_vendor: str | None
    cpu_topology: CpuTopology | None
    migration_transports: tuple[str, ...]
    security_models: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Cell:
    """One ``<cell>`` as written, before CPU pools and reservations are applied."""

    id: int
    cpus: frozenset[int]
    sibling_groups: tuple[frozenset[int], ...]
    memory_mib: int
    pages: tuple[tuple[int, int], ...]
    """(page size in KiB, page count) per ``<pages>`` element."""
    socket: int | None = None
    """The ``socket_id`` all the cell's CPUs share (None: not given, or they differ)."""


def host_facts_from_capabilities(xml: str | bytes, *, source: str = "capabilities") -> HostFacts:
    doc = XmlDoc.load(xml, source=source, root="capabilities")
    host = doc.child(doc.root, "host")
    cpu = doc.child(host, "cpu")
    return HostFacts(
        uuid=doc.text(doc.child(host, "uuid")),
        arch=doc.text(doc.child(cpu, "arch")),
        cpu_model=doc.opt_text(cpu, "model"),
        cpu_vendor=doc.opt_text(cpu, "vendor"),
        cpu_topology=_cpu_topology(doc, cpu.find("topology")),
        migration_transports=tuple(
            doc.text(el) for el in host.iterfind("migration_features/uri_transports/uri_transport")
        ),
        security_models=tuple(doc.text(el) for el in host.iterfind("secmodel/model")),
    )


def _cpu_topology(doc: XmlDoc, el: etree._Element | None) -> CpuTopology | None:
    if el is None:
        return None
    return CpuTopology(
        sockets=doc.int_attr(el, "sockets", minimum=1),
        dies=doc.int_attr(el, "dies", default=1, minimum=1),
        cores=doc.int_attr(el, "cores", minimum=1),
        threads=doc.int_attr(el, "threads", minimum=1),
    )


def host_from_capabilities(
    xml: str | bytes,
    *,
    name: str | None = None,
    cpu_dedicated_set: frozenset[int] | None = None,
    cpu_shared_set: frozenset[int] | None = None,
    reserved_huge_pages: Mapping[tuple[int, int], int] | None = None,
    source: str = "capabilities",
) -> HostTopology:
    """The host's NUMA cells with CPU pools, SMT siblings, memory and page pools.

    ``name`` defaults to the host UUID; ``reserved_huge_pages`` maps (cell id, page size in
    KiB) to a reserved page count (Nova's ``reserved_huge_pages``).
    """
    doc = XmlDoc.load(xml, source=source, root="capabilities")
    host = doc.child(doc.root, "host")
    cells = _read_cells(doc, host)
    host_cpus = frozenset().union(*(c.cpus for c in cells))
    shared, dedicated = _cpu_pools(host_cpus, cpu_dedicated_set, cpu_shared_set, source)
    reserved = dict(reserved_huge_pages or {})
    _check_reservations(cells, reserved, source)
    return HostTopology(
        name=name or doc.text(doc.child(host, "uuid")),
        cells=tuple(_host_cell(cell, shared, dedicated, reserved) for cell in cells),
    )


def _read_cells(doc: XmlDoc, host: etree._Element) -> tuple[_Cell, ...]:
    elements = host.findall("topology/cells/cell")
    if len(elements) > MAX_NUMA_NODES:
        raise doc.error(
            host, f"lists {len(elements)} NUMA cells; a host has at most {MAX_NUMA_NODES}"
        )
    cells = tuple(_read_cell(doc, el) for el in elements)
    if not cells:
        raise doc.error(
            host,
            "the capabilities lack NUMA topology (no <topology><cells><cell>); the host's "
            "cells cannot be derived from <cpu><topology> alone",
        )
    counts = Counter(cell.id for cell in cells)
    duplicates = sorted(i for i, n in counts.items() if n > 1)
    if duplicates:
        raise doc.error(host, f"cell ids {duplicates} appear more than once")
    owner: dict[int, int] = {}
    for cell in cells:
        for cpu in sorted(cell.cpus):
            if cpu in owner:
                raise doc.error(
                    host, f"CPU {cpu} is listed in cell {owner[cpu]} and in cell {cell.id}; "
                    "a CPU belongs to one NUMA cell"
                )
            owner[cpu] = cell.id
    for cell in cells:
        for group in cell.sibling_groups:
            unknown = group - owner.keys()
            if unknown:
                raise doc.error(
                    host, f"cell {cell.id}: siblings {CpuSet.of(group).format()!r} name CPUs "
                    f"{CpuSet.of(unknown)} that no cell lists "
                    f"(host CPUs: {CpuSet.of(owner)})"
                )
    return cells


def _read_cell(doc: XmlDoc, el: etree._Element) -> _Cell:
    """One ``<cell>``, its ids, sizes and counts within :mod:`numa_migrate.core.limits`."""
    cpu_elements = tuple(el.iterfind("cpus/cpu"))
    if len(cpu_elements) > MAX_CPUS:
        raise doc.error(el, f"lists {len(cpu_elements)} CPUs; a host has at most {MAX_CPUS}")
    cpus: set[int] = set()
    for cpu in cpu_elements:
        cpu_id = doc.int_attr(cpu, "id", maximum=MAX_CPUS - 1)
        if cpu_id in cpus:
            raise doc.error(cpu, f"CPU {cpu_id} is listed twice in this cell")
        cpus.add(cpu_id)
    memory = el.findall("memory")
    if len(memory) != 1:
        raise doc.error(
            el, f"has {len(memory)} <memory> elements; a cell has exactly one"
        )
    memory_kib = doc.text_kib(memory[0])
    if memory_kib > MAX_MEMORY_MIB * 1024:
        raise doc.error(
            memory[0], f"{memory_kib} KiB is beyond the bound ({MAX_MEMORY_MIB} MiB per cell)"
        )
    pages: list[tuple[int, int]] = []
    for page in el.iterfind("pages"):
        size = doc.attr_kib(page, "size")
        if not 0 < size <= MAX_PAGE_SIZE_KIB:
            raise doc.error(
                page, f"page size {size} KiB is not a page size (1 to {MAX_PAGE_SIZE_KIB} KiB)"
            )
        if any(size == known for known, _ in pages):
            raise doc.error(page, f"{size} KiB pages are listed twice in this cell")
        pages.append((size, doc.int_text(page, maximum=MAX_PAGE_COUNT)))
    return _Cell(
        id=doc.int_attr(el, "id", maximum=MAX_NUMA_NODES - 1),
        cpus=frozenset(cpus),
        sibling_groups=tuple(
            doc.cpus_attr(cpu, "siblings") for cpu in cpu_elements if cpu.get("siblings")
        ),
        memory_mib=kib_to_mib(memory_kib, round_up=False),
        pages=tuple(pages),
        socket=_socket(doc, cpu_elements),
    )


def _socket(doc: XmlDoc, cpus: tuple[etree._Element, ...]) -> int | None:
    """The cell's socket, as Nova reads it: the one ``socket_id`` of all its CPUs."""
    ids = {doc.int_attr(cpu, "socket_id", maximum=MAX_CPUS - 1)
           for cpu in cpus if cpu.get("socket_id") is not None}
    if len(ids) != 1 or any(cpu.get("socket_id") is None for cpu in cpus):
        return None
    return ids.pop()


def _cpu_pools(
    host_cpus: frozenset[int],
    dedicated: frozenset[int] | None,
    shared: frozenset[int] | None,
    source: str,
) -> tuple[frozenset[int], frozenset[int]]:
    """(shared pool, dedicated pool) over the whole host, Nova's way."""
    if dedicated is None and shared is None:
        return host_cpus, host_cpus
    for option, cpus in (("cpu_dedicated_set", dedicated), ("cpu_shared_set", shared)):
        unknown = (cpus or _EMPTY) - host_cpus
        if unknown:
            raise ParseError(
                f"{option}: CPUs {CpuSet.of(unknown)} do not exist on this host "
                f"(host CPUs: {CpuSet.of(host_cpus)})",
                source=source,
            )
    overlap = (dedicated or _EMPTY) & (shared or _EMPTY)
    if overlap:
        raise ParseError(
            f"cpu_dedicated_set and cpu_shared_set overlap on CPUs {CpuSet.of(overlap)}; "
            "a CPU is either dedicated or shared",
            source=source,
        )
    return shared or _EMPTY, dedicated or _EMPTY


def _check_reservations(
    cells: tuple[_Cell, ...], reserved: Mapping[tuple[int, int], int], source: str
) -> None:
    pools = {(cell.id, size) for cell in cells for size, _ in cell.pages}
    for (cell_id, size_kib), count in sorted(reserved.items()):
        if (cell_id, size_kib) not in pools:
            known = ", ".join(f"cell {c} {s} KiB" for c, s in sorted(pools))
            raise ParseError(
                f"reserved_huge_pages: host has no {size_kib} KiB pages in cell {cell_id} "
                f"(pools: {known})",
                source=source,
            )
        if count < 0:
            raise ParseError(
                f"reserved_huge_pages: cell {cell_id} {size_kib} KiB: {count} is negative",
                source=source,
            )


def _host_cell(
    cell: _Cell,
    shared: frozenset[int],
    dedicated: frozenset[int],
    reserved: Mapping[tuple[int, int], int],
) -> HostCell:
    cpuset = CpuSet(cell.cpus & shared)
    pcpuset = CpuSet(cell.cpus & dedicated)
    usable = cpuset | pcpuset
    groups = sorted({group & usable for group in cell.sibling_groups if group & usable}, key=min)
    return HostCell(
        id=cell.id,
        cpuset=cpuset,
        pcpuset=pcpuset,
        memory_mib=cell.memory_mib,
        siblings=normalise_siblings(groups, usable),
        mempages=tuple(
            PagePool(size_kib=size, total=count, reserved=reserved.get((cell.id, size), 0))
            for size, count in cell.pages
        ),
        socket=cell.socket,
    )

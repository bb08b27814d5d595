"""Where a running domain actually is, as a :class:`Placement` (pure: no libvirt, no I/O).

A domain's request (:mod:`numa_migrate.core.domainrequest`) says what it asks for; its usage
(:mod:`numa_migrate.core.domainusage`) says which host cell each guest cell lives on and
which host CPU each dedicated vCPU is pinned to. Together they give the placement the fitter
would have returned for it: per guest cell, the host cell, its vCPUs and memory, the page
size (None for ordinary pages, as the fitter says for a request without a page size), the
(vCPU, host CPU) pins, and the isolated emulator CPUs.

A domain whose placement Nova could not have made is refused with the reason
(:class:`UnplaceableDomain`): a guest cell tied to no single host cell, pins outside the
guest cell's host cell, declared dedicated vCPUs without a pin of their own, huge pages the
host cell does not have.
"""

from __future__ import annotations

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.domainusage import DomainUsage, guest_cell_page_kib
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.domain import DomainInfo
from numa_migrate.core.model.guest import GuestRequest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import CellPlacement, Placement

__all__ = ["UnplaceableDomain", "domain_placement"]


class UnplaceableDomain(NumaMigrateError):
    """A running domain whose placement cannot be expressed as a fitter placement."""


def domain_placement(
    host: HostTopology, info: DomainInfo, request: GuestRequest | None, usage: DomainUsage
) -> Placement:
    """The placement ``info`` runs with on ``host`` (``usage``: its :func:`domain_usage`)."""
    if request is None:
        return Placement(())
    sizes = guest_cell_page_kib(info)
    cells: list[CellPlacement] = []
    seen: dict[int, int] = {}
    for index, cell in enumerate(request.cells):
        if cell.index != index:
            raise UnplaceableDomain(
                f"{info.name}: guest cells are numbered {[c.index for c in request.cells]}; "
                "Nova numbers them 0, 1, ... in order")
        host_cell = usage.guest_cells.get(cell.index)
        if host_cell is None:
            raise UnplaceableDomain(
                f"{info.name}: guest cell {cell.index} is not tied to one host cell (no single "
                "<memnode>/<numatune> node and pins over several cells)")
        if host_cell in seen:
            raise UnplaceableDomain(
                f"{info.name}: guest cells {seen[host_cell]} and {cell.index} are both on host "
                f"cell {host_cell}; Nova puts each guest cell on its own host cell")
        seen[host_cell] = cell.index
        hcell = host.cell(host_cell)
        pins = {v: usage.dedicated[v] for v in sorted(cell.vcpus) if v in usage.dedicated}
        unpinned = cell.dedicated_vcpus - pins.keys()
        if unpinned:
            raise UnplaceableDomain(
                f"{info.name}: dedicated vCPUs {CpuSet.of(unpinned).format()} have no pin to "
                "one host CPU")
        outside = frozenset(pins.values()) - hcell.cpus
        if outside:
            raise UnplaceableDomain(
                f"{info.name}: guest cell {cell.index} lives on host cell {host_cell} but its "
                f"vCPUs are pinned to CPUs {CpuSet.of(outside).format()} of another cell")
        cells.append(CellPlacement(
            guest_cell=cell.index,
            host_cell=host_cell,
            vcpus=cell.vcpus,
            memory_mib=cell.memory_mib,
            pagesize_kib=_page_kib(host, info, host_cell, sizes.get(cell.index)),
            pinning=tuple(pins.items()) or None,
        ))
    emulator: frozenset[int] | None = None
    if request.emulator_isolated:
        emulator = usage.emulator_isolated
        first = host.cell(cells[0].host_cell)
        if not emulator or not emulator <= first.cpus:
            raise UnplaceableDomain(
                f"{info.name}: its isolated emulator CPUs "
                f"{CpuSet.of(emulator).format() or '(none)'} are not on host cell {first.id}, "
                "where guest cell 0 lives (Nova puts them there)")
    return Placement(tuple(cells), emulator)


def _page_kib(host: HostTopology, info: DomainInfo, host_cell: int, size: int | None) -> int | None:
    if size is None:
        return None
    cell = host.cell(host_cell)
    if size == 0:
        huge = [p.size_kib for p in cell.mempages if p.size_kib != cell.smallest_page_kib]
        if not huge:
            raise UnplaceableDomain(
                f"{info.name}: wants huge pages of the default size, host cell {host_cell} has "
                "none")
        return huge[0]
    if cell.page_pool(size) is None:
        raise UnplaceableDomain(
            f"{info.name}: uses {size} KiB pages, which host cell {host_cell} does not have")
    return size

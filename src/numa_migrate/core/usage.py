"""Host usage accounting: what placing (or removing) a guest does to a host's cells.

One function for claim and release (a sign flip), as Nova's ``numa_usage_from_instance_numa``:
guest memory and shared vCPUs add to the cell's usage, the guest's page size (or the cell's
smallest) loses pages, dedicated pins and the emulator CPU become pinned, and under the
``isolate`` thread policy the whole cores of those CPUs are taken.
"""

from __future__ import annotations

from dataclasses import replace

from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.guest import GuestRequest, ThreadPolicy
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.placement import CellPlacement, Placement


class UsageConflictError(NumaMigrateError):
    """A placement that pins a CPU already pinned (or releases one that is not)."""


def _cpus_taken(cell: HostCell, cpus: frozenset[int], whole_cores: bool) -> frozenset[int]:
    if not whole_cores:
        return cpus
    out: set[int] = set()
    for cpu in cpus:
        out |= cell.core_of(cpu)
    return frozenset(out)


def cell_pins(
    cell: HostCell, request: GuestRequest, placed: CellPlacement, emulator: frozenset[int]
) -> frozenset[int]:
    """The host CPUs of ``cell`` a guest cell's placement pins: its dedicated vCPUs' CPUs and
    ``emulator`` (the emulator CPUs, in the placement's first cell), whole cores under the
    ``isolate`` thread policy; none for a guest that is not pinned."""
    if not request.pinned:
        return frozenset()
    pins = frozenset(p for _, p in placed.pinning or ()) | emulator
    return _cpus_taken(cell, pins, request.thread_policy is ThreadPolicy.ISOLATE)


def cell_pages(cell: HostCell, placed: CellPlacement) -> tuple[int, int] | None:
    """(page size KiB, pages) a guest cell's memory takes from ``cell``: its page size or,
    without one, the cell's smallest; None when the cell reports no page pool."""
    size = placed.pagesize_kib or cell.smallest_page_kib
    if not size:
        return None
    return size, placed.memory_mib * 1024 // size


def _apply_cell(
    cell: HostCell,
    request: GuestRequest,
    placed: CellPlacement,
    emulator: frozenset[int],
    sign: int,
) -> HostCell:
    guest_cell = request.cells[placed.guest_cell]
    pages: tuple[tuple[int, int], ...] = ()
    taken = cell_pages(cell, placed)
    if taken is not None:
        pages = ((taken[0], sign * taken[1]),)
    pins = cell_pins(cell, request, placed, emulator)
    if sign > 0 and pins & cell.pinned_cpus:
        raise UsageConflictError(
            f"host cell {cell.id}: CPUs {sorted(pins & cell.pinned_cpus)} are already pinned"
        )
    if sign < 0 and not pins <= cell.pinned_cpus:
        raise UsageConflictError(
            f"host cell {cell.id}: CPUs {sorted(pins - cell.pinned_cpus)} are not pinned"
        )
    updated = cell.with_usage(
        cpu_usage=sign * len(guest_cell.shared_vcpus),
        memory_mib=sign * placed.memory_mib,
        pages=pages,
    )
    pinned = updated.pinned_cpus | pins if sign > 0 else updated.pinned_cpus - pins
    return replace(
        updated,
        pinned_cpus=pinned,
        cpu_usage=max(0, updated.cpu_usage),
        memory_usage_mib=max(0, updated.memory_usage_mib),
    )


def apply_placement(
    host: HostTopology, request: GuestRequest, placement: Placement, *, release: bool = False
) -> HostTopology:
    """The host with the guest's usage added (or removed with ``release=True``)."""
    sign = -1 if release else 1
    by_host_cell = {p.host_cell: p for p in placement.cells}
    first = placement.cells[0].host_cell if placement.cells else None
    cells = []
    for cell in host.cells:
        placed = by_host_cell.get(cell.id)
        if placed is None:
            cells.append(cell)
            continue
        emulator = placement.emulator_pins or frozenset() if cell.id == first else frozenset()
        cells.append(_apply_cell(cell, request, placed, frozenset(emulator), sign))
    return replace(host, cells=tuple(cells))

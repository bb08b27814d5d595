"""Does a recorded placement fit a host as it is now? (pure: no I/O)

A fleet snapshot records where each guest runs; loading it applies those placements as
recorded, never re-fitting them. Each is checked first against the host with what is
already placed: the guest cells match the request (every cell once, its vCPUs and memory),
each on its own host cell; dedicated vCPUs, and only those, are pinned to free CPUs of that
cell that may be dedicated (whole free cores under the ``isolate`` thread policy); isolated
emulator CPUs likewise on the first cell; the page size exists there with enough free pages
when the fitter would require them (pinned guests and guests with a page-size request), and
a pinned guest's memory fits a cell without page pools. :func:`placement_problems` returns
every problem found, each one line.
"""

from __future__ import annotations

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.model.guest import GuestRequest, ThreadPolicy, describe_page_size
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.placement import CellPlacement, Placement

__all__ = ["placement_problems"]


def placement_problems(host: HostTopology, request: GuestRequest | None,
                       placement: Placement) -> list[str]:
    """Why ``placement`` of ``request`` cannot be applied to ``host`` (empty: it can)."""
    if request is None:
        if placement.cells or placement.emulator_pins:
            return ["the guest has no NUMA request, so its placement must have no cells and "
                    "no emulator pins"]
        return []
    problems: list[str] = []
    if len(placement.cells) != len(request.cells):
        problems.append(f"{len(placement.cells)} placed cells for a request of "
                        f"{len(request.cells)} guest cells")
    guest_cells = [c.guest_cell for c in placement.cells]
    if sorted(guest_cells) != list(range(len(request.cells))):
        problems.append(f"guest cells {guest_cells}: each of 0-{len(request.cells) - 1} must "
                        "be placed once")
        return problems
    host_cells = [c.host_cell for c in placement.cells]
    if len(set(host_cells)) != len(host_cells):
        problems.append(f"host cells {host_cells}: two guest cells on one host cell")
    for placed in placement.cells:
        cell = host.find_cell(placed.host_cell)
        if cell is None:
            problems.append(f"guest cell {placed.guest_cell}: host cell {placed.host_cell} "
                            f"does not exist (cells {CpuSet.of(host.cell_ids).format()})")
            continue
        problems.extend(f"guest cell {placed.guest_cell} on host cell {cell.id}: {p}"
                        for p in _cell_problems(cell, request, placed))
    problems.extend(_emulator_problems(host, request, placement))
    return problems


def _pinnable(cell: HostCell) -> frozenset[int]:
    return cell.pcpuset


def _taken(cell: HostCell, cpus: frozenset[int], request: GuestRequest) -> frozenset[int]:
    if request.thread_policy is not ThreadPolicy.ISOLATE:
        return cpus
    return frozenset().union(*(cell.core_of(c) for c in cpus)) if cpus else frozenset()


def _cell_problems(cell: HostCell, request: GuestRequest, placed: CellPlacement) -> list[str]:
    wanted = request.cells[placed.guest_cell]
    out: list[str] = []
    if placed.vcpus != wanted.vcpus:
        out.append(f"vCPUs {CpuSet.of(placed.vcpus).format()}, the request has "
                   f"{CpuSet.of(wanted.vcpus).format()}")
    if placed.memory_mib != wanted.memory_mib:
        out.append(f"{placed.memory_mib} MiB, the request has {wanted.memory_mib} MiB")
    pins = placed.pinning_map()
    if set(pins) != set(wanted.dedicated_vcpus):
        out.append(f"pins vCPUs {CpuSet.of(pins).format() or 'none'}, the dedicated vCPUs are "
                   f"{CpuSet.of(wanted.dedicated_vcpus).format() or 'none'}")
    cpus = frozenset(pins.values())
    if len(cpus) != len(pins):
        out.append("two vCPUs pinned to one host CPU")
    outside = cpus - _pinnable(cell)
    if outside:
        out.append(f"CPUs {CpuSet.of(outside).format()} are not dedicated CPUs of the cell "
                   f"({CpuSet.of(_pinnable(cell)).format() or 'none'})")
    busy = _taken(cell, cpus, request) & cell.pinned_cpus
    if busy:
        out.append(f"CPUs {CpuSet.of(busy).format()} are already pinned")
    out.extend(_memory_problems(cell, request, placed))
    return out


def _memory_problems(cell: HostCell, request: GuestRequest, placed: CellPlacement) -> list[str]:
    size = placed.pagesize_kib
    if size is not None and cell.page_pool(size) is None:
        return [f"{describe_page_size(size)} pages, which the cell does not have"]
    if request.page_size is not None and size is None:
        return [f"no page size, the request asks for {request.page_size} pages"]
    size = size or cell.smallest_page_kib
    hard = request.pinned or request.page_size is not None
    if not hard:
        return []
    if size is None:
        if placed.memory_mib > cell.avail_memory_mib:
            return [f"{placed.memory_mib} MiB, the cell has {cell.avail_memory_mib} MiB free"]
        return []
    need = placed.memory_mib * 1024 // size
    free = cell.free_pages(size)
    if need > free:
        return [f"needs {need} pages of {describe_page_size(size)}, the cell has {free} free"]
    return []


def _emulator_problems(host: HostTopology, request: GuestRequest,
                       placement: Placement) -> list[str]:
    pins = placement.emulator_pins
    if not request.emulator_isolated:
        if pins:
            return [f"emulator pins {CpuSet.of(pins).format()} without the isolate emulator "
                    "threads policy"]
        return []
    if not pins:
        return ["the isolate emulator threads policy needs emulator pins"]
    cell = host.find_cell(placement.cells[0].host_cell) if placement.cells else None
    if cell is None:
        return []
    out: list[str] = []
    guest_pins = frozenset(p for c in placement.cells for _, p in c.pinning or ())
    outside = pins - _pinnable(cell)
    if outside:
        out.append(f"emulator pins {CpuSet.of(outside).format()} are not dedicated CPUs of "
                   f"host cell {cell.id}")
    if pins & guest_pins:
        out.append(f"emulator pins {CpuSet.of(pins & guest_pins).format()} are vCPU pins too")
    busy = _taken(cell, pins, request) & cell.pinned_cpus
    if busy:
        out.append(f"emulator pins {CpuSet.of(busy).format()} are already pinned")
    return out

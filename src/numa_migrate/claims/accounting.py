"""What a claim takes from a host, what the store must check, and the host the fitter sees.

Pure functions, no I/O. What a placement consumes is *not* re-derived here: it is read off
:func:`numa_migrate.core.usage.apply_placement` applied to an idle copy of the host (every cell's
usage zeroed), so dedicated pins, whole cores under ``isolate``, the emulator CPU, shared
vCPUs, memory and pages (the requested size or the cell's smallest) follow exactly the
accounting the fitter and the rest of numa-migrate use.

Which counted resources are *hard* (refused when over the limit) mirrors the fitter's
admission rules (``numa_migrate.core.fit.cellfit``): pages are hard for pinned guests and for
guests with a page-size request (both need free pages); memory is hard for pinned guests on
cells without page pools; shared vCPUs and memory are hard under allocation-ratio
:class:`~numa_migrate.core.fit.cellfit.Limits`. Anything else (a floating guest's small pages,
which Nova checks against the pool's total, not its free pages) is counted but never refused,
so that a claim is refused exactly when the fitter, shown live usage plus the other claims,
would have refused the placement.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import replace

from numa_migrate.claims.model import (
    CellUsage,
    ClaimError,
    Conflict,
    Holdings,
    HoldingsMismatchError,
    PoolKey,
    PoolResource,
)
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.fit.cellfit import Limits
from numa_migrate.core.model.guest import CPUPolicy, GuestRequest, describe_page_size
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.usage import UsageConflictError, apply_placement

_PCI_ADDRESS = re.compile(r"^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def normalise_vf(address: str) -> str:
    """A VF's PCI address in libvirt's ``dddd:bb:ss.f`` form (lower-case), or ClaimError."""
    norm = address.strip().lower()
    if not _PCI_ADDRESS.match(norm):
        raise ClaimError(
            f"VF address {address!r} is not a PCI address of the form dddd:bb:ss.f "
            "(e.g. 0000:3b:02.1)"
        )
    return norm


def _idle(cell: HostCell) -> HostCell:
    return replace(
        cell,
        pinned_cpus=frozenset(),
        cpu_usage=0,
        memory_usage_mib=0,
        mempages=tuple(replace(p, used=0) for p in cell.mempages),
    )


def validate_placement(host: HostTopology, request: GuestRequest, placement: Placement) -> None:
    """Refuse a placement that does not belong to this host and request (ClaimError)."""
    ids = host.cell_ids
    seen: set[int] = set()
    for placed in placement.cells:
        if placed.host_cell not in ids:
            raise ClaimError(
                f"host {host.name}: the placement uses host cell {placed.host_cell}, the host "
                f"has cells {', '.join(str(i) for i in sorted(ids)) or 'none'}"
            )
        if placed.host_cell in seen:
            raise ClaimError(
                f"host {host.name}: the placement puts two guest cells on host cell "
                f"{placed.host_cell}"
            )
        seen.add(placed.host_cell)
        if not 0 <= placed.guest_cell < len(request.cells):
            raise ClaimError(
                f"the placement names guest cell {placed.guest_cell}, the request has "
                f"{len(request.cells)} cells"
            )
        cell = host.cell(placed.host_cell)
        cpus = cell.cpuset | cell.pcpuset
        pins = frozenset(p for _, p in placed.pinning or ())
        if placed.host_cell == (placement.cells[0].host_cell if placement.cells else None):
            pins |= placement.emulator_pins or frozenset()
        if not pins <= cpus:
            raise ClaimError(
                f"host {host.name} cell {cell.id}: the placement pins CPUs "
                f"{CpuSet.of(pins - cpus)}, which are not in the cell "
                f"(CPUs {CpuSet.of(cpus).format() or 'none'})"
            )
        if placed.pagesize_kib and cell.page_pool(placed.pagesize_kib) is None:
            raise ClaimError(
                f"host {host.name} cell {cell.id}: the placement uses "
                f"{describe_page_size(placed.pagesize_kib)} pages, the cell has none"
            )


def placement_usage(
    host: HostTopology, request: GuestRequest, placement: Placement
) -> tuple[CellUsage, ...]:
    """What the placed guest takes from each host cell (cells it does not touch omitted).

    Computed by :func:`apply_placement` on an idle copy of ``host``, so it does not depend
    on the host's current usage.
    """
    validate_placement(host, request, placement)
    idle = replace(host, cells=tuple(_idle(c) for c in host.cells))
    used = apply_placement(idle, request, placement)
    out: list[CellUsage] = []
    for cell in used.cells:
        usage = CellUsage(
            cell=cell.id,
            pinned_cpus=cell.pinned_cpus,
            shared_vcpus=cell.cpu_usage,
            memory_mib=cell.memory_usage_mib,
            pages=tuple((p.size_kib, p.used) for p in cell.mempages if p.used),
        )
        if not usage.empty:
            out.append(usage)
    return tuple(out)


def source_view(host: HostTopology, request: GuestRequest, placement: Placement) -> HostTopology:
    """The source host without the guest: what a source claim must fit into.

    A source claim keeps what the running guest uses, so that a rollback finds it free; the
    live source host already counts the guest, so limits are taken with it released.
    """
    try:
        return apply_placement(host, request, placement, release=True)
    except UsageConflictError as exc:
        raise ClaimError(
            f"host {host.name}: a source claim must describe the guest as it runs there, "
            f"but the live host does not show its pins ({exc})"
        ) from None


def live_pin_conflicts(host: HostTopology, usage: Iterable[CellUsage]) -> list[Conflict]:
    """Pins of ``usage`` that running guests already hold on the live ``host``."""
    out: list[Conflict] = []
    for cu in usage:
        taken = cu.pinned_cpus & host.cell(cu.cell).pinned_cpus
        if taken:
            cpus = sorted(taken)
            out.append(
                Conflict(
                    host=host.name,
                    resource="cpus",
                    cell=cu.cell,
                    items=tuple(cpus),
                    live=True,
                    message=(
                        f"host {host.name}: {_cpus_phrase(cpus)} pinned by guests running on "
                        "the host (live usage)"
                    ),
                )
            )
    return out


def _cpus_phrase(cpus: list[int]) -> str:
    ids = ",".join(str(c) for c in cpus)
    return f"CPU {ids} is" if len(cpus) == 1 else f"CPUs {ids} are"


def admission_limits(
    view: HostTopology,
    request: GuestRequest,
    usage: Iterable[CellUsage],
    limits: Limits | None = None,
) -> dict[PoolKey, int | None]:
    """For each counted resource of ``usage``: the most all claims together may hold of it.

    ``view`` is the live host as the claim must see it (the source host without the guest
    for a source claim). ``None`` means the fitter sets no limit (over-commit allowed).
    """
    shared_policy = request.cpu_policy in (None, CPUPolicy.SHARED, CPUPolicy.MIXED)
    hard_pages = request.pinned or request.page_size is not None
    out: dict[PoolKey, int | None] = {}
    for cu in usage:
        cell = view.cell(cu.cell)
        for key in cu.pool_amounts():
            _, resource, size_kib = key
            limit: int | None = None
            if resource is PoolResource.PAGES:
                if hard_pages:
                    pool = cell.page_pool(size_kib)
                    limit = pool.free if pool is not None else 0
            elif resource is PoolResource.MEMORY_MIB:
                caps: list[int] = []
                if request.pinned and not cell.mempages:
                    caps.append(cell.avail_memory_mib)
                if limits is not None and shared_policy:
                    ram = math.floor(cell.memory_mib * limits.ram_allocation_ratio)
                    caps.append(ram - cell.memory_usage_mib)
                limit = min(caps) if caps else None
            elif limits is not None and shared_policy:
                cpus = math.floor(len(cell.cpuset) * limits.cpu_allocation_ratio)
                limit = cpus - cell.cpu_usage
            out[key] = limit
    return out


def holdings_problems(host: HostTopology, holdings: Holdings) -> tuple[str, ...]:
    """Claims whose cells, CPUs or page sizes the live host does not have (kubelet-style
    validation of stored state against the live topology)."""
    problems: list[str] = []
    ids = host.cell_ids
    for claim in holdings.claims:
        for cu in claim.resources.cells:
            if cu.cell not in ids:
                problems.append(
                    f"claim {claim.id} holds resources in cell {cu.cell}, "
                    f"which the host does not have"
                )
                continue
            cell = host.cell(cu.cell)
            cpus = cell.cpuset | cell.pcpuset
            if not cu.pinned_cpus <= cpus:
                problems.append(
                    f"claim {claim.id} holds CPUs {CpuSet.of(cu.pinned_cpus - cpus)} "
                    f"in cell {cu.cell}, which has CPUs {CpuSet.of(cpus).format() or 'none'}"
                )
            for size_kib, _ in cu.pages:
                if cell.page_pool(size_kib) is None:
                    problems.append(
                        f"claim {claim.id} holds {describe_page_size(size_kib)} pages in cell "
                        f"{cu.cell}, which has no such pages"
                    )
    return tuple(problems)


def subtract_holdings(host: HostTopology, holdings: Holdings) -> HostTopology:
    """``host`` as the fitter should see it: the claims' usage added to the live usage.

    Pinned CPUs are added to each cell's ``pinned_cpus``, shared vCPUs to ``cpu_usage``,
    memory to ``memory_usage_mib`` and pages to the pools' ``used``. So "live usage minus
    claims held by others" is
    ``fit_guest(subtract_holdings(live, store.held_by_others(live.name)), guest)``.
    Raises :class:`HoldingsMismatchError` when a claim does not fit the live topology.
    VFs are not part of :class:`HostTopology`; use ``holdings.vfs``.
    """
    if holdings.host != host.name:
        raise ClaimError(f"holdings of host {holdings.host} applied to host {host.name}")
    problems = holdings_problems(host, holdings)
    if problems:
        raise HoldingsMismatchError(host.name, problems)
    by_cell = {cu.cell: cu for cu in holdings.cells}
    cells: list[HostCell] = []
    for cell in host.cells:
        cu = by_cell.get(cell.id)
        if cu is None:
            cells.append(cell)
            continue
        cells.append(
            cell.with_usage(
                pinned=cu.pinned_cpus,
                cpu_usage=cu.shared_vcpus,
                memory_mib=cu.memory_mib,
                pages=cu.pages,
            )
        )
    return replace(host, cells=tuple(cells))


__all__ = [
    "admission_limits",
    "holdings_problems",
    "live_pin_conflicts",
    "normalise_vf",
    "placement_usage",
    "source_view",
    "subtract_holdings",
    "validate_placement",
]

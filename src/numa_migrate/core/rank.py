"""Rank destinations for a guest, and refuse hopeless hosts cheaply (pure).

**Score.** A destination that fits is scored by what the guest's placement leaves on it
(:func:`score`), as a tuple compared part by part, smaller first:

1. ``cells_opened`` — host NUMA cells that were wholly unused (no pinned CPU, no memory, no
   shared vCPU placed) and are used after the move: whole free cells are kept together;
2. ``cores_split`` — change in the number of partly pinned cores (SMT sibling groups of the
   dedicated set with some, not all, CPUs pinned): a move that fills a half-used core counts
   -1, one that starts a new core +1; whole free cores are kept together;
3. ``free_dedicated_cpus`` — free dedicated CPUs on the host after the move, more first;
4. ``free_memory_mib`` — memory not used by guests on the host after the move, more first;

then the host name, so that the order is total. Summed over the fleet, parts 1 and 2 are
exactly the fragmentation the move adds: only the destination's cells change.

**Bounds.** :func:`capacity_bound` checks necessary conditions before the full fit: every
guest cell needs its own host cell with at least its dedicated vCPUs (+1 for isolated
emulator threads) free, its shared vCPUs in the shared set, and its memory free (in the
largest free page pool when it asks for a page size, or is pinned), and the host needs as
many free PCI devices as the guest requests in total. For each quantity, the guest cells'
needs sorted from largest (n1 >= n2 >= ...) and the host cells' capacities sorted the same
way (c1 >= c2 >= ...) must have ni <= ci: an assignment puts the i largest needs on i distinct
cells that hold at least ni each. The bound never refuses a host the full fit accepts; it
refuses with the same reason codes as the fitter, one per host cell that is short.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from numa_migrate.core.fit.reasons import Code, Reason, plural
from numa_migrate.core.model.guest import (
    CPUPolicy,
    Guest,
    GuestRequest,
    PageSizeKind,
    ThreadPolicy,
    describe_page_size,
)
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.usage import apply_placement

SCORE_PARTS = ("cells_opened", "cores_split", "free_dedicated_cpus", "free_memory_mib")
"""The parts of a :class:`Score`, in the order they rank (see the module docstring)."""

SCORE_HELP = (
    "Destinations are ranked by a score compared part by part: (1) cells_opened, wholly "
    "unused host NUMA cells the guest starts using (fewer first); (2) cores_split, the change "
    "in partly pinned cores (fewer first: filling a half-used core is -1); (3) "
    "free_dedicated_cpus after the move (more first); (4) free_memory_mib after the move "
    "(more first); then the host name."
)


@dataclass(frozen=True, slots=True)
class Score:
    """How good a destination is; smaller :attr:`key` ranks first."""

    cells_opened: int
    cores_split: int
    free_dedicated_cpus: int
    free_memory_mib: int

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.cells_opened, self.cores_split, -self.free_dedicated_cpus,
                -self.free_memory_mib)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in SCORE_PARTS}


def _cell_used(cell: HostCell) -> bool:
    return bool(cell.pinned_cpus) or cell.memory_usage_mib > 0 or cell.cpu_usage > 0


def partly_pinned_cores(cell: HostCell, pinned: AbstractSet[int] | None = None) -> int:
    """SMT groups of the dedicated set with some but not all of their CPUs pinned (with
    ``pinned`` as the cell's pinned CPUs when given)."""
    pinned = cell.pinned_cpus if pinned is None else pinned
    if not pinned:
        return 0
    dedicated = cell.pcpuset
    count = 0
    for group in cell.siblings:
        if len(group) < 2:
            continue
        size = taken = 0
        for cpu in group:
            if cpu in dedicated:
                size += 1
                taken += cpu in pinned
        count += 0 < taken < size
    return count


def _split_delta(cell: HostCell, new_pins: AbstractSet[int]) -> int:
    """Change in :func:`partly_pinned_cores` when ``new_pins`` are pinned too (only the
    cores they touch are looked at)."""
    pinned, dedicated = cell.pinned_cpus, cell.pcpuset
    delta = 0
    for group in cell.siblings:
        if len(group) < 2 or group.isdisjoint(new_pins):
            continue
        size = before = after = 0
        for cpu in group:
            if cpu in dedicated:
                size += 1
                if cpu in pinned:
                    before += 1
                    after += 1
                elif cpu in new_pins:
                    after += 1
        delta += (0 < after < size) - (0 < before < size)
    return delta


def score(host: HostTopology, request: GuestRequest | None, placement: Placement) -> Score:
    """The score of ``host`` once ``placement`` of ``request`` is on it.

    Computed on the placed cells only, with the accounting of
    :func:`numa_migrate.core.usage.apply_placement` (pins, the emulator CPU on the first
    placed cell, whole cores under ``isolate``, the guest's memory); :func:`score_slow`
    is the same through ``apply_placement``, for the tests.
    """
    free_cpus = sum(len(c.free_pcpus) for c in host.cells)
    free_mem = sum(c.avail_memory_mib for c in host.cells)
    if request is None or not placement.cells:
        return Score(0, 0, free_cpus, free_mem)
    by_id = {c.id: c for c in host.cells}
    first = placement.cells[0].host_cell
    isolate = request.thread_policy is ThreadPolicy.ISOLATE
    opened = split = 0
    for placed in placement.cells:
        cell = by_id[placed.host_cell]
        pins = {p for _, p in placed.pinning or ()}
        if placed.host_cell == first and placement.emulator_pins:
            pins |= placement.emulator_pins
        if not request.pinned:
            pins = set()
        elif isolate:
            pins = {cpu for p in pins for cpu in cell.core_of(p)}
        uses = bool(pins) or placed.memory_mib > 0 or bool(request.cells[placed.guest_cell]
                                                           .shared_vcpus)
        opened += uses and not _cell_used(cell)
        new_pins = pins - cell.pinned_cpus
        if new_pins:
            split += _split_delta(cell, new_pins)
            free_cpus -= sum(1 for p in new_pins if p in cell.pcpuset)
        free_mem -= placed.memory_mib
    return Score(opened, split, free_cpus, free_mem)


def score_slow(host: HostTopology, request: GuestRequest | None,
               placement: Placement) -> Score:
    """:func:`score` by applying the placement to the whole host (the reference)."""
    after = host
    if request is not None and placement.cells:
        after = apply_placement(host, request, placement)
    opened = split = 0
    for old, new in zip(host.cells, after.cells, strict=True):
        if old is new:
            continue
        opened += _cell_used(new) and not _cell_used(old)
        split += partly_pinned_cores(new) - partly_pinned_cores(old)
    return Score(
        cells_opened=opened,
        cores_split=split,
        free_dedicated_cpus=sum(len(c.free_pcpus) for c in after.cells),
        free_memory_mib=sum(c.avail_memory_mib for c in after.cells),
    )


def rank_key(name: str, s: Score) -> tuple[int, int, int, int, str]:
    return (*s.key, name)


# --- bounds -------------------------------------------------------------------------------


def _dedicated_cap(cell: HostCell) -> int:
    return len(cell.free_pcpus)


def _isolate_cap(cell: HostCell) -> int:
    """Whole free cores the ``isolate`` policy can use: none on an SMT cell configured with
    ``cpu_dedicated_set`` (Nova 34 cannot isolate there)."""
    tpc = cell.threads_per_core
    if tpc > 1 and not cell.legacy_pin_set:
        return 0
    return sum(1 for g in cell.free_sibling_groups if len(g) >= tpc)


def _shared_cap(cell: HostCell) -> int:
    return len(cell.cpuset)


def _page_candidates(request: GuestRequest, current_kib: int | None
                     ) -> Callable[[HostCell], list[int]] | None:
    """The page sizes the fit may choose on a cell (None: the guest asks for none), as
    :func:`numa_migrate.core.fit.cellfit.page_size_for` tries them."""
    page = request.page_size
    if page is None:
        return None
    if current_kib is not None or page.kind is PageSizeKind.EXPLICIT:
        size = current_kib if current_kib is not None else page.size_kib
        return lambda cell: [p.free_kib for p in cell.mempages if p.size_kib == size]
    if page.kind is PageSizeKind.SMALL:
        return lambda cell: [p.free_kib for p in cell.mempages[:1]]
    if page.kind is PageSizeKind.LARGE:
        return lambda cell: [p.free_kib for p in cell.mempages[1:]]
    return lambda cell: [p.free_kib for p in cell.mempages]


def _memory_cap(request: GuestRequest, current_kib: int | None) -> Callable[[HostCell], int]:
    """KiB a guest cell can have on a host cell, at most (see :func:`capacity_bound`)."""
    pools = _page_candidates(request, current_kib)
    if pools is not None:
        def cap(cell: HostCell) -> int:
            return max(pools(cell), default=0)
    elif request.pinned:
        def cap(cell: HostCell) -> int:
            if cell.mempages:
                return cell.mempages[0].free_kib
            return cell.avail_memory_mib * 1024
    else:
        def cap(cell: HostCell) -> int:
            if cell.mempages:
                return cell.mempages[0].total_kib
            return cell.memory_mib * 1024
    return cap


@dataclass(frozen=True, slots=True)
class _Quantity:
    code: Code
    unit: str
    needs: tuple[int, ...]
    """Per guest cell, in guest cell order."""
    capacity: Callable[[HostCell], int]
    scale: int = 1
    """Divide needs and capacities by this for the messages (KiB -> MiB)."""
    units: str = ""
    """The plural of ``unit`` when it is not ``unit + "s"``."""


def _quantities(request: GuestRequest, current_kib: int | None) -> tuple[_Quantity, ...]:
    out: list[_Quantity] = []
    if request.pinned:
        reserve = 1 if request.emulator_isolated else 0
        needs = tuple(len(c.dedicated_vcpus) + (reserve if i == 0 else 0)
                      for i, c in enumerate(request.cells))
        out.append(_Quantity(Code.DEDICATED_CPUS_BUSY, "free dedicated CPU", needs,
                             _dedicated_cap))
        if request.thread_policy is ThreadPolicy.ISOLATE:
            out.append(_Quantity(
                Code.ISOLATE_NO_FREE_CORES,
                "whole free core for isolate (none on SMT with cpu_dedicated_set)",
                tuple(len(c.dedicated_vcpus) for c in request.cells), _isolate_cap,
                units="whole free cores for isolate (none on SMT with cpu_dedicated_set)"))
    if request.cpu_policy in (CPUPolicy.SHARED, CPUPolicy.MIXED, None):
        needs = tuple(len(c.shared_vcpus) for c in request.cells)
        if any(needs):
            out.append(_Quantity(Code.SHARED_CPUS_TOO_FEW, "shared CPU", needs, _shared_cap))
    code = Code.PAGES_SHORT if request.page_size is not None else Code.MEMORY_SHORT
    unit = "MiB free" if request.pinned else "MiB"
    if request.page_size is not None:
        size = current_kib if current_kib is not None else request.page_size.size_kib
        unit = (f"MiB free in {describe_page_size(size)} pages" if size is not None
                else f"MiB free in {request.page_size} pages")
    out.append(_Quantity(code, unit, tuple(c.memory_mib * 1024 for c in request.cells),
                         _memory_cap(request, current_kib), scale=1024))
    return tuple(out)


def _amount(value: int, q: _Quantity) -> str:
    if q.scale > 1:
        return f"{value // q.scale} {q.unit}"
    return plural(value, q.unit, q.units or None)


def _short(host: HostTopology, q: _Quantity, needs: list[int]) -> tuple[Reason, ...]:
    """Reasons when the sorted needs exceed the sorted capacities; () when they do not."""
    cells = host.cells
    caps = [q.capacity(c) for c in cells]
    ordered = sorted(caps, reverse=True) if len(needs) > 1 else [max(caps, default=0)]
    i = next((i for i, need in enumerate(needs) if i >= len(ordered) or need > ordered[i]),
             None)
    if i is None:
        return ()
    need = needs[i]
    # the (i+1) largest guest cells need >= need each; fewer host cells hold that much
    holding = sum(1 for c in caps if c >= need)
    per_cell = ", ".join(f"{c.id}: {cap // q.scale}" for c, cap in zip(cells, caps, strict=True))
    where = "one host cell" if i == 0 else f"each of {i + 1} host cells"
    shape = (f" (guest cells: {', '.join(str(x // q.scale) for x in q.needs)})"
             if len(needs) > 1 else "")
    head = (f"needs {_amount(need, q)} on {where}{shape}; {holding} host "
            f"cell{' has' if holding == 1 else 's have'} that much (per cell: {per_cell})")
    reasons = [Reason(q.code, head, need=need // q.scale, have=holding,
                      details=(("bound", True),))]
    reasons.extend(
        Reason(q.code, f"{_amount(cap, q)} here, a guest cell needs {need // q.scale}",
               host_cell=c.id, need=need // q.scale, have=cap // q.scale,
               details=(("bound", True),))
        for c, cap in zip(cells, caps, strict=True) if cap < need)
    return tuple(reasons)


class CapacityBound:
    """:func:`capacity_bound` for one guest over many hosts (its needs computed once)."""

    def __init__(self, guest: Guest, current_pagesize_kib: int | None = None) -> None:
        self.guest = guest
        self.pci_needed = sum(r.count for r in guest.pci_requests)
        request = guest.numa
        self.cells = len(request.cells) if request is not None else 0
        self.quantities = (
            tuple((q, sorted(q.needs, reverse=True))
                  for q in _quantities(request, current_pagesize_kib))
            if request is not None else ())

    def check(self, host: HostTopology) -> tuple[Reason, ...]:
        """Why ``host`` certainly cannot take the guest, or () when the fit must decide."""
        if self.pci_needed:
            free = sum(1 for d in host.pci_devices if not d.allocated)
            if free < self.pci_needed:
                return (Reason(Code.PCI_DEVICES_SHORT,
                               f"needs {plural(self.pci_needed, 'PCI device')}, "
                               f"{free} free on the whole host", need=self.pci_needed,
                               have=free, details=(("bound", True),)),)
        if self.guest.numa is None:
            return ()
        if len(host.cells) < self.cells:
            msg = f"guest needs {self.cells} NUMA cells, host has {len(host.cells)}"
            return (Reason(Code.TOO_FEW_HOST_CELLS, msg, need=self.cells,
                           have=len(host.cells)),)
        for q, needs in self.quantities:
            reasons = _short(host, q, needs)
            if reasons:
                return reasons
        return ()


def capacity_bound(
    host: HostTopology, guest: Guest, current_pagesize_kib: int | None = None
) -> tuple[Reason, ...]:
    """Why ``host`` certainly cannot take ``guest`` (cheap necessary conditions), or ()
    when the full fit must decide. Never refuses a host that the fit would accept (with
    any limits, either order, and ``current_pagesize_kib`` as the fit's option)."""
    return CapacityBound(guest, current_pagesize_kib).check(host)


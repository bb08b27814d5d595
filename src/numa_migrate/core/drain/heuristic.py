"""The fast drain planner: greedy waves, hardest guests first, best-fit destinations.

Semantics (what :mod:`tests.drainvalidity` checks independently):

- every guest of a drained host is moved exactly once or reported unplaceable with the binding
  reason; a drained host is never a destination;
- a wave's moves run at the same time: each destination gives the capacity it has free when
  the wave starts, minus what earlier moves of the same wave took (so no two moves take the
  same CPUs, pages or VFs); a source keeps its guest's resources until the wave ends;
- at most ``max_parallel`` moves per wave and ``per_host_parallel`` moves touching one host
  (as source or destination) per wave.

Each guest is placed by the fitter (:func:`~numa_migrate.core.fit.fitter.fit_guest`, its NUMA
request and PCI requests, keeping the page size it runs with) on the destination's state with
every earlier move already accounted. Because only drained hosts release and they never
receive, a destination's free capacity only shrinks as the plan goes on: a guest that fits no
destination now never will, so it is reported at once. Waves beyond the first are needed only
because of the two limits.

A guest with no NUMA request fits anywhere with no cell placement (as ``fit_guest`` says: its
memory and vCPUs are not checked, as Nova's NUMA filter does not), needing only its PCI devices.

Order: hardest guests first — most dedicated vCPUs, then memory, NUMA cells, PCI devices (name
last, for a stable plan). Destination: best fit — among the hosts that can take the guest, the
one that after the move has the fewest SMT cores left half-used, then the fewest free dedicated
CPUs, then the least free memory, then the name. Packing the tightest host that still leaves
whole cores keeps the large free holes for the guests that need them. The key is computed from
the fitter's placement on per-cell numbers cached per host state (only the cells the placement
uses are recounted), not from a copy of the host per candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from numa_migrate.core.drain.blocking import binding_reason
from numa_migrate.core.drain.hosts import add_guest, remove_guest
from numa_migrate.core.drain.plan import Move, Plan, Unplaceable, Wave
from numa_migrate.core.drain.state import FleetGuest, FleetState
from numa_migrate.core.fit.fitter import FitOptions, FitResult, fit_guest
from numa_migrate.core.model.guest import Guest, ThreadPolicy
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.placement import CellPlacement, Placement

__all__ = ["KeepFree", "hardness", "plan_drain"]

SOLVER = "heuristic"


@dataclass(frozen=True, slots=True)
class KeepFree:
    """Headroom every destination keeps after the moves onto it (whole host, all cells)."""

    dedicated_cpus: int = 0
    memory_mib: int = 0


def hardness(g: FleetGuest) -> tuple[int, int, int, int]:
    """Bigger is harder: dedicated vCPUs, memory, NUMA cells, PCI devices."""
    numa = g.guest.numa
    dedicated = sum(len(c.dedicated_vcpus) for c in numa.cells) if numa else 0
    cells = len(numa.cells) if numa else 0
    devices = sum(r.count for r in g.guest.pci_requests)
    return (dedicated, g.guest.memory_mib, cells, devices)


CellMetrics = tuple[int, int, int]
"""Per host cell: SMT cores of the dedicated pool half used, free dedicated CPUs, free MiB."""


def _cell_metrics(cell: HostCell, taken: frozenset[int] = frozenset(), memory_mib: int = 0
                  ) -> CellMetrics:
    """The cell's metrics with ``taken`` CPUs pinned and ``memory_mib`` more used (plain
    frozenset operations: this runs for every candidate destination)."""
    free = frozenset.difference(cell.free_pcpus, taken)
    split = 0
    for core in cell.siblings:
        mine = frozenset.intersection(core, cell.pcpuset)
        left = frozenset.intersection(mine, free)
        if left and len(left) != len(mine):
            split += 1
    return (split, len(free), cell.avail_memory_mib - memory_mib)


def _taken_cpus(cell: HostCell, guest: Guest, placed: CellPlacement, emulator: frozenset[int]
                ) -> frozenset[int]:
    """The CPUs a cell placement pins (as ``apply_placement`` counts them)."""
    numa = guest.numa
    if numa is None or not numa.pinned:
        return frozenset()
    cpus = {p for _, p in placed.pinning or ()} | emulator
    if numa.thread_policy is ThreadPolicy.ISOLATE:
        for cpu in tuple(cpus):
            cpus |= cell.core_of(cpu)
    return frozenset(cpus)


Key = tuple[int, int, int, str]


def _best_fit_key(
    host: HostTopology, base: Sequence[CellMetrics], guest: Guest, placement: Placement
) -> Key:
    """(half-used cores, free dedicated CPUs, free MiB, name) of ``host`` after the move."""
    by_cell = {p.host_cell: p for p in placement.cells}
    first = placement.cells[0].host_cell if placement.cells else None
    split = free = memory = 0
    for cell, before in zip(host.cells, base, strict=True):
        placed = by_cell.get(cell.id)
        metrics = before
        if placed is not None:
            emulator = (placement.emulator_pins or frozenset()) if cell.id == first \
                else frozenset()
            metrics = _cell_metrics(cell, _taken_cpus(cell, guest, placed, emulator),
                                    placed.memory_mib)
        split += metrics[0]
        free += metrics[1]
        memory += metrics[2]
    return (split, free, memory, host.name)


def _keeps(key: Key, keep: KeepFree | None) -> bool:
    return keep is None or (key[1] >= keep.dedicated_cpus and key[2] >= keep.memory_mib)


def plan_drain(
    state: FleetState,
    drain_hosts: Iterable[str],
    max_parallel: int,
    per_host_parallel: int,
    keep_free: KeepFree | None = None,
) -> Plan:
    """Plan moving every guest off ``drain_hosts`` onto the other hosts, in waves.

    ``keep_free``: headroom each destination keeps (a host that would go below it is not a
    destination for that guest). A guest with no NUMA request fits any host with cells ``()``
    (only its PCI devices are checked). ``state`` is not changed; the plan's ``stats`` count
    the fitter calls (``fit_calls``) and the guests to move (``guests``).
    """
    if max_parallel < 1 or per_host_parallel < 1:
        raise ValueError("max_parallel and per_host_parallel must be at least 1")
    drained = frozenset(drain_hosts)
    unknown = sorted(drained - set(state.by_name))
    if unknown:
        raise ValueError(f"drain hosts not in the fleet: {unknown}")
    current: dict[str, HostTopology] = dict(state.by_name)
    version: dict[str, int] = dict.fromkeys(current, 0)
    destinations = [h.name for h in state.hosts if h.name not in drained]
    pending = sorted(
        (g for g in state.guests if g.host in drained),
        key=lambda g: (tuple(-x for x in hardness(g)), g.name),
    )
    cache: dict[tuple[str, str], tuple[int, FitResult]] = {}
    metrics: dict[str, tuple[int, tuple[CellMetrics, ...]]] = {}
    fit_calls = 0

    def base(dest: str) -> tuple[CellMetrics, ...]:
        hit = metrics.get(dest)
        if hit is None or hit[0] != version[dest]:
            hit = (version[dest], tuple(_cell_metrics(c) for c in current[dest].cells))
            metrics[dest] = hit
        return hit[1]

    def fit(g: FleetGuest, dest: str) -> FitResult:
        nonlocal fit_calls
        hit = cache.get((g.name, dest))
        if hit is not None and hit[0] == version[dest]:
            return hit[1]
        fit_calls += 1
        options = FitOptions(current_pagesize_kib=g.pagesize_kib)
        result = fit_guest(current[dest], g.guest, options)
        cache[(g.name, dest)] = (version[dest], result)
        return result

    waves: list[Wave] = []
    unplaceable: list[Unplaceable] = []
    while pending:
        moves: list[Move] = []
        touched: dict[str, int] = {}
        left: list[FleetGuest] = []
        for g in pending:
            if len(moves) >= max_parallel or touched.get(g.host, 0) >= per_host_parallel:
                left.append(g)
                continue
            results = [fit(g, d) for d in destinations]
            fitting = [r for r in results if r.placement is not None]
            options: list[tuple[Key, FitResult]] = []
            for r in fitting:
                assert r.placement is not None
                key = _best_fit_key(current[r.host], base(r.host), g.guest, r.placement)
                if _keeps(key, keep_free):
                    options.append((key, r))
            if not options:
                hosts = [current[d] for d in destinations]
                if fitting and keep_free is not None:
                    reason = (f"every host that can take it would keep less than "
                              f"{keep_free.dedicated_cpus} dedicated CPUs and "
                              f"{keep_free.memory_mib} MiB free (the headroom to keep)")
                    unplaceable.append(Unplaceable(g.name, g.host, reason))
                    continue
                reason, where = binding_reason(g.guest, g.pagesize_kib, hosts, results)
                unplaceable.append(Unplaceable(g.name, g.host, reason, where))
                continue
            usable = [o for o in options if touched.get(o[1].host, 0) < per_host_parallel]
            if not usable:
                left.append(g)
                continue
            _, result = min(usable, key=lambda o: o[0])
            assert result.placement is not None
            dest = result.host
            current[dest] = add_guest(current[dest], g.guest, result.placement,
                                      result.pci_addresses)
            version[dest] += 1
            moves.append(Move(g.name, g.host, dest, result.placement, result.pci_addresses))
            touched[g.host] = touched.get(g.host, 0) + 1
            touched[dest] = touched.get(dest, 0) + 1
        if moves:
            waves.append(Wave(tuple(moves)))
        # the wave has ended: the sources release their guests
        by_name = {g.name: g for g in pending}
        for m in moves:
            g = by_name[m.guest]
            current[g.host] = remove_guest(current[g.host], g.guest, g.placement, g.pci_devices)
            version[g.host] += 1
        if not moves and left:
            raise AssertionError("a wave with no move cannot leave guests waiting")
        pending = left
    stats = (("fit_calls", fit_calls), ("guests", sum(1 for g in state.guests
                                                        if g.host in drained)))
    return Plan(tuple(waves), tuple(unplaceable), SOLVER, stats)

"""Relocations: moves between staying hosts that free room for a guest no host can take.

A post-pass over a finished plan (:func:`relocate`). For each unplaceable guest G of a drained
host, it looks for one guest Y of a staying host H such that H without Y can take G and another
staying host Z (not H, not drained) can take Y. It then adds two waves after the plan: the
relocation (Y: H→Z, kind ``relocate``) and then G's move (S→H) onto the room Y left. The wave
semantics are the planner's: a destination gives what it has free when its wave starts (minus
earlier moves of the same wave) and a source frees its guest when its wave ends, so G lands in
the wave after Y left.

Several relocations share a pair of waves when the parallel limits allow, unless a relocation
lands on a host another relocation of the pair leaves (that room is free only once the wave
has ended): then it comes in a later pair of waves. Only guests that have not moved yet are
relocated (a drained guest moves once; a staying guest is relocated at most once), and never
onto a drained host.

The search is bounded per unplaceable guest: at most ``max_candidates`` (H, Y) candidates are
examined (cheap capacity bounds first, :class:`~numa_migrate.core.rank.CapacityBound`) and at
most ``max_fit_calls`` fitter calls are made; the whole pass makes at most
``max_total_fit_calls``. A guest whose request (NUMA, PCI, page size) equals one already
searched in vain is not searched again (the hosts have only filled up since). The plan's stats
say how many guests hit a bound and how many were skipped.
Candidates: staying hosts with the most free dedicated CPUs first, and on each the smallest
guests first; for Y the tightest destination Z that fits (fewest free dedicated CPUs first);
hosts an earlier relocation touches come last, so that relocations can share waves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from numa_migrate.core.drain.apply import state_after
from numa_migrate.core.drain.heuristic import KeepFree, hardness
from numa_migrate.core.drain.hosts import add_guest, remove_guest
from numa_migrate.core.drain.plan import RELOCATE, Move, Plan, Unplaceable, Wave
from numa_migrate.core.drain.state import FleetGuest, FleetState
from numa_migrate.core.fit.fitter import FitOptions, FitResult, fit_guest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.rank import CapacityBound

__all__ = ["MAX_CANDIDATES", "MAX_FIT_CALLS", "MAX_TOTAL_FIT_CALLS", "relocate"]

MAX_CANDIDATES = 400
"""(host, guest) candidates examined per unplaceable guest."""
MAX_FIT_CALLS = 400
"""Fitter calls per unplaceable guest."""
MAX_TOTAL_FIT_CALLS = 2000
"""Fitter calls of the whole pass."""


def _free_cpus(host: HostTopology) -> int:
    return sum(len(c.free_pcpus) for c in host.cells)


def _keeps(host: HostTopology, keep: KeepFree | None) -> bool:
    return keep is None or (
        _free_cpus(host) >= keep.dedicated_cpus
        and sum(c.avail_memory_mib for c in host.cells) >= keep.memory_mib)


@dataclass(frozen=True)
class _Pair:
    relocation: Move
    drain: Move


class _Budget:
    def __init__(self, fit_calls: int) -> None:
        self.left = fit_calls
        self.used = 0
        self.cut = False
        """A bound (fit calls or candidates) stopped the search."""

    def fit(self, host: HostTopology, g: FleetGuest) -> FitResult | None:
        """The fit, or None when the budget is spent."""
        if self.left <= 0:
            self.cut = True
            return None
        self.left -= 1
        self.used += 1
        return fit_guest(host, g.guest, FitOptions(current_pagesize_kib=g.pagesize_kib))


def _search(
    g: FleetGuest,
    current: dict[str, HostTopology],
    staying: list[str],
    movable: dict[str, list[FleetGuest]],
    *,
    used: set[str],
    keep: KeepFree | None,
    max_candidates: int,
    budget: _Budget,
) -> tuple[_Pair, HostTopology, HostTopology] | None:
    """One relocation that lets ``g`` move, with H and Z after it; None: none found."""
    bound_g = CapacityBound(g.guest, g.pagesize_kib)
    examined = 0
    for h in sorted(staying, key=lambda n: (n in used, -_free_cpus(current[n]), n)):
        for y in movable.get(h, ()):
            examined += 1
            if examined > max_candidates:
                budget.cut = True
                return None
            without = remove_guest(current[h], y.guest, y.placement, y.pci_devices)
            if bound_g.check(without):
                continue
            fit_g = budget.fit(without, g)
            if fit_g is None:
                return None
            if fit_g.placement is None:
                continue
            h_after = add_guest(without, g.guest, fit_g.placement, fit_g.pci_addresses)
            if not _keeps(h_after, keep):
                continue
            bound_y = CapacityBound(y.guest, y.pagesize_kib)
            for z in sorted((n for n in staying if n != h),
                            key=lambda n: (n in used, _free_cpus(current[n]), n)):
                if bound_y.check(current[z]):
                    continue
                fit_y = budget.fit(current[z], y)
                if fit_y is None:
                    return None
                if fit_y.placement is None:
                    continue
                z_after = add_guest(current[z], y.guest, fit_y.placement, fit_y.pci_addresses)
                if not _keeps(z_after, keep):
                    continue
                pair = _Pair(
                    Move(y.name, h, z, fit_y.placement, fit_y.pci_addresses, RELOCATE),
                    Move(g.name, g.host, h, fit_g.placement, fit_g.pci_addresses))
                return pair, h_after, z_after
    return None


def _waves(pairs: list[_Pair], max_parallel: int, per_host_parallel: int) -> list[Wave]:
    """Pairs of waves (relocations, then the drained guests' moves onto the room freed).

    Pairs were found in order, each on the hosts as the earlier pairs left them. A pair joins
    the first group of waves that keeps that true and has room under the limits: not before
    any group holding an earlier pair on one of its hosts, and after the group where an
    earlier relocation leaves its destination Z (that room is free only once that wave has
    ended). In one group two relocations may leave one host or land on one host (the takes of
    a wave add up, its releases come at its end).
    """
    groups: list[list[_Pair]] = []
    touches: list[tuple[dict[str, int], dict[str, int]]] = []  # per group: relocation, drain
    seen: dict[str, int] = {}  # host -> the last group with a pair on it
    left: dict[str, int] = {}  # host -> the last group with a relocation leaving it
    for p in pairs:
        h, z, s = p.relocation.source, p.relocation.destination, p.drain.source
        g = max(seen.get(h, 0), seen.get(z, 0), left.get(z, -1) + 1)
        while g < len(groups) and not (
                len(groups[g]) < max_parallel
                and max(touches[g][0].get(h, 0), touches[g][0].get(z, 0),
                        touches[g][1].get(h, 0), touches[g][1].get(s, 0))
                < per_host_parallel):
            g += 1
        if g == len(groups):
            groups.append([])
            touches.append(({}, {}))
        groups[g].append(p)
        for counts, hosts in ((touches[g][0], (h, z)), (touches[g][1], (h, s))):
            for x in hosts:
                counts[x] = counts.get(x, 0) + 1
        seen[h] = seen[z] = max(seen.get(h, 0), seen.get(z, 0), g)
        left[h] = max(left.get(h, -1), g)
    out: list[Wave] = []
    for group in groups:
        out.append(Wave(tuple(p.relocation for p in group)))
        out.append(Wave(tuple(p.drain for p in group)))
    return out


def relocate(
    state: FleetState,
    drain_hosts: Iterable[str],
    plan: Plan,
    max_parallel: int,
    per_host_parallel: int,
    *,
    keep_free: KeepFree | None = None,
    max_candidates: int = MAX_CANDIDATES,
    max_fit_calls: int = MAX_FIT_CALLS,
    max_total_fit_calls: int = MAX_TOTAL_FIT_CALLS,
) -> Plan:
    """``plan`` with relocations added for the unplaceable guests they can place.

    Stats added: ``relocations`` (moves added of kind ``relocate``), ``relocation_fit_calls``,
    ``relocation_search_cut`` (unplaceable guests whose search hit a bound) and
    ``relocation_skipped`` (not searched: the same request failed already). ``state`` and
    ``plan`` are not changed; a plan with no unplaceable guest is returned as it is.
    """
    if not plan.unplaceable:
        return plan
    drained = frozenset(drain_hosts)
    current = dict(state_after(state, plan).by_name)
    staying = [h.name for h in state.hosts if h.name not in drained]
    moved = {m.guest for m in plan.moves}
    by_name = {g.name: g for g in state.guests}
    movable: dict[str, list[FleetGuest]] = {}
    for g in sorted(state.guests, key=lambda g: (hardness(g), g.name)):
        if g.host not in drained and g.name not in moved:
            movable.setdefault(g.host, []).append(g)
    pairs: list[_Pair] = []
    left: list[Unplaceable] = []
    fit_calls = cut = skipped = 0
    failed: set[object] = set()
    used: set[str] = set()  # staying hosts an earlier relocation touches
    for u in plan.unplaceable:
        g = by_name[u.guest]
        request = (g.guest.numa, g.guest.pci_requests, g.pagesize_kib)
        if request in failed:
            skipped += 1
            left.append(u)
            continue
        budget = _Budget(min(max_fit_calls, max_total_fit_calls - fit_calls))
        found = _search(g, current, staying, movable, used=used, keep=keep_free,
                        max_candidates=max_candidates, budget=budget)
        fit_calls += budget.used
        if found is None:
            cut += budget.cut
            failed.add(request)
            left.append(u)
            continue
        pair, h_after, z_after = found
        pairs.append(pair)
        used |= {pair.relocation.source, pair.relocation.destination}
        current[pair.relocation.source] = h_after
        current[pair.relocation.destination] = z_after
        movable[pair.relocation.source] = [
            y for y in movable[pair.relocation.source] if y.name != pair.relocation.guest]
    waves = (*plan.waves, *_waves(pairs, max_parallel, per_host_parallel))
    stats = (*plan.stats, ("relocations", len(pairs)), ("relocation_fit_calls", fit_calls),
             ("relocation_search_cut", cut), ("relocation_skipped", skipped))
    return replace(plan, waves=waves, unplaceable=tuple(left), stats=stats)

"""The exact drain planner: a CP-SAT model of where each guest goes, realized by the fitter.

Because drained hosts never receive, a destination's free capacity only shrinks, so where
guests go and when they go separate (:mod:`numa_migrate.core.drain.schedule`): the model
chooses each guest's destination and host cells; the waves follow from the moves per host.

Model (CP-SAT through the protocol of :mod:`numa_migrate.core.drain.satmodel`; OR-Tools in
:mod:`numa_migrate.adapters.ortools_sat`):

- a boolean per *candidate*: guest g on host h with guest cell i on host cell ``cells[i]``.
  Candidates come from the fitter on the initial state: the host must take the guest
  (``fit_guest``) and each guest cell must fit its host cell (``fit_cell``, with the emulator
  reservation on guest cell 0); what a cell placement takes is read off that fit — dedicated
  CPUs (whole cores under ``isolate``), whole free cores (``require``/``isolate``), pages of
  the size the guest runs with, or memory of the first pool for pinned guests without pages.
  Enumeration is bounded: per guest the first :data:`MAX_HOSTS` hosts that take it, tightest
  first (fewest dedicated CPUs, then MiB, left after the move; the capacity bounds of
  :mod:`numa_migrate.core.rank` skip hosts without a fit), plus the greedy's own choice, and
  :data:`MAX_CELL_MAPS` cell maps per host;
  when a bound cuts anything the plan says so, and the gap is then against the bounded model;
- per host cell and resource: the chosen candidates' demand ≤ the free amount; per host and
  PCI spec: VFs ≤ the free matching ones (per node too for a one-cell ``required`` request);
  ``--keep-free``: per host, dedicated CPUs and memory taken ≤ free minus the headroom;
- each guest at most one candidate; waves W: ``W·max_parallel`` ≥ moves and
  ``W·per_host`` ≥ the moves touching any host (the bound :func:`~.schedule.lower_bound`,
  which the schedule reaches);
- objective, lexicographic through weights: guests left behind, then W, then fragmentation:
  the host cells the moves touch plus those left with an odd number of free dedicated CPUs on
  SMT hosts (a core split between a guest and nothing).

Counts do not capture exact pinning (which sibling threads are free), so the solution is
*realized* with the real fitter: per destination, its guests hardest first, each fitted on the
host restricted to its chosen cells, else on any cells of that host, else on the destination
the greedy's best-fit rule picks now; a guest that fits nowhere is left behind with its binding
reason (the caller then keeps the better of this plan and the greedy one).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import permutations

from numa_migrate.core.drain.blocking import binding_reason
from numa_migrate.core.drain.heuristic import (
    KeepFree,
    _best_fit_key,
    _cell_metrics,
    _keeps,
    _taken_cpus,
    hardness,
)
from numa_migrate.core.drain.hosts import add_guest
from numa_migrate.core.drain.plan import Move, Plan, Unplaceable, Wave
from numa_migrate.core.drain.satmodel import NewModel, Outcome, Term
from numa_migrate.core.drain.schedule import lower_bound, schedule
from numa_migrate.core.drain.state import FleetGuest, FleetState
from numa_migrate.core.fit.cellfit import CellFit, fit_cell
from numa_migrate.core.fit.fitter import FitOptions, FitResult, fit_guest
from numa_migrate.core.model.guest import ThreadPolicy
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.pcidev import PciNumaPolicy
from numa_migrate.core.rank import CapacityBound

__all__ = ["MAX_CELL_MAPS", "MAX_HOSTS", "CpSatResult", "plan_cpsat", "plan_objective"]

MAX_HOSTS = 12
"""Candidate destinations per guest (the best by best-fit key, plus the greedy's choice)."""
MAX_CELL_MAPS = 24
"""Guest-cell → host-cell maps per guest and host."""
BUILD_SHARE = 0.6
"""Share of the time limit the model may take to build; past it CP-SAT is not run."""

Resource = tuple[str, str, int, str]
"""(host, kind, cell id or -1, detail): ``cpu``, ``core``, ``pages``, ``mem``, ``pci``."""


@dataclass(frozen=True)
class Candidate:
    guest: int
    host: str
    cells: tuple[int, ...]
    use: tuple[tuple[Resource, int], ...]
    cpus: tuple[tuple[int, int], ...]
    """(host cell, dedicated CPUs taken) for the fragmentation terms and --keep-free."""
    memory_mib: int


@dataclass(frozen=True)
class CpSatResult:
    plan: Plan
    outcome: Outcome
    bound: int | None
    """The model's lower bound on the objective (None: no solution)."""
    capped: bool
    notes: tuple[str, ...]
    per_guest: int = 0
    """The objective's weight of a guest left behind (see :func:`weights`)."""
    per_wave: int = 0


def _host_capacity(host: HostTopology) -> dict[Resource, int]:
    cap: dict[Resource, int] = {}
    for c in host.cells:
        free = c.free_pcpus
        cap[(host.name, "cpu", c.id, "")] = len(free)
        whole = sum(1 for core in c.siblings
                    if (mine := core & c.pcpuset) and mine <= free)
        cap[(host.name, "core", c.id, "")] = whole
        for pool in c.mempages:
            cap[(host.name, "pages", c.id, str(pool.size_kib))] = pool.free
        cap[(host.name, "mem", c.id, "")] = (c.mempages[0].free_kib // 1024 if c.mempages
                                             else c.avail_memory_mib)
    return cap


def _pci_use(g: FleetGuest, host: HostTopology, cells: tuple[int, ...]
             ) -> list[tuple[Resource, int]]:
    use: list[tuple[Resource, int]] = []
    for req in g.guest.pci_requests:
        key = repr(req.spec)
        use.append(((host.name, "pci", -1, key), req.count))
        if g.guest.numa is not None and req.policy is PciNumaPolicy.REQUIRED \
                and len(cells) == 1:
            use.append(((host.name, "pci", cells[0], key), req.count))
    return use


def _pci_capacity(host: HostTopology, g: FleetGuest, cap: dict[Resource, int]) -> None:
    for req in g.guest.pci_requests:
        key = repr(req.spec)
        if (host.name, "pci", -1, key) in cap:
            continue
        free = [d for d in host.pci_devices if not d.allocated and req.matches(d)]
        cap[(host.name, "pci", -1, key)] = len(free)
        for c in host.cells:
            cap[(host.name, "pci", c.id, key)] = sum(1 for d in free if d.numa_node == c.id)


def _cell_use(host: HostTopology, cell: HostCell, g: FleetGuest, fit: CellFit
              ) -> tuple[list[tuple[Resource, int]], int]:
    numa = g.guest.numa
    assert numa is not None
    cp = fit.placement
    use: list[tuple[Resource, int]] = []
    taken = _taken_cpus(cell, g.guest, cp, fit.emulator_pins)
    if taken:
        use.append(((host.name, "cpu", cell.id, ""), len(taken)))
        if numa.thread_policy in (ThreadPolicy.REQUIRE, ThreadPolicy.ISOLATE):
            whole = sum(1 for core in cell.siblings
                        if (mine := core & cell.pcpuset) and mine <= taken)
            use.append(((host.name, "core", cell.id, ""), whole))
    if cp.pagesize_kib is not None:
        use.append(((host.name, "pages", cell.id, str(cp.pagesize_kib)),
                    cp.memory_mib * 1024 // cp.pagesize_kib))
    elif numa.pinned:
        use.append(((host.name, "mem", cell.id, ""), cp.memory_mib))
    return use, len(taken)


def _candidates(
    gi: int, g: FleetGuest, host: HostTopology, cap: dict[Resource, int]
) -> tuple[list[Candidate], bool]:
    """The guest's candidates on ``host`` (the host takes it), and whether the cap cut some."""
    numa = g.guest.numa
    _pci_capacity(host, g, cap)
    if numa is None:
        return [Candidate(gi, host.name, (), tuple(_pci_use(g, host, ())), (), 0)], False
    fits: dict[tuple[int, int], tuple[list[tuple[Resource, int]], int]] = {}
    for i, gcell in enumerate(numa.cells):
        reserve = 1 if i == 0 and numa.emulator_isolated else 0
        for hc in host.cells:
            f = fit_cell(hc, numa, gcell, reserve=reserve,
                         current_pagesize_kib=g.pagesize_kib)
            if isinstance(f, CellFit):
                fits[(i, hc.id)] = _cell_use(host, hc, g, f)
    out: list[Candidate] = []
    capped = False
    ids = [c.id for c in host.cells]
    for cells in permutations(ids, len(numa.cells)):
        if not all((i, c) in fits for i, c in enumerate(cells)):
            continue
        if len(out) >= MAX_CELL_MAPS:
            capped = True
            break
        use: list[tuple[Resource, int]] = []
        cpus: list[tuple[int, int]] = []
        for i, c in enumerate(cells):
            u, n = fits[(i, c)]
            use.extend(u)
            cpus.append((c, n))
        use.extend(_pci_use(g, host, cells))
        merged: dict[Resource, int] = {}
        for r, n in use:
            merged[r] = merged.get(r, 0) + n
        out.append(Candidate(gi, host.name, cells, tuple(merged.items()), tuple(cpus),
                             sum(gc.memory_mib for gc in numa.cells)))
    return out, capped


def plan_objective(
    state: FleetState, plan: Plan, max_parallel: int, per_host: int
) -> tuple[int, int, int]:
    """(guests left behind, waves, fragmentation) of any plan, as the model counts them."""
    del max_parallel, per_host
    hosts = dict(state.by_name)
    touched: set[tuple[str, int]] = set()
    guests = {g.name: g for g in state.guests}
    for m in plan.moves:
        g = guests[m.guest]
        hosts[m.destination] = add_guest(hosts[m.destination], g.guest, m.placement,
                                         m.pci_devices)
        touched.update((m.destination, c.host_cell) for c in m.placement.cells)
    frag = 0
    for h, cid in touched:
        cell = hosts[h].cell(cid)
        frag += 1
        if cell.threads_per_core >= 2 and len(cell.free_pcpus) % 2:
            frag += 1
    return len(plan.unplaceable), len(plan.waves), frag


def weights(guests: int, frag_terms: int) -> tuple[int, int]:
    """(per guest left behind, per wave): each outweighs everything after it."""
    per_wave = frag_terms + 1
    per_guest = per_wave * (guests + 1) + frag_terms + 1
    return per_guest, per_wave


def plan_cpsat(
    state: FleetState,
    drained: Sequence[str],
    max_parallel: int,
    per_host_parallel: int,
    *,
    keep_free: KeepFree | None,
    hint: Plan | None,
    time_limit_s: float,
    new_model: NewModel,
    workers: int = 2,
) -> CpSatResult:
    """Solve the model within ``time_limit_s`` (building it counts) and realize the answer."""
    start = time.perf_counter()
    drained_set = set(drained)
    pending = sorted((g for g in state.guests if g.host in drained_set),
                     key=lambda g: (tuple(-x for x in hardness(g)), g.name))
    dests = [h for h in state.hosts if h.name not in drained_set]
    hinted = {m.guest: m for m in hint.moves} if hint is not None else {}
    cap: dict[Resource, int] = {}
    for h in dests:
        cap.update(_host_capacity(h))
    cands: list[Candidate] = []
    capped = False
    fit_calls = 0
    looks = {h.name: (sum(len(c.free_pcpus) for c in h.cells),
                      sum(c.avail_memory_mib for c in h.cells)) for h in dests}
    build_by = start + BUILD_SHARE * time_limit_s
    for gi, g in enumerate(pending):
        if time.perf_counter() > build_by:
            note = (f"CP-SAT's model was not built in {BUILD_SHARE:.0%} of the time limit "
                    f"({gi} of {len(pending)} guests): not solved")
            empty = Plan((), (), "cp-sat", (("fit_calls", fit_calls),))
            return CpSatResult(empty, Outcome("unknown", (), None, None, 0.0), None, True,
                               (note,))
        options = FitOptions(current_pagesize_kib=g.pagesize_kib)
        bounds = CapacityBound(g.guest, g.pagesize_kib)
        need = sum(len(c.dedicated_vcpus) for c in g.guest.numa.cells) \
            if g.guest.numa is not None and g.guest.numa.pinned else 0
        # tightest first (fewest dedicated CPUs, then MiB, left after the move), fitted in
        # that order until MAX_HOSTS take the guest
        order = sorted((h for h in dests if not bounds.check(h)),
                       key=lambda h: (looks[h.name][0] - need, looks[h.name][1], h.name))
        chosen: list[str] = []
        for h in order:
            if len(chosen) >= MAX_HOSTS:
                capped = True
                break
            fit_calls += 1
            r = fit_guest(h, g.guest, options)
            if r.placement is None:
                continue
            base = tuple(_cell_metrics(c) for c in h.cells)
            if _keeps(_best_fit_key(h, base, g.guest, r.placement), keep_free):
                chosen.append(h.name)
        mine = hinted.get(g.name)
        if mine is not None and mine.destination not in chosen:
            chosen.append(mine.destination)
        for name in chosen:
            got, cut = _candidates(gi, g, state.host(name), cap)
            capped = capped or cut
            cands.extend(got)

    model = new_model()
    x = [model.new_bool() for _ in cands]
    by_guest: dict[int, list[int]] = {}
    by_res: dict[Resource, list[Term]] = {}
    cell_cpu: dict[tuple[str, int], list[Term]] = {}
    cell_vars: dict[tuple[str, int], list[int]] = {}
    host_cpu: dict[str, list[Term]] = {}
    host_mem: dict[str, list[Term]] = {}
    into: dict[str, list[Term]] = {}
    for k, c in enumerate(cands):
        by_guest.setdefault(c.guest, []).append(x[k])
        for res, n in c.use:
            by_res.setdefault(res, []).append((n, x[k]))
        for cid, n in c.cpus:
            cell_cpu.setdefault((c.host, cid), []).append((n, x[k]))
        for cid in c.cells:
            cell_vars.setdefault((c.host, cid), []).append(x[k])
        host_cpu.setdefault(c.host, []).append((sum(n for _, n in c.cpus), x[k]))
        host_mem.setdefault(c.host, []).append((c.memory_mib, x[k]))
        into.setdefault(c.host, []).append((1, x[k]))
    placed: list[Term] = []
    from_src: dict[str, list[Term]] = {}
    for gi, g in enumerate(pending):
        vs = by_guest.get(gi, [])
        model.add_le([(1, v) for v in vs], 1)
        placed.extend((1, v) for v in vs)
        from_src.setdefault(g.host, []).extend((1, v) for v in vs)
    for res, terms in by_res.items():
        if sum(n for n, _ in terms) > cap.get(res, 0):
            model.add_le(terms, cap.get(res, 0))
    if keep_free is not None:
        for h in dests:
            if h.name not in host_cpu:
                continue
            free_cpus = sum(len(c.free_pcpus) for c in h.cells)
            free_mem = sum(c.avail_memory_mib for c in h.cells)
            if free_cpus < keep_free.dedicated_cpus or free_mem < keep_free.memory_mib:
                model.add_le(into[h.name], 0)  # below the headroom already: takes nothing
                continue
            model.add_le(host_cpu[h.name], free_cpus - keep_free.dedicated_cpus)
            model.add_le(host_mem[h.name], free_mem - keep_free.memory_mib)
    n = len(pending)
    waves = model.new_int(0, max(n, 1))
    model.add_ge([(max_parallel, waves)] + [(-1, v) for _, v in placed], 0)
    for terms in list(from_src.values()) + list(into.values()):
        model.add_ge([(per_host_parallel, waves)] + [(-a, v) for a, v in terms], 0)
    frag: list[Term] = []
    for (hname, cid), vs in cell_vars.items():
        t = model.new_bool()
        for v in vs:
            model.add_implication(v, t)
        frag.append((1, t))
        cell = state.host(hname).cell(cid)
        if cell.threads_per_core >= 2 and (hname, cid) in cell_cpu:
            free = len(cell.free_pcpus)
            q = model.new_int(0, free // 2 + 1)
            odd = model.new_bool()
            # free - taken = 2q + odd
            model.add_eq(cell_cpu[(hname, cid)] + [(2, q), (1, odd)], free)
            both = model.new_bool()
            model.add_ge([(1, both), (-1, odd), (-1, t)], -1)
            frag.append((1, both))
        elif cell.threads_per_core >= 2 and len(cell.free_pcpus) % 2:
            frag.append((1, t))  # no pinned candidate here: the cell stays odd
    per_guest, per_wave = weights(n, len(frag))
    model.minimize([(-per_guest, v) for _, v in placed] + [(per_wave, waves)] + frag)
    offset = per_guest * n
    if hinted:
        for k, c in enumerate(cands):
            m = hinted.get(pending[c.guest].name)
            hit = m is not None and m.destination == c.host and \
                tuple(p.host_cell for p in m.placement.cells) == c.cells
            model.hint(x[k], int(hit))
    remaining = time_limit_s - (time.perf_counter() - start)
    outcome = model.solve(remaining, workers)
    notes: list[str] = []
    if capped:
        notes.append(f"CP-SAT saw at most {MAX_HOSTS} destinations per guest (tightest first) "
                     f"and {MAX_CELL_MAPS} cell maps per host: its bound is that model's")
    if outcome.objective is None:
        notes.append(f"CP-SAT found no solution in the time left ({remaining:.1f} s; "
                     f"{outcome.status})")
        empty = Plan((), (), "cp-sat", (("fit_calls", fit_calls),))
        return CpSatResult(empty, outcome, None, capped, tuple(notes))
    picks: dict[int, Candidate] = {}
    for k, c in enumerate(cands):
        if outcome.values[x[k]]:
            picks[c.guest] = c
    plan, realize_notes = _realize(
        state, pending, picks, dests, max_parallel=max_parallel,
        per_host_parallel=per_host_parallel, keep_free=keep_free,
        solver="cp-sat (optimal)" if outcome.status == "optimal" else "cp-sat")
    notes.extend(realize_notes)
    stats = (("fit_calls", fit_calls), ("guests", n), ("candidates", len(cands)),
             ("variables", len(model)))
    plan = replace(plan, stats=stats)
    bound = None if outcome.bound is None else outcome.bound + offset
    return CpSatResult(plan, outcome, bound, capped, tuple(notes), per_guest, per_wave)


def _realize(
    state: FleetState,
    pending: list[FleetGuest],
    picks: dict[int, Candidate],
    dests: list[HostTopology],
    *,
    max_parallel: int,
    per_host_parallel: int,
    keep_free: KeepFree | None,
    solver: str,
) -> tuple[Plan, list[str]]:
    current = {h.name: h for h in dests}
    notes: list[str] = []
    placed: dict[int, Move] = {}
    orphans: list[int] = []
    for gi, g in enumerate(pending):  # hardest first
        c = picks.get(gi)
        if c is None:
            orphans.append(gi)
            continue
        options = FitOptions(current_pagesize_kib=g.pagesize_kib)
        host = current[c.host]
        only = replace(host, cells=tuple(cell for cell in host.cells if cell.id in c.cells))
        result = fit_guest(only, g.guest, options) if c.cells else fit_guest(host, g.guest,
                                                                              options)
        if result.placement is None and c.cells:
            result = fit_guest(host, g.guest, options)
        if result.placement is None or not _keeps_after(host, g, result, keep_free):
            orphans.append(gi)
            notes.append(f"{g.name}: the model's place on {c.host} did not realize; "
                         "placed by the best-fit rule instead")
            continue
        current[c.host] = add_guest(host, g.guest, result.placement, result.pci_addresses)
        placed[gi] = Move(g.name, g.host, c.host, result.placement, result.pci_addresses)
    unplaceable: list[Unplaceable] = []
    for gi in orphans:
        g = pending[gi]
        options = FitOptions(current_pagesize_kib=g.pagesize_kib)
        results = [fit_guest(current[d.name], g.guest, options) for d in dests]
        best: tuple[tuple[int, int, int, str], FitResult] | None = None
        for r in results:
            if r.placement is None:
                continue
            h = current[r.host]
            key = _best_fit_key(h, tuple(_cell_metrics(c) for c in h.cells), g.guest,
                                r.placement)
            if _keeps(key, keep_free) and (best is None or key < best[0]):
                best = (key, r)
        if best is None:
            if keep_free is not None and any(r.placement is not None for r in results):
                reason = (f"every host that can take it would keep less than "
                          f"{keep_free.dedicated_cpus} dedicated CPUs and "
                          f"{keep_free.memory_mib} MiB free (the headroom to keep)")
                unplaceable.append(Unplaceable(g.name, g.host, reason))
                continue
            reason, where = binding_reason(g.guest, g.pagesize_kib,
                                           [current[d.name] for d in dests], results)
            unplaceable.append(Unplaceable(g.name, g.host, reason, where))
            continue
        r = best[1]
        assert r.placement is not None
        current[r.host] = add_guest(current[r.host], g.guest, r.placement, r.pci_addresses)
        placed[gi] = Move(g.name, g.host, r.host, r.placement, r.pci_addresses)
    moves = [placed[gi] for gi in sorted(placed)]
    waves = schedule([(m.source, m.destination) for m in moves], max_parallel,
                     per_host_parallel)
    plan = Plan(tuple(Wave(tuple(moves[i] for i in w)) for w in waves),
                tuple(unplaceable), solver)
    bound = lower_bound([(m.source, m.destination) for m in moves], max_parallel,
                        per_host_parallel)
    if len(waves) > bound:
        notes.append(f"the schedule needs {len(waves)} waves, {bound} would be the bound")
    return plan, notes


def _keeps_after(host: HostTopology, g: FleetGuest, result: FitResult,
                 keep_free: KeepFree | None) -> bool:
    if keep_free is None:
        return True
    assert result.placement is not None
    key = _best_fit_key(host, tuple(_cell_metrics(c) for c in host.cells), g.guest,
                        result.placement)
    return _keeps(key, keep_free)

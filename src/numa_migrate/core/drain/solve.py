"""Choose and run the drain planner: the greedy heuristic always, CP-SAT when it can help.

:func:`solve_drain` runs the greedy planner first (its plan is CP-SAT's hint and the fallback)
and re-packs its moves into the fewest waves (placements stay: only drained hosts release
capacity, so the moves may run in any order, :mod:`numa_migrate.core.drain.schedule`). Then,
with ``solver="cp-sat"``, or ``"auto"`` when the instance is small enough to build the model
in the time left (:data:`AUTO_MAX_FITS` fits of guest on host), it runs the CP-SAT model
(:mod:`numa_migrate.core.drain.cpsat`) with the rest of ``time_limit_s`` and keeps the better
plan by (guests left behind, waves, fragmentation).

The plan says which solver made it (``solver``), the lower bound on its waves, the gap and why
(``notes``). The gap is CP-SAT's when it ran: the kept plan's objective against the model's
best bound (0: proven optimal for that model); otherwise the waves against the wave bound.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace

from numa_migrate.core.drain.cpsat import plan_cpsat, plan_objective
from numa_migrate.core.drain.heuristic import KeepFree, plan_drain
from numa_migrate.core.drain.plan import Plan, Wave
from numa_migrate.core.drain.satmodel import NewModel
from numa_migrate.core.drain.schedule import lower_bound, schedule
from numa_migrate.core.drain.state import FleetState

__all__ = ["AUTO_MAX_FITS", "SOLVERS", "after_relocations", "solve_drain"]

SOLVERS = ("auto", "cp-sat", "heuristic")
AUTO_MAX_FITS = 400_000
"""``auto`` builds the CP-SAT model only up to this many guest × destination pairs (each a
capacity-bound check, a dozen fits per guest): ≈ 10 s of building on a 2-core machine."""
MIN_CPSAT_S = 0.5
"""``auto`` skips CP-SAT when less than this is left of the time limit after the heuristic."""


def _repacked(plan: Plan, max_parallel: int, per_host: int) -> tuple[Plan, str | None]:
    moves = plan.moves
    waves = schedule([(m.source, m.destination) for m in moves], max_parallel, per_host)
    if len(waves) >= len(plan.waves):
        return plan, None
    note = (f"the greedy's {len(plan.waves)} waves re-packed into {len(waves)} "
            "(same moves and placements)")
    return replace(plan, waves=tuple(Wave(tuple(moves[i] for i in w)) for w in waves)), note


def _wave_gap(waves: int, bound: int) -> float:
    return 0.0 if waves == 0 else (waves - bound) / waves


def solve_drain(
    state: FleetState,
    drained: Iterable[str],
    max_parallel: int,
    per_host_parallel: int,
    keep_free: KeepFree | None = None,
    *,
    solver: str = "auto",
    time_limit_s: float = 30.0,
    new_model: NewModel | None = None,
    workers: int = 2,
) -> Plan:
    """The best plan found within ``time_limit_s`` (the heuristic alone ignores it).

    ``new_model`` makes an empty CP-SAT model
    (:class:`numa_migrate.adapters.ortools_sat.OrToolsModel`); without one, ``auto`` plans
    with the heuristic alone and ``cp-sat`` is refused.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver: {solver!r} is not one of {', '.join(SOLVERS)}")
    if solver == "cp-sat" and new_model is None:
        raise ValueError("solver: cp-sat needs a CP-SAT model maker (new_model)")
    if time_limit_s <= 0:
        raise ValueError(f"time limit: {time_limit_s} s must be positive")
    start = time.perf_counter()
    drained = tuple(dict.fromkeys(drained))
    greedy = plan_drain(state, drained, max_parallel, per_host_parallel, keep_free)
    greedy, repack = _repacked(greedy, max_parallel, per_host_parallel)
    notes: list[str] = [repack] if repack else []
    edges = [(m.source, m.destination) for m in greedy.moves]
    wave_bound = lower_bound(edges, max_parallel, per_host_parallel)
    n = greedy.stat("guests")
    dests = sum(1 for h in state.hosts if h.name not in drained)
    run = solver == "cp-sat"
    if solver == "auto":
        left = time_limit_s - (time.perf_counter() - start)
        if n == 0:
            notes.append("auto: nothing to move, heuristic only")
        elif new_model is None:
            notes.append("auto: heuristic only (no CP-SAT solver given)")
        elif n * dests > AUTO_MAX_FITS:
            notes.append(f"auto: heuristic only ({n} guests x {dests} destinations = "
                         f"{n * dests} pairs, above the {AUTO_MAX_FITS} CP-SAT's model is "
                         "built for)")
        elif left < MIN_CPSAT_S:
            notes.append(f"auto: heuristic only ({left:.1f} s of the time limit left)")
        else:
            run = True
            notes.append(f"auto: CP-SAT ({n} guests x {dests} destinations)")
    if not run or n == 0:
        notes.append(f"waves: {len(greedy.waves)}, at least {wave_bound}")
        return replace(greedy, lower_bound_waves=wave_bound,
                       gap=_wave_gap(len(greedy.waves), wave_bound), notes=tuple(notes))
    left = time_limit_s - (time.perf_counter() - start)
    assert new_model is not None
    result = plan_cpsat(state, drained, max_parallel, per_host_parallel, keep_free=keep_free,
                        hint=greedy, time_limit_s=left, new_model=new_model,
                        workers=workers)
    notes.extend(result.notes)
    mine = plan_objective(state, greedy, max_parallel, per_host_parallel)
    if result.bound is None:
        notes.append("kept the heuristic's plan (CP-SAT gave none)")
        return replace(greedy, lower_bound_waves=wave_bound,
                       gap=_wave_gap(len(greedy.waves), wave_bound), notes=tuple(notes))
    theirs = plan_objective(state, result.plan, max_parallel, per_host_parallel)
    notes.append(f"CP-SAT {result.outcome.status} in {result.outcome.wall_s:.1f} s: "
                 f"left behind/waves/fragmentation {theirs[0]}/{theirs[1]}/{theirs[2]}, "
                 f"heuristic {mine[0]}/{mine[1]}/{mine[2]}")
    best = result.plan if theirs <= mine else greedy
    obj = min(theirs, mine)
    value = result.per_guest * obj[0] + result.per_wave * obj[1] + obj[2]
    # a plan moving every guest needs the counting bound's waves; one leaving a guest behind
    # costs more than any number of waves: so no plan costs less than those waves
    counted = max([-(-n // max_parallel)] + [-(-len(state.guests_on(h)) // per_host_parallel)
                                             for h in drained])
    floor = max(result.bound, result.per_wave * counted)
    gap = max(0.0, (value - floor) / value) if value > 0 else 0.0
    if obj[0] == 0 and obj[1] == counted:
        frag_floor = max(floor - result.per_wave * counted, 0)
        notes.append(f"proven: every guest moves in the fewest waves ({counted}); "
                     f"fragmentation {obj[2]}, the model's bound on it {frag_floor}")
    if best is greedy:
        notes.append("kept the heuristic's plan (CP-SAT's is not better)")
        name = "heuristic"
    else:
        name = "cp-sat" if gap > 0 else (
            "cp-sat (optimal among its candidates)" if result.capped else "cp-sat (optimal)")
    bound = lower_bound([(m.source, m.destination) for m in best.moves], max_parallel,
                        per_host_parallel)
    stats = tuple(dict(greedy.stats).items()) + tuple(
        (f"cpsat_{k}", v) for k, v in result.plan.stats if k != "guests")
    return replace(best, solver=name, gap=gap, lower_bound_waves=bound, notes=tuple(notes),
                   stats=stats)


def after_relocations(before: Plan, after: Plan, max_parallel: int, per_host: int) -> Plan:
    """``after`` (``before`` with relocations added by
    :func:`~numa_migrate.core.drain.relocate.relocate`) with its wave bound and gap
    recounted: relocation waves come after the plan, so the gap becomes the waves' against
    the counting bound of all the moves."""
    added = len(after.moves) - len(before.moves)
    if added == 0:
        return after
    bound = lower_bound([(m.source, m.destination) for m in after.moves], max_parallel,
                        per_host)
    note = (f"{added} moves of relocations added after the {before.solver} plan: the gap is "
            f"now the waves' against the counting bound")
    return replace(after, lower_bound_waves=bound, gap=_wave_gap(len(after.waves), bound),
                   notes=(*after.notes, note))

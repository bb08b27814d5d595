"""The CP-SAT drain planner and solve_drain, against an exhaustive search on tiny fleets.

Every plan is replayed by the independent checker (tests/drainvalidity.py); the exhaustive
search (tests/drainexhaustive.py) decides the most guests any plan moves and the fewest waves.
"""

from __future__ import annotations

import copy
import random

import pytest

from numa_migrate.adapters.ortools_sat import OrToolsModel
from numa_migrate.core.drain.heuristic import KeepFree, plan_drain
from numa_migrate.core.drain.hosts import add_guest
from numa_migrate.core.drain.plan import Plan
from numa_migrate.core.drain.schedule import lower_bound, schedule
from numa_migrate.core.drain.solve import solve_drain
from numa_migrate.core.drain.state import FleetState
from numa_migrate.core.fit.fitter import fit_guest
from numa_migrate.core.model.guest import Guest
from tests.drainexhaustive import min_waves, search
from tests.drainvalidity import violations
from tests.fleetgen import SHAPES, Shape, flavor, generate, make_host, place_all

PINNED = {"hw_cpu_policy": "dedicated"}


def solved(state: FleetState, drain: list[str], solver: str, max_parallel: int = 10,
           per_host: int = 10, *, keep: KeepFree | None = None, limit: float = 10) -> Plan:
    before = copy.deepcopy(state)
    plan = solve_drain(state, drain, max_parallel, per_host, keep, solver=solver,
                       time_limit_s=limit, new_model=OrToolsModel, workers=1)
    assert violations(state, drain, plan, max_parallel, per_host) == []
    assert state == before
    assert plan.gap is not None and 0.0 <= plan.gap <= 1.0
    assert plan.lower_bound_waves is not None and plan.lower_bound_waves <= len(plan.waves)
    return plan


def trap() -> FleetState:
    """Greedy's trap: the hardest guest (4 CPUs) best-fits onto p, the only host with the
    huge pages the other guest needs; q has CPUs but few free pages."""
    small, tiny = SHAPES["small"], SHAPES["tiny1"]
    return place_all(
        [make_host("a", small), make_host("p", tiny), make_host("q", tiny)],
        [("busy", "p", flavor(2, 1024, **PINNED)),
         ("pages", "q", flavor(1, 3584, hw_mem_page_size="2048")),
         ("y", "a", flavor(4, 1024, **PINNED)),
         ("x", "a", flavor(2, 2048, hw_mem_page_size="2048", **PINNED))],
    )


def test_cp_sat_moves_the_guest_the_greedy_leaves_behind() -> None:
    state = trap()
    greedy = plan_drain(state, ["a"], 10, 10)
    assert [u.guest for u in greedy.unplaceable] == ["x"]
    plan = solved(state, ["a"], "cp-sat")
    assert plan.unplaceable == () and plan.solver.startswith("cp-sat")
    assert {m.guest: m.destination for m in plan.moves} == {"y": "q", "x": "p"}
    assert search(state, ["a"], 10, 10).placed == 2
    heuristic = solved(state, ["a"], "heuristic")
    assert heuristic.solver == "heuristic" and len(heuristic.unplaceable) == 1


def test_auto_says_why() -> None:
    plan = solved(trap(), ["a"], "auto")
    assert plan.notes[0].startswith("auto: CP-SAT")
    empty = solved(trap(), ["q"], "auto")
    assert "nothing to move" in " ".join(empty.notes) or empty.moves


DRAINED = Shape("drained", 2, 8, 2, 1, 65_536, 8_192, 0, (4, 4), (0, 0))
MENU: tuple[Guest, ...] = (
    flavor(1, 512, **PINNED), flavor(2, 1024, **PINNED), flavor(3, 1024, **PINNED),
    flavor(4, 2048, **PINNED),
    flavor(2, 2048, hw_mem_page_size="2048", **PINNED),
    flavor(1, 3072, hw_mem_page_size="2048", **PINNED),
    flavor(2, 1024, hw_cpu_thread_policy="require", **PINNED),
    flavor(2, 1024, sriov=True, **PINNED),
    flavor(1, 1024, sriov=True, **PINNED),
    flavor(4, 2048, hw_numa_nodes="2", **PINNED),
    flavor(2, 1024),
)


def tight_fleet(seed: int) -> FleetState:
    """A drained host with 3-5 guests and 2-3 tiny destinations, partly filled."""
    rng = random.Random(seed)
    hosts = [make_host("drained", DRAINED)] + [
        make_host(f"d{i}", SHAPES[rng.choice(["tiny1", "tiny2"])])
        for i in range(rng.randint(2, 3))]
    by_name = {h.name: h for h in hosts}
    guests: list[tuple[str, str, Guest]] = []
    for i, h in enumerate(hosts):
        for j in range(rng.randint(3, 5) if i == 0 else rng.randint(0, 3)):
            g = rng.choice(MENU)
            r = fit_guest(by_name[h.name], g)
            if r.placement is not None:
                by_name[h.name] = add_guest(by_name[h.name], g, r.placement, r.pci_addresses)
                guests.append((f"g{i}{j}", h.name, g))
    return place_all(hosts, guests)


GREEDY_BEHIND = (54, 55, 62, 102, 105, 108, 269, 349)
"""Seeds where the greedy leaves behind a guest that another plan moves (found by a scan)."""


@pytest.mark.parametrize("seed", [*range(40), *GREEDY_BEHIND])
def test_cp_sat_heuristic_and_exhaustive_agree(seed: int) -> None:
    state = tight_fleet(seed)
    drained = ["drained"]
    max_parallel, per_host = 1 + seed % 3, 1 + seed % 2
    best = search(state, drained, max_parallel, per_host)
    heuristic = solved(state, drained, "heuristic", max_parallel, per_host)
    exact = solved(state, drained, "cp-sat", max_parallel, per_host)
    assert len(exact.moves) == best.placed
    assert len(heuristic.moves) <= best.placed
    if not heuristic.unplaceable:  # both complete: the heuristic was right
        assert not exact.unplaceable
    if len(heuristic.moves) == best.placed:
        assert len(exact.waves) <= len(heuristic.waves)
    assert len(exact.waves) == best.waves
    assert exact.solver == "cp-sat (optimal)" and exact.gap == 0.0
    if seed in GREEDY_BEHIND:
        assert len(heuristic.moves) < best.placed


def test_schedule_reaches_the_bound() -> None:
    edges = [("a", "x"), ("a", "y"), ("a", "x"), ("b", "x"), ("b", "y"), ("b", "z"),
             ("c", "z")]
    for max_parallel in (1, 2, 3, 7):
        for per_host in (1, 2, 3):
            waves = schedule(edges, max_parallel, per_host)
            assert len(waves) == lower_bound(edges, max_parallel, per_host) \
                == min_waves(edges, max_parallel, per_host)
            assert sorted(i for w in waves for i in w) == list(range(len(edges)))


@pytest.mark.parametrize("seed", range(300))
def test_schedule_matches_the_exhaustive_fewest_waves(seed: int) -> None:
    rng = random.Random(seed)
    edges = [(rng.choice("abc"), rng.choice("wxyz")) for _ in range(rng.randint(1, 8))]
    max_parallel, per_host = rng.randint(1, 4), rng.randint(1, 3)
    waves = schedule(edges, max_parallel, per_host)
    assert len(waves) == min_waves(edges, max_parallel, per_host)
    for wave in waves:
        assert len(wave) <= max_parallel
        for host in "abcwxyz":
            assert sum(host in edges[i] for i in wave) <= per_host


def test_keep_free_is_kept_by_cp_sat() -> None:
    state = trap()
    plan = solved(state, ["a"], "cp-sat", keep=KeepFree(dedicated_cpus=2))
    # with 2 CPUs kept free on each destination, p takes at most x (2 of 4) and q only y
    # would leave 2 of 6: both still move
    assert {m.guest: m.destination for m in plan.moves} == {"y": "q", "x": "p"}
    # 4 free on p, 6 on q: with 5 kept, p is below the headroom already, q would go below it
    below = solved(state, ["a"], "cp-sat", keep=KeepFree(dedicated_cpus=5))
    assert below.moves == ()
    assert all("the headroom to keep" in u.reason for u in below.unplaceable)
    tight = solved(state, ["a"], "cp-sat", keep=KeepFree(dedicated_cpus=3))
    reasons = {u.guest: u.reason for u in tight.unplaceable}
    assert sorted(reasons) == ["x", "y"]
    assert "keep less than 3 dedicated CPUs" in reasons["y"]


@pytest.mark.parametrize(("seed", "keep"), [(1, None), (2, KeepFree(2, 4096)), (3, None)])
def test_cp_sat_plans_on_generated_fleets_are_valid(seed: int, keep: KeepFree | None) -> None:
    # realistic shapes: 2-socket SMT hosts, 4-node EPYC, 2-cell, isolated emulator, require,
    # SR-IOV guests; the CP-SAT plan is realized by the fitter and replayed by the checker
    state = generate(seed, 12, 160)
    drained = [h.name for h in state.hosts[:2]]
    heuristic = solved(state, drained, "heuristic", 3, 2, keep=keep)
    exact = solved(state, drained, "cp-sat", 3, 2, keep=keep, limit=2)
    assert len(exact.moves) >= len(heuristic.moves)
    assert len(exact.waves) <= len(heuristic.waves) or len(exact.moves) > len(
        heuristic.moves)


def test_same_input_same_plan() -> None:
    state = tight_fleet(GREEDY_BEHIND[0])
    first = solved(state, ["drained"], "cp-sat", 2, 1)
    assert solved(state, ["drained"], "cp-sat", 2, 1) == first


def test_auto_leaves_big_instances_to_the_heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    from numa_migrate.core.drain import solve

    monkeypatch.setattr(solve, "AUTO_MAX_FITS", 1)
    plan = solved(trap(), ["a"], "auto")
    assert plan.solver == "heuristic" and "heuristic only" in plan.notes[0]
    assert len(plan.unplaceable) == 1  # the greedy's trap stays


def test_bad_solver_arguments() -> None:
    with pytest.raises(ValueError, match="solver"):
        solve_drain(trap(), ["a"], 1, 1, solver="gurobi")
    with pytest.raises(ValueError, match="time limit"):
        solve_drain(trap(), ["a"], 1, 1, time_limit_s=0)
    with pytest.raises(ValueError, match="cp-sat needs a CP-SAT model maker"):
        solve_drain(trap(), ["a"], 1, 1, solver="cp-sat")
    alone = solve_drain(trap(), ["a"], 1, 1)  # auto with no solver given: the heuristic
    assert alone.solver == "heuristic" and "no CP-SAT solver given" in alone.notes[0]

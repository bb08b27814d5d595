"""Relocations (core/drain/relocate.py) and smallest-change suggestions (core/drain/suggest.py).

Known answers on small named fleets, then properties on generated fleets (tests/fleetgen.py):
every plan with relocations passes the independent checker (tests/drainvalidity.py),
relocations never leave more guests unplaceable, and a suggested change, applied to the fleet,
really lets the drain complete.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from numa_migrate.core.drain.heuristic import plan_drain
from numa_migrate.core.drain.hosts import remove_guest
from numa_migrate.core.drain.plan import RELOCATE, Move, Plan, Wave
from numa_migrate.core.drain.relocate import relocate
from numa_migrate.core.drain.state import FleetState
from numa_migrate.core.drain.suggest import Planner, empty_like, suggest
from numa_migrate.core.model.host import HostTopology
from tests.drainvalidity import violations
from tests.fleetgen import SHAPES, flavor, generate, make_host, place_all

PINNED = {"hw_cpu_policy": "dedicated"}


def host(name: str, shape: str = "tiny1") -> HostTopology:
    return make_host(name, SHAPES[shape])


def planned(state: FleetState, drain: list[str], max_parallel: int = 10,
            per_host: int = 10) -> Plan:
    """The heuristic plan with relocations, checked; the caller's state unchanged."""
    before = copy.deepcopy(state)
    plan = relocate(state, drain, plan_drain(state, drain, max_parallel, per_host),
                    max_parallel, per_host)
    assert violations(state, drain, plan, max_parallel, per_host) == []
    assert state == before
    return plan


def planner(drain: list[str], max_parallel: int = 10, per_host: int = 10) -> Planner:
    def run(s: FleetState) -> Plan:
        return relocate(s, drain, plan_drain(s, drain, max_parallel, per_host),
                        max_parallel, per_host)
    return run


def relocation_fleet() -> FleetState:
    # tiny1: 6 dedicated CPUs. b and c each hold 4 (two 2-vCPU guests): 2 free each, and the
    # 4-vCPU guest g of a fits nowhere until one 2-vCPU guest of b moves to c.
    return place_all(
        [host("a"), host("b"), host("c")],
        [("g", "a", flavor(4, 2048, **PINNED)),
         ("y1", "b", flavor(2, 1024, **PINNED)), ("y2", "b", flavor(2, 1024, **PINNED)),
         ("x1", "c", flavor(2, 1024, **PINNED)), ("x2", "c", flavor(2, 1024, **PINNED))],
    )


def test_a_guest_fits_only_after_a_relocation() -> None:
    state = relocation_fleet()
    direct = plan_drain(state, ["a"], 10, 10)
    assert [u.guest for u in direct.unplaceable] == ["g"]
    plan = planned(state, ["a"])
    assert plan.unplaceable == ()
    assert [[(m.guest, m.source, m.destination, m.kind) for m in w.moves]
            for w in plan.waves] == [[("y1", "b", "c", "relocate")], [("g", "a", "b", "drain")]]
    assert plan.stat("relocations") == 1


def test_relocations_share_waves_only_on_different_hosts() -> None:
    # two stuck guests, two pairs of staying hosts: both relocations run in one wave
    state = place_all(
        [host("a", "small"), host("b"), host("c"), host("d"), host("e")],
        [("g1", "a", flavor(4, 2048, **PINNED)), ("g2", "a", flavor(4, 2048, **PINNED)),
         *[(f"{h}{i}", h, flavor(2, 1024, **PINNED)) for h in "bcde" for i in (1, 2)]],
    )
    plan = planned(state, ["a"])
    assert plan.unplaceable == ()
    assert [len(w.moves) for w in plan.waves] == [2, 2]
    assert {m.kind for m in plan.waves[0].moves} == {RELOCATE}
    # one move per host per wave: four waves
    plan = planned(state, ["a"], per_host=1)
    assert [len(w.moves) for w in plan.waves] == [1, 1, 1, 1]


def test_no_relocation_when_no_staying_host_has_room() -> None:
    state = place_all(
        [host("a"), host("b")],
        [("g", "a", flavor(4, 2048, **PINNED)),
         ("y1", "b", flavor(2, 1024, **PINNED)), ("y2", "b", flavor(2, 1024, **PINNED))],
    )
    plan = planned(state, ["a"])
    assert [u.guest for u in plan.unplaceable] == ["g"]
    assert plan.stat("relocations") == 0


def test_search_bound_is_reported() -> None:
    state = relocation_fleet()
    base = plan_drain(state, ["a"], 10, 10)
    plan = relocate(state, ["a"], base, 10, 10, max_fit_calls=1)
    assert [u.guest for u in plan.unplaceable] == ["g"]
    assert plan.stat("relocation_search_cut") == 1
    plan = relocate(state, ["a"], base, 10, 10, max_candidates=0)
    assert plan.stat("relocation_search_cut") == 1


def test_checker_catches_bad_relocations() -> None:
    state = relocation_fleet()
    plan = planned(state, ["a"])
    reloc, drain = plan.waves[0].moves[0], plan.waves[1].moves[0]
    # both in one wave: g lands on b before y1 has left
    same_wave = replace(plan, waves=(Wave((reloc, drain)),))
    assert any("not free" in v for v in violations(state, ["a"], same_wave, 10, 10))
    # a relocation onto the drained host
    onto_drained = replace(plan, waves=(Wave((replace(reloc, destination="a"),)),
                                        plan.waves[1]))
    assert any("drained" in v for v in violations(state, ["a"], onto_drained, 10, 10))
    # a drained guest moved twice, the second time as a "relocation"
    twice = replace(plan, waves=(*plan.waves, Wave((Move("g", "b", "c", drain.placement,
                                                         kind=RELOCATE),))))
    assert any("drained host's guest moved as a relocation" in v
               for v in violations(state, ["a"], twice, 10, 10))
    # a staying guest relocated from where it no longer is
    wrong_source = replace(plan, waves=(Wave((replace(reloc, source="c"),)), plan.waves[1]))
    assert any("is not its host" in v for v in violations(state, ["a"], wrong_source, 10, 10))


def test_needs_one_more_host_of_a_shape() -> None:
    # g needs 8 dedicated CPUs on one cell: tiny1 (6) is too small, small (14) is enough
    state = place_all(
        [host("a", "small"), host("b", "small"), host("c")],
        [("g", "a", flavor(8, 4096, **PINNED)), ("big", "b", flavor(10, 4096, **PINNED))],
    )
    plan = suggest(state, ["a"], planned(state, ["a"]), planner(["a"]))
    assert [u.guest for u in plan.unplaceable] == ["g"]
    kinds = {s.kind: s for s in plan.suggestions}
    assert kinds["add-host"].host == "a"  # the smallest shape that works: small (a or b)
    assert "shaped like a" in kinds["add-host"].text
    assert (kinds["free-guest"].guest, kinds["free-guest"].host) == ("big", "b")
    assert "re-planned" in plan.suggestion_note


def test_smallest_host_shape_is_chosen() -> None:
    state = place_all(
        [host("a", "small"), host("b", "small"), host("c")],
        [("g", "a", flavor(6, 4096, **PINNED)), ("big", "b", flavor(12, 4096, **PINNED)),
         ("x1", "c", flavor(2, 1024, **PINNED)), ("x2", "c", flavor(2, 1024, **PINNED))],
    )
    plan = suggest(state, ["a"], planned(state, ["a"]), planner(["a"]))
    assert [u.guest for u in plan.unplaceable] == ["g"]
    (add,) = [s for s in plan.suggestions if s.kind == "add-host"]
    assert add.host == "c"  # tiny1: 6 dedicated CPUs are enough, and it is the smallest


def test_needs_the_smallest_guest_freed() -> None:
    # b (small: 14 dedicated) holds 2 + 8 pinned: 4 free; g needs 6: freeing the 2 is enough
    state = place_all(
        [host("a", "small"), host("b", "small")],
        [("g", "a", flavor(6, 4096, **PINNED)), ("y-small", "b", flavor(2, 1024, **PINNED)),
         ("y-big", "b", flavor(8, 4096, **PINNED))],
    )
    plan = suggest(state, ["a"], planned(state, ["a"]), planner(["a"]))
    (free,) = [s for s in plan.suggestions if s.kind == "free-guest"]
    assert (free.guest, free.host) == ("y-small", "b")


def test_no_suggestion_when_the_bound_is_hit() -> None:
    state = place_all(
        [host("a", "small"), host("b", "small")],
        [("g", "a", flavor(6, 4096, **PINNED)), ("y-small", "b", flavor(2, 1024, **PINNED)),
         ("y-big", "b", flavor(8, 4096, **PINNED))],
    )
    plan = suggest(state, ["a"], planned(state, ["a"]), planner(["a"]),
                   max_shapes=0, max_guests=0)
    assert plan.suggestions == ()
    assert "within the bound (0 host shapes" in plan.suggestion_note
    assert "within the bound (0 re-planned)" in plan.suggestion_note


def test_complete_plan_has_no_suggestions() -> None:
    state = relocation_fleet()
    plan = planned(state, ["a"])
    assert suggest(state, ["a"], plan, planner(["a"])) == plan


def apply(state: FleetState, plan: Plan) -> FleetState:
    """The fleet with the plan's first suggestion applied (a host added or a guest freed)."""
    s = plan.suggestions[0]
    if s.kind == "add-host":
        return replace(state, hosts=(*state.hosts, empty_like(state.host(s.host), "added")))
    (y,) = [g for g in state.guests if g.name == s.guest]
    without = remove_guest(state.host(y.host), y.guest, y.placement, y.pci_devices)
    return FleetState(tuple(without if h.name == y.host else h for h in state.hosts),
                      tuple(g for g in state.guests if g.name != y.name))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    hosts=st.integers(2, 6),
    per_host_guests=st.integers(1, 6),
    load=st.floats(0.5, 1.0),
    drain=st.integers(1, 3),
    max_parallel=st.integers(1, 4),
    per_host=st.integers(1, 3),
)
def test_relocations_are_valid_and_never_worse(
    *, seed: int, hosts: int, per_host_guests: int, load: float, drain: int,
    max_parallel: int, per_host: int,
) -> None:
    state = generate(seed, hosts, hosts * per_host_guests, load,
                     shapes=(("tiny1", 1), ("tiny2", 1)))
    drained = [h.name for h in state.hosts[: min(drain, hosts - 1)]]
    base = plan_drain(state, drained, max_parallel, per_host)
    plan = relocate(state, drained, base, max_parallel, per_host)
    assert violations(state, drained, plan, max_parallel, per_host) == []
    assert len(plan.unplaceable) <= len(base.unplaceable)
    assert plan.waves[: len(base.waves)] == base.waves
    assert len(plan.unplaceable) + plan.stat("relocations") == len(base.unplaceable)
    if plan.unplaceable:
        run = planner(drained, max_parallel, per_host)
        explained = suggest(state, drained, plan, run, max_shapes=2, max_guests=4)
        assert explained.suggestion_note
        for s in explained.suggestions:
            changed = apply(state, replace(explained, suggestions=(s,)))
            after = run(changed)
            assert after.unplaceable == ()
            assert violations(changed, drained, after, max_parallel, per_host) == []


def test_a_request_that_failed_is_not_searched_again() -> None:
    # two identical stuck guests and no room anywhere: the second is skipped
    state = place_all(
        [host("a"), host("b")],
        [("g1", "a", flavor(2, 1024, **PINNED)), ("g2", "a", flavor(2, 1024, **PINNED)),
         ("y", "b", flavor(6, 1024, **PINNED))],
    )
    plan = planned(state, ["a"])
    assert [u.guest for u in plan.unplaceable] == ["g1", "g2"]
    assert plan.stat("relocation_skipped") == 1


def test_one_change_is_searched_only_for_few_stuck_guests() -> None:
    state = place_all(
        [host("a"), host("b")],
        [("g1", "a", flavor(2, 1024, **PINNED)), ("g2", "a", flavor(2, 1024, **PINNED)),
         ("y", "b", flavor(6, 1024, **PINNED))],
    )
    plan = suggest(state, ["a"], planned(state, ["a"]), planner(["a"]), max_stuck=1)
    assert plan.suggestions == ()
    assert plan.suggestion_note.startswith("not searched: 2 guests cannot move")
    # with the search: one more tiny1 host takes both; freeing y (6 CPUs) too
    plan = suggest(state, ["a"], planned(state, ["a"]), planner(["a"]))
    assert {(s.kind, s.host, s.guest) for s in plan.suggestions} == {
        ("add-host", "a", None), ("free-guest", "b", "y")}


def test_relocation_waves_are_shared_as_soon_as_the_hosts_allow() -> None:
    from numa_migrate.core.drain.relocate import _Pair, _waves
    from numa_migrate.core.model.placement import Placement

    none = Placement(())

    def pair(y: str, h: str, z: str, g: str, s: str = "s") -> _Pair:
        return _Pair(Move(y, h, z, none, kind=RELOCATE), Move(g, s, h, none))

    # p2 lands where p1 leaves: a later group; p3 shares p1's destination: p1's group
    pairs = [pair("y1", "h1", "z1", "g1"), pair("y2", "h2", "h1", "g2"),
             pair("y3", "h3", "z1", "g3", "t")]
    waves = _waves(pairs, max_parallel=10, per_host_parallel=2)
    assert [[m.guest for m in w.moves] for w in waves] == [
        ["y1", "y3"], ["g1", "g3"], ["y2"], ["g2"]]
    # one move per host per wave: z1 takes one relocation per wave
    waves = _waves(pairs, max_parallel=10, per_host_parallel=1)
    assert [[m.guest for m in w.moves] for w in waves] == [
        ["y1"], ["g1"], ["y2", "y3"], ["g2", "g3"]]
    # two relocations off one host, and onto one host, share the waves
    waves = _waves([pair("y1", "h1", "z1", "g1"), pair("y2", "h1", "z1", "g2", "t")],
                   max_parallel=10, per_host_parallel=2)
    assert [len(w.moves) for w in waves] == [2, 2]
    # the drained source's limit
    waves = _waves([pair("y1", "h1", "z1", "g1"), pair("y2", "h2", "z2", "g2")],
                   max_parallel=10, per_host_parallel=1)
    assert [len(w.moves) for w in waves] == [1, 1, 1, 1]
    waves = _waves(pairs, max_parallel=1, per_host_parallel=2)
    assert [[m.guest for m in w.moves] for w in waves] == [
        ["y1"], ["g1"], ["y2"], ["g2"], ["y3"], ["g3"]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), hosts=st.integers(4, 8), per_host_guests=st.integers(3, 6),
       max_parallel=st.integers(1, 4), per_host=st.integers(1, 2))
def test_full_fleets_where_relocations_are_common(
    *, seed: int, hosts: int, per_host_guests: int, max_parallel: int, per_host: int,
) -> None:
    # full hosts of three shapes, one drained: some fleets need a relocation (about 5 %)
    state = generate(seed, hosts, hosts * per_host_guests, 1.0,
                     shapes=(("tiny1", 1), ("tiny2", 1), ("small", 1)))
    drained = [state.hosts[0].name]
    base = plan_drain(state, drained, max_parallel, per_host)
    plan = relocate(state, drained, base, max_parallel, per_host)
    assert violations(state, drained, plan, max_parallel, per_host) == []
    assert len(plan.unplaceable) + plan.stat("relocations") == len(base.unplaceable)
    relocated = [m for m in plan.moves if m.kind == RELOCATE]
    event(f"relocations: {bool(relocated)}")
    assert all(m.source not in drained and m.destination not in drained for m in relocated)

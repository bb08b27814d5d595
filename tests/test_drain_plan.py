"""The heuristic drain planner (core/drain) on small named fleets and generated ones.

Every plan is also replayed by the independent checker in tests/drainvalidity.py.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numa_migrate.core.drain.heuristic import KeepFree, plan_drain
from numa_migrate.core.drain.plan import Plan, Wave
from numa_migrate.core.drain.state import FleetState
from numa_migrate.core.fit.fitter import FitOptions, fit_guest
from numa_migrate.core.model.host import HostTopology, PagePool
from numa_migrate.core.pcidevices import take_devices
from numa_migrate.core.usage import apply_placement
from tests.drainvalidity import violations
from tests.fleetgen import SHAPES, Shape, flavor, generate, make_host, place_all

PINNED = {"hw_cpu_policy": "dedicated"}


def host(name: str, shape: str = "tiny1") -> HostTopology:
    return make_host(name, SHAPES[shape])


def checked(state: FleetState, drain: list[str], max_parallel: int = 10,
            per_host: int = 10, keep: KeepFree | None = None) -> Plan:
    before = copy.deepcopy(state)
    plan = plan_drain(state, drain, max_parallel, per_host, keep)
    assert violations(state, drain, plan, max_parallel, per_host) == []
    assert state == before  # the caller's state is not changed
    assert plan.solver == "heuristic"
    return plan


def test_simple_drain_one_wave() -> None:
    state = place_all(
        [host("a"), host("b"), host("c")],
        [("g1", "a", flavor(2, 2048, **PINNED)), ("g2", "a", flavor(2, 2048, **PINNED)),
         ("g3", "b", flavor(2, 2048, **PINNED))],
    )
    plan = checked(state, ["a"])
    assert len(plan.waves) == 1
    assert sorted(m.guest for m in plan.moves) == ["g1", "g2"]
    assert all(m.source == "a" and m.destination in ("b", "c") for m in plan.moves)
    assert plan.unplaceable == ()


def test_best_fit_packs_the_tighter_host() -> None:
    # b already holds 4 of its 6 dedicated CPUs; c is empty: a 2-vCPU guest fills b exactly
    state = place_all(
        [host("a"), host("b"), host("c")],
        [("big", "b", flavor(4, 2048, **PINNED)), ("g", "a", flavor(2, 2048, **PINNED))],
    )
    plan = checked(state, ["a"])
    assert [(m.guest, m.destination) for m in plan.moves] == [("g", "b")]


def test_hardest_guest_moves_first() -> None:
    state = place_all(
        [host("a"), host("b"), host("c")],
        [("small", "a", flavor(2, 1024, **PINNED)), ("large", "a", flavor(4, 4096, **PINNED))],
    )
    plan = checked(state, ["a"], per_host=1)
    assert [[m.guest for m in w.moves] for w in plan.waves] == [["large"], ["small"]]


def test_per_host_limit_needs_two_waves() -> None:
    state = place_all(
        [host("a"), host("b"), host("c")],
        [("g1", "a", flavor(2, 2048, **PINNED)), ("g2", "a", flavor(2, 2048, **PINNED))],
    )
    plan = checked(state, ["a"], per_host=1)
    assert len(plan.waves) == 2
    assert [len(w.moves) for w in plan.waves] == [1, 1]


def test_per_host_limit_on_destinations() -> None:
    # two drained hosts, one destination with room for both: one move per wave onto it
    state = place_all(
        [host("a"), host("b"), host("c", "small")],
        [("g1", "a", flavor(2, 2048, **PINNED)), ("g2", "b", flavor(2, 2048, **PINNED))],
    )
    plan = checked(state, ["a", "b"], per_host=1)
    assert [len(w.moves) for w in plan.waves] == [1, 1]
    assert {m.destination for m in plan.moves} == {"c"}


def test_max_parallel() -> None:
    guests = [(f"g{i}", "a", flavor(1, 512)) for i in range(5)]
    state = place_all([host("a"), host("b", "small"), host("c", "small")], guests)
    plan = checked(state, ["a"], max_parallel=2)
    assert [len(w.moves) for w in plan.waves] == [2, 2, 1]


def test_infeasible_guest_has_the_binding_reason_and_others_still_move() -> None:
    # b (tiny2: 2 cells x 2 dedicated cores x 2 threads) has 4 free dedicated CPUs per cell
    state = place_all(
        [host("a", "small"), host("b", "tiny2")],
        [("wide", "a", flavor(8, 4096, **PINNED)), ("ok", "a", flavor(2, 1024, **PINNED))],
    )
    plan = checked(state, ["a"])
    assert [m.guest for m in plan.moves] == ["ok"]
    (u,) = plan.unplaceable
    assert u.guest == "wide" and u.source == "a"
    assert u.reason == ("needs 8 dedicated CPUs on one cell; the largest free is 4, on b cell 0")
    assert u.host == "b"


def test_no_destination_left() -> None:
    state = place_all([host("a")], [("g", "a", flavor(2, 1024, **PINNED))])
    plan = checked(state, ["a"])
    assert plan.moves == ()
    assert "no host is left" in plan.unplaceable[0].reason


def test_vfs_are_never_taken_twice() -> None:
    # each tiny1 has 2 VFs; b and c hold one each already: one free VF on each
    sriov = flavor(2, 1024, sriov=True, **PINNED)
    state = place_all(
        [host("a", "tiny2"), host("b"), host("c")],
        [("s1", "a", sriov), ("s2", "a", sriov), ("s3", "a", sriov),
         ("hb", "b", flavor(1, 512, sriov=True, **PINNED)),
         ("hc", "c", flavor(1, 512, sriov=True, **PINNED))],
    )
    plan = checked(state, ["a"])
    assert len(plan.moves) == 2
    assert {m.destination for m in plan.moves} == {"b", "c"}
    assert all(len(m.pci_devices) == 1 for m in plan.moves)
    (u,) = plan.unplaceable
    assert "physical_network=physnet1" in u.reason and "the most free is 0" in u.reason


def test_guest_keeps_its_page_size() -> None:
    # the source offers only 2 MiB pages; the destination 1 GiB ones too, which "large" prefers
    big = make_host("b", replace(SHAPES["tiny1"], huge_1g=4))
    guest = flavor(2, 2048, hw_cpu_policy="dedicated", hw_mem_page_size="large")
    state = place_all([host("a"), big], [("g", "a", guest)])
    assert state.guests[0].placement.cells[0].pagesize_kib == 2048
    plan = checked(state, ["a"])
    (m,) = plan.moves
    assert [c.pagesize_kib for c in m.placement.cells] == [2048]


def test_guest_without_numa_request_fits_anywhere() -> None:
    state = place_all([host("a"), host("b")], [("plain", "a", flavor(64, 10**6))])
    plan = checked(state, ["a"])
    (m,) = plan.moves
    assert m.placement.cells == ()


def test_keep_free_headroom() -> None:
    state = place_all([host("a"), host("b")], [("g", "a", flavor(4, 1024, **PINNED))])
    plan = checked(state, ["a"], keep=KeepFree(dedicated_cpus=4))
    assert plan.moves == ()
    assert "headroom" in plan.unplaceable[0].reason


def test_bad_arguments() -> None:
    state = place_all([host("a"), host("b")], [])
    with pytest.raises(ValueError, match="at least 1"):
        plan_drain(state, ["a"], 0, 1)
    with pytest.raises(ValueError, match="not in the fleet"):
        plan_drain(state, ["zz"], 1, 1)


# --- the checker catches broken plans ------------------------------------------------------


def _two_guests() -> tuple[FleetState, Plan]:
    state = place_all(
        [host("a"), host("b"), host("c")],
        [("g1", "a", flavor(2, 2048, **PINNED)), ("g2", "a", flavor(2, 2048, **PINNED))],
    )
    return state, checked(state, ["a"])


def test_checker_catches_cpus_taken_twice_in_a_wave() -> None:
    state, plan = _two_guests()
    m1, m2 = plan.moves
    bad = Plan((Wave((m1, replace(m2, destination=m1.destination, placement=m1.placement))),),
               (), "heuristic")
    found = violations(state, ["a"], bad, 10, 10)
    assert any("are not free" in v for v in found), found


def test_checker_catches_limits_drained_destination_and_missing_guests() -> None:
    state, plan = _two_guests()
    m1, _ = plan.moves
    assert any("more than 1" in v for v in violations(state, ["a"], plan, 1, 10))
    assert any("touch a" in v for v in violations(state, ["a"], plan, 10, 1))
    onto_drained = Plan((Wave((replace(m1, destination="b"),)),), (), "heuristic")
    found = violations(state, ["a", "b"], onto_drained, 10, 10)
    assert any("drained" in v for v in found)
    assert any("g2 of a drained host is moved/listed 0 times" in v for v in found)


def test_checker_catches_a_taken_vf() -> None:
    sriov = flavor(1, 512, sriov=True, **PINNED)
    state = place_all([host("a"), host("b")], [("s", "a", sriov), ("h", "b", sriov)])
    plan = checked(state, ["a"])
    held = state.guests[1].pci_devices
    bad = Plan((Wave((replace(plan.moves[0], pci_devices=held),)),), (), "heuristic")
    assert any("is not free" in v for v in violations(state, ["a"], bad, 10, 10))


# --- properties on generated fleets --------------------------------------------------------

TINY: tuple[tuple[str, int], ...] = (("tiny1", 1), ("tiny2", 1))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    hosts=st.integers(2, 4),
    per_host_guests=st.integers(1, 5),
    load=st.sampled_from([0.5, 0.8, 1.0]),
    drain=st.integers(1, 2),
    max_parallel=st.integers(1, 4),
    per_host=st.integers(1, 3),
)
def test_every_plan_is_valid(*, seed: int, hosts: int, per_host_guests: int, load: float,
                             drain: int, max_parallel: int, per_host: int) -> None:
    state = generate(seed, hosts, hosts * per_host_guests, load, TINY)
    drained = [h.name for h in state.hosts[: min(drain, hosts - 1)]]
    plan = checked(state, drained, max_parallel, per_host)
    moved = {m.guest for m in plan.moves}
    assert moved.isdisjoint(u.guest for u in plan.unplaceable)
    # an unplaceable guest fits no destination once every move is done (the fitter as oracle)
    if plan.unplaceable:
        final = _after_moves(state, plan)
        guests = {g.name: g for g in state.guests}
        for u in plan.unplaceable:
            g = guests[u.guest]
            options = FitOptions(current_pagesize_kib=g.pagesize_kib)
            assert not any(fit_guest(final[h.name], g.guest, options).fits
                           for h in state.hosts if h.name not in drained), u


def _after_moves(state: FleetState, plan: Plan) -> dict[str, HostTopology]:
    hosts = {h.name: h for h in state.hosts}
    guests = {g.name: g for g in state.guests}
    for m in plan.moves:
        numa = guests[m.guest].guest.numa
        h = hosts[m.destination]
        if numa is not None:
            h = apply_placement(h, numa, m.placement)
        hosts[m.destination] = replace(h, pci_devices=take_devices(h.pci_devices,
                                                                   m.pci_devices))
    return hosts


def test_generated_fleet_is_realistic() -> None:
    state = generate(7, 20, 400)
    kinds = {g.guest.name for g in state.guests}
    assert {"shared.2", "pinned.4", "huge.4", "huge.2cell.8", "sriov.4"} <= kinds
    assert len(state.guests) >= 350
    plan = checked(state, ["host-000", "host-001"], 8, 2)
    assert len(plan.moves) + len(plan.unplaceable) == len(state.guests_on("host-000")) + len(
        state.guests_on("host-001"))


def test_shapes_are_whole() -> None:
    for shape in SHAPES.values():
        h = make_host("x", shape)
        assert isinstance(shape, Shape)
        assert len(h.cells) == shape.nodes
        assert all(isinstance(p, PagePool) for c in h.cells for p in c.mempages)


def test_best_fit_key_matches_the_host_after_the_move() -> None:
    """The planner's key, computed from the placement, is the after-move host's own numbers."""
    from numa_migrate.core.drain.heuristic import _best_fit_key, _cell_metrics
    from numa_migrate.core.drain.hosts import add_guest
    from numa_migrate.core.fit.fitter import fit_guest

    state = generate(3, 12, 240, 0.6)
    checked_any = 0
    for g in state.guests:
        for dest in state.hosts[:3]:
            r = fit_guest(dest, g.guest)
            if r.placement is None or g.guest.numa is None:
                continue
            base = tuple(_cell_metrics(c) for c in dest.cells)
            after = add_guest(dest, g.guest, r.placement, ())
            cells = [_cell_metrics(c) for c in after.cells]
            want = (sum(c[0] for c in cells), sum(c[1] for c in cells),
                    sum(c[2] for c in cells), dest.name)
            assert _best_fit_key(dest, base, g.guest, r.placement) == want
            checked_any += 1
    assert checked_any > 100


# --- the bundled sample fleet (fleet file -> drain state) ----------------------------------


@pytest.mark.parametrize("drained", ["cmp-intel-01", "cmp-epyc-01", "cmp-small-01"])
def test_sample_fleet_drains(drained: str) -> None:
    from numa_migrate.adapters.drainstate import fleet_state
    from numa_migrate.adapters.fleet import load_fleet

    state = fleet_state(load_fleet())
    assert any(g.pci_devices for g in state.guests)  # SR-IOV guests hold their VFs
    plan = checked(state, [drained], 2, 1)
    assert len(plan.moves) + len(plan.unplaceable) == len(state.guests_on(drained))
    assert all(u.reason for u in plan.unplaceable)


def test_sample_fleet_reasons() -> None:
    from numa_migrate.adapters.drainstate import fleet_state
    from numa_migrate.adapters.fleet import load_fleet

    state = fleet_state(load_fleet())
    plan = checked(state, ["cmp-epyc-01"], 2, 1)
    reasons = {u.guest: u.reason for u in plan.unplaceable}
    assert reasons["hpc-2"] == ("needs 12 dedicated CPUs on one cell; the largest free is 5, "
                                "on cmp-intel-01 cell 1")
    plan = checked(state, ["cmp-intel-01"], 2, 1)
    reasons = {u.guest: u.reason for u in plan.unplaceable}
    assert reasons["db-1"] == ("needs 16 pages of 1 GiB on one cell (it runs with 1 GiB pages); "
                               "no other host has a free one")


def test_required_vf_stays_on_the_guest_cell_and_checker_sees_a_wrong_one() -> None:
    from numa_migrate.core.model.pcidev import PciNumaPolicy, PciRequest

    required = PciRequest(1, ((("physical_network", "physnet1"),),), PciNumaPolicy.REQUIRED)
    guest = replace(flavor(2, 1024, **PINNED), pci_requests=(required,))
    state = place_all([host("a"), host("b", "tiny2")], [("s", "a", guest)])
    plan = checked(state, ["a"])
    (m,) = plan.moves
    node = {d.address: d.numa_node for d in state.host("b").pci_devices}
    assert node[m.pci_devices[0]] == m.placement.cells[0].host_cell
    other = next(a for a, n in node.items()
                 if n != m.placement.cells[0].host_cell and a.endswith(".0") and ":02." in a)
    bad = Plan((Wave((replace(m, pci_devices=(other,)),)),), (), "heuristic")
    assert any("policy required" in v for v in violations(state, ["a"], bad, 10, 10))
    pf = next(d.address for d in state.host("b").pci_devices if d.dev_type.value == "type-PF")
    bad = Plan((Wave((replace(m, pci_devices=(pf,)),)),), (), "heuristic")
    assert any("matches none" in v for v in violations(state, ["a"], bad, 10, 10))


def test_checker_catches_pages_taken_twice_in_a_wave() -> None:
    # b (tiny1) has 2048 free 2 MiB pages: room for one 3 GiB guest, not two
    huge = flavor(1, 3072, hw_cpu_policy="dedicated", hw_mem_page_size="2048")
    state = place_all([host("a"), host("a2"), host("b")], [("h1", "a", huge), ("h2", "a2", huge)])
    plan = checked(state, ["a", "a2"])
    assert len(plan.moves) == 1 and len(plan.unplaceable) == 1
    assert "pages of 2 MiB" in plan.unplaceable[0].reason
    m = plan.moves[0]
    other = "h2" if m.guest == "h1" else "h1"
    twin = replace(m, guest=other, source="a2" if m.source == "a" else "a")
    bad = Plan((Wave((m, twin)),), (), "heuristic")
    found = violations(state, ["a", "a2"], bad, 10, 10)
    assert any("pages of 2048 KiB" in v for v in found), found


def test_reason_for_needs_that_no_cell_meets_together() -> None:
    # b: VFs only on node 1, whose dedicated CPUs are all pinned; node 0 has CPUs, no VF
    b = make_host("b", replace(SHAPES["tiny2"], vfs_per_node=(0, 2)))
    state = place_all(
        [host("a"), b],
        [("s", "a", flavor(2, 1024, sriov=True, **PINNED)),
         ("full", "b", flavor(4, 1024, sriov=True, **PINNED))],
    )
    assert state.guests[1].placement.cells[0].host_cell == 1
    plan = checked(state, ["a"])
    (u,) = plan.unplaceable
    assert u.reason == (
        "needs 2 free dedicated CPUs, 1024 MiB free, 1 device matching "
        "physical_network=physnet1 on its node or with no node on one host cell: "
        "1 host cell has the CPUs, 1 of those also the memory, none of those also the devices")


def test_reason_counts_the_emulator_thread() -> None:
    emu = flavor(4, 1024, hw_cpu_policy="dedicated", hw_emulator_threads_policy="isolate")
    state = place_all([host("a", "small"), host("b", "tiny2")], [("e", "a", emu)])
    plan = checked(state, ["a"])
    assert plan.unplaceable[0].reason == (
        "needs 5 dedicated CPUs (4 + 1 for emulator threads) on one cell; the largest free "
        "is 4, on b cell 0")

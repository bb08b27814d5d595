"""The fleet after a plan (core/drain/apply.py) and who holds what per cell (occupancy.py)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from numa_migrate.core.drain.apply import state_after
from numa_migrate.core.drain.heuristic import plan_drain
from numa_migrate.core.drain.occupancy import CpuState, HostOccupancy, fleet_occupancy
from numa_migrate.core.drain.plan import Move, Plan, Wave
from numa_migrate.core.drain.state import FleetState
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool
from numa_migrate.core.usage import UsageConflictError
from tests.fleetgen import SHAPES, flavor, generate, make_host, place_all

PINNED = {"hw_cpu_policy": "dedicated"}


def assert_counts_match(state: FleetState, occ: tuple[HostOccupancy, ...]) -> None:
    """Every cell's occupancy adds up to the cell's own used counts, with nothing unknown."""
    assert [o.name for o in occ] == [h.name for h in state.hosts]
    for o, host in zip(occ, state.hosts, strict=True):
        assert o.guests == tuple(g.name for g in state.guests_on(host.name))
        assert o.devices_free == sum(1 for d in host.pci_devices if not d.allocated)
        assert sum(n for _, n in o.devices_by_guest) == \
            sum(1 for d in host.pci_devices if d.allocated)
        for c, cell in zip(o.cells, host.cells, strict=True):
            assert c.id == cell.id
            assert sorted(s.cpu for s in c.cpus) == sorted(cell.cpus)
            assert c.count(CpuState.GUEST) == len(cell.pinned_cpus)
            assert c.count(CpuState.OTHER) == 0
            assert c.count(CpuState.FREE) == len(cell.free_pcpus)
            assert c.memory_used_mib == cell.memory_usage_mib
            assert c.memory_other_mib == 0
            assert sum(n for _, n in c.floating) == cell.cpu_usage
            for use, pool in zip(c.pages, cell.mempages, strict=True):
                assert (use.size_kib, use.total, use.reserved, use.free) == \
                    (pool.size_kib, pool.total, pool.reserved, pool.free)
                assert use.used == pool.used and use.other == 0
            for g in c.guests:
                assert state.guests_on(host.name) and g in o.guests


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_after_a_valid_plan_drained_hosts_are_empty_and_counts_match(seed: int) -> None:
    state = generate(seed, 12, 120, 0.5)
    drained = [state.hosts[0].name, state.hosts[1].name]
    plan = plan_drain(state, drained, 4, 2)
    before = copy.deepcopy(state)
    after = state_after(state, plan)
    assert state == before  # not changed
    assert_counts_match(state, fleet_occupancy(state))
    assert_counts_match(after, fleet_occupancy(after))
    stuck = {u.guest for u in plan.unplaceable}
    for name in drained:
        assert {g.name for g in after.guests_on(name)} == \
            {g.name for g in state.guests_on(name)} & stuck
    moves = {m.guest: m for m in plan.moves}
    for g in after.guests:
        m = moves.get(g.name)
        if m is not None:
            assert (g.host, g.placement, g.pci_devices) == \
                (m.destination, m.placement, m.pci_devices)
    assert len(after.guests) == len(state.guests)


def test_a_complete_drain_leaves_the_host_with_no_usage() -> None:
    state = place_all(
        [make_host("a", SHAPES["tiny1"]), make_host("b", SHAPES["tiny2"]),
         make_host("c", SHAPES["tiny1"])],
        [("g1", "a", flavor(2, 2048, **PINNED)), ("g2", "a", flavor(1, 1024)),
         ("g3", "a", flavor(1, 1024, sriov=True, **PINNED))],
    )
    plan = plan_drain(state, ["a"], 10, 10)
    assert not plan.unplaceable
    after = state_after(state, plan)
    a = after.host("a")
    assert after.guests_on("a") == ()
    assert all(not c.pinned_cpus and c.memory_usage_mib == 0 and c.cpu_usage == 0
               and all(p.used == 0 for p in c.mempages) for c in a.cells)
    assert not any(d.allocated for d in a.pci_devices)
    (occ,) = fleet_occupancy(after, ["a"])
    assert all(s.state is CpuState.FREE or s.state is CpuState.SHARED
               for c in occ.cells for s in c.cpus)


def test_state_after_refuses_a_plan_that_does_not_fit_the_state() -> None:
    state = place_all([make_host("a", SHAPES["tiny1"]), make_host("b", SHAPES["tiny1"])],
                      [("g1", "a", flavor(2, 2048, **PINNED))])
    plan = plan_drain(state, ["a"], 1, 1)
    (m,) = plan.moves

    def with_move(move: Move) -> Plan:
        return replace(plan, waves=(Wave((move,)),))

    with pytest.raises(ValueError, match="not in the fleet"):
        state_after(state, with_move(replace(m, guest="ghost")))
    with pytest.raises(ValueError, match="runs on 'a'"):
        state_after(state, with_move(replace(m, source="b")))
    with pytest.raises(ValueError, match="'nowhere', which is not in the fleet"):
        state_after(state, with_move(replace(m, destination="nowhere")))
    with pytest.raises(ValueError, match="twice"):
        state_after(state, replace(plan, waves=(Wave((m,)), Wave((m,)))))
    # the move's CPUs taken on the destination by another guest first
    other = place_all([make_host("a", SHAPES["tiny1"]), make_host("b", SHAPES["tiny1"])],
                      [("g1", "a", flavor(2, 2048, **PINNED)),
                       ("g2", "b", flavor(2, 2048, **PINNED))])
    clash = replace(m, placement=other.guests[1].placement)
    with pytest.raises(UsageConflictError):
        state_after(other, with_move(clash))


def test_cpus_in_smt_order_with_every_state_and_the_owner() -> None:
    # cores (0,4) (1,5) (2,6) (3,7): 0,4 shared; 3,7 in no pool (the host's); 1,5,2,6 dedicated
    cell = HostCell(0, frozenset({0, 4}), frozenset({1, 5, 2, 6}), 8192,
                    siblings=(frozenset({0, 4}), frozenset({1, 5}), frozenset({2, 6}),
                              frozenset({3, 7})),
                    mempages=(PagePool(4, 8192 * 256 - 600 * 512), PagePool(2048, 600, 0, 8)))
    state = place_all([HostTopology("h", (cell,))],
                      [("iso", "h", flavor(1, 1024, hw_cpu_policy="dedicated",
                                           hw_emulator_threads_policy="isolate",
                                           hw_mem_page_size="2048")),
                       ("float", "h", flavor(2, 1024, hw_numa_nodes="1"))])
    (occ,) = fleet_occupancy(state)
    (c,) = occ.cells
    assert c.cores == ((0, 4), (1, 5), (2, 6), (3, 7))
    assert [s.cpu for s in c.cpus] == [0, 4, 1, 5, 2, 6, 3, 7]
    states = {s.cpu: (s.state, s.owner) for s in c.cpus}
    assert states[0] == states[4] == (CpuState.SHARED, None)
    assert states[3] == states[7] == (CpuState.RESERVED, None)
    iso = [cpu for cpu, (st, owner) in states.items() if owner == "iso"]
    assert len(iso) == 2  # its vCPU and its emulator thread's CPU
    assert c.floating == (("float", 2),)
    (small, huge) = c.pages
    assert huge.by_guest == (("iso", 512),) and huge.reserved == 8 and huge.free == 80
    assert small.by_guest == (("float", 1024 * 256),)
    assert c.memory_by_guest == (("iso", 1024), ("float", 1024))
    assert c.guests == ("iso", "float")


def test_usage_from_no_guest_of_the_fleet_is_counted_as_other() -> None:
    cell = make_host("h", SHAPES["tiny1"]).cells[0]
    busy = cell.with_usage(pinned=frozenset({2}), memory_mib=512, pages=((4, 1000),))
    (occ,) = fleet_occupancy(FleetState((HostTopology("h", (busy,)),), ()))
    (c,) = occ.cells
    assert [s.cpu for s in c.cpus if s.state is CpuState.OTHER] == [2]
    assert c.memory_other_mib == 512 and c.pages[0].other == 1000
    assert occ.guests == ()


@pytest.mark.parametrize("drained", ["cmp-intel-01", "cmp-epyc-01", "cmp-small-01"])
def test_sample_fleet_counts_match_before_and_after(drained: str) -> None:
    # ci-runner-1 is "isolate" on a legacy host: its whole cores are its own
    from numa_migrate.adapters.drainstate import fleet_state
    from numa_migrate.adapters.fleet import load_fleet

    state = fleet_state(load_fleet())
    assert_counts_match(state, fleet_occupancy(state))
    after = state_after(state, plan_drain(state, [drained], 2, 1))
    assert_counts_match(after, fleet_occupancy(after))
    (small,) = fleet_occupancy(state, ["cmp-small-01"])
    runner = [s.cpu for s in small.cells[0].cpus if s.owner == "ci-runner-1"]
    assert len(runner) == 4  # 2 vCPUs, each with its sibling

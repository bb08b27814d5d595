"""The engine's move runner of a drain (migrate/drainmove.py) on in-memory hosts: real
Migrations through the hypervisor seam, a real SQLite claims store, the wave runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.inventory import parse_inventory
from numa_migrate.claims import ClaimStore
from numa_migrate.core.drain.planfile import DrainPlanFile, PlannedMove
from numa_migrate.hypervisor.base import Hypervisor, MigrateOptions
from numa_migrate.hypervisor.memory import MemoryHost
from numa_migrate.migrate.drainmove import EngineMoves, placement_note
from numa_migrate.migrate.drainrun import MoveState, run_plan
from numa_migrate.migrate.hosts import Hosts
from numa_migrate.migrate.run import HostRef
from tests.test_hypervisor import CAPS, guest_xml

GUESTS = ("g1", "g2", "g3")


@pytest.fixture
def world(tmp_path: Path) -> dict[str, object]:
    src, dst = MemoryHost("src", CAPS), MemoryHost("dst", CAPS)
    for name in GUESTS:
        src.add(guest_xml(name))
    inventory = parse_inventory(
        f'[hosts.src]\nuri = "{src.uri}"\ncpu_dedicated_set = "2-39"\n'
        f'[hosts.dst]\nuri = "{dst.uri}"\ncpu_dedicated_set = "2-39"\n')
    return {"src": src, "dst": dst, "hosts": Hosts(inventory),
            "db": f"sqlite:///{tmp_path / 'claims.db'}"}


def moves_of(world: dict[str, object]) -> EngineMoves:
    hosts = {"src": world["src"], "dst": world["dst"]}

    def connect(ref: HostRef) -> Hypervisor:
        host = hosts[ref.name]
        assert isinstance(host, MemoryHost)
        return host

    store = ClaimStore.open(str(world["db"]))
    hosts_obj = world["hosts"]
    assert isinstance(hosts_obj, Hosts)
    return EngineMoves(store, hosts_obj, MigrateOptions(), connect=connect)


def one_wave(*guests: str) -> DrainPlanFile:
    moves = tuple(PlannedMove(i, 1, g, "src", "dst") for i, g in enumerate(guests, 1))
    return DrainPlanFile("drain-00000000000000aa", ("src",), (moves,), (), "test", "now")


def test_parallel_moves_to_one_host_plan_in_turn(world: dict[str, object]) -> None:
    engine = moves_of(world)
    phases: list[tuple[str, str]] = []
    engine.on_phase = lambda move, name, _msg: phases.append((move.guest, name))
    report = run_plan(one_wave(*GUESTS), engine, store=engine.store)
    assert [r.state for r in report.moves] == [MoveState.DONE] * 3, report.moves
    # planned one after the other: no claim was lost to a parallel move
    assert all(r.notes and "lost its claim" not in r.notes[0] for r in report.moves)
    dst = world["dst"]
    assert isinstance(dst, MemoryHost)
    pinned: list[int] = []
    for name in GUESTS:
        dom = dst.lookup(name)
        assert dom is not None and dom.is_active()
        pinned += [c for _, cs in domain_from_xml(dom.xml()).vcpupin for c in cs]
    assert len(pinned) == 6 and len(set(pinned)) == 6, f"a CPU given twice: {pinned}"
    assert {g for g, p in phases if p == "migrated"} == set(GUESTS)
    # ... in the plan's order
    assert [g for g, p in phases if p == "planned"] == list(GUESTS)
    engine.store.close()


def test_a_guest_already_on_its_destination_is_skipped(world: dict[str, object]) -> None:
    src, dst = world["src"], world["dst"]
    assert isinstance(src, MemoryHost) and isinstance(dst, MemoryHost)
    dst.add(guest_xml("g9"))
    engine = moves_of(world)
    report = run_plan(one_wave("g9", "nope"), engine, store=engine.store)
    assert [(r.state, r.reason) for r in report.moves] == [
        (MoveState.SKIPPED, "g9 already runs on dst"),
        (MoveState.FAILED, "nope runs neither on src nor on dst; nothing was changed")]
    assert report.exit_code == 1
    engine.store.close()


def test_placement_note() -> None:
    move = PlannedMove(1, 1, "g", "src", "dst", ((0, 4), (1, 5)))
    assert placement_note(move, {0: [4], 1: [5]}) == ""
    assert placement_note(move, {0: [6], 1: [7]}).startswith(
        "pinned on CPUs 6-7 of dst instead of the planned 4-5")
    assert placement_note(PlannedMove(1, 1, "g", "s", "d"), {0: [1]}) == ""

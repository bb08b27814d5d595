"""``drain --cloud`` and the Nova move runner on answers recorded from the lab's real
OpenStack (Zed) by ``python -m tests.openstack.record_drain``: Nova's answers as they came,
and both lab hosts' libvirt state at the time. Nothing here is written by hand; the
end-to-end test in tests/openstack/test_cloud_drain.py runs the same paths on the live
cloud."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.adapters.drainstate import fleet_state
from numa_migrate.adapters.fleet import Fleet
from numa_migrate.adapters.inventory_live import read_live_host
from numa_migrate.cloud.computes import ComputeMap
from numa_migrate.cloud.drainmoves import run_cloud_move
from numa_migrate.cloud.fleet import cloud_fleet
from numa_migrate.cloud.record import ReplayApi
from numa_migrate.core.drain import plan_drain
from numa_migrate.hypervisor.base import DomainState
from numa_migrate.hypervisor.memory import MemoryHost
from tests.test_cloud_replay import lab_inventory

FIXTURES = Path(__file__).parent / "fixtures" / "openstack-drain"


def replay(name: str) -> ReplayApi:
    return ReplayApi.load(FIXTURES / f"{name}.jsonl", name="numa-migrate-lab")


def computes(name: str, *, without: str | None = None) -> ComputeMap:
    """The lab's computes as libvirt showed them when ``name`` was recorded (``without`` the
    domain of that UUID)."""
    state: dict[str, Any] = json.loads((FIXTURES / f"{name}.libvirt.json").read_text())
    hosts = {}
    for host, seen in state.items():
        memory = MemoryHost(host, seen["capabilities"])
        for dom in seen["domains"]:
            if without is not None and f"<uuid>{without}</uuid>" in dom["xml"]:
                continue
            memory.add(dom["xml"], persistent=dom["persistent_xml"] is not None,
                       state=DomainState.RUNNING if dom["active"] else DomainState.SHUTOFF)
        hosts[host] = memory
    return ComputeMap(lab_inventory(),
                      reader=lambda cfg: read_live_host(cfg, conn=hosts[cfg.name]))


def server_id(name: str) -> str:
    """The drained server's id: the first server whose topology the move read."""
    for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines():
        path = json.loads(line)["path"]
        if path.startswith("/servers/") and "?" not in path:
            return str(path.split("/")[2])
    raise AssertionError(f"no server request in {name}")


def fleet(name: str) -> Fleet:
    return cloud_fleet(replay(name), computes(name))


def test_cloud_fleet_reads_servers_with_their_real_placement() -> None:
    found = fleet("drain")
    assert found.source == "cloud numa-migrate-lab"
    assert [h.name for h in found.hosts] == ["lab-dst", "lab-src"]
    (guest,) = found.guests
    assert guest.name == "rec-drain" and guest.host == "lab-src"
    assert guest.uuid == server_id("move-done")
    numa = guest.guest.numa
    assert numa is not None and numa.pinned  # from the flavor's hw:cpu_policy=dedicated
    (cell,) = guest.placement.cells
    assert cell.pinning == ((0, 1),)  # lab-src dedicates CPU 1: read from the domain's XML
    assert (cell.host_cell, cell.pagesize_kib, cell.memory_mib) == (0, 2048, 64)
    assert not any("server topology" in n for n in found.notes), found.notes
    # the compute shows the server's usage: its one dedicated CPU is taken
    src = found.host("lab-src")
    assert all(not c.free_pcpus for c in src.cells)


def test_drain_plan_on_the_cloud_moves_the_server_to_the_other_compute() -> None:
    found = fleet("drain")
    plan = plan_drain(fleet_state(found), ("lab-src",), 4, 2, None)
    assert not plan.unplaceable
    (move,) = plan.moves
    assert (move.guest, move.source, move.destination) == ("rec-drain", "lab-src", "lab-dst")
    (cell,) = move.placement.cells
    assert cell.pinning == ((0, 0),) and cell.pagesize_kib == 2048


def test_server_libvirt_does_not_show_is_placed_by_nova_topology_and_counted() -> None:
    """The drain's recorded answers, Nova's recorded topology of the same server (from the
    move's recording), and the compute's libvirt without its domain: the placement is
    Nova's, said in a note, and its dedicated CPU still counts as used on the compute."""
    sid = server_id("move-done")
    exchanges = [json.loads(line) for line in (FIXTURES / "drain.jsonl").read_text()
                 .splitlines()]
    exchanges.append(next(
        e for e in map(json.loads, (FIXTURES / "move-done.jsonl").read_text().splitlines())
        if e["path"] == f"/servers/{sid}/topology"))
    found = cloud_fleet(ReplayApi(exchanges), computes("drain", without=sid))
    (guest,) = found.guests
    assert guest.placement.cells[0].pinning == ((0, 1),)
    assert any("not found on lab-src" in n and "Nova's server topology" in n
               for n in found.notes), found.notes
    assert all(not c.free_pcpus for c in found.host("lab-src").cells)
    plan = plan_drain(fleet_state(found), ("lab-src",), 4, 2, None)
    assert [m.destination for m in plan.moves] == ["lab-dst"]


def test_blocked_compute_leaves_the_server_unplaceable_with_the_reason() -> None:
    found = fleet("drain-blocked")
    assert {(g.name, g.host) for g in found.guests} == {
        ("rec-drain", "lab-src"), ("rec-drain-blocker", "lab-dst")}
    blocker = next(g for g in found.guests if g.name == "rec-drain-blocker")
    assert blocker.placement.cells[0].pinning == ((0, 0),)
    plan = plan_drain(fleet_state(found), ("lab-src",), 4, 2, None)
    assert not plan.moves
    (stuck,) = plan.unplaceable
    assert stuck.guest == "rec-drain" and "dedicated" in stuck.reason


def test_move_our_checks_refuse_never_reaches_nova() -> None:
    api = replay("move-refused")
    outcome = run_cloud_move(api, computes("drain-blocked"), server_id("move-refused"),
                             "lab-src", "lab-dst")
    assert outcome.state == "failed" and not outcome.done
    assert outcome.rolled_back and outcome.nova_outcome == ""
    assert "does not fit on lab-dst" in outcome.reason
    assert "check" in outcome.timings
    assert not [k for k, _ in api.sent if k[1] == "POST"]  # Nova was not asked


def test_move_already_done_is_skipped() -> None:
    api = replay("move-again")
    outcome = run_cloud_move(api, computes("drain"), server_id("move-again"), "lab-src",
                             "lab-dst")
    assert outcome.state == "skipped" and outcome.done
    assert "already runs on lab-dst" in outcome.reason
    assert [k[1] for k, _ in api.sent] == ["GET"]


def test_move_on_a_third_compute_is_refused_without_asking_nova() -> None:
    api = replay("move-again")  # the server runs on lab-dst: a move from lab-src to a
    outcome = run_cloud_move(api, computes("drain"), server_id("move-again"), "lab-src",
                             "cmp-9")  # third compute finds it on neither
    assert outcome.state == "failed" and "not on lab-src" in outcome.reason
    assert not outcome.rolled_back


def test_recorded_move_asked_nova_for_the_planned_host_never_forced() -> None:
    exchanges = [json.loads(line) for line in
                 (FIXTURES / "move-done.jsonl").read_text().splitlines()]
    (post,) = [e for e in exchanges if e["method"] == "POST"]
    assert post["request"] == {"os-migrateLive": {"host": "lab-dst",
                                                  "block_migration": "auto"}}
    statuses = [e["body"]["migrations"][0]["status"] for e in exchanges
                if e["path"].startswith("/os-migrations") and e["body"]["migrations"]]
    assert statuses[-1] == "completed"


@pytest.mark.parametrize("name", ["drain", "drain-blocked"])
def test_drain_cli_recording_has_the_servers_listed_per_compute(name: str) -> None:
    paths = [json.loads(line)["path"] for line in
             (FIXTURES / f"{name}.jsonl").read_text().splitlines()]
    assert {p for p in paths if p.startswith("/servers/detail?host=")} == {
        "/servers/detail?host=lab-dst&all_tenants=1",
        "/servers/detail?host=lab-src&all_tenants=1"}

"""Running a cloud's drain plan: the wave runner with the Nova move runner
(:class:`numa_migrate.cloud.drainrunner.NovaMoves`) on answers recorded from the lab's real
OpenStack (tests/fixtures/openstack-drain, by ``python -m tests.openstack.record_drain``),
cloud plan files, and ``plan run --cloud``'s refusals. The same paths run on the live cloud
in tests/openstack/test_cloud_drain.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.adapters.inventory_live import read_live_host
from numa_migrate.cloud.computes import ComputeMap
from numa_migrate.cloud.drainmoves import CloudMoveOutcome
from numa_migrate.cloud.drainrunner import NovaMoves, move_report
from numa_migrate.cloud.record import ReplayApi
from numa_migrate.core.drain.planfile import DrainPlanFile, PlannedMove, plan_document
from numa_migrate.hypervisor.base import DomainState
from numa_migrate.hypervisor.memory import MemoryHost
from numa_migrate.inputs.drainplans import DrainPlanError, read_drain_plan
from numa_migrate.migrate.drainrun import MoveState, run_plan
from tests.test_cloud_drain_replay import FIXTURES, computes, replay, server_id
from tests.test_cloud_replay import lab_inventory

SERVER = "rec-drain"


def plan_of(*waves: tuple[PlannedMove, ...], servers: dict[str, str]) -> DrainPlanFile:
    return DrainPlanFile("drain-0123456789abcdef", ("lab-src",), waves, (), "numa-migrate-lab",
                         "2026-12-04T17:00:00+00:00", "test", "cloud", tuple(servers.items()))


def move(index: int, wave: int, guest: str = SERVER) -> PlannedMove:
    return PlannedMove(index, wave, guest, "lab-src", "lab-dst", ((0, 0),), (0,))


def computes_around_the_move(api: ReplayApi) -> ComputeMap:
    """The lab's libvirt as recorded before Nova's move (the drain's state) until the
    live-migration request was sent, then as recorded after it."""
    before = hosts_of("drain")
    after = hosts_of("move-done")

    def read(cfg: Any) -> Any:
        moved = any(k[1] == "POST" for k, _ in api.sent)
        return read_live_host(cfg, conn=(after if moved else before)[cfg.name])

    return ComputeMap(lab_inventory(), reader=read)


def hosts_of(name: str) -> dict[str, MemoryHost]:
    """Both lab hosts' libvirt as ``name``'s recording saved it."""
    state: dict[str, Any] = json.loads((FIXTURES / f"{name}.libvirt.json").read_text())
    hosts = {}
    for host, seen in state.items():
        memory = MemoryHost(host, seen["capabilities"])
        for dom in seen["domains"]:
            memory.add(dom["xml"], persistent=dom["persistent_xml"] is not None,
                       state=DomainState.RUNNING if dom["active"] else DomainState.SHUTOFF)
        hosts[host] = memory
    return hosts


def test_a_planned_move_runs_through_nova_and_passes_the_validation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole move on the recorded answers: our checks on the lab as it was before,
    Nova's migration as it answered, and the validation on lab-dst's libvirt as recorded
    after Nova's move (the domain's live and persistent XML)."""
    import contextlib

    from numa_migrate.adapters import validate_live

    after = hosts_of("move-done")

    @contextlib.contextmanager
    def recorded(config: Any) -> Any:
        yield after[config.name]

    monkeypatch.setattr(validate_live, "open_connection", recorded)
    api = replay("move-done")
    sid = server_id("move-done")
    moves = NovaMoves(api, computes_around_the_move(api), {SERVER: sid}, poll_s=0.0)
    report = run_plan(plan_of((move(1, 1),), servers={}), moves)
    (only,) = report.moves
    assert only.state is MoveState.DONE, only
    assert only.pins == ((0, (0,)),) and not only.placement_note  # the planned CPU 0
    assert report.exit_code == 0 and report.all_moved
    (post,) = [b for k, b in api.sent if k[1] == "POST"]
    assert post == {"os-migrateLive": {"host": "lab-dst", "block_migration": "auto"}}
    outcome = moves.outcomes[1]
    assert outcome.nova_outcome == "completed" and not outcome.failed_checks
    assert set(outcome.timings) == {"check", "nova", "validate"}
    assert any(n.startswith(f"server {sid}: check") for n in only.notes)


def test_a_server_already_on_its_planned_host_is_skipped_and_nothing_is_journalled() -> None:
    api = replay("move-again")
    moves = NovaMoves(api, computes("drain"), {SERVER: server_id("move-again")})
    report = run_plan(plan_of((move(1, 1),), servers={}), moves)
    (only,) = report.moves
    assert only.state is MoveState.SKIPPED and "already runs on lab-dst" in only.reason
    assert only.migration_id is None  # Nova keeps the record: no journal name
    assert report.exit_code == 0 and report.all_moved
    assert [k[1] for k, _ in api.sent] == ["GET"]  # one look at the server, no migration
    assert moves.outcomes[1].state == "skipped"


def test_a_refused_move_is_rolled_back_and_stops_the_later_waves() -> None:
    """Our checks refuse the planned host (its one dedicated CPU is taken): Nova is not
    asked, the server stays on its source, the run stops after the wave: exit 3."""
    api = replay("move-refused")
    moves = NovaMoves(api, computes("drain-blocked"),
                      {SERVER: server_id("move-refused"), "other": "never-asked"})
    report = run_plan(plan_of((move(1, 1),), (move(2, 2, "other"),), servers={}), moves)
    first, second = report.moves
    assert first.state is MoveState.FAILED and first.rolled_back
    assert "does not fit on lab-dst" in first.reason
    assert second.state is MoveState.NOT_RUN and "wave 1" in second.reason
    assert report.stopped_after_wave == 1 and report.exit_code == 3
    assert not [k for k, _ in api.sent if k[1] == "POST"]
    assert not [k for k, _ in api.sent if "never-asked" in k[2]]


def test_a_guest_without_a_server_id_fails_without_asking_nova() -> None:
    api = replay("move-again")
    report = run_plan(plan_of((move(1, 1, "ghost"),), servers={}),
                      NovaMoves(api, computes("drain"), {}))
    (only,) = report.moves
    assert only.state is MoveState.FAILED and not only.rolled_back
    assert "no Nova server id for ghost" in only.reason
    assert report.exit_code == 1 and not api.sent


def test_move_report_keeps_nova_pins_and_says_where_they_differ_from_the_plan() -> None:
    planned = move(1, 1)
    outcome = CloudMoveOutcome(
        "sid", SERVER, "lab-src", "lab-dst", "done", seconds=12.0,
        timings={"check": 1.0, "nova": 9.5, "validate": 0.5}, nova_outcome="completed",
        pins=((0, 3),), notes=("Nova completed the live migration",
                               "Nova pinned CPUs 3, the plan CPUs 0: Nova chooses the pins"))
    report = move_report(planned, outcome)
    assert report.state is MoveState.DONE and report.pins == ((0, (3,)),)
    assert report.placement_note.startswith("Nova pinned CPUs 3")
    assert report.notes == ("Nova completed the live migration",
                            "server sid: check 1.0 s, nova 9.5 s, validate 0.5 s")
    failed = move_report(planned, CloudMoveOutcome(
        "sid", SERVER, "lab-src", "lab-dst", "failed", "Nova: error", rolled_back=False))
    assert failed.state is MoveState.FAILED and not failed.rolled_back


# ------------------------------------------------------------------------ cloud plan files


def cloud_document(servers: Any, kind: str = "cloud") -> dict[str, Any]:
    doc = {"drain": ["lab-src"], "solver": "heuristic", "waves": [{"wave": 1, "moves": [
        {"guest": SERVER, "kind": "drain", "source": "lab-src", "destination": "lab-dst",
         "cells": [{"guest_cell": 0, "host_cell": 0, "vcpus": [0], "memory_mib": 64,
                    "pagesize_kib": 2048, "cpu_pinning": {"0": 0}}]}]}],
        "unplaceable": [], "fleet": "cloud numa-migrate-lab"}
    if servers is not None:
        doc["servers"] = servers
    return plan_document(doc, kind=kind, source="numa-migrate-lab",
                         planned_at="2026-12-04T17:00:00+00:00")


def test_cloud_plan_file_reads_back_with_its_cloud_and_servers() -> None:
    plan = read_drain_plan(cloud_document({SERVER: "abc-123"}))
    assert plan.cloud == "numa-migrate-lab" and plan.planned_kind == "cloud"
    assert plan.servers == ((SERVER, "abc-123"),)
    assert plan.moves[0].pins == ((0, 0),)


@pytest.mark.parametrize(("servers", "kind", "message"), [
    (None, "cloud", "servers is missing"),
    ({"someone-else": "x"}, "cloud", "no Nova server id for rec-drain"),
    ({SERVER: ""}, "cloud", "servers.rec-drain"),
    ({SERVER: "abc"}, "fleet", 'goes with planned_from.kind "cloud"'),
])
def test_cloud_plan_file_errors_name_the_field(servers: Any, kind: str, message: str) -> None:
    with pytest.raises(DrainPlanError, match=message.replace(".", r"\.")):
        read_drain_plan(cloud_document(servers, kind))


# ------------------------------------------------------------------------ plan run --cloud


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "numa_migrate", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_plan_run_refuses_another_cloud_and_a_cloud_for_a_libvirt_plan(
        tmp_path: Path) -> None:
    plan = tmp_path / "cloud.json"
    plan.write_text(json.dumps(cloud_document({SERVER: "abc-123"})))
    done = run_cli("plan", "run", str(plan), "--cloud", "another")
    assert done.returncode == 2, done.stderr
    assert "made on cloud 'numa-migrate-lab'" in done.stderr and "Traceback" not in done.stderr
    libvirt = tmp_path / "libvirt.json"
    done = run_cli("drain", "cmp-intel-01", "--save", str(libvirt), "--json")
    assert done.returncode in (0, 1) and libvirt.exists(), done.stderr
    done = run_cli("plan", "run", str(libvirt), "--cloud", "numa-migrate-lab")
    assert done.returncode == 2 and "not on a cloud: give no --cloud" in done.stderr
    done = run_cli("plan", "run", str(libvirt), "--uri-template", "qemu+ssh://{host}/system")
    assert done.returncode == 2 and "go with a cloud's plan" in done.stderr


def test_plan_run_of_a_cloud_that_cannot_be_reached_is_exit_4(tmp_path: Path) -> None:
    document = cloud_document({SERVER: "abc-123"})
    document = plan_document({k: v for k, v in document.items() if k not in (
        "plan_id", "format", "version", "planned_from", "planned_at")}, kind="cloud",
        source="nowhere", planned_at="2026-12-04T17:00:00+00:00")
    plan = tmp_path / "cloud.json"
    plan.write_text(json.dumps(document))
    done = run_cli("plan", "run", str(plan), "--json")
    assert done.returncode == 4, done.stderr
    assert "cloud nowhere" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


CASES = {"skipped": ("move-again", "drain", 0), "failed": ("move-refused", "drain-blocked", 3)}


@pytest.mark.parametrize("outcome", sorted(CASES))
@pytest.mark.parametrize("as_json", [True, False])
def test_plan_run_of_a_cloud_plan_on_recorded_answers(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, outcome: str, as_json: bool) -> None:
    """`plan run FILE` of a cloud's plan, in process, the cloud being the recorded one:
    the report (JSON or the progress display and table) and the exit code."""
    from click.testing import CliRunner

    from numa_migrate.cli.cloud import CloudTarget
    from numa_migrate.cli.main import cli

    recording, lab, code = CASES[outcome]
    monkeypatch.setattr(CloudTarget, "api", lambda self: replay(recording))
    monkeypatch.setattr(CloudTarget, "computes", lambda self: computes(lab))
    plan = tmp_path / "cloud.json"
    plan.write_text(json.dumps(cloud_document({SERVER: server_id(recording)})))
    args = ["plan", "run", str(plan), "--cloud", "numa-migrate-lab"]
    result = CliRunner().invoke(cli, args + (["--json"] if as_json else []))
    assert result.exit_code == code, result.output
    if as_json:
        report = json.loads(result.stdout)
        (only,) = report["moves"]
        assert only["outcome"] == outcome and only["rolled_back"] is (code == 3)
        assert report["complete"] is (code == 0) and report["recovered"] == []
    else:
        assert f"{SERVER}: lab-src → lab-dst {outcome}" in result.output  # progress line
        assert "1 moves in" in result.stdout and f": 1 {outcome}" in result.stdout

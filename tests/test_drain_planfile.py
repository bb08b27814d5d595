"""Drain plan files: `drain --save` writes them, the loader reads them back or refuses
them with one line naming the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.core.drain.planfile import plan_document, plan_id
from numa_migrate.inputs.drainplans import DrainPlanError, load_drain_plan, read_drain_plan


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "numa_migrate", *args], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("plan") / "drain.json"
    done = run_cli("drain", "cmp-intel-01", "--save", str(path), "--json")
    assert done.returncode in (0, 1), done.stderr
    return path, json.loads(done.stdout)


def test_saved_plan_reads_back(saved: tuple[Path, dict[str, Any]]) -> None:
    path, printed = saved
    plan = load_drain_plan(path)
    raw = json.loads(path.read_text())
    assert raw["format"] == "numa-migrate drain plan" and raw["version"] == 1
    assert plan.plan_id == raw["plan_id"] == plan_id(raw)
    assert raw["planned_from"]["kind"] == "fleet"
    assert plan.drained == ("cmp-intel-01",)
    moves = [m for w in printed["waves"] for m in w["moves"]]
    assert [(m.guest, m.source, m.destination) for m in plan.moves] == \
        [(m["guest"], m["source"], m["destination"]) for m in moves]
    assert [m.index for m in plan.moves] == list(range(1, len(moves) + 1))
    first = moves[0]
    pins = {int(v): c for cell in first["cells"] for v, c in (cell["cpu_pinning"] or {}).items()}
    assert dict(plan.moves[0].pins) == pins
    assert len(plan.unplaceable) == len(printed["unplaceable"])


def test_plan_id_depends_on_content_and_time() -> None:
    body = {"drain": ["a"], "solver": "heuristic", "complete": True, "waves": [],
            "unplaceable": [], "stats": {}}
    one = plan_document(body, kind="fleet", source="f", planned_at="t1")
    assert plan_document(body, kind="fleet", source="f", planned_at="t1") == one
    assert plan_document(body, kind="fleet", source="f", planned_at="t2")["plan_id"] != \
        one["plan_id"]
    assert plan_document(body, kind="fleet", source="g", planned_at="t1")["plan_id"] != \
        one["plan_id"]


def _doc(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _refused(doc: dict[str, Any], rehash: bool = True) -> str:
    if rehash:
        doc["plan_id"] = plan_id(doc)
    with pytest.raises(DrainPlanError) as info:
        read_drain_plan(doc, source="p.json")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_edited_plan_is_refused(saved: tuple[Path, dict[str, Any]]) -> None:
    doc = _doc(saved[0])
    doc["waves"][0]["moves"][0]["destination"] = "cmp-other"
    assert "plan_id: does not match the plan's content" in _refused(doc, rehash=False)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d.update(format="x"), "format: expected 'numa-migrate drain plan'"),
    (lambda d: d.update(version=7), "version: version 7 is not known"),
    (lambda d: d["waves"][0]["moves"][0].update(destination=3),
     "waves[0].moves[0].destination: expected a string, got integer 3"),
    (lambda d: d["waves"][0]["moves"][0].update(destination=d["waves"][0]["moves"][0]["source"]),
     "waves[0].moves[0].destination: the same host as the source"),
    (lambda d: d["waves"][0].update(wave=5), "waves[0].wave: waves are numbered"),
    (lambda d: d["waves"][0]["moves"].append(dict(d["waves"][0]["moves"][0])),
     "is moved twice"),
    (lambda d: d.update(extra=1), "unknown field"),
    (lambda d: d["waves"][0]["moves"][0]["cells"][0].update(cpu_pinning={"x": 1}),
     "cpu_pinning: keys must be integers"),
])
def test_bad_fields_are_named(saved: tuple[Path, dict[str, Any]], edit: Any,
                              expected: str) -> None:
    doc = _doc(saved[0])
    edit(doc)
    assert expected in _refused(doc)


def test_plan_run_refuses_bad_files(tmp_path: Path,
                                    saved: tuple[Path, dict[str, Any]]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    done = run_cli("plan", "run", str(bad))
    assert done.returncode == 2 and "not JSON" in done.stderr
    assert "Traceback" not in done.stderr
    dry = tmp_path / "dry.json"
    dry.write_text('{"fits": true, "vcpu_pins": {}}')
    done = run_cli("plan", "run", str(dry))
    assert done.returncode == 2 and "format" in done.stderr
    # the sample fleet's hosts are not in an inventory that names only other hosts
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[hosts.other]\nuri = "qemu:///system"\n')
    done = run_cli("plan", "run", str(saved[0]), "--hosts", str(inventory),
                   "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert done.returncode == 2, done.stderr
    assert "cmp-intel-01" in done.stderr and "Traceback" not in done.stderr


def test_drain_execute_input_errors(tmp_path: Path) -> None:
    done = run_cli("drain", "cmp-intel-01", "--keep-going")
    assert done.returncode == 2 and "--keep-going goes with --execute" in done.stderr
    done = run_cli("drain", "compute-1", "--cloud", "nowhere", "--execute")
    assert done.returncode == 2 and "a cloud's servers are moved by Nova" in done.stderr
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[hosts.other]\nuri = "qemu:///system"\n')
    env_run = subprocess.run(
        [sys.executable, "-m", "numa_migrate", "drain", "cmp-intel-01", "--execute"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "NUMA_MIGRATE_INVENTORY": str(inventory),
             "NUMA_MIGRATE_DB": f"sqlite:///{tmp_path / 'c.db'}",
             "XDG_STATE_HOME": str(tmp_path / "state")})
    assert env_run.returncode == 2, env_run.stderr
    assert "cmp-" in env_run.stderr and "Traceback" not in env_run.stderr
    kept = list((tmp_path / "state" / "numa-migrate" / "plans").glob("drain-*.json"))
    assert len(kept) == 1 and load_drain_plan(kept[0]).drained == ("cmp-intel-01",)


def test_an_incomplete_plan_is_not_started(tmp_path: Path,
                                           saved: tuple[Path, dict[str, Any]]) -> None:
    """The sample drain of cmp-intel-01 leaves db-1 and vnf-2 behind (1 GiB pages nowhere
    else): running it would only half-drain the host, so nothing starts without
    --allow-incomplete (exit 1, the guests named)."""
    path, printed = saved
    assert printed["unplaceable"]
    inventory = tmp_path / "inventory.toml"
    inventory.write_text("".join(f'[hosts.{h}]\nuri = "test:///default"\n'
                                 for h in ("cmp-intel-01", "cmp-epyc-01", "cmp-small-01")))
    db = f"sqlite:///{tmp_path / 'c.db'}"
    done = run_cli("plan", "run", str(path), "--hosts", str(inventory), "--db", db)
    assert done.returncode == 1, done.stderr
    assert "nothing was moved; --allow-incomplete" in done.stderr
    assert "db-1" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("drain", "cmp-intel-01", "--allow-incomplete")
    assert done.returncode == 2 and "--allow-incomplete goes with --execute" in done.stderr

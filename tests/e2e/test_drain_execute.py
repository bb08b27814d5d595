"""`numa-migrate drain --save` + `plan run` (and `drain --execute`) on the real two-daemon lab.

Two small pinned counter guests run on lab-src; lab-src is drained onto lab-dst (both
moves in one wave, in parallel: the two migrations claim CPUs on the same destination at
the same time and must not take the same one), then lab-dst is drained back onto lab-src
one move per wave. Every guest must then run on its destination only, counting, pinned
inside that host's dedicated set, on CPUs no other guest has, and `validate` must pass.
A run killed after its first wave is resumed from the journal: the done move is skipped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.claims import ClaimStore
from numa_migrate.hypervisor.libvirt import LibvirtHypervisor, connect
from numa_migrate.lab import counter_advances, counter_guest_xml, wait_until_counting
from numa_migrate.lab.guest import remove_guest
from tests.e2e.conftest import LabSession

pytestmark = pytest.mark.lab
SRC, DST = "lab-src", "lab-dst"
GUESTS = {"nm-drain-a": 0, "nm-drain-b": 1}
"""Guest -> the lab-src CPU it starts pinned to."""
DEDICATED = {SRC: {0, 1}, DST: {0, 1}}
ROOT = Path(__file__).parent.parent.parent
RESULTS = ROOT / "bench" / "results"


def _guest_xml(lab: Any, name: str, cpu: int) -> str:
    """1 vCPU pinned to ``cpu`` with its emulator, one 32 MiB guest NUMA cell on node 0."""
    return counter_guest_xml(name, image=lab.counter_image, vcpus=1, memory_mib=32,
                             vcpu_pins={0: cpu}, emulator_pin=str(cpu), cells=[("0", 32)],
                             nodeset="0", memnodes={0: "0"}, domain_type=lab.domain_type())


@pytest.fixture
def world(lab_env: LabSession, tmp_path: Path) -> Iterator[dict[str, Any]]:
    lab = lab_env.lab
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[hosts.{SRC}]\nuri = "{lab.uri(SRC)}"\ncpu_dedicated_set = "0-1"\n'
        f'[hosts.{DST}]\nuri = "{lab.uri(DST)}"\ncpu_dedicated_set = "0-1"\n')
    conns = {h: connect(lab.uri(h), h) for h in (SRC, DST)}
    _remove(conns)
    for name, cpu in GUESTS.items():
        dom = conns[SRC].define(_guest_xml(lab, name, cpu))
        dom.start()
    for name in GUESTS:
        dom = conns[SRC].lookup(name)
        assert dom is not None
        wait_until_counting(dom)
    db = tmp_path / "claims.db"
    env = {**os.environ, "NUMA_MIGRATE_INVENTORY": str(inventory),
           "NUMA_MIGRATE_DB": f"sqlite:///{db}", "XDG_STATE_HOME": str(tmp_path / "state")}
    yield {"lab": lab, "conns": conns, "inventory": inventory, "db": f"sqlite:///{db}",
           "env": env, "tmp": tmp_path}
    _remove(conns)
    for conn in conns.values():
        conn.close()


def _remove(conns: dict[str, LibvirtHypervisor]) -> None:
    for conn in conns.values():
        for name in GUESTS:
            remove_guest(conn, name)


def cli(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "numa_migrate", *args], env=world["env"],
                          capture_output=True, text=True, timeout=300, check=False)


def fleet_args(world: dict[str, Any]) -> list[str]:
    """The fleet read live from the lab's hosts (their running domains, real pins)."""
    return ["--hosts", str(world["inventory"])]


def save_plan(world: dict[str, Any], host: str, name: str, *extra: str) -> Path:
    """``drain HOST --hosts INVENTORY --save FILE``: the plan from the live hosts."""
    path = world["tmp"] / name
    done = cli(world, "drain", host, *fleet_args(world), "--save", str(path), "--json",
               *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return path


def assert_on(world: dict[str, Any], host: str) -> dict[str, set[int]]:
    """Every guest runs on ``host`` only, counting, persistent, pinned inside the host's
    dedicated set on CPUs of its own; returns the pins; `validate` passes."""
    other = DST if host == SRC else SRC
    pins: dict[str, set[int]] = {}
    for name in GUESTS:
        dom = world["conns"][host].lookup(name)
        assert dom is not None and dom.is_active() and dom.is_persistent(), name
        assert world["conns"][other].lookup(name) is None, f"{name} left on {other}"
        assert counter_advances(dom), f"{name} does not count on {host}"
        info = domain_from_xml(dom.xml())
        cpus = {c for _, cs in info.vcpupin for c in cs}
        assert cpus and cpus <= DEDICATED[host], (name, cpus)
        affinity = world["lab"].affinity(host, name)
        assert set(affinity.vcpus[0]) == cpus, "the real vCPU thread follows the pins"
        pins[name] = cpus
        checked = cli(world, "validate", name, "--host", host, "--json")
        assert checked.returncode == 0, checked.stdout + checked.stderr
    taken = [c for cs in pins.values() for c in cs]
    assert len(taken) == len(set(taken)), f"two guests share a dedicated CPU: {pins}"
    with ClaimStore.open(world["db"]) as store:
        assert [c for c in store.list_claims() if c.state.live] == []
    return pins


def test_drain_onto_dst_and_back(world: dict[str, Any]) -> None:
    timings: dict[str, Any] = {}
    there = save_plan(world, SRC, "there.json")
    plan = json.loads(there.read_text())
    assert plan["planned_from"] == {"kind": "inventory", "source": str(world["inventory"])}
    assert [len(w["moves"]) for w in plan["waves"]] == [2], plan["waves"]
    started = time.monotonic()
    done = cli(world, "plan", "run", str(there), "--json")
    timings["lab-src -> lab-dst, 2 moves in 1 wave (plan run)"] = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["complete"] and report["counts"]["done"] == 2, report
    assert {m["outcome"] for m in report["moves"]} == {"done"}
    assert all(m["migration_id"].startswith(plan["plan_id"]) for m in report["moves"])
    timings["there: per move (s)"] = {m["guest"]: m["seconds"] for m in report["moves"]}
    timings["there: notes"] = {m["guest"]: m["notes"] for m in report["moves"]}
    # the two moves planned and claimed one after the other, in the plan's order: neither
    # lost its claim, and each landed on the CPU the plan gave it
    assert not any("lost its claim" in n for m in report["moves"] for n in m["notes"]), report
    assert [m["placement_note"] for m in report["moves"]] == ["", ""], report
    pins = assert_on(world, DST)
    for move in report["moves"]:
        assert set(move["pins"]["0"]) == pins[move["guest"]]
    # running the same plan again changes nothing: every move is done already (the
    # human report: a table on stdout, one line per move on stderr)
    again = cli(world, "plan", "run", str(there))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 moves in" in again.stdout and "2 skipped" in again.stdout, again.stdout
    assert again.stderr.count("done by an earlier run of this plan") == 2, again.stderr
    # back, one move per wave, through drain --execute
    started = time.monotonic()
    back = cli(world, "drain", DST, *fleet_args(world), "--per-host-parallel", "1",
               "--execute", "--json")
    timings["lab-dst -> lab-src, 2 moves in 2 waves (drain --execute)"] = \
        time.monotonic() - started
    assert back.returncode == 0, back.stdout + back.stderr
    report = json.loads(back.stdout)
    assert [m["wave"] for m in report["moves"]] == [1, 2], report
    assert report["complete"]
    timings["back: per wave (s)"] = report["wave_seconds"]
    kept = list((world["tmp"] / "state" / "numa-migrate" / "plans").glob("drain-*.json"))
    assert [p.stem for p in kept] == [report["plan_id"]], "the plan is kept for a resume"
    assert f"numa-migrate plan run {kept[0]}" in back.stderr
    assert_on(world, SRC)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "e2e-drain.json").write_text(json.dumps(
        {k: round(v, 2) if isinstance(v, float) else v for k, v in timings.items()},
        indent=2) + "\n")


@pytest.mark.parametrize("phase", ["done", "claimed"])
def test_killed_run_resumes(world: dict[str, Any], phase: str) -> None:
    """Killed right after the first move's ``done`` (the rerun skips it) or ``claimed``
    (the rerun recovers it first: rolled back, then migrated as its second attempt)."""
    path = save_plan(world, SRC, "serial.json", "--per-host-parallel", "1")
    marker = world["tmp"] / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.pause_at", phase, str(marker), "--",
         "plan", "run", str(path), "--json"],
        env=world["env"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached its first done move"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    saved = json.loads(path.read_text())
    first = saved["waves"][0]["moves"][0]["guest"]
    dom = world["conns"][DST if phase == "done" else SRC].lookup(first)
    assert dom is not None and dom.is_active()
    done = cli(world, "plan", "run", str(path), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    if phase == "done":
        assert [m["outcome"] for m in report["moves"]] == ["skipped", "done"], report
        assert report["moves"][0]["reason"] == "done by an earlier run of this plan"
        assert report["recovered"] == []
    else:
        assert [m["outcome"] for m in report["moves"]] == ["done", "done"], report
        assert report["moves"][0]["migration_id"] == f"{saved['plan_id']}.m1.a2"
        assert len(report["recovered"]) == 1 and "rolled back" in report["recovered"][0]
    assert_on(world, DST)

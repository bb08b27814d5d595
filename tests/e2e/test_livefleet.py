"""The fleet read live from the real two-daemon lab (`--hosts`), snapshotted and planned on.

A pinned counter guest runs on lab-src (vCPU 0 and its emulator threads on CPU 0, one
guest NUMA cell on node 0, 2 MiB pages when the machine has them). ``fleet --hosts`` must
show it with the pins its live XML has; ``fleet snapshot`` must save it so that ``where
--fleet SNAPSHOT`` finds lab-dst for it offline; ``drain lab-src --hosts`` must move it
there. lab-dst may pin only on CPU 1 (CPU 0 is its shared CPU), as in test_migrate.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.hypervisor.libvirt import connect
from numa_migrate.lab import wait_until_counting
from numa_migrate.lab.guest import pinned_numa_guest_xml, remove_guest
from tests.e2e.conftest import LabSession

pytestmark = pytest.mark.lab
GUEST = "nm-e2e-livefleet"
SRC, DST = "lab-src", "lab-dst"
RESULTS = Path(__file__).parent.parent.parent / "bench" / "results"


def _free_hugepages() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("HugePages_Free:"):
            return int(line.split()[1])
    return 0


@pytest.fixture
def world(lab_env: LabSession, tmp_path: Path) -> Iterator[dict[str, Any]]:
    lab = lab_env.lab
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[hosts.{SRC}]\nuri = "{lab.uri(SRC)}"\ncpu_dedicated_set = "0-1"\n'
        f'[hosts.{DST}]\nuri = "{lab.uri(DST)}"\ncpu_dedicated_set = "1"\n'
        'cpu_shared_set = "0"\n')
    conns = {h: connect(lab.uri(h), h) for h in (SRC, DST)}
    for conn in conns.values():
        remove_guest(conn, GUEST)
    huge = 2048 if _free_hugepages() >= 32 else None
    dom = conns[SRC].define(pinned_numa_guest_xml(GUEST, image=lab.counter_image,
                                                  hugepage_kib=huge,
                                                  domain_type=lab.domain_type()))
    dom.start()
    wait_until_counting(dom)
    env = {**os.environ, "NUMA_MIGRATE_DB": f"sqlite:///{tmp_path / 'claims.db'}"}
    yield {"inventory": inventory, "conns": conns, "env": env, "huge": huge,
           "live_xml": dom.xml(), "tmp": tmp_path,
           "uris": {h: lab.uri(h) for h in (SRC, DST)}}
    for conn in conns.values():
        remove_guest(conn, GUEST)
        conn.close()


def cli(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "numa_migrate", *args], env=world["env"],
                          capture_output=True, text=True, timeout=180, check=False)


def test_live_fleet_snapshot_where_and_drain(world: dict[str, Any]) -> None:
    inventory = str(world["inventory"])
    info = domain_from_xml(world["live_xml"])
    real_pins = {str(v): next(iter(c)) for v, c in info.vcpupin}
    assert real_pins == {"0": 0}

    started = time.perf_counter()
    shown = cli(world, "fleet", "--hosts", inventory, "--json")
    cli_s = time.perf_counter() - started
    assert shown.returncode == 0, shown.stderr
    read_s = _time_live_read(world["inventory"])
    doc = json.loads(shown.stdout)
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert set(hosts) == {SRC, DST}
    [guest] = [g for g in hosts[SRC]["guests"] if g["name"] == GUEST]
    [cell] = guest["cells"]
    assert cell["cpu_pinning"] == real_pins and cell["host_cell"] == 0
    assert cell["pagesize_kib"] == world["huge"]
    assert guest["uuid"] == info.uuid
    assert not [g for g in hosts[DST]["guests"] if g["name"] == GUEST]

    snapshot = world["tmp"] / "lab-snapshot.json"
    taken = cli(world, "fleet", "snapshot", "--hosts", inventory, "-o", str(snapshot),
                "--json")
    assert taken.returncode == 0, taken.stderr
    assert json.loads(taken.stdout)["hosts"] == 2
    saved = json.loads(snapshot.read_text())
    assert [h["uri"] for h in saved["hosts"]] == [world["uris"][SRC], world["uris"][DST]]
    assert all(h["capabilities_xml"].lstrip().startswith("<capabilities")
               for h in saved["hosts"])

    where = cli(world, "where", GUEST, "--fleet", str(snapshot), "--json")
    assert where.returncode == 0, where.stderr
    answer = json.loads(where.stdout)
    assert answer["source"]["host"] == SRC
    assert answer["source"]["cells"][0]["cpu_pinning"] == real_pins
    [best] = answer["destinations"]
    assert best["host"] == DST
    assert best["placement"]["cells"][0]["cpu_pinning"] == {"0": 1}

    drain = cli(world, "drain", SRC, "--hosts", inventory, "--json")
    assert drain.returncode == 0, drain.stderr
    plan = json.loads(drain.stdout)
    moves = [m for w in plan["waves"] for m in w["moves"] if m["guest"] == GUEST]
    assert len(moves) == 1
    [move] = moves
    assert (move["source"], move["destination"]) == (SRC, DST)
    assert move["cells"][0]["cpu_pinning"] == {"0": 1}
    # nothing was changed: the guest still runs on lab-src
    dom = world["conns"][SRC].lookup(GUEST)
    assert dom is not None and dom.is_active()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "livefleet_lab.json").write_text(json.dumps(
        {"fleet_hosts_cli_s": round(cli_s, 3), "live_fleet_read_s": read_s,
         "snapshot_bytes": snapshot.stat().st_size}, indent=2) + "\n")


def _time_live_read(inventory: Path) -> list[float]:
    """live_fleet() of the lab's two hosts, in-process, five times (seconds each)."""
    from numa_migrate.adapters.livefleet import live_fleet
    from numa_migrate.migrate.hosts import load_hosts

    hosts = load_hosts(inventory)
    out = []
    for _ in range(5):
        started = time.perf_counter()
        fleet = live_fleet(hosts)
        out.append(round(time.perf_counter() - started, 4))
        assert GUEST in {g.name for g in fleet.guests}
    return out

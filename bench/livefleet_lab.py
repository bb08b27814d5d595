"""Timings of the fleet read live on the real lab (docs/performance.md, issue 12).

Brings the default lab up (root), starts one pinned 2 MiB-page counter guest on lab-src
(vCPU 0 on CPU 1, lab-src's dedicated CPU), times ``fleet --hosts`` (with and without a
claims store), ``fleet snapshot --hosts``, ``where --fleet SNAPSHOT`` and ``drain --hosts``
as fresh processes (5 runs each) and ``live_fleet()`` in-process, then removes the guest and
takes the lab down. Run it under the lab lock:

    flock /work/nm-coord/lab.lock bash -c 'PYTHONPATH=src .venv/bin/python bench/livefleet_lab.py'
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from numa_migrate.adapters.livefleet import live_fleet
from numa_migrate.hypervisor.libvirt import connect
from numa_migrate.lab import wait_until_counting
from numa_migrate.lab.guest import pinned_numa_guest_xml, remove_guest
from numa_migrate.lab.state import default_lab
from numa_migrate.migrate.hosts import load_hosts

GUEST = "nm-lf-measure"
RUNS = 5


def run(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "numa_migrate", *args], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"numa-migrate {' '.join(args)}: {done.stderr.strip()}")
    return time.perf_counter() - started, done.stdout


def series(label: str, env: dict[str, str], *args: str) -> None:
    times = [run(env, *args)[0] for _ in range(RUNS)]
    print(f"{label}: best {min(times):.2f} s, median {statistics.median(times):.2f} s "
          f"(n={RUNS})")


def measure(inventory: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    bare = {**os.environ, "XDG_STATE_HOME": str(tmp / "state")}
    bare.pop("NUMA_MIGRATE_DB", None)
    with_db = {**bare, "NUMA_MIGRATE_DB": f"sqlite:///{tmp / 'claims.db'}"}
    snapshot = tmp / "lab.json"
    series("fleet --json (sample fleet)", bare, "fleet", "--json")
    series("fleet --hosts LAB --json", bare, "fleet", "--hosts", inventory, "--json")
    series("fleet --hosts LAB --json, claims store", with_db, "fleet", "--hosts", inventory,
           "--json")
    series("fleet snapshot --hosts LAB", bare, "fleet", "snapshot", "--hosts", inventory,
           "-o", str(snapshot))
    print(f"snapshot: {snapshot.stat().st_size} bytes")
    series("where GUEST --fleet SNAPSHOT", bare, "where", GUEST, "--fleet", str(snapshot),
           "--json")
    series("drain lab-src --hosts LAB", bare, "drain", "lab-src", "--hosts", inventory,
           "--json")
    doc = json.loads(run(bare, "fleet", "--hosts", inventory, "--json")[1])
    for host in doc["hosts"]:
        for guest in host["guests"]:
            print(host["name"], guest["name"], [c["cpu_pinning"] for c in guest["cells"]],
                  [c["pagesize_kib"] for c in guest["cells"]])
    print("notes:", doc["notes"])
    hosts = load_hosts(Path(inventory))
    times = []
    for _ in range(10):
        started = time.perf_counter()
        live_fleet(hosts)
        times.append(time.perf_counter() - started)
    print(f"live_fleet() in-process: best {min(times) * 1000:.0f} ms, median "
          f"{statistics.median(times) * 1000:.0f} ms (n=10)")


def main() -> None:
    lab = default_lab()
    started = time.perf_counter()
    lab.up(hugepages=80)
    print(f"lab up {time.perf_counter() - started:.1f} s")
    conns = {h: connect(lab.uri(h), h) for h in ("lab-src", "lab-dst")}
    try:
        for conn in conns.values():
            remove_guest(conn, GUEST)
        dom = conns["lab-src"].define(pinned_numa_guest_xml(
            GUEST, image=lab.counter_image, hugepage_kib=2048, cpu=1,
            domain_type=lab.domain_type()))
        dom.start()
        wait_until_counting(dom)
        measure(str(lab.inventory_path))
    finally:
        for conn in conns.values():
            remove_guest(conn, GUEST)
            conn.close()
        lab.down()


if __name__ == "__main__":
    main()

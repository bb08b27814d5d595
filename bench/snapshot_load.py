"""How long a big fleet snapshot takes to write and to load (`--fleet SNAPSHOT`).

Two fleets of ``--hosts`` hosts (default 2,000):

- ``generated``: tests/fleetgen.py (seed 1, 20 guests per host asked for, load 0.7): hosts
  with no capabilities XML, so the snapshot holds their topology;
- ``with XML``: the bundled sample fleet's three hosts and nine guests copied round robin
  under new names, so every host carries its capabilities XML inline, as a snapshot of a
  live fleet does (the load parses each XML).

For each: the snapshot's size, the time to write it, and the time ``load_fleet`` takes to
read it back (best and median of ``--runs``), every placement checked and applied as
recorded. Wall and CPU time; the CPU time is the steadier figure on a shared machine. Run:

    PYTHONPATH=src .venv/bin/python bench/snapshot_load.py [--hosts N] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fleetgen import generate

from numa_migrate.adapters.fleet import Fleet, PlacedGuest, load_fleet
from numa_migrate.adapters.snapshot import write_snapshot


def generated(hosts: int) -> Fleet:
    state = generate(1, hosts, 20 * hosts)
    return Fleet("generated", state.hosts,
                 tuple(PlacedGuest(g.name, g.host, g.guest, g.placement, g.pci_devices)
                       for g in state.guests))


def with_xml(hosts: int) -> Fleet:
    sample = load_fleet()
    by_host = {h.name: i for i, h in enumerate(sample.hosts)}
    out_hosts, out_guests, out_inputs = [], [], []
    for i in range(hosts):
        base = sample.hosts[i % len(sample.hosts)]
        name = f"{base.name}-{i:05d}"
        out_hosts.append(replace(base, name=name))
        out_inputs.append(replace(sample.inputs[by_host[base.name]], name=name))
        out_guests.extend(replace(g, name=f"{g.name}-{i:05d}", host=name)
                          for g in sample.guests_on(base.name))
    return Fleet("copies of the sample fleet", tuple(out_hosts), tuple(out_guests),
                 inputs=tuple(out_inputs))


def measure(label: str, fleet: Fleet, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.json"
        start = time.perf_counter()
        size = write_snapshot(fleet, path)
        wrote = time.perf_counter() - start
        walls, cpus = [], []
        for _ in range(runs):
            start, cpu = time.perf_counter(), time.process_time()
            back = load_fleet(path)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        assert len(back.hosts) == len(fleet.hosts) and len(back.guests) == len(fleet.guests)
    print(f"{label:10} {len(fleet.hosts):5} hosts {len(fleet.guests):6} guests  "
          f"{size / 2**20:6.1f} MiB  write {wrote:5.2f} s  load best {min(walls):5.2f} s "
          f"median {statistics.median(walls):5.2f} s wall, best {min(cpus):5.2f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    fleet = generated(args.hosts)
    print(f"(generating the fleet took {time.perf_counter() - start:.1f} s)")
    measure("generated", fleet, args.runs)
    measure("with XML", with_xml(args.hosts), args.runs)


if __name__ == "__main__":
    main()

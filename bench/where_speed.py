"""How long `where` takes for one guest over 10,000 hosts (the fit work, no output).

The fleet is synthetic and built in memory: the bundled sample fleet's hosts (with their
guests' usage) copied under new names, round robin, to 10,000 hosts. Each copy gets fresh
cell objects, so no cached property of one host serves another. As the `where` command
does after loading its fleet, the hosts are moved out of the garbage collector's reach
(``gc.freeze``: they live until the process ends), so collections triggered by the fit's
short-lived objects do not walk 10,000 hosts. Wall and CPU time are printed (the CPU time
is the steadier figure on a shared machine). Run:

    PYTHONPATH=src .venv/bin/python bench/where_speed.py [--hosts N] [--guest NAME]
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import replace

from numa_migrate.adapters.fleet import load_fleet
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.where import where_guest


def _copy_cell(cell: HostCell) -> HostCell:
    return replace(cell)  # a new object: its cached properties start empty


def synthetic_hosts(base: tuple[HostTopology, ...], n: int) -> list[HostTopology]:
    return [
        replace(h, name=f"{h.name}-{i:05d}", cells=tuple(_copy_cell(c) for c in h.cells))
        for i in range(n)
        for h in (base[i % len(base)],)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--guest", action="append", help="guest name (default: every guest)")
    args = parser.parse_args()
    fleet = load_fleet()
    hosts = synthetic_hosts(fleet.hosts, args.hosts)
    print(f"{len(hosts)} hosts (copies of {', '.join(h.name for h in fleet.hosts)})")
    worst = 0.0
    for placed in fleet.guests:
        if args.guest and placed.name not in args.guest:
            continue
        fresh = synthetic_hosts(fleet.hosts, args.hosts)  # cold caches for every guest
        gc.collect()
        gc.freeze()
        source = fresh[0].name if fresh[0].name.startswith(placed.host) else placed.host
        start, cpu = time.perf_counter(), time.process_time()
        answer = where_guest(fresh, source, placed.guest, placed.placement)
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        gc.unfreeze()
        worst = max(worst, cpu)
        bound = sum(1 for r in answer.refused if r.stage == "bound")
        print(f"{placed.name:12} {took:6.3f} s wall {cpu:6.3f} s CPU  "
              f"fit {len(answer.destinations):5}  refused by bound {bound:5}, "
              f"by fit {len(answer.refused) - bound:5}")
    print(f"worst CPU time: {worst:.3f} s")


if __name__ == "__main__":
    main()

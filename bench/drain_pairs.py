"""Guest x host fit answers per second, the drain planner's path against Nova 34's, in one run.

The pairs come from a generated fleet (``tests/fleetgen.py``: intel/epyc/small hosts with
their usage, guests of the fleetgen flavors placed on them): ``--pair-guests`` guests drawn
from the fleet, each asked against ``--pair-hosts`` hosts drawn from it (not its own host), so
every pair is a question the planner asks: can this running guest go to that host as it is?

- **numa-migrate, planner path**: per guest, its :class:`CapacityBound` once (as the planner
  and ``where`` build it), then per host the cheap bound and, when it does not refuse, the full
  ``fit_guest`` (keeping the page size the guest runs with).
- **numa-migrate, fit only**: per pair ``guest_from_flavor`` + ``fit_guest`` with no bound,
  the figure ``bench/fit_vs_nova.py`` reports (flavor parsing per pair, as Nova's side has).
- **Nova 34**: per pair ``numa_get_constraints`` + ``numa_fit_instance_to_host`` (with the
  host's ``PciDeviceStats`` and the guest's PCI requests when it has any, the live-migration
  page-size rule) in the oracle venv (``tests/oracle/nova_driver.py``): the sum of the per-pair
  times of Nova's calls only, its objects' construction excluded (in Nova's favour).

Each side is timed in small pieces, each the median of ``--repeat`` runs, summed (ours: one
guest's row of hosts; Nova: one pair), and the two sides run interleaved in ``--chunks``
chunks of guests (ours, then Nova's on the same pairs), so both see the same load of the
machine; the mean load average is printed. The
decisions are compared pair by pair (Nova refuses some valid fits: bug 1978372, and the page
sizes it would change on a move, which we keep).

    PYTHONPATH=src .venv/bin/python bench/drain_pairs.py [--pair-guests 60] [--pair-hosts 100]
        [--hosts 200] [--guests 4000] [--seed 1] [--repeat 5] [--chunks 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.differential import run_oracle
from tests.fleetgen import FLAVORS, generate

from numa_migrate.adapters.casefmt import case_from_json
from numa_migrate.core.drain.state import FleetGuest
from numa_migrate.core.fit.fitter import FitOptions, fit_guest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.rank import CapacityBound
from numa_migrate.core.request import Flavor, guest_from_flavor

FLAVOR = {f[0]: f for f in FLAVORS}


def host_json(h: HostTopology) -> dict[str, Any]:
    """The host with its usage in the fit-case format (what Nova's side builds from)."""
    return {
        "name": h.name,
        "cells": [{
            "id": c.id, "cpuset": sorted(c.cpuset), "pcpuset": sorted(c.pcpuset),
            "siblings": [sorted(s) for s in c.siblings], "memory_mib": c.memory_mib,
            "memory_usage_mib": c.memory_usage_mib, "cpu_usage": c.cpu_usage,
            "pinned_cpus": sorted(c.pinned_cpus), "socket": c.socket,
            "mempages": [{"size_kib": p.size_kib, "total": p.total, "used": p.used,
                          "reserved": p.reserved} for p in c.mempages],
        } for c in h.cells],
        "pci_devices": [{
            "address": d.address, "vendor_id": d.vendor_id, "product_id": d.product_id,
            "numa_node": d.numa_node, "dev_type": d.dev_type.value,
            "physical_network": d.physical_network, "parent_addr": d.parent_addr,
            "status": "allocated" if d.allocated else "available",
        } for d in h.pci_devices],
    }


def flavor_of(g: FleetGuest) -> Flavor:
    name, vcpus, memory, specs, _ = FLAVOR[g.guest.name]
    return Flavor(vcpus, memory, dict(specs), name)


def case_json(i: int, g: FleetGuest, host: dict[str, Any]) -> dict[str, Any]:
    flavor = flavor_of(g)
    case: dict[str, Any] = {
        "id": i, "host": host,
        "flavor": {"vcpus": flavor.vcpus, "memory_mib": flavor.memory_mib,
                   "extra_specs": dict(flavor.extra_specs), "name": flavor.name},
    }
    if g.guest.pci_requests:
        case["pci_requests"] = [{"count": r.count, "spec": [dict(alt) for alt in r.spec]}
                                for r in g.guest.pci_requests]
    if g.pagesize_kib is not None:
        case["current_pagesize_kib"] = g.pagesize_kib
    return case


def _row(g: FleetGuest, hosts: list[HostTopology]) -> tuple[list[bool], int]:
    """One guest against its hosts, as the planner asks: the bound, then the fit."""
    bound = CapacityBound(g.guest, g.pagesize_kib)
    options = FitOptions(current_pagesize_kib=g.pagesize_kib)
    decisions: list[bool] = []
    refused = 0
    for h in hosts:
        if bound.check(h):
            refused += 1
            decisions.append(False)
        else:
            decisions.append(fit_guest(h, g.guest, options).fits)
    return decisions, refused


def _row_fit_only(g: FleetGuest, hosts: list[HostTopology]) -> None:
    flavor = flavor_of(g)
    options = FitOptions(current_pagesize_kib=g.pagesize_kib)
    for h in hosts:
        fit_guest(h, guest_from_flavor(flavor, None, g.guest.pci_requests), options)


def planner_path(pairs: list[tuple[FleetGuest, list[HostTopology]]], repeat: int
                 ) -> tuple[float, list[bool], int]:
    """(seconds: the sum over guests of the median time of its row, decisions, pairs refused
    by the bound alone)."""
    total = 0.0
    decisions: list[bool] = []
    refused = 0
    for g, hosts in pairs:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            row, cut = _row(g, hosts)
            times.append(time.perf_counter() - start)
        total += statistics.median(times)
        decisions.extend(row)
        refused += cut
    return total, decisions, refused


def fit_only(pairs: list[tuple[FleetGuest, list[HostTopology]]], repeat: int) -> float:
    total = 0.0
    for g, hosts in pairs:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            _row_fit_only(g, hosts)
            times.append(time.perf_counter() - start)
        total += statistics.median(times)
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, default=200)
    p.add_argument("--guests", type=int, default=4000)
    p.add_argument("--load", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pair-guests", type=int, default=60)
    p.add_argument("--pair-hosts", type=int, default=100)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--chunks", type=int, default=10,
                   help="interleave the two sides in this many chunks of guests")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    state = generate(args.seed, args.hosts, args.guests, args.load)
    rng = random.Random(args.seed)
    guests = rng.sample(state.guests, min(args.pair_guests, len(state.guests)))
    pairs = [(g, rng.sample([h for h in state.hosts if h.name != g.host],
                            min(args.pair_hosts, len(state.hosts) - 1))) for g in guests]
    n = sum(len(hosts) for _, hosts in pairs)
    as_json = {h.name: host_json(h) for h in state.hosts}
    cases = [case_json(i, g, as_json[h.name])
             for i, (g, h) in enumerate((g, h) for g, hosts in pairs for h in hosts)]
    # the cases say what the fleet says: our fit on the parsed host gives the same answer
    for case, (g, h) in zip(cases[:200], ((g, h) for g, hosts in pairs for h in hosts),
                            strict=False):
        parsed = case_from_json(case).host
        opts = FitOptions(current_pagesize_kib=g.pagesize_kib)
        assert fit_guest(parsed, g.guest, opts).fits == fit_guest(h, g.guest, opts).fits

    # interleaved in chunks of guests (ours, then Nova's on the same pairs), so that both
    # sides run under the same load of the machine
    ours_s = plain_s = 0.0
    decisions: list[bool] = []
    refused = 0
    nova: list[dict[str, Any]] = []
    loads: list[float] = []
    per = max(1, -(-len(pairs) // max(1, args.chunks)))
    first = 0
    for c in range(0, len(pairs), per):
        chunk = pairs[c:c + per]
        size = sum(len(hosts) for _, hosts in chunk)
        loads.append(os.getloadavg()[0])
        t, row, cut = planner_path(chunk, args.repeat)
        ours_s += t
        decisions.extend(row)
        refused += cut
        plain_s += fit_only(chunk, args.repeat)
        nova.extend(run_oracle(cases[first:first + size], timeout_s=30.0, repeat=args.repeat))
        first += size
    nova_s = sum(r["seconds"] for r in nova if not r.get("timed_out"))
    timeouts = sum(1 for r in nova if r.get("timed_out"))
    same = sum(1 for d, r in zip(decisions, nova, strict=True) if r.get("fits") == d)
    we_only = sum(1 for d, r in zip(decisions, nova, strict=True) if d and r.get("fits") is False)
    nova_only = sum(1 for d, r in zip(decisions, nova, strict=True) if not d and r.get("fits"))
    out = {
        "fleet": f"{len(state.hosts)} hosts / {len(state.guests)} guests (seed {args.seed})",
        "pairs": n,
        "fit": sum(decisions),
        "refused_by_bound": refused,
        "ours_pairs_per_s": round(n / ours_s),
        "ours_fit_only_pairs_per_s": round(n / plain_s),
        "nova_pairs_per_s": round(n / nova_s),
        "ratio": round(nova_s / ours_s, 1),
        "ratio_fit_only": round(nova_s / plain_s, 1),
        "same_decision": same,
        "we_fit_nova_refuses": we_only,
        "nova_fits_we_refuse": nova_only,
        "nova_timeouts": timeouts,
        "load_average": round(statistics.mean(loads), 1),
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['fleet']}: {n} guest × host pairs ({len(pairs)} guests × "
          f"{args.pair_hosts} hosts), {out['fit']} fit, {refused} refused by the cheap bound")
    print(f"numa-migrate, bound + fit : {out['ours_pairs_per_s']:>10,} pairs/s")
    print(f"numa-migrate, fit only    : {out['ours_fit_only_pairs_per_s']:>10,} pairs/s "
          f"(flavor parsed per pair, no bound)")
    print(f"Nova 34                   : {out['nova_pairs_per_s']:>10,} pairs/s "
          f"(its two calls only)")
    print(f"ratio (planner path)      : {out['ratio']}× Nova")
    print(f"ratio (fit only)          : {out['ratio_fit_only']}× Nova")
    print(f"decisions                 : {same} same; we fit, Nova refuses {we_only}; "
          f"Nova fits, we refuse {nova_only}; Nova timeouts {timeouts}")
    print(f"machine load average      : {out['load_average']} (both sides interleaved in "
          f"{len(loads)} chunks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

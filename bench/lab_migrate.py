"""The tool's cost around a real live migration, against a plain libvirt migrate3 in the same run.

On the two-daemon lab (root; brings up a lab of its own in
``/var/lib/numa-migrate/lab-bench-<pid>`` and takes it down at the end), one counter guest
(1 pinned vCPU, a guest NUMA cell, strict numatune, 2 MiB huge pages when the pool allows)
goes round trips lab-src → lab-dst → lab-src, alternately (ABBA order, so drift hurts both):

- **numa-migrate**: ``Migration.run()`` in this process (connect, read the destination live,
  plan, rewrite the XML, SQLite claim + journal, migrate3 with progress polling, release),
  then the live ``validate`` of the destination (/proc affinities included);
- **plain**: ``virDomainMigrate3`` of the same guest with the same flags and URI, with no
  destination XML (the pins stay as they are), nothing before or after.

Printed per leg type: medians of whole time, libvirt's job time and downtime; the tool's
overhead (whole time - libvirt's time + validate) as a fraction of the whole; and the ratios
numa-migrate / plain of downtime and of the migration job time (≈ 1.0 expected: the tool
adds nothing inside the migration itself).

    python bench/lab_migrate.py --rounds 6            # writes bench/results/lab-migrate.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from numa_migrate.adapters.inventory import load_inventory
from numa_migrate.adapters.validate_live import validate_on_host
from numa_migrate.claims import ClaimStore
from numa_migrate.cli.hosts import Hosts
from numa_migrate.hypervisor.libvirt import LibvirtHypervisor, connect, lv
from numa_migrate.lab import Lab, counter_advances, wait_until_counting
from numa_migrate.lab import hugepages as pool
from numa_migrate.lab.guest import pinned_numa_guest_xml
from numa_migrate.migrate.plan import NoRoom
from numa_migrate.migrate.run import HostRef, Migration

SRC, DST = "lab-src", "lab-dst"
GUEST = "nm-bench"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Leg:
    kind: str  # "numa-migrate" | "plain"
    direction: str
    whole_s: float
    job_s: float
    downtime_ms: int | None
    validate_s: float = 0.0

    @property
    def overhead_s(self) -> float:
        return self.whole_s - self.job_s + self.validate_s


def _inventory(lab: Lab, directory: Path) -> Path:
    path = directory / "inventory.toml"
    path.write_text(
        f'[hosts.{SRC}]\nuri = "{lab.uri(SRC)}"\ncpu_dedicated_set = "0-1"\n'
        f'[hosts.{DST}]\nuri = "{lab.uri(DST)}"\ncpu_dedicated_set = "1"\n'
        'cpu_shared_set = "0"\n'
    )
    return path


def _tool_leg(hosts: Hosts, store: ClaimStore, source: HostRef, dest: HostRef) -> Leg:
    started = time.monotonic()
    outcome = Migration(store=store, source=source, destination=dest, domain=GUEST,
                        read_host=hosts.read_host).run()
    whole = time.monotonic() - started
    if isinstance(outcome, NoRoom):
        raise SystemExit(f"numa-migrate refused the migration: {outcome.summary}")
    started = time.monotonic()
    checked = validate_on_host(hosts.inventory.host(dest.name), GUEST, outcome.plan.dest_plan)
    validate_s = time.monotonic() - started
    if not checked.report.passed:
        failed = [c.name for c in checked.report.checks if c.failed]
        raise SystemExit(f"validate failed on {dest.name}: {failed}")
    return Leg("numa-migrate", f"{source.name}->{dest.name}", whole,
               outcome.seconds, outcome.downtime_ms, validate_s)


def _plain_leg(conns: dict[str, LibvirtHypervisor], source: str, dest: str) -> Leg:
    """The baseline: libvirt's own migrate3 on the raw handles, no seam around it."""
    lib = lv()
    dom = conns[source].conn.lookupByName(GUEST)
    params = {lib.VIR_MIGRATE_PARAM_URI: "tcp://127.0.0.1",
              lib.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: "127.0.0.1"}
    flags = lib.VIR_MIGRATE_LIVE | lib.VIR_MIGRATE_PERSIST_DEST | lib.VIR_MIGRATE_UNDEFINE_SOURCE
    started = time.monotonic()
    new_dom = dom.migrate3(conns[dest].conn, params, flags)
    whole = time.monotonic() - started
    stats = dict(new_dom.jobStats(lib.VIR_DOMAIN_JOB_STATS_COMPLETED))
    # nothing around the call: the whole is the migrate3 call, as outcome.seconds is for ours
    return Leg("plain", f"{source}->{dest}", whole, whole, stats.get("downtime"))


def _median(legs: list[Leg], attr: str) -> float:
    values = [getattr(leg, attr) for leg in legs if getattr(leg, attr) is not None]
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="round trips per kind")
    parser.add_argument("--out", type=Path, default=RESULTS / "lab-migrate.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the lab benchmark needs root (two libvirtd daemons, huge pages)", file=sys.stderr)
        return 2
    lab = Lab.at(Path("/var/lib/numa-migrate") / f"lab-bench-{os.getpid()}")
    lab.up(hugepages=80, progress=lambda m: print(f"lab: {m}", file=sys.stderr))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return _run(lab, Path(tmp), args.rounds, args.out)
    finally:
        lab.down()


def _run(lab: Lab, tmp: Path, rounds: int, out: Path) -> int:
    conns = {h: connect(lab.uri(h), h) for h in (SRC, DST)}
    huge = 2048 if (pool.read_pool() or 0) >= 64 else None
    xml = pinned_numa_guest_xml(GUEST, image=lab.counter_image, hugepage_kib=huge,
                                domain_type=lab.domain_type())
    dom = conns[SRC].define(xml)
    dom.start()
    wait_until_counting(dom)
    hosts = Hosts(load_inventory(_inventory(lab, tmp)))
    src, dst = hosts.ref(SRC), hosts.ref(DST)
    legs: list[Leg] = []
    with ClaimStore.open(f"sqlite:///{tmp / 'claims.db'}") as store:
        for i in range(rounds):
            order = ("numa-migrate", "plain") if i % 2 == 0 else ("plain", "numa-migrate")
            for kind in order:
                for a, b in ((src, dst), (dst, src)):
                    if kind == "plain":
                        legs.append(_plain_leg(conns, a.name, b.name))
                    else:
                        legs.append(_tool_leg(hosts, store, a, b))
                    moved = conns[b.name].lookup(GUEST)
                    if moved is None or not counter_advances(moved):
                        raise SystemExit(f"the guest stopped counting after {legs[-1]}")
                print(f"round {i + 1}/{rounds} {kind}: "
                      + ", ".join(f"{leg.direction} {leg.whole_s:.2f} s "
                                  f"({leg.downtime_ms} ms)" for leg in legs[-2:]),
                      file=sys.stderr)
    guest = conns[SRC].lookup(GUEST)
    if guest is not None:
        guest.destroy()
        guest.undefine()
    tool = [leg for leg in legs if leg.kind == "numa-migrate"]
    plain = [leg for leg in legs if leg.kind == "plain"]
    summary = {
        "accelerator": lab.domain_type(), "huge_pages_kib": huge, "rounds": rounds,
        "legs_per_kind": len(tool),
        "numa_migrate": {a: _median(tool, a) for a in
                         ("whole_s", "job_s", "downtime_ms", "validate_s", "overhead_s")},
        "plain": {a: _median(plain, a) for a in ("whole_s", "job_s", "downtime_ms")},
    }
    summary["overhead_fraction"] = statistics.median(
        leg.overhead_s / (leg.whole_s + leg.validate_s) for leg in tool)
    summary["downtime_ratio"] = summary["numa_migrate"]["downtime_ms"] / summary["plain"][
        "downtime_ms"]
    summary["job_time_ratio"] = summary["numa_migrate"]["job_s"] / summary["plain"]["job_s"]
    summary["whole_ratio"] = summary["numa_migrate"]["whole_s"] / summary["plain"]["whole_s"]
    summary["legs"] = [leg.__dict__ | {"overhead_s": leg.overhead_s} for leg in legs]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    t, p = summary["numa_migrate"], summary["plain"]
    print(f"{len(tool)} legs each ({lab.domain_type()}, huge pages {huge} KiB)")
    print(f"{'':14}{'whole':>10}{'libvirt job':>13}{'downtime':>10}")
    print(f"{'numa-migrate':14}{t['whole_s']:>9.2f}s{t['job_s']:>12.2f}s{t['downtime_ms']:>8.0f}ms")
    print(f"{'plain':14}{p['whole_s']:>9.2f}s{p['job_s']:>12.2f}s{p['downtime_ms']:>8.0f}ms")
    print(f"ratios numa-migrate/plain: downtime {summary['downtime_ratio']:.2f}, "
          f"job time {summary['job_time_ratio']:.2f}, whole {summary['whole_ratio']:.2f}")
    print(f"tool overhead (fit+claim+XML+connects+validate): median {t['overhead_s']:.2f} s, "
          f"{summary['overhead_fraction']:.0%} of the whole (validate {t['validate_s']:.2f} s)")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

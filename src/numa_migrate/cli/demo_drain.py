"""The lab demo's drain step: lab-src emptied onto lab-dst, planned from the live hosts.

After the there-and-back tour the pinned demo guest runs on lab-src again, next to a second
small guest started at the beginning of the tour (it boots meanwhile): pinned too when
lab-src has a free dedicated CPU, else floating on lab-src's shared CPUs (the plain lab
splits a two-CPU machine: one dedicated CPU per host, so it holds one pinned guest per
host). The drain of lab-src is then planned from the hosts as they run (the fleet read
live, as ``drain lab-src --hosts`` reads it), printed with its picture, run wave by wave
through the migration engine (as ``plan run`` runs a saved plan: claims, journal, progress)
and every guest validated on lab-dst.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.rule import Rule

from numa_migrate.claims import ClaimStore
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.destination import DestinationPlan
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.request import Flavor
from numa_migrate.lab import DST, SRC
from numa_migrate.migrate.hosts import Hosts

SECOND = "nm-demo-2"
"""The second guest of the drain (the first is the tour's pinned guest)."""
DRAINED = (SRC,)


class DrainLab(Protocol):
    """What the drain step needs of a lab."""

    @property
    def counter_image(self) -> Path: ...

    @property
    def inventory_path(self) -> Path: ...

    def domain_type(self) -> str: ...


def second_flavor(pinned: bool, huge_pages: bool) -> Flavor:
    """1 vCPU, 64 MiB: dedicated (one guest cell) when ``pinned``, else floating."""
    if not pinned:
        return Flavor(1, 64, {}, "nm-demo.floating")
    specs = {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "1"}
    if huge_pages:
        specs["hw:mem_page_size"] = "2048"
    return Flavor(1, 64, specs, "nm-demo.pinned")


def validate_moved(console: Console, hosts: Hosts, dest: str, guest: str,
                   plan: DestinationPlan | None = None) -> None:
    """`validate` of ``guest`` on ``dest`` (against ``plan`` when given), one line; the
    guest's counter must still advance there. Raises NumaMigrateError when it fails."""
    from numa_migrate.adapters.validate_live import validate_on_host
    from numa_migrate.hypervisor.libvirt import connection
    from numa_migrate.lab.guest import counter_advances

    checked = validate_on_host(hosts.inventory.host(dest), guest, plan)
    report = checked.report
    passed = sum(1 for c in report.checks if c.passed)
    skipped = sum(1 for c in report.checks if c.skipped)
    verdict = "[green]passed[/]" if report.passed else "[bold red]FAILED[/]"
    console.print(f"validate {guest} on {dest}: {verdict} ({passed} checks passed, "
                  f"{skipped} skipped; thread affinity from "
                  f"{checked.affinity_source.split(' (')[0]})")
    for c in report.failed:
        console.print(f"  [red]{c.title}[/]: {c.detail or c.actual}")
    if not report.passed:
        raise NumaMigrateError(f"validate {guest} failed on {dest}")
    with connection(hosts.inventory.host(dest).uri, dest) as conn:
        moved = conn.lookup(guest)
        alive = moved is not None and counter_advances(moved)
    console.print(f"{guest} {'keeps running' if alive else 'STOPPED'} on {dest}")
    if not alive:
        raise NumaMigrateError(f"{guest} does not run on {dest} after the drain")


def start_second(console: Console, lab: DrainLab, hosts: Hosts, first: str) -> None:
    """Define and start :data:`SECOND` on lab-src next to ``first``: pinned when a dedicated
    CPU is free, else floating. Returns at once: it boots while the tour goes on
    (:func:`drain_step` waits until it counts)."""
    from numa_migrate.adapters.inventory_live import read_live_host
    from numa_migrate.hypervisor.libvirt import connection
    from numa_migrate.lab.flavored import FlavoredGuest, flavored_guest

    config = hosts.inventory.host(SRC)
    topology = read_live_host(config).topology
    pages = any(p.size_kib == 2048 and p.total - p.used >= 64
                for c in topology.cells for p in c.mempages)
    image = lab.counter_image
    guest = flavored_guest(SECOND, second_flavor(True, pages), topology, image=image,
                           domain_type=lab.domain_type())
    if isinstance(guest, FlavoredGuest):
        why = f"pinned: {SRC} has a free dedicated CPU"
    else:
        dedicated = CpuSet.of(config.cpu_dedicated_set or frozenset()).format() or "none"
        shared = CpuSet.of(topology.shared_cpus).format() or "none"
        why = (f"floating on {SRC}'s shared CPUs {shared}: its dedicated CPUs ({dedicated}) "
               f"are held by {first}")
        guest = flavored_guest(SECOND, second_flavor(False, False), topology, image=image,
                               domain_type=lab.domain_type())
        if not isinstance(guest, FlavoredGuest):
            raise NumaMigrateError(f"the second drain guest does not fit on {SRC}: "
                                   f"{guest.summary}")
    with connection(config.uri, SRC) as conn:
        conn.define(guest.xml).start()
    console.print(f"{SECOND} boots on {SRC} next to {first}, for the drain at the end "
                  f"({why})")


def _wait_for_second(console: Console, hosts: Hosts) -> None:
    from numa_migrate.hypervisor.libvirt import connection
    from numa_migrate.lab.guest import wait_until_counting

    with connection(hosts.inventory.host(SRC).uri, SRC) as conn:
        dom = conn.lookup(SECOND)
        if dom is None or not dom.is_active():
            raise NumaMigrateError(f"{SECOND} does not run on {SRC}")
        wait_until_counting(dom)
    console.print(f"{SRC} runs {SECOND} next to the tour's guest; both counters advance")


def drain_step(console: Console, lab: DrainLab, hosts: Hosts, store: ClaimStore) -> None:
    """Drain lab-src (running ``first`` and :data:`SECOND`, see :func:`start_second`) onto lab-dst:
    plan from the live hosts, print plan and picture, run the waves, validate each guest.
    Raises NumaMigrateError (with the reason) when a step fails; the caller removes the
    guests."""
    from numa_migrate.adapters.drainstate import fleet_state
    from numa_migrate.adapters.livefleet import live_fleet
    from numa_migrate.adapters.pictures import drain_picture
    from numa_migrate.cli.drain import plan_for, plan_json, print_plan, save_plan, with_left_out
    from numa_migrate.cli.fleetsource import print_fleet_notes
    from numa_migrate.cli.picture import print_picture
    from numa_migrate.cli.planrun import Display, print_report
    from numa_migrate.hypervisor.base import MigrateOptions
    from numa_migrate.inputs.drainplans import read_drain_plan
    from numa_migrate.migrate.drainmove import EngineMoves
    from numa_migrate.migrate.drainrun import run_plan

    console.print(Rule(f"Drain {SRC}: every guest planned off it from the live hosts, "
                       "then moved in waves"))
    started = time.monotonic()
    _wait_for_second(console, hosts)
    fleet = live_fleet(hosts, store=store)
    state = fleet_state(fleet)
    plan = with_left_out(plan_for(state, DRAINED, 4, 2, time_limit_s=10), fleet, DRAINED)
    console.print(f"[dim]the plan `numa-migrate drain {SRC} --hosts {lab.inventory_path}` "
                  "makes[/]")
    print_plan(console, plan, DRAINED)
    print_fleet_notes(console, fleet.notes)
    print_picture(console, drain_picture(state, plan, DRAINED, others=False))
    if plan.unplaceable:
        raise NumaMigrateError(f"the drain of {SRC} cannot move every guest: "
                               + "; ".join(f"{u.guest}: {u.reason}" for u in plan.unplaceable))
    document = save_plan(plan_json(plan, DRAINED), None, kind="inventory",
                         source=str(lab.inventory_path))
    to_run = read_drain_plan(document, source="the demo's drain plan")
    moves = EngineMoves(store, hosts, MigrateOptions())
    moves.check_hosts(to_run.hosts)
    with Display(console, len(to_run.moves)) as display:
        moves.on_progress = display.progress_of
        moves.on_phase = display.phase
        report = run_plan(to_run, moves, store=store, watch=display)
    print_report(console, report)
    if not report.all_moved:
        why = "; ".join(f"{r.move.guest}: {r.state.value} ({r.reason})"
                        for r in report.moves if r.reason)
        raise NumaMigrateError(f"the drain of {SRC} did not move every guest: "
                               f"{why or 'see the table above'}")
    for r in report.moves:
        validate_moved(console, hosts, r.move.destination, r.move.guest)
    console.print(f"{SRC} is empty: {len(report.moves)} guests drained onto {DST} in "
                  f"{time.monotonic() - started:.1f} s (plan, waves and validation)\n")


__all__ = ["SECOND", "drain_step", "start_second", "validate_moved"]

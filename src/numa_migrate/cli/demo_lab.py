"""The demo's second half: a real pinned guest live-migrated on the two-daemon lab and back.

Brings the lab up when it is down (root; packages installed with apt when missing), starts
a counter guest made from a Nova-style flavor and pinned by the fitter on lab-src, migrates
it to lab-dst with numa-migrate (claims in the default SQLite store, rewritten live and
persistent XML, progress), validates it there, migrates it back and validates again; then
drains lab-src onto lab-dst (:mod:`numa_migrate.cli.demo_drain`: a second guest started
next to the first, the drain planned from the live hosts, its waves run through the
migration engine, each guest validated on lab-dst); then removes the guests, and takes the
lab down if the demo brought it up (unless ``keep_lab``).
Returns "done", "skipped" (the machine cannot run the lab: it says why) or "failed".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.rule import Rule

from numa_migrate.adapters.inventory import load_inventory
from numa_migrate.adapters.inventory_live import read_live_host
from numa_migrate.claims import ClaimStore, default_url
from numa_migrate.cli.common import pin_table
from numa_migrate.cli.demo_drain import SECOND, drain_step, start_second, validate_moved
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.request import Flavor
from numa_migrate.hypervisor.base import HypervisorError
from numa_migrate.hypervisor.libvirt import connection
from numa_migrate.lab import DST, SRC, LabUnavailableError
from numa_migrate.lab.flavored import FlavoredGuest, flavored_guest
from numa_migrate.lab.guest import remove_guest, wait_until_counting
from numa_migrate.lab.state import default_lab
from numa_migrate.migrate.hosts import Hosts
from numa_migrate.migrate.plan import NoRoom
from numa_migrate.migrate.run import Migration, Outcome

GUEST = "nm-demo"
LAB_HUGEPAGES = 80


def demo_flavor(huge_pages: bool) -> Flavor:
    specs = {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "1"}
    if huge_pages:
        specs["hw:mem_page_size"] = "2048"
    return Flavor(1, 64, specs, "nm-demo.pinned")


def multi_node_flavor(huge_pages: bool) -> Flavor:
    """Two guest cells, one per host node, each vCPU pinned to a thread of its node."""
    specs = {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "2"}
    if huge_pages:
        specs["hw:mem_page_size"] = "2048"
    return Flavor(2, 128, specs, "nm-demo.two-cells")


class _DemoLab(Protocol):
    """What the tour needs of a lab (the plain one or the multi-node one)."""

    @property
    def inventory_path(self) -> Path: ...

    @property
    def counter_image(self) -> Path: ...

    def domain_type(self) -> str: ...

    def uri(self, host: str) -> str: ...


def run_lab_demo(console: Console, *, keep_lab: bool = False) -> str:
    console.print(Rule("4. A real live migration on the two-daemon lab"))
    if os.geteuid() != 0:
        console.print("[yellow]skipped[/]: the lab needs root (two libvirtd daemons in private "
                      "namespaces, huge pages). Run `sudo bash scripts/demo.sh`.")
        return "skipped"
    lab = default_lab()
    brought_up = not lab.status().up
    try:
        lab.up(hugepages=LAB_HUGEPAGES, progress=lambda m: console.print(f"[dim]lab: {m}[/]"))
    except LabUnavailableError as exc:
        console.print(f"[yellow]skipped[/]: this machine cannot run the lab: {exc}")
        return "skipped"
    return _run_tour(console, lab, demo_flavor, brought_up=brought_up and not keep_lab,
                     down=lab.down, failed="the lab demo failed",
                     down_note="taking the lab down (it was down before the demo; "
                               "`numa-migrate demo --keep-lab` leaves it up)")


def _run_tour(console: Console, lab: _DemoLab, make_flavor: Callable[[bool], Flavor], *,
              brought_up: bool, down: Callable[[], object], failed: str,
              down_note: str) -> str:
    """The tour, then the guest removed and the lab taken down if the demo brought it up."""
    try:
        _tour(console, lab, make_flavor)
    except NumaMigrateError as exc:
        console.print(f"[bold red]{failed}[/]: {exc}")
        return "failed"
    finally:
        _remove_guest(lab)
        if brought_up:
            console.print(f"[dim]{down_note}[/]")
            down()
    return "done"


def run_multi_node_demo(console: Console, *, keep_lab: bool = False) -> str:
    """The same tour on the multi-node lab, with a two-cell guest spread over both nodes."""
    from numa_migrate.lab.vm.multinode import MultiNodeLab

    console.print(Rule("A two-cell guest across two NUMA nodes, on the multi-node lab"))
    if os.geteuid() != 0:
        console.print("[yellow]skipped[/]: the multi-node lab needs root (a QEMU VM, then two "
                      "libvirtd daemons inside). Run `sudo bash scripts/demo.sh`.")
        return "skipped"
    lab = MultiNodeLab()
    brought_up = not lab.status().running
    try:
        lab.up(progress=lambda m: console.print(f"[dim]lab: {m}[/]"))
    except LabUnavailableError as exc:
        console.print(f"[yellow]skipped[/]: this machine cannot run the multi-node lab: {exc}")
        return "skipped"
    console.print("[dim]the VM's guests are emulated inside an emulated machine: each move "
                  "takes about half a minute[/]")
    return _run_tour(console, lab, multi_node_flavor, brought_up=brought_up and not keep_lab,
                     down=lab.down, failed="the multi-node demo failed",
                     down_note="stopping the multi-node lab's VM (it was down before the "
                               "demo; its image stays cached)")


def _tour(console: Console, lab: _DemoLab, make_flavor: Callable[[bool], Flavor]) -> None:
    hosts = Hosts(load_inventory(lab.inventory_path))
    src_cfg, dst_cfg = hosts.inventory.host(SRC), hosts.inventory.host(DST)
    for cfg in (src_cfg, dst_cfg):
        console.print(f"{cfg.name}: cpu_dedicated_set={_spec(cfg.cpu_dedicated_set)} "
                      f"cpu_shared_set={_spec(cfg.cpu_shared_set)}  ({cfg.uri})")
    _remove_guest(lab)
    src_live = read_live_host(src_cfg)
    pages = any(p.size_kib == 2048 and p.total - p.used >= 64
                for c in src_live.topology.cells for p in c.mempages)
    flavor = make_flavor(pages)
    guest = flavored_guest(GUEST, flavor, src_live.topology, image=lab.counter_image,
                           domain_type=lab.domain_type())
    if not isinstance(guest, FlavoredGuest):
        raise NumaMigrateError(f"the demo guest does not fit on {SRC}: {guest.summary}")
    console.print(f"\nFlavor {flavor.name}: "
                  + ", ".join(f"{k}={v}" for k, v in flavor.extra_specs.items())
                  + f"; placed by the fitter on {SRC}: {_plan_text(guest)}")
    with connection(src_cfg.uri, SRC) as conn:
        dom = conn.define(guest.xml)
        dom.start()
        wait_until_counting(dom)
        console.print(f"{GUEST} is running on {SRC} ({lab.domain_type()}); its counter "
                      "advances")
    start_second(console, lab, hosts, GUEST)
    console.print()
    with ClaimStore.open(os.environ.get("NUMA_MIGRATE_DB") or default_url()) as store:
        console.print(f"[dim]claims store: {store.safe_url}[/]")
        for source, dest in ((SRC, DST), (DST, SRC)):
            outcome = _migrate(console, hosts, store, source, dest)
            validate_moved(console, hosts, dest, GUEST, outcome.plan.dest_plan)
            console.print()
        drain_step(console, lab, hosts, store)


def _migrate(console: Console, hosts: Hosts, store: ClaimStore, source: str,
             dest: str) -> Outcome:
    # no progress bar here: on the lab the whole data transfer takes a fraction of a second
    started = time.monotonic()
    job = Migration(store=store, source=hosts.ref(source), destination=hosts.ref(dest),
                    domain=GUEST, read_host=hosts.read_host,
                    on_phase=lambda phase, msg: console.print(f"[dim]{phase:>9}[/] {msg}"))
    outcome = job.run()
    if isinstance(outcome, NoRoom):
        raise NumaMigrateError(f"{dest} has no room: {outcome.summary}")
    console.print(pin_table(f"{GUEST}: {source} → {dest}", outcome))
    console.print(f"migrated in {time.monotonic() - started:.2f} s (libvirt "
                  f"{outcome.seconds:.2f} s), downtime {outcome.downtime_ms} ms; claim "
                  f"{outcome.claim_id} released once the guest ran on {dest}")
    return outcome


def _plan_text(guest: FlavoredGuest) -> str:
    if guest.plan is None:
        return "floating"
    pins = ", ".join(f"vCPU {v} → CPU {CpuSet.of(c)}"
                     for v, c in sorted(guest.plan.vcpu_pins.items()))
    pages = (f", {max(guest.plan.hugepage_kib.values())} KiB pages"
             if guest.plan.hugepage_kib else "")
    nodes = CpuSet.of(guest.plan.memory_nodes).format()
    return f"{pins}, emulator → CPU {CpuSet.of(guest.plan.emulator_pins)}, " \
           f"memory on node {nodes}{pages}"


def _spec(cpus: frozenset[int] | None) -> str:
    return "(unset)" if cpus is None else CpuSet.of(cpus).format()


def _remove_guest(lab: _DemoLab) -> None:
    for host in (SRC, DST):
        try:
            with connection(lab.uri(host), host) as conn:
                for name in (GUEST, SECOND):
                    remove_guest(conn, name)
        except HypervisorError:
            continue


__all__ = ["run_lab_demo", "run_multi_node_demo"]

"""``numa-migrate lab``: two real libvirt daemons on this machine, to migrate guests for real.

Exit codes: 0 success; 1 ``lab status`` found the lab not (fully) up; 2 an error (one line on
stderr: what failed and what to do). Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from numa_migrate.cli.numbers import Bounded
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.limits import MAX_GUEST_CELLS, MAX_GUEST_VCPUS, MAX_MEMORY_MIB
from numa_migrate.hypervisor.base import Domain, Hypervisor
from numa_migrate.hypervisor.libvirt import connect, connection
from numa_migrate.lab import (
    HOST_NAMES,
    SRC,
    Lab,
    LabError,
    LabStatus,
    counter_delta,
    counter_guest_xml,
    read_counter,
    wait_until_counting,
)
from numa_migrate.lab.guest import remove_guest

F = TypeVar("F", bound=Callable[..., Any])
EXIT_NOT_UP = 1
EXIT_ERROR = 2


def _progress(message: str) -> None:
    click.echo(f"lab: {message}", err=True)


def _errors(func: F) -> F:
    """One clear line on stderr and exit code 2 instead of a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NumaMigrateError as exc:
            message = str(exc)
        except OSError as exc:
            message = f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}"
        click.echo(f"error: {' '.join(message.split())}", err=True)
        sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


def _lab() -> Lab:
    return Lab.at()


T = TypeVar("T")


def run_or_exit(action: Callable[[], T]) -> T:
    """``action()``, or one line on stderr and exit 2 for a lab or OS error."""
    return _errors(action)()


def _print_status(status: LabStatus) -> None:
    state = "up" if status.up else "not up"
    accel = "KVM" if status.domain_type == "kvm" else "TCG"
    click.echo(f"lab {status.lab_dir}: {state}")
    click.echo(f"guests use {accel}: {status.domain_type_reason}")
    for host in status.hosts:
        if host.running:
            click.echo(
                f"  {host.name}  running  pid {host.pid}  {host.accelerator}  "
                f"{host.domains} domains ({host.running_domains} running)  "
                f"uuid {host.host_uuid}"
            )
        else:
            why = f" ({host.error})" if host.error else ""
            click.echo(f"  {host.name}  not running{why}")
        click.echo(f"      {host.uri}")
    pages = status.hugepages
    line = (
        f"huge pages: {pages.reserved} x {pages.page_kib // 1024} MiB reserved by the lab "
        f"({pages.requested} requested; kernel pool {pages.pool_now}"
    )
    if pages.pool_before is not None:
        line += f", {pages.pool_before} before the lab"
    click.echo(line + ")" + (f"; {pages.note}" if pages.note else ""))
    click.echo(f"inventory: {status.inventory}")


@click.group("lab")
def lab() -> None:
    """A real two-host libvirt lab on this machine: lab-src and lab-dst.

    Two libvirtd daemons run side by side, each in its own mount namespace with private
    /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt
    and a distinct host UUID, so that a real live migration can go from one to the
    other. Guests use KVM when /dev/kvm works, else TCG (slow software emulation).
    Needs root; missing Debian packages are installed with apt-get.

    \b
    Examples:
      numa-migrate lab up --hugepages 64     # start both daemons, reserve 64 x 2 MiB
      numa-migrate lab status                # what runs, URIs, huge pages
      numa-migrate lab guest start demo      # a counter guest on lab-src
      virsh -c "$(numa-migrate lab status --json | jq -r '.hosts[0].uri')" list
      numa-migrate lab openstack up          # a real OpenStack (Zed) on top: two computes
      numa-migrate lab up --multi-node       # the lab in a VM: 2 NUMA nodes, SMT, 1 GiB pages
      numa-migrate lab down                  # stop everything (OpenStack, VM too), leave no trace

    The state lives in /var/lib/numa-migrate/lab (or $NUMA_MIGRATE_LAB_DIR); `up`
    writes the hosts' URIs to inventory.toml there.

    Exit 0 success, 1 `lab status` found the lab not (fully) up or `lab guest counter`
    saw the counter stand still, 2 an error (one line on stderr: what failed, what to do).
    """


@lab.command("up")
@click.option(
    "--hugepages",
    type=Bounded(0, 1 << 24, why="32 TiB of 2 MiB pages"),
    metavar="N",
    help="Reserve N huge pages of 2 MiB for the lab's guests (the two daemons share the "
    "kernel's pool; a migrating guest holds its pages on both sides, so reserve twice its "
    "size). 0 gives a reservation back; without the option it is kept as it is. A short "
    "or refused reservation is reported, not an error. (The multi-node lab reserves its "
    "pages at boot.)",
)
@click.option(
    "--multi-node",
    is_flag=True,
    help="Run the lab inside a QEMU VM with 2 NUMA nodes, SMT sibling threads and 1 GiB "
    "pages (built once with debootstrap and cached, booted on TCG: minutes). lab-src and "
    "lab-dst run inside it as here, reached with libvirt's ssh transport on 127.0.0.1.",
)
@click.option(
    "--boot-timeout",
    type=Bounded(10, 3600, why="an hour"),
    default=600,
    show_default=True,
    metavar="S",
    help="With --multi-node: give up (and stop the VM) when it does not answer within S s.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON document.")
@_errors
def up_cmd(hugepages: int | None, multi_node: bool, boot_timeout: int, as_json: bool) -> None:
    """Start lab-src and lab-dst (running daemons are reused) and write the inventory.

    Safe to run again: daemons that answer are kept, stale pid files and leftover
    processes of a crashed lab are cleaned up first. With --multi-node the lab runs in a
    VM (state in /var/lib/numa-migrate/lab-multi-node, image cache in
    /var/cache/numa-migrate/lab-vm); a VM that answers is reused, and a failed start
    stops the VM again.
    """
    if multi_node:
        if hugepages is not None:
            raise click.UsageError("--hugepages is for this machine's lab: the multi-node "
                                   "lab reserves its pages at boot")
        from numa_migrate.cli import lab_multinode

        lab_multinode.up(boot_timeout=float(boot_timeout), as_json=as_json)
        return
    status = _lab().up(hugepages=hugepages, progress=_progress)
    if as_json:
        click.echo(json.dumps(status.to_json(), indent=2))
    else:
        _print_status(status)


@lab.command("down")
@click.option("--multi-node", is_flag=True,
              help="Only the multi-node lab's VM (without it: everything, the VM included).")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@_errors
def down_cmd(multi_node: bool, as_json: bool) -> None:
    """Stop both daemons and their guests and remove everything `up` made.

    The daemons and every QEMU they started are killed (their namespaces and private
    mounts go with them), the huge page pool goes back to its size before `up`, and the
    lab directory (and any system mount-point directory `up` had to create) is removed.
    The OpenStack on the lab and the multi-node lab's VM go first; the VM's image cache
    is kept.
    """
    from numa_migrate.cli import lab_multinode
    from numa_migrate.lab.vm.multinode import default_dir

    if multi_node or default_dir().exists():
        vm_report = lab_multinode.down(as_json=as_json and multi_node)
        if multi_node:
            if not as_json:
                click.echo(lab_multinode.down_line(vm_report))
            return
        click.echo(lab_multinode.down_line(vm_report), err=as_json)
    lab_ = _lab()
    if (lab_.lab_dir / "openstack").exists():
        from numa_migrate.lab.openstack import OpenStackLab

        OpenStackLab(lab_).down(progress=_progress)
    report = lab_.down(progress=_progress)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(
            f"lab {report.lab_dir} is down: {len(report.stopped)} processes stopped"
            + (
                f", huge page pool back to {report.hugepages_restored_to}"
                if report.hugepages_restored_to is not None
                else ""
            )
        )
        for note in report.notes:
            click.echo(f"note: {note}", err=True)


@lab.command("status")
@click.option("--multi-node", is_flag=True, help="The multi-node lab (the VM) instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON document.")
@_errors
def status_cmd(multi_node: bool, as_json: bool) -> None:
    """Show both hosts (running, pid, URI, domains, KVM or TCG) and the huge pages.

    With --multi-node: the VM (pid, ssh port, image), what its kernel shows per NUMA node
    (CPUs, sibling threads, free 1 GiB and 2 MiB pages) and the hosts' URIs.
    Exit 0 when both daemons answer, 1 when the lab is not (fully) up.
    """
    if multi_node:
        from numa_migrate.cli import lab_multinode

        lab_multinode.status(as_json=as_json)
        return
    status = _lab().status()
    if as_json:
        click.echo(json.dumps(status.to_json(), indent=2))
    else:
        _print_status(status)
    sys.exit(0 if status.up else EXIT_NOT_UP)


def _add_openstack() -> None:
    from numa_migrate.cli.lab_openstack import openstack

    lab.add_command(openstack)


_add_openstack()


@lab.group("guest")
def guest() -> None:
    """Counter guests for demos: a 512-byte boot sector that counts at address 0x500.

    The counter proves a guest is alive: read it with `numa-migrate lab guest counter
    NAME` or `virsh qemu-monitor-command NAME --hmp 'xp /1wx 0x500'`.
    """


def _pins(values: tuple[str, ...]) -> dict[int, str]:
    pins: dict[int, str] = {}
    for item in values:
        vcpu, sep, cpus = item.partition("=")
        if not sep or not vcpu.strip().isdigit() or not cpus.strip():
            raise click.BadParameter(f"{item!r} is not VCPU=CPUS (e.g. 0=1)", param_hint="--pin")
        pins[int(vcpu)] = cpus.strip()
    return pins


def _find(lab_: Lab, name: str) -> tuple[str, Hypervisor, Domain] | None:
    """(host, connection, domain) of the first lab host that has domain ``name``."""
    for host in HOST_NAMES:
        conn = connect(lab_.uri(host), host)
        dom = conn.lookup(name)
        if dom is not None:
            return host, conn, dom
        conn.close()
    return None


@guest.command("start")
@click.argument("name")
@click.option("--host", type=click.Choice(HOST_NAMES), default=SRC, show_default=True,
              help="The lab host to start it on.")
@click.option("--vcpus", type=Bounded(1, MAX_GUEST_VCPUS, why="QEMU's maximum vCPUs"),
              default=2, show_default=True, metavar="N", help="vCPUs.")
@click.option("--memory", "memory_mib", type=Bounded(16, MAX_MEMORY_MIB, why="4 PiB"),
              default=64, metavar="MiB",
              show_default=True, help="Memory in MiB.")
@click.option("--pin", "pins", multiple=True, metavar="VCPU=CPUS",
              help="Pin a vCPU (<vcpupin>), e.g. --pin 0=0 --pin 1=1.")
@click.option("--emulator-pin", metavar="CPUS", help="CPUs of QEMU's other threads.")
@click.option("--cells", type=Bounded(1, MAX_GUEST_CELLS, why="QEMU's maximum NUMA nodes"),
              default=1, show_default=True, metavar="N",
              help="Guest NUMA cells (vCPUs and memory split evenly; memory on host node 0).")
@click.option("--hugepages", is_flag=True, help="Back the memory with 2 MiB huge pages.")
@_errors
def guest_start(
    *,
    name: str,
    host: str,
    vcpus: int,
    memory_mib: int,
    pins: tuple[str, ...],
    emulator_pin: str | None,
    cells: int,
    hugepages: bool,
) -> None:
    """Define and start counter guest NAME and wait until its counter moves."""
    lab_ = _lab()
    if not lab_.status().host(host).running:
        raise LabError(f"{host} is not running: run `numa-migrate lab up` first")
    if cells > vcpus or memory_mib % cells or (hugepages and (memory_mib // cells) % 2):
        raise click.BadParameter(
            f"{cells} cells need at least {cells} vCPUs and memory divisible into equal cells"
            + (" of whole 2 MiB pages" if hugepages else ""),
            param_hint="--cells",
        )
    cell_list: list[tuple[str | int, int]] = []
    if cells > 1:
        per = vcpus // cells
        for i in range(cells):
            last = vcpus - 1 if i == cells - 1 else (i + 1) * per - 1
            cpus = f"{i * per}-{last}" if last > i * per else str(i * per)
            cell_list.append((cpus, memory_mib // cells))
    xml = counter_guest_xml(
        name,
        image=lab_.counter_image,
        vcpus=vcpus,
        memory_mib=memory_mib,
        vcpu_pins=_pins(pins) or None,
        emulator_pin=emulator_pin,
        cells=cell_list,
        nodeset="0" if cells > 1 else None,
        memnodes={i: "0" for i in range(len(cell_list))} or None,
        hugepage_kib=2048 if hugepages else None,
        domain_type=lab_.domain_type(),
    )
    with connection(lab_.uri(host), host) as conn:
        dom = conn.define(xml)
        _progress(f"{name}: defined on {host}, starting")
        dom.start()
        value = wait_until_counting(dom)
    click.echo(f"{name} runs on {host}; counter {value:#010x} and moving")


@guest.command("counter")
@click.argument("name")
@click.option("--samples", type=Bounded(2, 1000), default=3, show_default=True,
              metavar="N", help="How many readings.")
@_errors
def guest_counter(name: str, samples: int) -> None:
    """Read the counter of guest NAME a few times (0.5 s apart): is it alive?

    Exit 0 when it moved between every two readings, 1 when it did not.
    """
    found = _find(_lab(), name)
    if found is None:
        raise LabError(f"no guest {name!r} on {' or '.join(HOST_NAMES)}")
    host, conn, dom = found
    try:
        values = [read_counter(dom)]
        for _ in range(samples - 1):
            time.sleep(0.5)
            values.append(read_counter(dom))
    finally:
        conn.close()
    moving = all(counter_delta(a, b) for a, b in itertools.pairwise(values))
    click.echo(
        f"{name} on {host}: " + " ".join(f"{v:#010x}" for v in values)
        + ("  (alive)" if moving else "  (NOT moving)")
    )
    sys.exit(0 if moving else 1)


@guest.command("stop")
@click.argument("name")
@_errors
def guest_stop(name: str) -> None:
    """Destroy and undefine guest NAME on whichever lab host has it."""
    lab_ = _lab()
    gone = []
    for host in HOST_NAMES:
        with connection(lab_.uri(host), host) as conn:
            if remove_guest(conn, name):
                gone.append(host)
    if not gone:
        raise LabError(f"no guest {name!r} on {' or '.join(HOST_NAMES)}")
    click.echo(f"{name} stopped and undefined on {', '.join(gone)}")


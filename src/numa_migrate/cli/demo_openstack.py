"""The demo's OpenStack part (``demo --openstack``): Nova moves the guest; numa-migrate
explains where it can go, drives Nova's live migration there and validates Nova's result.

Brings up the OpenStack lab when it is down (Debian 12's Zed packages, installed with
apt-get when missing: a few minutes the first time), boots a pinned huge-page server on
lab-src, explains every compute for it, asks Nova to live-migrate it to the best one,
validates Nova's placement against libvirt and /proc, then deletes the server and its
flavor, and takes the OpenStack lab down if the demo brought it up (unless ``keep_lab``).
Returns "done", "skipped" (the machine cannot run it: it says why) or "failed".
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from rich.console import Console
from rich.rule import Rule

from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.lab import LabUnavailableError
from numa_migrate.lab.openstack import CLOUD_NAME, OpenStackLab
from numa_migrate.lab.state import default_lab

SPECS = {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "large", "hw:numa_nodes": "1"}


def run_openstack_demo(console: Console, *, keep_lab: bool = False) -> str:
    console.print(Rule("5. OpenStack: Nova moves the guest, numa-migrate explains, drives and "
                       "validates"))
    if os.geteuid() != 0:
        console.print("[yellow]skipped[/]: the OpenStack lab needs root")
        return "skipped"
    try:
        import openstack  # noqa: F401
    except ImportError:
        console.print("[yellow]skipped[/]: openstacksdk is not installed "
                      "(pip install 'numa-migrate[openstack]'; scripts/demo.sh does it)")
        return "skipped"
    stack = OpenStackLab(default_lab())
    brought_up = not stack.status().up
    try:
        stack.up(progress=lambda m: console.print(f"[dim]lab openstack: {m}[/]"))
    except LabUnavailableError as exc:
        console.print(f"[yellow]skipped[/]: this machine cannot run the OpenStack lab: {exc}")
        return "skipped"
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(stack.paths.clouds_yaml)
    made: list[tuple[str, str]] = []
    try:
        _tour(console, stack, made)
    except NumaMigrateError as exc:
        console.print(f"[bold red]the OpenStack demo failed[/]: {exc}")
        return "failed"
    finally:
        for error in _delete(made):
            console.print(f"[yellow]cleanup[/]: {error}")
        if brought_up and not keep_lab:
            console.print("[dim]taking the OpenStack lab down (it was down before the demo; "
                          "`--keep-lab` leaves it up)[/]")
            stack.down()
    return "done"


def _tour(console: Console, stack: OpenStackLab, made: list[tuple[str, str]]) -> None:
    from numa_migrate.cli.cloud import _print_explain, _print_validation
    from numa_migrate.cloud import nova
    from numa_migrate.cloud.api import connect_cloud
    from numa_migrate.cloud.computes import ComputeMap
    from numa_migrate.cloud.explain import explain_server
    from numa_migrate.cloud.matrix import release_of
    from numa_migrate.cloud.migrate import migrate_server

    api = connect_cloud(CLOUD_NAME)
    version = nova.api_version(api)
    console.print(f"Nova {release_of(version.max)}, computes: "
                  + ", ".join(f"{s.host} {s.state}" for s in nova.compute_services(api)))
    name = f"nm-demo-{uuid.uuid4().hex[:6]}"
    flavor = nova.create_flavor(api, name, vcpus=1, ram_mib=64, extra_specs=SPECS)
    made.append(("flavor", flavor))
    image = nova.find_image(api, "numa-migrate-counter")
    if image is None:
        raise NumaMigrateError("the lab's counter image is missing from Glance")
    console.print(f"booting {name} on lab-src (flavor: "
                  + ", ".join(f"{k}={v}" for k, v in SPECS.items()) + ")")
    server = _boot(api, name, flavor, image, made)
    computes = ComputeMap(_inventory(stack))
    console.print(Rule("explain --cloud: every compute, per NUMA cell", style="dim"))
    _print_explain(explain_server(api, server.id, computes))
    console.print(Rule("migrate --cloud: our checks, then Nova's live migration", style="dim"))
    result = migrate_server(api, server.id, computes,
                            on_phase=lambda p, m: console.print(f"[dim]{p:>9}[/] {m}"))
    if result.outcome != "completed" or result.validation is None:
        raise NumaMigrateError(f"Nova's migration: {result.outcome}: {result.detail}")
    before = result.explanation.context.topology
    after = result.validation.context.topology
    console.print(f"Nova moved {name} {result.source} → {result.destination} in "
                  f"{result.seconds:.1f} s; Nova's pins were {_pins(before)} on {result.source}, "
                  f"are {_pins(after)} on {result.destination}")
    console.print(Rule("validate --cloud: Nova's view against libvirt and /proc",
                       style="dim"))
    _print_validation(result.validation)
    if not result.validation.passed:
        raise NumaMigrateError("Nova's placement did not validate")


def _boot(api: Any, name: str, flavor: str, image: str, made: list[tuple[str, str]]) -> Any:
    from numa_migrate.cloud import nova

    deadline = time.monotonic() + 90
    while True:
        server_id = nova.boot_server(api, name, flavor, image, "lab-src")
        made.append(("server", server_id))
        server = nova.wait_server(api, server_id)
        if server.status == "ACTIVE":
            return server
        if "Insufficient compute resources" not in (server.fault or "") or \
                time.monotonic() > deadline:
            raise NumaMigrateError(f"Nova could not boot {name}: {server.fault}")
        nova.delete_server(api, server_id)  # a deleted migrated server's pins, not yet freed
        time.sleep(5)


def _inventory(stack: OpenStackLab) -> Any:
    from numa_migrate.adapters.inventory import load_inventory

    return load_inventory(stack.lab.inventory_path)


def _pins(topology: Any) -> str:
    if topology is None:
        return "none"
    return ", ".join(f"vCPU {v} → CPU {c}" for cell in topology.cells
                     for v, c in sorted(cell.pinning.items())) or "none"


def _delete(made: list[tuple[str, str]]) -> list[str]:
    """Delete what the demo made; what could not be deleted, one message each."""
    from numa_migrate.cloud import nova
    from numa_migrate.cloud.api import connect_cloud

    if not made:
        return []
    try:
        return nova.delete_made(connect_cloud(CLOUD_NAME), made)
    except NumaMigrateError as exc:
        return [str(exc)]


__all__ = ["run_openstack_demo"]

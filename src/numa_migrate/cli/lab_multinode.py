"""``numa-migrate lab up|status|down --multi-node``: the lab inside a VM with 2 NUMA nodes.

Kept apart from :mod:`numa_migrate.cli.lab` so that the plain lab's commands stay small;
``lab`` calls these when ``--multi-node`` is given.
"""

from __future__ import annotations

import json
import sys

import click

from numa_migrate.lab.vm.multinode import MultiNodeDown, MultiNodeLab, MultiNodeStatus

EXIT_NOT_UP = 1


def _progress(message: str) -> None:
    click.echo(f"lab: {message}", err=True)


def print_status(status: MultiNodeStatus) -> None:
    click.echo(f"multi-node lab {status.state_dir}: {'up' if status.up else 'not up'}")
    if status.problem:
        click.echo(f"  problem: {status.problem}")
    if not status.running:
        if status.image:
            click.echo(f"  image cache: {status.image}")
        return
    click.echo(f"  VM: QEMU pid {status.pid}, TCG, ssh on 127.0.0.1:{status.ssh_port}; "
               f"guests inside use {'TCG' if status.domain_type == 'qemu' else 'KVM'}")
    if status.image:
        click.echo(f"  image: {status.image}")
    if status.facts:
        for node, cpus in sorted(status.facts.nodes.items()):
            pages = status.facts.pages.get(node, {})
            cores = " ".join(status.facts.siblings.get(node, []))
            click.echo(
                f"  node {node}: CPUs {cpus} (cores {cores}); 1 GiB pages "
                f"{pages.get('1048576 KiB free', 0)}/{pages.get('1048576 KiB total', 0)} free, "
                f"2 MiB pages {pages.get('2048 KiB free', 0)}/{pages.get('2048 KiB total', 0)}"
                " free")
    for name, uri in status.uris.items():
        click.echo(f"  {name}: {uri}")
    if status.inventory:
        click.echo(f"inventory: {status.inventory}")


def up(*, boot_timeout: float, as_json: bool) -> None:
    status = MultiNodeLab().up(progress=_progress, boot_timeout=boot_timeout)
    if as_json:
        click.echo(json.dumps(status.to_json(), indent=2))
    else:
        print_status(status)


def status(*, as_json: bool) -> None:
    found = MultiNodeLab().status()
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
    else:
        print_status(found)
    sys.exit(0 if found.up else EXIT_NOT_UP)


def down(*, as_json: bool) -> MultiNodeDown:
    report = MultiNodeLab().down(progress=_progress)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    return report


def down_line(report: MultiNodeDown) -> str:
    return (f"multi-node lab {report.state_dir} is down: "
            f"{len(report.stopped)} processes stopped (the image cache is kept)")


__all__ = ["down", "down_line", "print_status", "status", "up"]

"""``numa-migrate lab openstack up|status|down``: a real OpenStack on the two-daemon lab."""

from __future__ import annotations

import json
import sys

import click

from numa_migrate.cli.numbers import Bounded
from numa_migrate.lab import Lab
from numa_migrate.lab.openstack import OpenStackLab, StackStatus

EXIT_NOT_UP = 1


def _progress(message: str) -> None:
    click.echo(f"lab openstack: {message}", err=True)


def _stack() -> OpenStackLab:
    return OpenStackLab(Lab.at())


def _print_status(status: StackStatus) -> None:
    click.echo(f"openstack lab {status.root}: {'up' if status.up else 'not up'}")
    for s in status.services:
        state = f"pid {s.pid}" if s.running else "not running"
        port = "" if s.answers is None else ("  port answers" if s.answers else "  port closed")
        click.echo(f"  {s.name:<22} {state}{port}")
    for host, state in sorted(status.computes.items()):
        click.echo(f"  nova-compute on {host}: {state} (Nova's view)")
    if status.clouds_yaml:
        click.echo(f"credentials: export OS_CLIENT_CONFIG_FILE={status.clouds_yaml} "
                   f"OS_CLOUD={status.cloud}")


def _show(status: StackStatus, as_json: bool) -> None:
    """The status on stdout (JSON or text); exit 0 when up, 1 when not."""
    if as_json:
        click.echo(json.dumps(status.to_json(), indent=2))
    else:
        _print_status(status)
    sys.exit(0 if status.up else EXIT_NOT_UP)


@click.group("openstack")
def openstack() -> None:
    """A real OpenStack on the lab: Debian 12's own packages (Zed), two nova-computes.

    Keystone, Glance, Placement, Neutron (server only, no agents), Nova's API, conductor
    and scheduler, MariaDB and RabbitMQ run on 127.0.0.1; nova-compute `lab-src` drives
    the lab-src libvirtd and `lab-dst` the lab-dst one, each with the lab inventory's
    cpu_dedicated_set / cpu_shared_set, so Nova itself can live-migrate a pinned,
    huge-page guest between them. There is no systemd: every daemon is started here,
    tracked by pid and stopped by pid. Everything lives in <lab dir>/openstack.

    \b
    Examples:
      numa-migrate lab openstack up              # ~2.5 min once installed, ~5 from nothing
      export OS_CLIENT_CONFIG_FILE=/var/lib/numa-migrate/lab/openstack/clouds.yaml
      numa-migrate explain --cloud numa-migrate-lab --server SERVER
      numa-migrate lab openstack status --json
      numa-migrate lab openstack down            # stop it all, remove every trace

    Exit 0 success, 1 `status` found it not (fully) up, 2 an error (one line on stderr).
    """


@openstack.command("up")
@click.option("--hugepages", type=Bounded(0, 1 << 24, why="32 TiB of 2 MiB pages"),
              default=96, show_default=True, metavar="N",
              help="2 MiB huge pages the libvirt lab reserves for the servers.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON document.")
def up_cmd(hugepages: int, as_json: bool) -> None:
    """Install the packages if missing, start every service (reusing running ones) and
    wait until both computes are up in Nova. Each step prints its time on stderr.

    Writes clouds.yaml (cloud `numa-migrate-lab`) and openrc for the admin."""
    from numa_migrate.cli.lab import run_or_exit

    _show(run_or_exit(lambda: _stack().up(hugepages=hugepages, progress=_progress)), as_json)


@openstack.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON document.")
def status_cmd(as_json: bool) -> None:
    """Every service (pid, port) and Nova's view of the two computes. Exit 1 if not up."""
    from numa_migrate.cli.lab import run_or_exit

    _show(run_or_exit(lambda: _stack().status()), as_json)


@openstack.command("down")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def down_cmd(as_json: bool) -> None:
    """Stop every service, remove Nova's domains from the lab hosts, the databases, every
    file `up` wrote and its /etc/hosts lines. The libvirt lab stays up (`lab down`)."""
    from numa_migrate.cli.lab import run_or_exit

    report = run_or_exit(lambda: _stack().down(progress=_progress))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(f"openstack lab is down: {len(report.stopped)} services stopped, "
                   f"{len(report.removed)} things removed")
        for note in report.notes:
            click.echo(f"note: {note}", err=True)


__all__ = ["openstack"]

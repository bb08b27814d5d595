"""``numa-migrate validate DOMAIN --host HOST``: prove a domain is placed as planned.

Exit codes: 0 every check passed (skipped checks are listed with their reason); 1 at least
one check failed; 2 bad input (unknown host or domain, unreachable URI, bad inventory or
plan file), with one line on stderr and no traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from numa_migrate.adapters.inventory import load_inventory
from numa_migrate.adapters.inventory_live import LiveHost
from numa_migrate.adapters.validate_live import validate_on_host
from numa_migrate.cli.cloud import CloudTarget, cloud_options
from numa_migrate.cli.hosts import hosts_option
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.validation import Status, ValidationReport
from numa_migrate.inputs.plans import load_plan
from numa_migrate.migrate.hosts import default_inventory_path

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
_STYLE = {Status.PASSED: "green", Status.FAILED: "bold red", Status.SKIPPED: "yellow"}


def _bad_input(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NumaMigrateError as exc:
            click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)

    return wrapper  # type: ignore[return-value]


def _console() -> Console:
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)


def _print(console: Console, report: ValidationReport, live: LiveHost, affinity: str) -> None:
    table = Table(title=f"{report.domain} on {report.host} ({live.uri})")
    for column in ("check", "result", "expected", "actual"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        style = _STYLE[check.status]
        table.add_row(check.title, f"[{style}]{check.status.value}[/]",
                      check.expected or "-", check.actual or "-")
    console.print(table)
    for check in report.checks:
        if check.failed:
            console.print(f"[bold red]FAILED[/] {check.name}: {check.detail}")
    for check in report.checks:
        if check.skipped:
            console.print(f"[yellow]skipped[/] {check.name}: {check.detail}")
    for conflict in live.usage.conflicts:
        console.print(f"[bold red]host conflict[/]: {conflict}")
    counts = {s: sum(1 for c in report.checks if c.status is s) for s in Status}
    verdict = "[green]placed as checked[/]" if report.passed else "[bold red]NOT as planned[/]"
    console.print(
        f"{report.domain}: {verdict}: {counts[Status.PASSED]} passed, "
        f"{counts[Status.FAILED]} failed, {counts[Status.SKIPPED]} skipped "
        f"(thread affinity: {affinity})"
    )


@click.command("validate")
@click.argument("domain")
@click.option("--host", "host_name", metavar="HOST",
              help="The inventory host the domain runs on (after its migration); with "
              "--cloud, Nova's compute host (default: where Nova says the server is).")
@hosts_option
@cloud_options
@click.option("--plan", "plan_path", type=click.Path(path_type=Path, dir_okay=False),
              metavar="PLAN.json",
              help="The destination plan that was applied (JSON); without it only the "
              "plan-independent checks are made.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@_bad_input
def validate_cmd(
    *, domain: str, host_name: str | None, hosts_path: Path | None, target: CloudTarget,
    plan_path: Path | None, as_json: bool
) -> None:
    """Prove that running DOMAIN is placed as planned on HOST.

    Reads HOST live through libvirt and checks the domain's pins, emulator pins, NUMA
    memory binding, huge pages and PCI devices against the plan; that its persistent
    definition says the same as the live one (a persistent XML that keeps the source's pins
    is the CVE-2020-17376 class of bug); that no dedicated CPU is shared with another guest;
    and, for a local QEMU, the real thread affinities from /proc. A check that cannot be
    made is listed as skipped with its reason.

    \b
    OpenStack mode: numa-migrate validate SERVER --cloud NAME
    checks Nova's view (the server topology API: cells, pins, page size) on its own
    (pins on dedicated CPUs, no pin shared with another server on the compute), then
    against libvirt's live and persistent XML of the server's domain and the real thread
    affinity, on the compute Nova names (its libvirt URI from --hosts or --uri-template).

    Exit 0 all checks passed, 1 a check failed, 2 bad input; with --cloud also 4 the
    cloud cannot be reached or refuses the credentials.
    """
    if target.given:
        if plan_path is not None:
            raise click.UsageError("--plan is for numa-migrate's own migrations; with --cloud "
                                   "the plan is Nova's view of the server")
        from numa_migrate.cli.cloud import cloud_errors, validate_cloud

        sys.exit(cloud_errors(validate_cloud)(target, domain, host=host_name,
                                              as_json=as_json))
    if target.uri_template or target.nova_confs:
        raise click.UsageError("--uri-template and --nova-conf go with --cloud")
    if host_name is None:
        raise click.UsageError("Missing option '--host' (the host DOMAIN runs on)")
    inventory = load_inventory(hosts_path or default_inventory_path())
    config = inventory.host(host_name)
    plan_doc = None if plan_path is None else load_plan(plan_path)
    checked = validate_on_host(config, domain, plan_doc=plan_doc, plan_path=plan_path)
    report, live, affinity = checked.report, checked.live, checked.affinity_source
    if as_json:
        doc = report.to_json() | {
            "uri": live.uri,
            "driver": live.driver,
            "plan": None if plan_path is None else str(plan_path),
            "affinity_source": affinity,
            "host_conflicts": list(live.usage.conflicts),
            "host_notes": list(live.notes),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        _print(_console(), report, live, affinity)
    sys.exit(0 if report.passed else EXIT_FAILED)


"""``numa-migrate preflight``: can these computes live-migrate NUMA guests, and what to change.

Exit codes: 0 no finding of severity error; 1 at least one error; 2 bad input (a file that
cannot be read, a bad release name), with one line naming the file and line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from numa_migrate.adapters.inventory import load_inventory
from numa_migrate.cli.hosts import hosts_option
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.preflight.checks import (
    Compute,
    Controller,
    Finding,
    HostFacts,
    Severity,
    check_all,
)
from numa_migrate.preflight.cloudfacts import CloudFacts
from numa_migrate.preflight.hostfacts import read_host_facts
from numa_migrate.preflight.sources import (
    PreflightInputError,
    parse_charm_config,
    parse_nova_conf,
    read_source,
    release_index,
)

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan",
          Severity.OK: "green"}
_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2, Severity.OK: 3}


def _split(spec: str, what: str) -> tuple[str | None, str]:
    if "=" in spec:
        host, value = spec.split("=", 1)
        if not host or not value:
            raise PreflightInputError(f"{what} {spec!r}: use VALUE or HOST=VALUE")
        return host, value
    return None, spec


@click.command("preflight")
@click.option("--nova-conf", "nova_confs", multiple=True, metavar="[HOST=]FILE",
              help="A compute's nova.conf (repeatable); HOST names the compute (default: the "
              "file's name).")
@click.option("--charm-config", type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE", help="`juju config nova-compute` output (YAML).")
@click.option("--controller-conf", "controller_confs", multiple=True, metavar="[NAME=]FILE",
              help="A controller's nova.conf (nova-scheduler, nova-conductor; repeatable); NAME "
              "names it (default: the file's name).")
@click.option("--controller-charm-config", type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE", help="`juju config nova-cloud-controller` output (YAML).")
@click.option("--release", "releases", multiple=True, metavar="[HOST=]NAME",
              help="OpenStack release (train, 2024.1, caracal, or a Nova version like 20.6.0) "
              "of every compute and controller, or of HOST (a compute or controller NAME; "
              "repeatable).")
@hosts_option
@click.option("--cloud", metavar="NAME",
              help="Also read the cloud's API (clouds.yaml NAME; '' for $OS_CLOUD / OS_*): "
              "Nova's release, every compute's state, hypervisor and PCPU/VCPU inventory, "
              "the conductor and scheduler.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def preflight_cmd(
        *, nova_confs: tuple[str, ...], charm_config: Path | None,
        controller_confs: tuple[str, ...], controller_charm_config: Path | None,
        releases: tuple[str, ...], hosts_path: Path | None, cloud: str | None,
        as_json: bool) -> None:
    """Check that Nova (and the nova-compute charm) allow NUMA live migration, and how well.

    \b
    Checked, each finding with its severity, file:line and a fix:
      - the release: before Train, [workarounds] enable_numa_live_migration must be True
        (and is dangerous: pins are not recalculated; nova-conductor is what reads it, see
        --controller-conf); from Train on it works when every compute runs Train or later;
      - [compute] cpu_dedicated_set / cpu_shared_set vs the legacy vcpu_pin_set: conflicts,
        overlaps, CPUs the host lacks, SMT siblings split across the sets;
      - reserved_huge_pages vs the host's huge pages per NUMA node;
      - libvirt and QEMU versions, and CPU models/flags between the hosts (with --hosts);
      - post-copy / auto-converge, max_concurrent_live_migrations, timeouts;
      - with --charm-config: what the charm exposes, and the juju command for the rest.

    \b
    The controller's side, with --controller-conf (a controller's nova.conf):
      - nova-scheduler: [filter_scheduler] enabled_filters must have NUMATopologyFilter
        (no Nova default has it) and PciPassthroughFilter for PCI/SR-IOV guests; filters
        that are unknown or missing from available_filters; max_attempts, host_subset_size
        and the conductor's migrate_max_retries;
      - nova-conductor: before Train (and from Train while a compute is older) IT refuses
        NUMA live migration unless its own [workarounds] enable_numa_live_migration = True;
      - [upgrade_levels] compute pinned below RPC 5.3 (rocky, stein, 5.1, ...) silently turns
        NUMA-aware live migration into the legacy, non-re-pinning one (also on computes);
      - with --controller-charm-config (`juju config nova-cloud-controller`):
        scheduler-default-filters, cpu-/ram-allocation-ratio, openstack-origin (the release),
        with the juju command to fix each.
    Give a controller's release with --release NAME=RELEASE (or openstack-origin says it).

    \b
    Examples:
      numa-migrate preflight --nova-conf cmp-01=/etc/nova/nova.conf --release caracal
      numa-migrate preflight --nova-conf a=a.conf --nova-conf b=b.conf \\
          --release a=stein --release b=train --charm-config nova-compute.yaml --json
      numa-migrate preflight --hosts inventory.toml --nova-conf cmp-01=cmp-01.conf
      numa-migrate preflight --nova-conf cmp-01=cmp-01.conf --release caracal \\
          --controller-conf ctl-01=/etc/nova/nova.conf \\
          --controller-charm-config nova-cloud-controller.yaml

    \b
    With --cloud NAME, what the API can tell instead of files: the API's release (its
    maximum microversion), computes down or disabled, computes without PCPU inventory,
    hypervisor types and versions that differ (Nova refuses a live migration to an older
    one), CPU traits only some computes have, conductor or scheduler down:
      numa-migrate preflight --cloud mycloud [--nova-conf cmp-01=cmp-01.conf ...]

    Exit 0 no error found, 1 errors found, 2 bad input; with --cloud also 4 the cloud
    cannot be reached or refuses the credentials.
    """
    facts = None
    if cloud is not None:
        from numa_migrate.cli.cloud import cloud_errors

        facts = cloud_errors(_cloud_facts)(cloud)
    try:
        findings = _run(nova_confs, charm_config, releases, hosts_path,
                        controller_confs=controller_confs,
                        controller_charm_config=controller_charm_config, cloud=facts)
    except NumaMigrateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    findings.sort(key=lambda f: (_ORDER[f.severity], f.host, f.code))
    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    if as_json:
        click.echo(json.dumps({"ok": errors == 0,
                               "counts": {s.value: sum(1 for f in findings if f.severity is s)
                                          for s in Severity},
                               "findings": [f.to_json() for f in findings]}, indent=2))
    else:
        _print(findings)
    sys.exit(1 if errors else 0)


def _cloud_facts(cloud: str) -> CloudFacts:
    from numa_migrate.cloud.api import connect_cloud
    from numa_migrate.cloud.nova import cloud_facts

    facts: CloudFacts = cloud_facts(connect_cloud(cloud or None))
    return facts


def _run(nova_confs: tuple[str, ...], charm_config: Path | None, releases: tuple[str, ...],
         hosts_path: Path | None, *, controller_confs: tuple[str, ...] = (),
         controller_charm_config: Path | None = None,
         cloud: CloudFacts | None = None) -> list[Finding]:
    if (not nova_confs and charm_config is None and hosts_path is None
            and not controller_confs and controller_charm_config is None and cloud is None):
        raise PreflightInputError("nothing to check: give --nova-conf FILE (repeatable), "
                                  "--charm-config FILE, --hosts FILE, --controller-conf FILE "
                                  "and/or --controller-charm-config FILE")
    default_release: int | None = None
    per_host: dict[str, int] = {}
    for spec in releases:
        host, name = _split(spec, "--release")
        if host is None:
            default_release = release_index(name)
        else:
            per_host[host] = release_index(name)
    computes = []
    for spec in nova_confs:
        host, file = _split(spec, "--nova-conf")
        path = Path(file)
        name = host or path.stem
        computes.append(Compute(name, parse_nova_conf(read_source(path, "nova.conf"), str(path)),
                                per_host.get(name, default_release)))
    controllers = []
    for spec in controller_confs:
        host, file = _split(spec, "--controller-conf")
        path = Path(file)
        name = host or path.stem
        if name in {c.name for c in computes}:
            raise PreflightInputError(f"--controller-conf {name}: that name is already a "
                                      "--nova-conf compute; give NAME=FILE with another name")
        controllers.append(Controller(
            name, parse_nova_conf(read_source(path, "controller nova.conf"), str(path)),
            per_host.get(name, default_release)))
    unknown = sorted(set(per_host) - {c.name for c in computes} - {c.name for c in controllers})
    if unknown:
        raise PreflightInputError(f"--release for {', '.join(unknown)}, which no --nova-conf "
                                  "or --controller-conf names")
    facts: list[HostFacts] = []
    if hosts_path is not None:
        inventory = load_inventory(hosts_path)
        facts = [read_host_facts(config) for config in inventory.hosts]
    charm = (None if charm_config is None
             else parse_charm_config(read_source(charm_config, "charm configuration"),
                                   str(charm_config)))
    controller_charm = (
        None if controller_charm_config is None
        else parse_charm_config(read_source(controller_charm_config, "charm configuration"),
                                str(controller_charm_config), "nova-cloud-controller"))
    return check_all(computes, facts, charm, controllers=controllers,
                     controller_charm=controller_charm, cloud=cloud)


def _print(findings: list[Finding]) -> None:
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    table = Table(title="numa-migrate preflight")
    for col in ("severity", "host", "finding", "fix", "where"):
        table.add_column(col, overflow="fold")
    for f in findings:
        style = _STYLE[f.severity]
        table.add_row(f"[{style}]{f.severity.value}[/]", escape(f.host), escape(f.message),
                      escape(f.fix or "-"), escape(f.where or "-"))
    console.print(table)
    counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    verdict = ("[bold red]NUMA live migration is not ready[/]" if counts[Severity.ERROR]
               else "[green]no blocking finding[/]")
    console.print(f"{verdict}: {counts[Severity.ERROR]} error(s), "
                  f"{counts[Severity.WARNING]} warning(s), {counts[Severity.INFO]} info")


__all__ = ["preflight_cmd"]

"""``numa-migrate migrate`` and ``numa-migrate recover``.

Exit codes: 0 migrated (or the dry run planned it); 1 the destination has no room (nothing
moved; the reasons are printed); 2 bad input (unknown host or domain, unreachable URI, a
domain we must not move); 3 the migration failed and was rolled back (the guest still runs
on the source).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from numa_migrate.cli.cloud import CloudTarget, cloud_options
from numa_migrate.cli.common import db_option, open_store, pin_table
from numa_migrate.cli.hosts import hosts_option
from numa_migrate.cli.numbers import Bounded
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.migrate.hosts import Hosts, load_hosts
from numa_migrate.migrate.sriov import DEFAULT_POLICY, POLICIES

# The claims store (SQLAlchemy, alembic), libvirt and rich are imported in the functions
# that use them, so that --help and bad usage answer at once.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

    from numa_migrate.claims import ClaimStore
    from numa_migrate.hypervisor.base import JobProgress, MigrateOptions
    from numa_migrate.migrate.plan import MigrationPlan, NoRoom
    from numa_migrate.migrate.recovery import Recovery
    from numa_migrate.migrate.run import HostRef, Outcome

EXIT_NO_ROOM = 1
EXIT_BAD_INPUT = 2
EXIT_ROLLED_BACK = 3
MAX_SECONDS = 7 * 24 * 3600
"""Time options (claim TTL, post-copy switch) are at most a week."""
MAX_BANDWIDTH_MIB_S = 1 << 20

def _err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _auto_recover(store: ClaimStore, console: Console) -> list[Recovery]:
    from numa_migrate.migrate.recovery import recover

    done = recover(store)
    for r in done:
        console.print(f"[yellow]recovered[/] interrupted migration {r.migration_id} of "
                      f"{r.domain}: {r.outcome.label}; {r.detail}")
    return done


def _plan_json(plan: MigrationPlan) -> dict[str, Any]:
    """The plan as the plan JSON format (``validate --plan`` reads it), with what people
    read next to it (source, inferred request, source pins, SR-IOV moves, notes).

    A guest without NUMA need is planned as no pins, no binding and pages as they are."""
    from numa_migrate.core.destination import DestinationPlan
    from numa_migrate.core.planjson import plan_to_json

    no_plan = DestinationPlan(vcpu_pins={}, emulator_pins=frozenset(), iothread_pins={},
                              shared_cpuset=None, memory_nodes=frozenset(), cell_nodes={},
                              hugepage_kib=None, hostdev_map={})
    doc = plan_to_json(plan.dest_plan or no_plan, domain=plan.domain, host=plan.destination,
                       cpu_lists=True)
    doc.update({
        "uuid": plan.uuid, "source": plan.source,
        "destination": plan.destination, "inferred_request": plan.inference,
        "page_size_kib": plan.current_pagesize_kib,
        "source_pins": {str(v): sorted(c) for v, c in plan.source_info.vcpupin},
        "vf_moves": [{"source": m.source, "destination": m.destination,
                      "network": m.network, "numa_node": m.numa_node} for m in plan.vf_moves],
        "notes": list(plan.notes),
    })
    return doc


def dry_run_json(plan: MigrationPlan) -> dict[str, Any]:
    """What ``migrate --dry-run --json`` prints: a plan document (``validate --plan`` reads
    it) with the XML diff."""
    return {"fits": True, "dry_run": True, **_plan_json(plan), "diff": plan.diff()}


def _outcome_json(out: Outcome) -> dict[str, Any]:
    return {
        "migrated": True, "migration_id": out.migration_id, "claim_id": out.claim_id,
        "plan": _plan_json(out.plan), "seconds": round(out.seconds, 3),
        "downtime_ms": out.downtime_ms, "data_transferred": out.data_transferred,
        "post_copy": out.post_copy,
        "pins": {
            "source": {str(k): v for k, v in out.source_pins.items()},
            "destination_live": {str(k): v for k, v in out.dest_pins.items()},
            "destination_persistent": {str(k): v for k, v in out.dest_persistent_pins.items()},
        },
        "timings": {k: round(v, 4) for k, v in out.timings.items()},
    }


class _Bar:
    """A rich progress bar on stderr fed from the migration job's statistics."""

    def __init__(self, console: Console, label: str) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )
        self.task: TaskID | None = None
        self.label = label

    def __call__(self, p: JobProgress) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=p.data_total or None)
        self.progress.update(self.task, total=p.data_total or None,
                             completed=p.data_processed or 0)

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()


@click.command()
@click.argument("domain")
@click.option("--to", "to_host", metavar="HOST",
              help="Destination host (a name in the inventory); with --cloud a nova-compute "
              "host, default: the best ranked one.")
@click.option("--from", "from_host", metavar="HOST",
              help="Source host; default: the one inventory host where DOMAIN runs.")
@hosts_option
@db_option
@click.option("--dry-run", is_flag=True,
              help="Plan only: print the destination pins and the XML diff; change nothing.")
@click.option("--auto-converge", is_flag=True, help="Throttle the guest's vCPUs if it dirties "
              "memory faster than the link copies it (VIR_MIGRATE_AUTO_CONVERGE).")
@click.option("--post-copy", is_flag=True, help="Switch to post-copy when the first full "
              "pass over memory has not converged (VIR_MIGRATE_POSTCOPY, as Nova does): the "
              "guest then runs on the destination while the rest of its memory follows. A "
              "failure after the switch cannot be rolled back (the source copy is stale): "
              "the command says how to resume it.")
@click.option("--post-copy-after", "post_copy_after",
              type=Bounded(0, MAX_SECONDS, integer=False, why="a week"),
              metavar="SECONDS", help="With --post-copy: switch this many seconds after the "
              "migration job starts instead (0: at once).")
@click.option("--pci-numa-policy", type=click.Choice(POLICIES), default=DEFAULT_POLICY,
              show_default=True, help="For SR-IOV ports: where the destination VF may be "
              "(Nova's hw:pci_numa_affinity_policy). The VF is chosen by the fit together "
              "with the guest's cells: required = on a host node of the guest's cells; "
              "legacy = those, or a VF that reports no node; socket = those, or on the same "
              "CPU socket; preferred = the nearest free VF, else any.")
@click.option("--bandwidth", type=Bounded(1, MAX_BANDWIDTH_MIB_S, why="1 TiB/s"),
              metavar="MiB/s",
              help="Limit the migration bandwidth.")
@click.option("--ttl", "ttl_s", type=Bounded(10, MAX_SECONDS, integer=False, why="a week"),
              default=600.0, show_default=True, metavar="SECONDS",
              help="Seconds before an unrenewed claim counts as abandoned.")
@click.option("--timeout", "timeout_s", type=Bounded(1, MAX_SECONDS, integer=False,
              why="a week"), default=900.0, show_default=True, metavar="SECONDS",
              help="With --cloud: how long to follow Nova's migration (it is not aborted).")
@cloud_options
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def migrate(  # noqa: PLR0917 (click passes every option)
            domain: str, to_host: str | None, from_host: str | None, hosts_path: Path | None,
            db_url: str | None, dry_run: bool, auto_converge: bool, post_copy: bool,
            post_copy_after: float | None, pci_numa_policy: str, bandwidth: int | None,
            ttl_s: float, timeout_s: float, target: CloudTarget, as_json: bool) -> None:
    """Live-migrate a running DOMAIN to another host with NUMA-correct pins.

    \b
    Steps (each journalled in the claims store before it happens):
      1. read the destination live and subtract what other operators' claims hold,
      2. fit the guest there (keeping its page size), rewrite its live and persistent XML
         (vcpupin, emulatorpin, numatune, <vcpu cpuset>, huge pages),
      3. claim the CPUs, memory and pages atomically,
      4. libvirt migrate3 with the rewritten XML (progress on stderr),
      5. confirm and release the claim (the destination's live usage now shows the guest).
    On failure the guest stays on the source and the claim is rolled back. An interrupted
    run is repaired by `numa-migrate recover` (also run at the start of this command).

    \b
    Examples:
      numa-migrate migrate web-1 --to cmp-02 --dry-run
      numa-migrate migrate web-1 --to cmp-02 --bandwidth 200 --json

    \b
    OpenStack mode: numa-migrate migrate SERVER --cloud NAME [--to HOST] [--dry-run]
    Nova moves the server: the destination is checked first (a compute, up and enabled,
    hypervisor not older than the source's, our fit as Nova decides the live migration;
    without --to the best ranked compute), then Nova's live-migration API is called WITH
    that host (never forced: Nova's scheduler and claim still decide), Nova's migration
    record gives the progress on stderr and its outcome (completed, error, rolled back)
    is reported as Nova gives it, then the server is validated on the destination.
    The libvirt-side options (--post-copy, --bandwidth, --db, ...) do not apply: Nova's
    own [libvirt] settings decide those.

    Exit 0 migrated (or planned, with --dry-run), 1 the destination has no room (nothing
    moved), 2 bad input, 3 the migration failed and was rolled back (the guest still runs
    on the source). With --cloud also 4 the cloud cannot be reached or refuses the
    credentials, 5 Nova refused the request (NoValidHost, MigrationPreCheckError), 6 Nova
    completed it but the server is not placed as Nova says.
    """
    if target.given:
        if from_host or db_url or auto_converge or post_copy or bandwidth or \
                post_copy_after is not None or pci_numa_policy != DEFAULT_POLICY:
            raise click.UsageError("with --cloud, Nova migrates: --from, --db, --auto-converge, "
                                   "--post-copy, --bandwidth and --pci-numa-policy do not "
                                   "apply (Nova's own [libvirt] settings decide them)")
        from numa_migrate.cli.cloud import cloud_errors, migrate_cloud

        sys.exit(cloud_errors(migrate_cloud)(target, domain, to=to_host, dry_run=dry_run,
                                             timeout_s=timeout_s, as_json=as_json))
    if target.uri_template or target.nova_confs:
        raise click.UsageError("--uri-template and --nova-conf go with --cloud")
    if to_host is None:
        raise click.UsageError("Missing option '--to' (the destination host)")
    if auto_converge and post_copy:
        raise click.UsageError("--auto-converge and --post-copy are alternatives; pick one")
    if post_copy_after is not None and not post_copy:
        raise click.UsageError("--post-copy-after needs --post-copy")
    from numa_migrate.hypervisor.base import MigrateOptions

    console = _err()
    try:
        inventory = load_hosts(hosts_path)
        dest = inventory.ref(to_host)
        source = inventory.ref(from_host) if from_host else inventory.find_running(domain)
        if source.name == dest.name:
            raise NumaMigrateError(f"{domain} already runs on {dest.name}")
        store = open_store(db_url)
    except NumaMigrateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    with store:
        _run(store, console, inventory=inventory, domain=domain, source=source, dest=dest,
             dry_run=dry_run, as_json=as_json, pci_numa_policy=pci_numa_policy,
             ttl_s=ttl_s, options=MigrateOptions(
                 auto_converge=auto_converge, post_copy=post_copy,
                 post_copy_after_s=post_copy_after, bandwidth_mib_s=bandwidth))


def _run(store: ClaimStore, console: Console, *, inventory: Hosts, domain: str,
         source: HostRef, dest: HostRef,
         dry_run: bool, as_json: bool, ttl_s: float, options: MigrateOptions,
         pci_numa_policy: str) -> None:
    from rich.console import Console

    from numa_migrate.migrate.plan import NoRoom
    from numa_migrate.migrate.run import Migration, MigrationFailed

    bar = _Bar(console, f"{domain} → {dest.name}")

    def phase(name: str, message: str) -> None:
        console.print(f"[dim]{name:>9}[/] {message}")

    job = Migration(store=store, source=source, destination=dest, domain=domain,
                    read_host=inventory.read_host, options=options, ttl_s=ttl_s,
                    on_progress=bar, on_phase=None if as_json else phase,
                    read_devices=inventory.read_devices, pci_numa_policy=pci_numa_policy)
    try:
        _auto_recover(store, console)
        if dry_run:
            *_, plan, _live = job.plan()
            _print_plan(plan, as_json)
            sys.exit(EXIT_NO_ROOM if isinstance(plan, NoRoom) else 0)
        result = job.run()
    except MigrationFailed as exc:
        bar.stop()
        click.echo(f"error: {exc}", err=True)
        if as_json:
            click.echo(json.dumps({"migrated": False, "error": str(exc)}))
        sys.exit(EXIT_ROLLED_BACK)
    except NumaMigrateError as exc:
        bar.stop()
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    bar.stop()
    if isinstance(result, NoRoom):
        _print_plan(result, as_json)
        sys.exit(EXIT_NO_ROOM)
    if as_json:
        click.echo(json.dumps(_outcome_json(result), indent=2))
        return
    out = Console(highlight=False)
    out.print(pin_table(f"{domain}: {source.name} → {dest.name}", result))
    out.print(f"migrated in {result.seconds:.2f} s{' (post-copy)' if result.post_copy else ''}, "
              "downtime "
              f"{result.downtime_ms if result.downtime_ms is not None else '?'} ms; "
              f"claim {result.claim_id} released; check it with "
              f"`numa-migrate validate {domain} --host {dest.name}`")


def _print_plan(plan: MigrationPlan | NoRoom, as_json: bool) -> None:
    from rich.console import Console

    from numa_migrate.migrate.plan import NoRoom

    if isinstance(plan, NoRoom):
        if as_json:
            click.echo(json.dumps({"fits": False, "domain": plan.domain,
                                   "destination": plan.destination, "summary": plan.summary,
                                   "reasons": list(plan.reasons)}, indent=2))
        else:
            click.echo(f"{plan.domain} does not fit on {plan.destination}: {plan.summary}")
        return
    if as_json:
        click.echo(json.dumps(dry_run_json(plan), indent=2))
        return
    out = Console(highlight=False)
    out.print(plan.summary())
    out.print(f"[dim]{plan.inference}[/]")
    out.print(plan.diff() or "(the XML does not change)", markup=False)


@click.command(name="recover")
@hosts_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def recover_cmd(hosts_path: Path | None, db_url: str | None, as_json: bool) -> None:
    """Repair migrations interrupted by a crash or a kill.

    \b
    For every claim whose owner process is gone (or whose claim expired), both hosts are
    inspected: if the guest runs on the destination the migration is completed (stale
    source definition removed, claim released); if it is alive on the source it is rolled
    back (guest resumed, destination leftovers removed, claim rolled back). A guest found on
    both hosts or on neither is left alone and reported. Safe to run at any time.

    Exit 0 every interrupted migration repaired (or none found), 2 the claims store
    cannot be opened, 3 one needs attention or was skipped (see the lines printed).
    """
    del hosts_path  # the journal records both hosts' URIs
    try:
        store = open_store(db_url)
    except NumaMigrateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    from numa_migrate.migrate.recovery import recover

    with store:
        done = recover(store)
    if as_json:
        click.echo(json.dumps({"recovered": [r.as_dict() for r in done]}, indent=2))
    elif not done:
        click.echo("nothing to recover: no interrupted migration")
    for r in [] if as_json else done:
        click.echo(f"{r.migration_id} {r.domain}: {r.outcome.label} — {r.detail}")
        for action in r.actions:
            click.echo(f"  - {action}")
    if any(r.outcome.needs_person for r in done):
        sys.exit(EXIT_ROLLED_BACK)

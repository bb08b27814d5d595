"""``numa-migrate plan run FILE``: execute a saved drain plan (also ``drain --execute``).

Exit codes: 0 every guest of the plan moved (or already was where the plan puts it);
1 something was not moved (a wave stopped after a failure, no room left at run time, the
plan itself could not place a guest); 2 bad input (the plan file, the inventory, the
claims store); 3 a migration failed and was rolled back (its guest still runs on its
source); 4 (a cloud's plan) the cloud cannot be reached or refuses the credentials.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from numa_migrate.cli.cloud import cloud_options
from numa_migrate.cli.common import db_option
from numa_migrate.cli.hosts import hosts_option
from numa_migrate.core.errors import NumaMigrateError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from numa_migrate.claims import ClaimStore
    from numa_migrate.cli.cloud import CloudTarget
    from numa_migrate.core.drain.planfile import DrainPlanFile, PlannedMove
    from numa_migrate.hypervisor.base import JobProgress
    from numa_migrate.migrate.drainrun import MoveReport, MoveRunner, RunReport

EXIT_INCOMPLETE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class Display:
    """Rich progress on stderr: an overall bar (moves ended / total) and one bar per
    running migration (bytes copied), plus one line per move that ends."""

    def __init__(self, console: Console, total: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress: Progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=False)
        self.bytes: Progress = Progress(
            TextColumn("  {task.description}"), BarColumn(), DownloadColumn(),
            console=console, transient=True)
        self.overall: TaskID = self.progress.add_task("drain: moves ended", total=total)
        self.tasks: dict[int, TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> Display:
        from rich.console import Group
        from rich.live import Live

        self._live = Live(Group(self.progress, self.bytes), console=self.console,
                          refresh_per_second=4)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)
        if not self.console.is_terminal:
            self.console.line()  # the last frame ends without one when not on a terminal

    def started(self, move: PlannedMove) -> None:
        with self.lock:
            self.tasks[move.index] = self.bytes.add_task(
                f"{move.guest}: {move.source} → {move.destination}", total=None)

    def progress_of(self, move: PlannedMove, p: JobProgress) -> None:
        with self.lock:
            task = self.tasks.get(move.index)
        if task is not None:
            self.bytes.update(task, total=p.data_total or None,
                              completed=p.data_processed or 0)

    def phase(self, move: PlannedMove, phase: str, message: str) -> None:
        del message
        with self.lock:
            task = self.tasks.get(move.index)
        if task is not None:
            self.bytes.update(task, description=f"{move.guest}: {move.source} → "
                              f"{move.destination} [{phase}]")

    def ended(self, report: MoveReport) -> None:
        from numa_migrate.migrate.drainrun import MoveState

        with self.lock:
            task = self.tasks.pop(report.move.index, None)
        if task is not None:
            self.bytes.remove_task(task)
        self.progress.advance(self.overall)
        from numa_migrate.cli.render import shown

        m = report.move
        mark = {MoveState.DONE: "[green]✔[/]", MoveState.SKIPPED: "[dim]=[/]",
                MoveState.FAILED: "[red]✘[/]"}.get(report.state, "·")
        line = (f"{mark} wave {m.wave} {shown(m.guest)}: {shown(m.source)} → "
                f"{shown(m.destination)} {report.state.value} in {report.seconds:.1f} s")
        if report.reason:
            line += f" — {shown(report.reason)}"
        self.console.print(line, highlight=False, markup=True, soft_wrap=True)
        for note in report.notes:
            self.console.print(f"  [dim]{shown(note)}[/]", highlight=False, soft_wrap=True)
        if report.placement_note:
            self.console.print(f"  [yellow]note[/] {shown(report.placement_note)}",
                               highlight=False, soft_wrap=True)


def print_report(console: Console, report: RunReport) -> None:
    from rich.table import Table

    from numa_migrate.cli.common import pins_text
    from numa_migrate.cli.render import shown
    from numa_migrate.migrate.drainrun import MoveState

    table = Table(title=f"plan {shown(report.plan.plan_id)}", title_justify="left")
    for col in ("Wave", "Guest", "From", "To", "Outcome", "Seconds", "Pins", "Note"):
        table.add_column(col)
    for r in report.moves:
        pins = pins_text({v: list(c) for v, c in r.pins})
        table.add_row(str(r.move.wave), shown(r.move.guest), shown(r.move.source),
                      shown(r.move.destination), r.state.value, f"{r.seconds:.1f}",
                      ", ".join(f"{v}→{c}" for v, c in pins.items()),
                      shown(r.placement_note or r.reason or ""))
    console.print(table)
    counts = ", ".join(f"{report.count(s)} {s.value}" for s in MoveState if report.count(s))
    console.print(f"{len(report.moves)} moves in {report.seconds:.1f} s: {counts or 'none'}"
                  + (f"; stopped after wave {report.stopped_after_wave} (a move failed; "
                     "--keep-going runs the later waves anyway)"
                     if report.stopped_after_wave else ""), highlight=False)
    for guest, reason in report.plan.unplaceable:
        console.print(f"[red]✘[/] {shown(guest)} was not in the plan: {shown(reason)}",
                      highlight=False)
    for note in report.recovered:
        console.print(f"[yellow]recovered[/] {shown(note)}", highlight=False)


def execute(plan: DrainPlanFile, *, hosts_path: Path | None, db_url: str | None,
            keep_going: bool, as_json: bool, allow_incomplete: bool = False,
            target: CloudTarget | None = None) -> None:
    """Run ``plan`` on the inventory's hosts (a cloud's plan: through Nova, see
    :func:`execute_cloud`), print the report, exit with its code.

    A plan that leaves guests on the drained hosts is not started (exit 1: its drain
    cannot empty them, and moving the others would only half-drain) unless
    ``allow_incomplete``."""
    from numa_migrate.cli.common import open_store
    from numa_migrate.hypervisor.base import MigrateOptions
    from numa_migrate.migrate.drainmove import EngineMoves
    from numa_migrate.migrate.hosts import load_hosts

    cloud = cloud_of(plan, target, hosts_path)
    if cloud is not None:
        execute_cloud(plan, cloud, keep_going=keep_going, as_json=as_json,
                      allow_incomplete=allow_incomplete)
    try:
        hosts = load_hosts(hosts_path)
        store = open_store(db_url)
    except NumaMigrateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    with store:
        moves = EngineMoves(store, hosts, MigrateOptions())
        try:
            moves.check_hosts(plan.hosts)
        except NumaMigrateError as exc:
            click.echo(f"error: plan {plan.source}: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        _refuse_incomplete(plan, allow_incomplete)

        def watched(display: Display) -> None:
            moves.on_progress = display.progress_of
            moves.on_phase = display.phase

        report = _run(plan, moves, store, keep_going=keep_going, as_json=as_json,
                      watched=watched)
    _print_and_exit(report, as_json)


def cloud_of(plan: DrainPlanFile, target: CloudTarget | None,
             hosts_path: Path | None) -> CloudTarget | None:
    """The cloud a plan runs on: the plan's own (--cloud may name it again; another name is
    refused, exit 2), or None for a plan of libvirt hosts (then --cloud is refused)."""
    from numa_migrate.cli.cloud import CloudTarget

    given = target is not None and target.given
    if plan.cloud is None:
        if given:
            _bad(f"plan {plan.source} was made on libvirt hosts ({plan.planned_kind} "
                 f"{plan.planned_from}), not on a cloud: give no --cloud")
        if target is not None and (target.uri_template or target.nova_confs):
            _bad("--uri-template and --nova-conf go with a cloud's plan (drain --cloud NAME "
                 "--save FILE)")
        return None
    if given and target is not None and target.cloud != plan.cloud:
        _bad(f"--cloud {target.cloud!r}: plan {plan.source} was made on cloud "
             f"{plan.cloud!r}; run it with --cloud {plan.cloud!r} or without --cloud")
    if target is None:
        return CloudTarget(plan.cloud, hosts_path, None, ())
    return CloudTarget(plan.cloud, target.hosts_path, target.uri_template, target.nova_confs)


def execute_cloud(plan: DrainPlanFile, target: CloudTarget, *, keep_going: bool,
                  as_json: bool, allow_incomplete: bool) -> None:
    """Run a cloud's plan: each move is Nova's live migration of the server to its planned
    compute, then our validation (:class:`numa_migrate.cloud.drainrunner.NovaMoves`). No
    claims store and no journal: Nova keeps the record, and a rerun skips every server that
    already runs on its planned host. Exit 4 when the cloud cannot be reached."""
    from numa_migrate.cli.cloud import cloud_errors
    from numa_migrate.cloud.drainrunner import NovaMoves

    _refuse_incomplete(plan, allow_incomplete)

    def connect() -> NovaMoves:
        return NovaMoves(target.api(), target.computes(), dict(plan.servers))

    moves: NovaMoves = cloud_errors(connect)()

    def watched(display: Display) -> None:
        moves.on_phase = display.phase

    report = _run(plan, moves, None, keep_going=keep_going, as_json=as_json, watched=watched)
    _print_and_exit(report, as_json)


def _bad(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _refuse_incomplete(plan: DrainPlanFile, allow_incomplete: bool) -> None:
    if plan.unplaceable and not allow_incomplete:
        stuck = ", ".join(g for g, _ in plan.unplaceable)
        click.echo(f"error: the plan leaves {len(plan.unplaceable)} guest(s) on the drained "
                   f"host(s) ({stuck}): nothing was moved; --allow-incomplete moves the "
                   "others anyway", err=True)
        sys.exit(EXIT_INCOMPLETE)


def _run(plan: DrainPlanFile, moves: MoveRunner, store: ClaimStore | None, *,
         keep_going: bool, as_json: bool, watched: Callable[[Display], None]) -> RunReport:
    from rich.console import Console

    from numa_migrate.migrate.drainrun import run_plan

    err = Console(stderr=True, highlight=False)
    try:
        if as_json:
            return run_plan(plan, moves, keep_going=keep_going, store=store)
        with Display(err, len(plan.moves)) as display:
            watched(display)
            return run_plan(plan, moves, keep_going=keep_going, store=store, watch=display)
    except KeyboardInterrupt:
        # the running migrations were let finish (a migration is not cut in half)
        click.echo(f"interrupted: no further move was started; run `numa-migrate plan "
                   f"run {plan.source}` to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _print_and_exit(report: RunReport, as_json: bool) -> NoReturn:
    from numa_migrate.cli.main import _stdout

    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(_stdout(), report)
    sys.exit(report.exit_code)


allow_incomplete_option = click.option(
    "--allow-incomplete", is_flag=True,
    help="Run a plan that leaves some guests on the drained hosts (they cannot move): the "
    "others move. Default: such a plan is not started (exit 1).")

keep_going_option = click.option(
    "--keep-going", is_flag=True,
    help="Run the later waves even after a move failed (default: stop after the wave in "
    "which a move failed; that wave's other moves finish).")


@click.group("plan")
def plan_group() -> None:
    """Run a saved drain plan: its waves of live migrations, resumable.

    \b
    Examples:
      numa-migrate drain lab-src --hosts inventory.toml --save drain.json
      numa-migrate plan run drain.json
    """


@plan_group.command("run")
@click.argument("plan_file", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False))
@hosts_option
@db_option
@keep_going_option
@allow_incomplete_option
@cloud_options
@click.option("--json", "as_json", is_flag=True,
              help="One JSON document (the run report) on stdout; no progress display.")
def run_cmd(plan_file: Path, *, hosts_path: Path | None, db_url: str | None,
            keep_going: bool, allow_incomplete: bool, target: CloudTarget,
            as_json: bool) -> None:
    """Execute a drain plan FILE (written by `numa-migrate drain HOST --save FILE`).

    \b
    The waves run one after the other; the moves of a wave run at the same time, each a
    live migration through the same engine as `numa-migrate migrate` (claim, migrate,
    confirm; journalled; rolled back on failure). Each move keeps its planned destination;
    the cells and pins are fitted again against the destination as it is when the move
    runs (other claims subtracted; the moves to one host plan and claim in the plan's
    order, one at a time): the report says where that differs from the plan. A failed
    move stops the run after its wave (--keep-going: run on); one that lost its claim to
    another operator is planned again (at most 5 attempts).

    \b
    Resumable: every move journals under a name made of the plan id, so running the same
    FILE again after an interruption (a kill, a crash) skips the moves already done,
    recovers the interrupted ones first (as `numa-migrate recover` does) and runs the rest.
    A guest that already runs on its planned destination is skipped as done.

    A plan made on an OpenStack cloud (`drain HOST --cloud NAME --save FILE`) runs on that
    cloud (the file names it; --cloud may repeat it, another name is refused): each move is
    Nova's live migration of the server to its planned compute host (never forced: Nova's
    scheduler and the destination's claim still decide, Nova chooses the pins), then our
    validation of Nova's result; a completed migration that fails the validation is a
    failed move. No claims store and no journal: Nova keeps the record, so a rerun skips
    every server that already runs on its planned host. --hosts, --uri-template and
    --nova-conf say how to reach the computes' libvirt, as for `drain --cloud`.

    \b
    Examples:
      numa-migrate plan run drain.json
      numa-migrate plan run drain.json --hosts inventory.toml --keep-going
      numa-migrate plan run drain.json --json > report.json
      numa-migrate plan run cloud-drain.json --uri-template 'qemu+ssh://root@{host}/system'

    Exit 0 every guest moved, 1 something was not moved, 2 bad input, 3 a migration failed
    and was rolled back (its guest still runs on its source); with a cloud's plan also 4
    the cloud cannot be reached or refuses the credentials.
    """
    from numa_migrate.inputs.drainplans import load_drain_plan

    try:
        plan = load_drain_plan(plan_file)
    except NumaMigrateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    execute(plan, hosts_path=hosts_path, db_url=db_url, keep_going=keep_going,
            as_json=as_json, allow_incomplete=allow_incomplete, target=target)

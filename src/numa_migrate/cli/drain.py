"""`numa-migrate drain HOST [HOST ...]`: a plan that moves every guest off the given hosts.

Exit codes: 0 every guest has a move; 1 some guests cannot move (each with its reason);
2 bad input.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from numa_migrate.cli.cloud import CloudTarget, cloud_fleet_json, cloud_options
from numa_migrate.cli.fleetsource import fleet_sources, print_fleet_notes
from numa_migrate.cli.main import fleet_option, handle_errors, json_option
from numa_migrate.cli.numbers import EXIT_BAD_INPUT, Bounded
from numa_migrate.cli.pictureopts import html_option, picture_option, show_drain_pictures
from numa_migrate.cli.planrun import allow_incomplete_option, keep_going_option
from numa_migrate.core.errors import NumaMigrateError

if TYPE_CHECKING:
    from rich.console import Console

    from numa_migrate.adapters.fleet import Fleet
    from numa_migrate.core.drain import FleetState, KeepFree, Plan

EXIT_UNPLACEABLE = 1
MAX_PARALLEL = 10_000


class DrainHostsError(NumaMigrateError):
    """The hosts to drain are given twice or are the whole fleet."""


_WHOLE = re.compile(r"[0-9]{1,12}")
KEEP_FREE_KEYS = ("cpus", "memory")


class KeepFreeSpec(click.ParamType[Any, Any]):
    """``cpus=4,memory=8192``: dedicated CPUs and MiB every destination keeps free; a bad
    spec is one line on stderr and exit 2."""

    name = "spec"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> KeepFree:
        from numa_migrate.core.drain import KeepFree

        if not isinstance(value, str):
            return value  # type: ignore[no-any-return]
        values: dict[str, int] = {}
        parts = [p.strip() for p in value.split(",")]
        if not any(parts):
            self._refuse("empty; use cpus=N and/or memory=MiB, e.g. cpus=4,memory=8192")
        for part in filter(None, parts):
            key, sep, number = (x.strip() for x in part.partition("="))
            if not sep or key not in KEEP_FREE_KEYS:
                self._refuse(f"{_short(part)!r}: use cpus=N and/or memory=MiB, "
                             "e.g. cpus=4,memory=8192")
            if key in values:
                self._refuse(f"{key} is given twice")
            if not _WHOLE.fullmatch(number):
                self._refuse(f"{key}={_short(number)!r}: a whole number from 0 to "
                             f"{10**12 - 1}")
            values[key] = int(number)
        return KeepFree(dedicated_cpus=values.get("cpus", 0),
                        memory_mib=values.get("memory", 0))

    @staticmethod
    def _refuse(message: str) -> NoReturn:
        click.echo(f"error: --keep-free: {message}", err=True)
        raise click.exceptions.Exit(EXIT_BAD_INPUT)


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def plan_json(plan: Plan, drained: tuple[str, ...]) -> dict[str, object]:
    from numa_migrate.adapters.casefmt import placement_to_json

    return {
        "drain": list(drained),
        "solver": plan.solver,
        "gap": plan.gap,
        "lower_bound_waves": plan.lower_bound_waves,
        "notes": list(plan.notes),
        "complete": not plan.unplaceable,
        "waves": [
            {"wave": i, "moves": [
                {"guest": m.guest, "kind": m.kind, "source": m.source,
                 "destination": m.destination, **placement_to_json(m.placement),
                 "pci_devices": list(m.pci_devices)}
                for m in w.moves]}
            for i, w in enumerate(plan.waves, 1)
        ],
        "unplaceable": [
            {"guest": u.guest, "source": u.source, "reason": u.reason, "host": u.host}
            for u in plan.unplaceable
        ],
        "suggestions": [
            {"kind": s.kind, "text": s.text, "host": s.host, "guest": s.guest}
            for s in plan.suggestions
        ],
        "suggestion_note": plan.suggestion_note or None,
        "stats": dict(plan.stats),
    }


def plan_for(state: FleetState, drained: tuple[str, ...], max_parallel: int,
             per_host_parallel: int, keep: KeepFree | None = None, *, solver: str = "auto",
             time_limit_s: float = 30.0) -> Plan:
    """The drain plan as the command makes it: :func:`solve_drain` (heuristic, then CP-SAT
    with OR-Tools when asked or small enough); when guests are left behind, the relocation
    pass, then the smallest change that completes the drain (re-planned greedily)."""
    from numa_migrate.adapters.ortools_sat import OrToolsModel
    from numa_migrate.core.drain import plan_drain, relocate, solve_drain, suggest
    from numa_migrate.core.drain.solve import after_relocations

    def relocated(state: FleetState, plan: Plan | None = None) -> Plan:
        if plan is None:
            plan = plan_drain(state, drained, max_parallel, per_host_parallel, keep)
        return relocate(state, drained, plan, max_parallel, per_host_parallel, keep_free=keep)

    plan = solve_drain(state, drained, max_parallel, per_host_parallel, keep,
                       solver=solver, time_limit_s=time_limit_s, new_model=OrToolsModel)
    if plan.unplaceable:
        plan = after_relocations(plan, relocated(state, plan), max_parallel, per_host_parallel)
        plan = suggest(state, drained, plan, relocated)
    return plan


def with_left_out(plan: Plan, fleet: Fleet, drained: tuple[str, ...]) -> Plan:
    """``plan`` with the guests of the drained hosts that the fleet could not model (a live
    read's left-out domains or servers) among those that cannot move: no plan moves them, so
    the drain does not empty their host."""
    from dataclasses import replace

    from numa_migrate.core.drain import Unplaceable

    stuck = tuple(Unplaceable(o.name, o.host, f"not planned: {o.reason}")
                  for o in fleet.left_out if o.host in drained)
    return replace(plan, unplaceable=plan.unplaceable + stuck) if stuck else plan


def _quality(plan: Plan) -> str:
    """``cp-sat, gap 0.0 %, at least 10 waves``."""
    parts = [plan.solver]
    if plan.gap is not None:
        parts.append(f"gap {plan.gap * 100:.1f} %")
    if plan.lower_bound_waves is not None:
        parts.append(f"at least {plan.lower_bound_waves} "
                     f"wave{'s' if plan.lower_bound_waves != 1 else ''}")
    return ", ".join(parts)


def _summary(plan: Plan, drained: tuple[str, ...]) -> str:
    moves = len(plan.moves)
    relocations = sum(1 for m in plan.moves if m.kind == "relocate")
    extra = f", {relocations} of them relocations" if relocations else ""
    head = (f"drain {', '.join(drained)}: {moves} move{'s' if moves != 1 else ''}{extra} in "
            f"{len(plan.waves)} wave{'s' if len(plan.waves) != 1 else ''} ({_quality(plan)})")
    if plan.unplaceable:
        return f"{head}; {len(plan.unplaceable)} guest(s) cannot move"
    return head + "; every guest has a destination"


def print_plan(console: Console, plan: Plan, drained: tuple[str, ...]) -> None:
    from rich.table import Table

    from numa_migrate.cli.render import shown
    from numa_migrate.core.cpuset import CpuSet
    from numa_migrate.inputs.fields import one_line

    console.print(one_line(_summary(plan, drained)), highlight=False, markup=False)
    for note in plan.notes:
        console.print(f"  [dim]{shown(note)}[/]", highlight=False)
    if plan.waves:
        table = Table(title="Waves (the moves of a wave run at the same time)",
                      title_justify="left")
        for col in ("Wave", "Kind", "Guest", "From", "To", "Guest cell → host cell", "Pins", "VFs"):
            table.add_column(col)
        for i, wave in enumerate(plan.waves, 1):
            for m in wave.moves:
                cells = ", ".join(f"{c.guest_cell}→{c.host_cell}" for c in m.placement.cells)
                pins = CpuSet.of(frozenset(p for c in m.placement.cells
                                           for _, p in c.pinning or ())).format()
                table.add_row(str(i), m.kind, shown(m.guest), shown(m.source),
                              shown(m.destination), cells or "no NUMA", pins or "floating",
                              ", ".join(m.pci_devices) or "")
        console.print(table)
    for u in plan.unplaceable:
        console.print(f"[red]✘[/] {shown(u.guest)} (on {shown(u.source)}) cannot move: "
                      f"{shown(u.reason)}",
                      highlight=False)
    for s in plan.suggestions:
        console.print(f"[green]→[/] smallest change: {shown(s.text)}", highlight=False)
    if plan.suggestion_note:
        console.print(f"  (search: {one_line(plan.suggestion_note)})", highlight=False,
                      markup=False)


def save_plan(doc: dict[str, object], path: Path | None, *, kind: str,
              source: str) -> dict[str, object]:
    """The plan file document for ``doc`` (written to ``path`` when given)."""
    from datetime import UTC, datetime

    from numa_migrate.adapters.wholefile import write_whole
    from numa_migrate.core.drain.planfile import plan_document
    from numa_migrate.core.errors import NumaMigrateError

    document = plan_document(doc, kind=kind, source=source,
                             planned_at=datetime.now(UTC).isoformat(timespec="seconds"))
    if path is not None:
        try:
            write_whole(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
        except OSError as exc:
            raise NumaMigrateError(f"--save {path}: cannot write: {exc.strerror}") from None
    return document


def keep_for_resume(document: dict[str, object]) -> Path:
    """Write a plan run by ``--execute`` without ``--save`` where a resumed run finds it:
    ``<state dir>/plans/<plan_id>.json`` (the state dir holds the default claims store)."""
    from numa_migrate.adapters.wholefile import write_whole
    from numa_migrate.claims.engine import state_dir
    from numa_migrate.core.errors import NumaMigrateError

    path = state_dir() / "plans" / f"{document['plan_id']}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
    except OSError as exc:
        raise NumaMigrateError(f"cannot keep the plan at {path}: {exc.strerror}; give "
                               "--save FILE") from None
    click.echo(f"plan {document['plan_id']} saved: {path} (after an interruption: "
               f"numa-migrate plan run {path})", err=True)
    return path


def run_saved(document: dict[str, object], path: Path | None, *, hosts_path: Path | None,
              db_url: str | None, keep_going: bool, as_json: bool,
              allow_incomplete: bool, target: CloudTarget | None = None) -> None:
    """Execute a plan document just made (checked by the same reader as a file), exit."""
    from numa_migrate.cli.planrun import execute
    from numa_migrate.inputs.drainplans import read_drain_plan

    plan = read_drain_plan(document, source=str(path) if path else "the drain plan")
    execute(plan, hosts_path=hosts_path, db_url=db_url, keep_going=keep_going,
            as_json=as_json, allow_incomplete=allow_incomplete, target=target)


@click.command("drain")
@click.argument("hosts", nargs=-1, required=True)
@fleet_sources(fleet_option)
@click.option("--max-parallel", type=Bounded(1, MAX_PARALLEL), default=4, show_default=True,
              metavar="N", help="Moves that run at the same time (one wave).")
@click.option("--per-host-parallel", type=Bounded(1, MAX_PARALLEL), default=2,
              show_default=True, metavar="N",
              help="Moves per wave that touch one host, as source or destination.")
@click.option("--keep-free", "keep", type=KeepFreeSpec(), metavar="SPEC",
              help="Headroom every destination keeps after its moves: cpus=N (dedicated "
              "CPUs) and/or memory=MiB, e.g. cpus=4,memory=8192.")
@click.option("--solver", type=click.Choice(["auto", "cp-sat", "heuristic"]), default="auto",
              show_default=True,
              help="heuristic: the greedy alone (fast); cp-sat: also the exact CP-SAT model, "
              "the better plan kept; auto: CP-SAT when the fleet is small enough to model "
              "within the time limit.")
@click.option("--time-limit", type=Bounded(0.1, 3600, integer=False), default=30,
              show_default=True, metavar="S",
              help="Seconds for the heuristic and CP-SAT together: CP-SAT gets what the "
              "heuristic leaves. The heuristic is never cut short, nor are the relocation and "
              "smallest-change searches after it (those have their own bounds, below).")
@click.option("-o", "--save", "save_path", type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE", help="Write the plan to FILE (JSON, with a plan id) for "
              "`numa-migrate plan run FILE`.")
@click.option("--execute", is_flag=True,
              help="Run the plan now (as `numa-migrate plan run` does) on the hosts of "
              "--hosts (else the inventory of NUMA_MIGRATE_INVENTORY, ./inventory.toml or the "
              "lab's), claims in --db; with --cloud through Nova. The plan is saved first "
              "(--save FILE, else in the state directory) so that an interrupted run can be "
              "resumed with `plan run FILE`.")
@keep_going_option
@allow_incomplete_option
@picture_option
@html_option
@cloud_options
@json_option
@handle_errors
def drain(hosts: tuple[str, ...], *, fleet_path: Path | None, hosts_path: Path | None,
          db_url: str | None, max_parallel: int, per_host_parallel: int,
          keep: KeepFree | None, solver: str, time_limit: float, save_path: Path | None,
          execute: bool, keep_going: bool, allow_incomplete: bool, picture: bool,
          html_path: Path | None,
          target: CloudTarget, as_json: bool) -> None:
    """Plan moving every guest off HOST(s) onto the rest of the fleet, in waves.

    Each guest lands only where its NUMA cells, dedicated CPUs, huge pages (its current
    size) and SR-IOV VFs are free at that moment: a wave's moves take their destinations'
    capacity when the wave starts and free their sources when it ends, and two moves of a
    wave never take the same CPUs, pages or VFs. Hardest guests are placed first, each on
    the destination it fits best (fewest half-used cores, then fewest free dedicated CPUs,
    then least free memory). A guest no host can take is listed with the binding reason
    ("needs 8 dedicated CPUs on one cell; the largest free is 6, on cmp-07 cell 1").

    Objective: every guest moved, in the fewest waves, then the least fragmentation (host
    cells touched, cores left split). The greedy plan always comes first (it is CP-SAT's
    hint and the fallback); its moves are re-packed into the fewest waves the limits allow.
    CP-SAT (--solver) then searches for a better plan with what is left of --time-limit
    (the greedy plan itself is not cut short by it); the output says which solver made the
    plan, the lower bound on its waves and the optimality gap (0 %: proven optimal).

    When a guest fits nowhere, one guest of a staying host may first move to another
    staying host to make room for it (a "relocate" move, a wave before the guest's own
    move; at most 400 candidates and 400 fits tried per guest, 2,000 fits in all). When
    guests still cannot move (at most 8 of them), the smallest change found that lets the
    drain complete is printed: one more empty host shaped like an existing one (the smallest
    shape, at most 6 shapes re-planned) and/or one guest of a staying host to free (the
    smallest, at most 16 re-planned; these re-plans use the heuristic).

    The fleet is a fleet file or snapshot (--fleet; default: the bundled sample fleet) or
    the hosts of an inventory read live (--hosts: running domains with their real pins,
    minus other operators' claims), or with --cloud NAME an OpenStack cloud read live: every
    nova-compute through its libvirt (URIs from --hosts, the default inventory or
    --uri-template), every ACTIVE or PAUSED server on it with its flavor's request and its
    domain's actual placement; HOSTs are Nova compute hosts.

    The plan is computed; --save FILE writes it for `numa-migrate plan run FILE`, --execute
    runs it at once (waves in order, the moves of a wave in parallel, each a journalled live
    migration; see `numa-migrate plan run --help`). With --cloud each move is Nova's live
    migration of the server to its planned compute, then our validation of the result; the
    plan file keeps the cloud's name and each guest's Nova server id, and a rerun skips the
    servers already on their planned host (Nova keeps the record; nothing is journalled). A
    plan that leaves guests on the drained hosts is not started unless --allow-incomplete.

    Exit 0 every guest has a move (with --execute: every guest moved), 1 some cannot move
    (were not moved), 2 bad input; with --execute also 3 a migration failed and was rolled
    back; with --cloud also 4 the cloud cannot be reached or refuses the credentials.

    \b
    Examples:
      numa-migrate drain cmp-intel-01
      numa-migrate drain cmp-intel-01 cmp-small-01 --max-parallel 2 --json
      numa-migrate drain cmp-epyc-01 --fleet fleet.json --keep-free cpus=4,memory=8192
      numa-migrate drain cmp-intel-01 --picture            # the cells before and after
      numa-migrate drain cmp-intel-01 --html drain.html    # the same as one HTML page
      numa-migrate drain cmp-intel-01 --solver cp-sat --time-limit 10
      numa-migrate drain cmp-07 --hosts inventory.toml --json   # the hosts as they run now
      numa-migrate drain cmp-07 --hosts inventory.toml --save drain.json   # then: plan run
      numa-migrate drain cmp-07 --hosts inventory.toml --execute
      numa-migrate drain compute-07 --cloud mycloud --uri-template 'qemu+ssh://root@{host}/system'
      numa-migrate drain compute-07 --cloud mycloud --save drain.json   # then: plan run
      numa-migrate drain compute-07 --cloud mycloud --execute --json
    """
    from numa_migrate.adapters.drainstate import fleet_state
    from numa_migrate.cli.cloud import fleet_of
    from numa_migrate.core.errors import UnknownHostError

    if keep_going and not execute:
        raise click.UsageError("--keep-going goes with --execute")
    if allow_incomplete and not execute:
        raise click.UsageError("--allow-incomplete goes with --execute")
    fleet = fleet_of(target, fleet_path, hosts_path, db_url)
    known = [h.name for h in fleet.hosts]
    unknown = [h for h in hosts if h not in known]
    if unknown:
        unread = [n for n in fleet.notes for h in unknown if n.startswith(f"{h}: not read")]
        raise UnknownHostError(f"host(s) {', '.join(unknown)} not in {fleet.source} "
                               f"(hosts: {', '.join(known)})"
                               + (f"; {'; '.join(unread)}" if unread else ""))
    twice = sorted({h for h in hosts if hosts.count(h) > 1})
    if twice:
        raise DrainHostsError(f"host(s) {', '.join(twice)} given twice: name each host to "
                              "drain once")
    if len(set(hosts)) == len(known):
        raise DrainHostsError(f"every host of {fleet.source} would be drained "
                              f"({len(known)} of {len(known)}): nowhere to go; leave at "
                              "least one host out")
    drained = tuple(hosts)
    state = fleet_state(fleet)
    plan = with_left_out(plan_for(state, drained, max_parallel, per_host_parallel, keep,
                                  solver=solver, time_limit_s=time_limit), fleet, drained)
    doc = plan_json(plan, drained)
    doc["fleet_notes"] = list(fleet.notes)
    if target.given:
        doc |= cloud_fleet_json(fleet)
    document = None
    if save_path is not None or execute:
        kind, source = ("cloud", target.cloud or "") if target.given else \
            ("fleet", fleet.source) if hosts_path is None else ("inventory", str(hosts_path))
        document = save_plan(doc, save_path, kind=kind, source=source)
        if execute and save_path is None:
            save_path = keep_for_resume(document)
    if as_json and not execute:
        click.echo(json.dumps(doc, indent=2))
    elif not as_json:
        from numa_migrate.cli.main import _stdout

        console = _stdout()
        print_plan(console, plan, drained)
        print_fleet_notes(console, fleet.notes)
    show_drain_pictures(state, plan, drained, picture=picture, html_path=html_path,
                        source=fleet.source, as_json=as_json)
    if execute and document is not None:
        run_saved(document, save_path, hosts_path=hosts_path, db_url=db_url,
                  keep_going=keep_going, as_json=as_json, allow_incomplete=allow_incomplete,
                  target=target)
    sys.exit(EXIT_UNPLACEABLE if plan.unplaceable else 0)

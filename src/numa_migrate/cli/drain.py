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

from numa_migrate.cli.fleetsource import fleet_sources, print_fleet_notes
from numa_migrate.cli.main import fleet_option, handle_errors, json_option
from numa_migrate.cli.numbers import EXIT_BAD_INPUT, Bounded
from numa_migrate.cli.pictureopts import html_option, picture_option, show_drain_pictures
from numa_migrate.core.errors import NumaMigrateError

if TYPE_CHECKING:
    from rich.console import Console

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
              help="Seconds for the whole plan (the heuristic, then CP-SAT with the rest).")
@picture_option
@html_option
@json_option
@handle_errors
def drain(hosts: tuple[str, ...], *, fleet_path: Path | None, hosts_path: Path | None,
          db_url: str | None, max_parallel: int, per_host_parallel: int,
          keep: KeepFree | None, solver: str, time_limit: float, picture: bool,
          html_path: Path | None, as_json: bool) -> None:
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
    CP-SAT (--solver) then searches for a better plan until --time-limit; the output says
    which solver made the plan, the lower bound on its waves and the optimality gap (0 %:
    proven optimal).

    When a guest fits nowhere, one guest of a staying host may first move to another
    staying host to make room for it (a "relocate" move, a wave before the guest's own
    move; at most 400 candidates and 400 fits tried per guest). When guests still cannot
    move, the smallest change found that lets the drain complete is printed: one more empty
    host shaped like an existing one (the smallest shape, at most 6 shapes re-planned) and/or
    one guest of a staying host to free (the smallest, at most 16 re-planned; these
    re-plans use the heuristic).

    The fleet is a fleet file or snapshot (--fleet; default: the bundled sample fleet) or
    the hosts of an inventory read live (--hosts: running domains with their real pins,
    minus other operators' claims). The plan is computed, not executed.

    Exit 0 every guest has a move, 1 some cannot move, 2 bad input.

    \b
    Examples:
      numa-migrate drain cmp-intel-01
      numa-migrate drain cmp-intel-01 cmp-small-01 --max-parallel 2 --json
      numa-migrate drain cmp-epyc-01 --fleet fleet.json --keep-free cpus=4,memory=8192
      numa-migrate drain cmp-intel-01 --picture            # the cells before and after
      numa-migrate drain cmp-intel-01 --html drain.html    # the same as one HTML page
      numa-migrate drain cmp-intel-01 --solver cp-sat --time-limit 10
      numa-migrate drain cmp-07 --hosts inventory.toml --json   # the hosts as they run now
    """
    from numa_migrate.adapters.drainstate import fleet_state
    from numa_migrate.cli.fleetsource import load_fleet_from
    from numa_migrate.core.errors import UnknownHostError

    fleet = load_fleet_from(fleet_path, hosts_path, db_url)
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
    plan = plan_for(state, drained, max_parallel, per_host_parallel, keep,
                    solver=solver, time_limit_s=time_limit)
    if as_json:
        doc = plan_json(plan, drained)
        doc["fleet_notes"] = list(fleet.notes)
        click.echo(json.dumps(doc, indent=2))
    else:
        from numa_migrate.cli.main import _stdout

        console = _stdout()
        print_plan(console, plan, drained)
        print_fleet_notes(console, fleet.notes)
    show_drain_pictures(state, plan, drained, picture=picture, html_path=html_path,
                        source=fleet.source, as_json=as_json)
    sys.exit(EXIT_UNPLACEABLE if plan.unplaceable else 0)

"""``numa-migrate where GUEST``: every other host of the fleet for a placed guest, ranked."""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from numa_migrate.cli.cloud import CloudTarget, cloud_options
from numa_migrate.cli.fleetsource import fleet_sources, print_fleet_notes
from numa_migrate.cli.main import EXIT_NO_FIT, _stdout, fleet_option, handle_errors, json_option
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.rank import SCORE_HELP

if TYPE_CHECKING:
    from rich.console import Console

    from numa_migrate.adapters.fleet import Fleet, PlacedGuest
    from numa_migrate.core.model.guest import Guest
    from numa_migrate.core.where import Refusal, WhereAnswer


class UnknownGuestError(NumaMigrateError):
    """A guest name that is not in the fleet."""


def find_guest(fleet: Fleet, name: str) -> PlacedGuest:
    """The guest of this name (or, for a cloud's fleet, this server id)."""
    found = [g for g in fleet.guests if g.name == name] or \
        [g for g in fleet.guests if g.uuid is not None and g.uuid == name]
    if len(found) == 1:
        return found[0]
    if found:
        raise UnknownGuestError(
            f"guest {name!r} is on several hosts of {fleet.source} "
            f"({', '.join(g.host for g in found)}): give the guests distinct names")
    left_out = [n for n in fleet.notes if f"domain {name} left out" in n]
    if left_out:
        raise UnknownGuestError(f"guest {name!r} is not in the guests of {fleet.source}: "
                                f"{left_out[0]}")
    known = ", ".join(g.name for g in fleet.guests) or "none"
    raise UnknownGuestError(f"guest {name!r} is not in {fleet.source} (guests: {known})")


@click.command("where")
@click.argument("guest_name", metavar="GUEST")
@fleet_sources(fleet_option)
@click.option("--pack", is_flag=True,
              help="Fit with Nova's packing host-cell order (the default spreads).")
@cloud_options
@json_option
@handle_errors
def where_cmd(guest_name: str, *, fleet_path: Path | None, hosts_path: Path | None,
              db_url: str | None, pack: bool, target: CloudTarget, as_json: bool) -> None:
    """Where can a guest of the fleet go: every other host, ranked, or why not.

    GUEST is the name of a guest already placed in the fleet (default: the bundled
    sample fleet; --fleet FILE: a fleet file or a snapshot; --hosts FILE: the inventory's
    hosts read live, GUEST a running domain with its real pins). Its NUMA cells, CPU
    policies and PCI requests (SR-IOV ports) come from its flavor (or, read live, its XML
    and metadata), and it keeps the page size it runs with. Its own host
    is shown as the source, never as a destination. Every other host either fits (with
    the placement and the score that ranks it, best first) or is refused with its
    reasons per host cell: from the fit (a grid of host cells x guest cells, as
    explain prints), or, when cheap capacity bounds already rule the host out before
    the fit, the capacity each host cell lacks.

    With --cloud NAME the fleet is the OpenStack cloud read live (as `drain --cloud`):
    GUEST is a server name or id, the hosts are Nova's computes.
    """
    from numa_migrate.cli.cloud import fleet_of
    from numa_migrate.core.fit.fitter import FitOptions
    from numa_migrate.core.where import where_guest

    fleet = fleet_of(target, fleet_path, hosts_path, db_url)
    # the fleet lives until the process ends: keep the collector from walking it again
    # and again while the fit makes short-lived objects (bench/where_speed.py)
    gc.collect()
    gc.freeze()
    placed = find_guest(fleet, guest_name)
    answer = where_guest(fleet.hosts, placed.host, placed.guest, placed.placement,
                         FitOptions(packing=pack))
    if as_json:
        doc = where_json(answer) | {"fleet_notes": list(fleet.notes)}
        if target.given:
            doc |= {"fleet": fleet.source, "server_id": placed.uuid}
        click.echo(json.dumps(doc, indent=2))
    else:
        console = _stdout()
        print_where(console, answer)
        print_fleet_notes(console, fleet.notes)
    sys.exit(0 if answer.destinations else EXIT_NO_FIT)


WHERE_TAIL = """
\b
Score (the JSON's "score" has the parts, "rank" the order):
"""

WHERE_EXAMPLES = """
\b
Examples:
  numa-migrate where vnf-2                 # the sample fleet's SR-IOV guest
  numa-migrate where web-1 --fleet fleet.json --json
  numa-migrate where vm-7 --hosts inventory.toml      # running domains, read live
  numa-migrate where vm-7 --fleet snapshot.json       # the same, from a fleet snapshot
  numa-migrate where web-7 --cloud mycloud --uri-template 'qemu+ssh://root@{host}/system'

Exit 0 when at least one other host can take the guest, 1 when none can, 2 bad input
(an unknown guest: the message lists the fleet's guests); with --cloud also 4 the cloud
cannot be reached or refuses the credentials.
"""


def _help() -> str:
    import inspect

    return (inspect.cleandoc(where_cmd.help or "") + "\n" + WHERE_TAIL + "\n"
            + SCORE_HELP + "\n" + WHERE_EXAMPLES)


where_cmd.help = _help()


# --- output -------------------------------------------------------------------------------


def _refusal_json(r: Refusal, guest: Guest) -> dict[str, object]:
    from numa_migrate.cli.render import explanation_json

    out: dict[str, object] = {
        "host": r.host,
        "stage": r.stage,
        "summary": r.summary,
        "blocked_by": list(r.labels),
        "reasons": [x.as_dict() for x in r.reasons],
    }
    if r.explained is not None:
        from numa_migrate.core.explain import Explanation

        hosts = explanation_json(Explanation(guest, (r.explained,), ""))["hosts"]
        assert isinstance(hosts, list)
        out["cells"] = hosts[0]["cells"]
    else:
        out["cells"] = [
            {"host_cell": x.host_cell, "reasons": [x.as_dict()]}
            for x in r.reasons if x.host_cell is not None
        ]
    out["pci_free"] = [{"numa_node": node, "per_request": list(counts)}
                       for node, counts in r.pci_free]
    return out


def where_json(answer: WhereAnswer) -> dict[str, object]:
    from numa_migrate.adapters.casefmt import placement_to_json
    from numa_migrate.cli.render import fit_json, guest_json
    from numa_migrate.core.rank import SCORE_PARTS

    return {
        "guest": guest_json(answer.guest),
        "source": {"host": answer.source, **placement_to_json(answer.placement),
                   "pagesize_kib": answer.current_pagesize_kib},
        "summary": answer.summary,
        "score": {"parts": list(SCORE_PARTS), "order": SCORE_HELP},
        "destinations": [
            {"rank": i, "host": d.host, "score": d.score.as_dict(),
             **{k: v for k, v in fit_json(d.result).items() if k not in ("host", "reasons")}}
            for i, d in enumerate(answer.destinations, 1)
        ],
        "refused": [_refusal_json(r, answer.guest) for r in answer.refused],
        "notes": list(answer.notes),
    }


def print_where(console: Console, answer: WhereAnswer) -> None:
    from rich.table import Table

    from numa_migrate.cli.render import _host_cell_table, placement_table, shown
    from numa_migrate.core.fit.reasons import Code
    from numa_migrate.core.model.guest import describe_page_size
    from numa_migrate.core.rank import SCORE_PARTS
    from numa_migrate.inputs.fields import one_line

    console.print(one_line(answer.summary), highlight=False, markup=False)
    now = ", ".join(f"guest cell {c.guest_cell} -> host cell {c.host_cell}"
                    for c in answer.placement.cells) or "no NUMA placement"
    page = (f", {describe_page_size(answer.current_pagesize_kib)} pages kept"
            if answer.current_pagesize_kib else "")
    console.print(f"source: {one_line(answer.source)} ({now}{page}) — not a destination",
                  highlight=False, markup=False)
    for note in answer.notes:
        console.print(f"  note: {one_line(note)}", highlight=False, markup=False)
    if answer.destinations:
        table = Table(title="Destinations, best first", title_justify="left")
        table.add_column("#")
        table.add_column("Host")
        for part in SCORE_PARTS:
            table.add_column(part, justify="right")
        table.add_column("Placement")
        for i, d in enumerate(answer.destinations, 1):
            s = d.score.as_dict()
            table.add_row(str(i), shown(d.host), *(str(s[p]) for p in SCORE_PARTS),
                          shown(d.result.summary.removeprefix("fits: ")))
        console.print(table)
        best = answer.destinations[0]
        if best.result.placement is not None and best.result.placement.cells:
            console.print(placement_table(best.result.placement,
                                          f"Placement on {shown(best.host)}"))
        for i, taken in enumerate(best.result.pci.taken if best.result.pci else (), 1):
            console.print(f"  PCI request {i}: {', '.join(taken)}", highlight=False,
                          markup=False)
    for r in answer.refused:
        console.print()
        console.print(f"[red]✘ {shown(r.host)}[/] — {shown(', '.join(r.labels))}",
                      highlight=False)
        grid = r.explained is not None and r.explained.cells
        if not grid or any("can only use" in x.message or x.code is Code.PCI_DEVICES_SHORT
                           for x in r.reasons):
            console.print(f"  {one_line(r.summary)}", highlight=False, markup=False)
        if r.explained is not None and r.explained.cells:
            console.print(_host_cell_table(r.explained))
        elif r.stage == "bound":
            for x in r.reasons:
                if x.host_cell is not None:
                    console.print(f"  cell {x.host_cell}: {one_line(x.message)}",
                                  highlight=False, markup=False)
            if r.pci_free:
                free = "; ".join(f"{'no node' if node is None else f'cell {node}'}: "
                                 f"{', '.join(str(n) for n in counts)}"
                                 for node, counts in r.pci_free)
                console.print(f"  free matching PCI devices (per request): {free}",
                              highlight=False, markup=False)

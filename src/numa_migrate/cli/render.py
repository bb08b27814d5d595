"""Turning results into JSON documents and rich tables (no decisions are made here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from numa_migrate.adapters.casefmt import placement_to_json
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.explain import Explanation, HostExplanation
from numa_migrate.core.fit.fitter import FitResult
from numa_migrate.core.fit.reasons import Code
from numa_migrate.core.model.guest import Guest, describe_page_size
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import CellPlacement, Placement
from numa_migrate.inputs.fields import one_line

# rich is imported by the functions that print: the JSON output does not need it.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from numa_migrate.adapters.fleet import Fleet


def shown(text: str) -> str:
    """Text from a fleet or a host (names, notes, reasons) fit for a line with rich markup:
    one line of printable text, its markup escaped (a guest named ``[/]`` or ``[bold]`` is
    shown as it is, never read as a tag)."""
    from rich.markup import escape

    return escape(one_line(text))


def guest_json(guest: Guest) -> dict[str, object]:
    numa = guest.numa
    out: dict[str, object] = {
        "name": guest.name,
        "vcpus": guest.vcpus,
        "memory_mib": guest.memory_mib,
        "numa": None,
    }
    if numa is not None:
        out["numa"] = {
            "description": numa.describe(),
            "cpu_policy": numa.cpu_policy.value if numa.cpu_policy else None,
            "thread_policy": numa.thread_policy.value if numa.thread_policy else None,
            "emulator_threads_policy": numa.emulator_policy.value if numa.emulator_policy else None,
            "page_size": str(numa.page_size) if numa.page_size else None,
            "cells": [
                {
                    "cell": c.index,
                    "dedicated_vcpus": sorted(c.dedicated_vcpus),
                    "shared_vcpus": sorted(c.shared_vcpus),
                    "memory_mib": c.memory_mib,
                }
                for c in numa.cells
            ],
        }
    if guest.pci_requests:
        out["pci_requests"] = [
            {"name": r.name, "count": r.count, "spec": [dict(alt) for alt in r.spec],
             "numa_policy": r.policy.value}
            for r in guest.pci_requests
        ]
    return out


def fit_json(result: FitResult) -> dict[str, object]:
    return {
        "host": result.host,
        "fits": result.fits,
        "summary": result.summary,
        "placement": placement_to_json(result.placement) if result.placement else None,
        "pci_devices": None if result.pci is None else [list(t) for t in result.pci.taken],
        "reasons": [r.as_dict() for r in result.reasons],
    }


def explanation_json(exp: Explanation) -> dict[str, object]:
    return {
        "guest": guest_json(exp.guest),
        "summary": exp.summary,
        "fitting_hosts": list(exp.fitting_hosts),
        "hosts": [
            {
                **fit_json(h.result),
                "blocked_by": list(h.labels),
                "pci_free": [{"numa_node": node, "per_request": list(counts)}
                             for node, counts in h.pci_free],
                "cells": [
                    {
                        "guest_cell": v.guest_cell,
                        "host_cell": v.host_cell,
                        "fits": v.fit is not None,
                        "pagesize_kib": v.fit.placement.pagesize_kib if v.fit else None,
                        "pins": {str(a): b for a, b in v.fit.placement.pinning or ()}
                        if v.fit
                        else None,
                        "reasons": [r.as_dict() for r in v.reasons],
                    }
                    for v in h.cells
                ],
            }
            for h in exp.hosts
        ],
    }


def _pins_text(cell: CellPlacement) -> str:
    if not cell.pinning:
        return "floating (shared CPUs)"
    return " ".join(f"{v}→{p}" for v, p in cell.pinning)


def placement_table(placement: Placement, title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("Guest Cell", "Host Cell", "vCPUs", "Memory", "Pages", "Pins (vCPU→pCPU)"):
        table.add_column(col)
    for c in placement.cells:
        table.add_row(
            str(c.guest_cell),
            str(c.host_cell),
            CpuSet.of(c.vcpus).format(),
            f"{c.memory_mib} MiB",
            describe_page_size(c.pagesize_kib) if c.pagesize_kib else "default",
            _pins_text(c),
        )
    if placement.emulator_pins:
        table.caption = f"emulator threads pinned to {CpuSet.of(placement.emulator_pins)}"
    return table


def print_fit(console: Console, result: FitResult) -> None:
    if result.placement is not None:
        console.print(f"[green]✔[/] {shown(result.host)}: {shown(result.summary)}")
        if result.placement.cells:
            console.print(placement_table(result.placement, "Placement"))
        for i, taken in enumerate(result.pci.taken if result.pci else (), 1):
            console.print(f"  PCI request {i}: {', '.join(taken)}", highlight=False,
                          markup=False)
        return
    console.print(f"[red]✘[/] {shown(result.host)}: does not fit")
    for part in result.summary.split("; "):
        console.print(f"  {one_line(part)}", highlight=False, markup=False)


def _host_cell_table(h: HostExplanation) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("Host Cell")
    guest_cells = sorted({v.guest_cell for v in h.cells})
    for g in guest_cells:
        table.add_column(f"Guest Cell {g}")
    pci = dict(h.pci_free)
    if pci:
        table.add_column("Free PCI devices (per request)")
    for host_cell in dict.fromkeys(v.host_cell for v in h.cells):
        row: list[Text | str] = [str(host_cell)]
        for g in guest_cells:
            v = next(x for x in h.cells if x.host_cell == host_cell and x.guest_cell == g)
            if v.fit is not None:
                row.append(Text("fits", style="green"))
            else:
                row.append(Text("; ".join(r.message for r in v.reasons), style="red"))
        if pci:
            row.append(_pci_counts(pci.get(host_cell, ())))
        table.add_row(*row)
    if None in pci:
        table.add_row("no node", *([""] * len(guest_cells)), _pci_counts(pci[None]))
    return table


def _pci_counts(counts: tuple[int, ...]) -> str:
    if len(counts) == 1:
        return str(counts[0])
    return ", ".join(f"#{i}: {n}" for i, n in enumerate(counts, 1))


def print_explanation(console: Console, exp: Explanation) -> None:
    console.print(one_line(exp.summary), highlight=False, markup=False)
    for h in exp.hosts:
        console.print()
        if h.result.fits:
            console.print(f"[green]✔ {shown(h.result.host)}[/] — {shown(h.result.summary)}",
                          highlight=False)
        else:
            console.print(f"[red]✘ {shown(h.result.host)}[/] — {shown(', '.join(h.labels))}",
                          highlight=False)
            if not h.cells:
                console.print(f"  {one_line(h.result.summary)}", highlight=False, markup=False)
        if h.cells:
            console.print(_host_cell_table(h))
        if not h.result.fits and any("can only use" in r.message or r.code is Code.PCI_DEVICES_SHORT
                                     for r in h.result.reasons):
            console.print(f"  {one_line(h.result.summary)}", highlight=False, markup=False)


def host_json(host: HostTopology) -> list[dict[str, object]]:
    return [
        {
            "cell": c.id,
            "dedicated_cpus": CpuSet.of(c.pcpuset).format(),
            "shared_cpus": CpuSet.of(c.cpuset).format(),
            "pinned_cpus": CpuSet.of(c.pinned_cpus).format(),
            "free_dedicated": len(c.free_pcpus),
            "memory_mib": c.memory_mib,
            "memory_used_mib": c.memory_usage_mib,
            "shared_vcpus_placed": c.cpu_usage,
            "threads_per_core": c.threads_per_core,
            "pages": [
                {
                    "size_kib": p.size_kib,
                    "total": p.total,
                    "used": p.used,
                    "reserved": p.reserved,
                    "free": p.free,
                }
                for p in c.mempages
            ],
        }
        for c in host.cells
    ]


def fleet_json(fleet: Fleet) -> dict[str, object]:
    return {
        "source": fleet.source,
        "hosts": [
            {
                "name": h.name,
                "cells": host_json(h),
                "guests": [
                    {
                        "name": g.name,
                        **placement_to_json(g.placement),
                        "description": g.guest.numa.describe() if g.guest.numa else "no NUMA",
                        "pci_devices": list(g.pci_devices),
                        "uuid": g.uuid,
                    }
                    for g in fleet.guests_on(h.name)
                ],
            }
            for h in fleet.hosts
        ],
        "notes": list(fleet.notes),
    }


def print_fleet(console: Console, fleet: Fleet) -> None:
    from rich.table import Table

    console.print(f"Fleet: {one_line(fleet.source)}", highlight=False, markup=False)
    for host in fleet.hosts:
        table = Table(title=shown(host.name), title_justify="left")
        for col in (
            "Cell",
            "Dedicated CPUs",
            "Free",
            "Shared CPUs",
            "Memory Used MiB",
            "Huge Pages Free",
        ):
            table.add_column(col, no_wrap=col != "Huge Pages Free")
        for c in host.cells:
            pages = (
                " · ".join(
                    f"{describe_page_size(p.size_kib).replace(' ', '')} {p.free}/{p.total}"
                    for p in c.mempages[1:]
                )
                or "none"
            )
            table.add_row(
                str(c.id),
                CpuSet.of(c.pcpuset).format() or "-",
                f"{len(c.free_pcpus)}/{len(c.pcpuset)}",
                CpuSet.of(c.cpuset).format() or "-",
                f"{c.memory_usage_mib}/{c.memory_mib}",
                pages,
            )
        guests = fleet.guests_on(host.name)
        if guests:
            table.caption = "guests: " + ", ".join(
                f"{shown(g.name)} ({g.guest.numa.describe() if g.guest.numa else 'no NUMA'})"
                for g in guests
            )
        console.print(table)
    from numa_migrate.cli.fleetsource import print_fleet_notes

    print_fleet_notes(console, fleet.notes)

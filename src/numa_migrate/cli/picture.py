"""The fleet's cells as a terminal picture: `drain ... --picture` and `fleet --picture`.

Per host, per cell: one character per CPU (a core's threads side by side, cores apart), the
huge-page pools and the memory as bars, each guest by its key letter (coloured on a colour
terminal, letters alone when piped); before and after for the hosts a drain plan touches,
then its waves. Fits 80 columns: long rows of cores wrap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from numa_migrate.adapters.pictures import (
    FREE_KEY,
    GLYPHS,
    OTHER_KEY,
    RESERVED_KEY,
    DrainPicture,
    HostPicture,
    bar,
    glyph,
)
from numa_migrate.core.drain.occupancy import CellOccupancy, CpuState, HostOccupancy
from numa_migrate.core.model.guest import describe_page_size
from numa_migrate.matrix.report import clean, text_colour

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = ["print_picture"]

LABEL = 11
"""Columns of the row label (``cell 12``, ``2 MiB``, ``memory``), indent included."""
MAX_BAR = 32
MIN_WIDTH = 60

_STATE_STYLE = {FREE_KEY: "dim", GLYPHS[CpuState.SHARED]: "cyan", RESERVED_KEY: "dim",
                OTHER_KEY: "bold red"}
LEGEND = (
    "Each letter is a CPU pinned by that guest (a core's threads side by side): . free, "
    "~ shared pool, # the host's, ? pinned by no guest of the fleet.",
    "Bars: the huge-page pools and the memory of each cell, per guest (# reserved pages).",
)


def _style(key: str, colours: Mapping[str, str], owner: str | None) -> str:
    if owner is not None and owner in colours:
        bg = colours[owner]
        return f"{text_colour(bg)} on {bg}"
    return _STATE_STYLE.get(key, "")


def _groups(cell: CellOccupancy) -> list[list[int]]:
    """Indexes into ``cell.cpus`` per group drawn together: a core, or 8 CPUs without SMT."""
    if any(len(core) > 1 for core in cell.cores):
        out, i = [], 0
        for core in cell.cores:
            out.append(list(range(i, i + len(core))))
            i += len(core)
        return out
    return [list(range(i, min(i + 8, len(cell.cpus)))) for i in range(0, len(cell.cpus), 8)]


def _cpu_lines(cell: CellOccupancy, pic: HostPicture, room: int) -> list[Text]:
    from rich.text import Text

    lines: list[Text] = []
    line = Text()
    for group in _groups(cell):
        if line and len(line) + 1 + len(group) > room:
            lines.append(line)
            line = Text()
        if line:
            line.append(" ")
        for i in group:
            slot = cell.cpus[i]
            key = glyph(slot, pic.keys)
            line.append(key, style=_style(key, pic.colours, slot.owner))
    lines.append(line)
    return lines


def _bar(parts: Sequence[tuple[str, int]], total: int, width: int, pic: HostPicture,
         names: Mapping[str, str | None]) -> Text:
    from rich.text import Text

    text = Text("[")
    for run, n in bar(parts, total, width):
        key = run or FREE_KEY
        text.append(key * n, style=_style(key, pic.colours, names.get(key)))
    text.append("]")
    return text


def _row(label: str, when: str, body: Text, suffix: str, wide: bool) -> Text:
    from rich.text import Text

    row = Text(f"  {label:<{LABEL - 2}}")
    if wide:
        row.append(f"{when:<7}")
    row.append_text(body)
    if suffix:
        row.append(f"  {suffix}")
    return row


def _cell_rows(cells: Sequence[tuple[str, CellOccupancy]], pic: HostPicture, width: int
               ) -> list[Text]:
    """The rows of one host cell, its states (``before``/``after``, or one with no label)
    interleaved row by row so that they read one above the other."""
    from rich.text import Text

    labelled = bool(cells[0][0])
    prefix = LABEL + (7 if labelled else 0)
    room = max(8, width - prefix - 16)
    bar_width = max(8, min(MAX_BAR, room - 2))
    by_key = {k: g for g, k in pic.keys.items()}
    rows: list[Text] = []
    cell_id = cells[0][1].id
    first = True
    for when, c in cells:
        free = c.count(CpuState.FREE)
        pool = free + sum(1 for s in c.cpus if s.state in (CpuState.GUEST, CpuState.OTHER))
        for i, line in enumerate(_cpu_lines(c, pic, room)):
            label = f"cell {cell_id}" if first else ""
            rows.append(_row(label, when if i == 0 else "", line,
                             f"{free}/{pool} free" if i == 0 else "", labelled))
            first = False
    small = cells[0][1].pages[0].size_kib if cells[0][1].pages else None
    for p_index, use in enumerate(cells[0][1].pages):
        if use.size_kib == small and small == 4:
            continue
        size = describe_page_size(use.size_kib)
        for j, (when, c) in enumerate(cells):
            u = c.pages[p_index]
            parts = [(pic.keys.get(g, "+"), n) for g, n in u.by_guest]
            parts += [(OTHER_KEY, u.other), (RESERVED_KEY, u.reserved)]
            rows.append(_row(size if j == 0 else "", when,
                             _bar(parts, u.total, bar_width, pic, by_key),
                             f"{u.free}/{u.total} free", labelled))
    for j, (when, c) in enumerate(cells):
        parts = [(pic.keys.get(g, "+"), n) for g, n in c.memory_by_guest]
        parts.append((OTHER_KEY, c.memory_other_mib))
        rows.append(_row("memory" if j == 0 else "", when,
                         _bar(parts, c.memory_mib, bar_width, pic, by_key),
                         f"{c.memory_used_mib}/{c.memory_mib} MiB", labelled))
    for j, (when, c) in enumerate(cells):
        if c.floating or c.floating_other:
            text = Text(" ".join(f"{pic.keys.get(g, '+')}×{n}" for g, n in c.floating))
            if c.floating_other:
                text.append(f" ?×{c.floating_other}")
            rows.append(_row("floating" if j == 0 else "", when, text, "vCPUs", labelled))
    return rows


def _legend(pic: HostPicture, width: int) -> list[Text]:
    """``A name → destination (wave n)`` per guest, entries never split across lines."""
    from rich.text import Text

    entries = []
    for g, key in pic.keys.items():
        entry = Text()
        entry.append(key, style=_style(key, pic.colours, g))
        entry.append(f" {clean(g)}")
        if g in pic.departures:
            wave, dest = pic.departures[g]
            entry.append(f" → {clean(dest)} (wave {wave})")
        elif g in pic.arrivals:
            wave, src = pic.arrivals[g]
            entry.append(f" ← {clean(src)} (wave {wave})")
        elif pic.role == "drained":
            entry.append(" (cannot move: stays)")
        entries.append(entry)
    lines: list[Text] = []
    line = Text("  ")
    for entry in entries:
        if len(line) > 2 and len(line) + 2 + len(entry) > width:
            lines.append(line)
            line = Text("  ")
        elif len(line) > 2:
            line.append("  ")
        line.append_text(entry)
    lines.append(line)
    return lines


def _host(console: Console, pic: HostPicture, width: int) -> None:
    from rich.text import Text

    head = Text(clean(pic.name), style="bold")
    if pic.role:
        head.append(f"  {pic.role}", style="red" if pic.role == "drained" else "green")
    if pic.before.devices_total:
        free = [str(pic.before.devices_free)]
        if pic.after is not None:
            free.append(str(pic.after.devices_free))
        head.append(f"  PCI devices free {' → '.join(free)} of {pic.before.devices_total}")
    console.print(head)
    for line in _legend(pic, width) if pic.keys else ():
        console.print(line)
    states: list[tuple[str, HostOccupancy]] = [("before", pic.before)]
    if pic.after is not None:
        states.append(("after", pic.after))
    else:
        states = [("", pic.before)]
    if not pic.before.cells:
        console.print("  no NUMA cell reported", style="dim")
    for index in range(len(pic.before.cells)):
        for row in _cell_rows([(w, o.cells[index]) for w, o in states], pic, width):
            console.print(row, no_wrap=True, overflow="ignore", crop=False)


def _waves(console: Console, picture: DrainPicture) -> None:
    from rich.text import Text

    plan = picture.plan
    if plan is None:
        return
    for i, wave in enumerate(plan.waves, 1):
        text = Text(f"wave {i}: ", style="bold")
        text.append(" · ".join(f"{clean(m.guest)} {clean(m.source)} → {clean(m.destination)}"
                               for m in wave.moves))
        console.print(text)
    for u in plan.unplaceable:
        console.print(Text(f"✘ {clean(u.guest)} stays on {clean(u.source)}: {clean(u.reason)}"))


def print_picture(console: Console, picture: DrainPicture) -> None:
    """The picture: the touched hosts (before → after), then the waves."""
    width = max(MIN_WIDTH, min(console.width, 120))
    console.print()
    for line in LEGEND:
        console.print(line, style="dim", highlight=False, width=width)
    hosts: Iterable[HostPicture] = picture.touched + picture.others
    for pic in hosts:
        console.print()
        _host(console, pic, width)
    if picture.plan is not None:
        console.print()
        _waves(console, picture)

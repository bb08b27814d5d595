"""A drain plan as one self-contained HTML5 page: the fleet's cells before and after, the waves.

Per host the plan touches, per cell: a square per CPU (a core's threads side by side) coloured
by its guest and marked with the guest's key letter, the huge-page pools and the memory as bars
split per guest; before and after side by side. Then the waves (each move as ``guest: source
→ destination`` with its cells, pins and VFs), the guests that cannot move with the reason, and
the hosts the plan does not touch (folded, no script: ``<details>``).

Inline CSS only, no script, nothing fetched. Every string from outside (host and guest names,
reasons, PCI addresses) goes through :func:`html.escape` (after
:func:`numa_migrate.matrix.report.clean` drops control and bidi characters); colours, numbers
and class names are ours. Each cell's picture carries ``data-host``/``data-cell``/``data-when``
and each square or bar run ``data-guest`` and its count, so a test (or a script) can read the
counts back.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from functools import cache

from numa_migrate import __version__
from numa_migrate.adapters.pictures import (
    GLYPHS,
    MORE,
    STATE_TEXT,
    DrainPicture,
    HostPicture,
)
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.drain.occupancy import CellOccupancy, CpuState, HostOccupancy
from numa_migrate.core.drain.plan import Move, Plan
from numa_migrate.core.model.guest import describe_page_size
from numa_migrate.matrix.report import clean, text_colour

__all__ = ["render_drain_html"]

_CSS = """
:root{color-scheme:light}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1f2328;
background:#fff;margin:0 auto;padding:1.5em 2em;max-width:96em}
h1{font-size:1.6em;margin:.2em 0 .4em}
h2{font-size:1.3em;margin:1.8em 0 .6em;padding-bottom:.2em;border-bottom:2px solid #d0d7de}
h3{font-size:1.1em;margin:0 0 .4em}
table{border-collapse:collapse;margin:.3em 0 .8em}
th,td{border:1px solid #d0d7de;padding:.3em .55em;text-align:left;vertical-align:top}
thead th,th[scope=row]{background:#f3f5f7;font-weight:600}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em;
background:#f3f5f7;padding:0 .25em;border-radius:3px;overflow-wrap:anywhere}
.muted{color:#57606a}
.summary{font-size:1.1em;padding:.5em .8em;border-radius:.4em;border:1px solid #d0d7de;
background:#f6f8fa}
.summary.bad{background:#fff8c5;border-color:#d4a72c}
.host{border:1px solid #d0d7de;border-left:6px solid #afb8c1;border-radius:.4em;
padding:.7em 1em;margin:1em 0}
.r-drained{border-left-color:#cf222e}.r-destination{border-left-color:#2da44e}
.role{font-size:.8em;font-weight:700;padding:.05em .6em;border-radius:1em;border:1px solid;
margin-left:.5em}
.role.drained{background:#ffebe9;color:#a40e26;border-color:#ff8182}
.role.destination{background:#dafbe1;color:#0f5323;border-color:#4ac26b}
.grid{display:flex;flex-wrap:wrap;gap:5px;max-width:44em}
.core{display:flex;gap:1px}
.c{width:20px;height:20px;display:inline-flex;align-items:center;justify-content:center;
font:600 11px/1 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;border-radius:3px;
border:1px solid rgba(0,0,0,.28)}
.c-free{background:#e3e3e3;color:#57606a}
.c-shared{background:#ffffff;color:#57606a;border:1px dashed #57606a}
.c-reserved,.s-reserved{color:#3d444d;background:#ffffff;background-image:
repeating-linear-gradient(135deg,rgba(0,0,0,.3) 0 2px,transparent 2px 5px)}
.c-other,.s-other{background:#ffebe9;color:#a40e26}
.bar{display:flex;width:22em;max-width:100%;height:14px;border:1px solid rgba(0,0,0,.3);
border-radius:3px;overflow:hidden;background:#e3e3e3;margin:.35em 0 0}
.seg{height:100%;min-width:2px;border-right:1px solid rgba(255,255,255,.6)}
.what{font-size:.82em;color:#3d444d}
ul.legend{list-style:none;padding:0;margin:.2em 0 .6em;display:flex;flex-wrap:wrap;
gap:.25em 1.2em;font-size:.88em}
ul.legend li{display:flex;align-items:center;gap:.35em}
.arrow{font-weight:700}
.c,.seg,.role,.bar{-webkit-print-color-adjust:exact;print-color-adjust:exact}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}
footer{margin-top:2.5em;font-size:.85em;color:#57606a;border-top:1px solid #d0d7de;
padding-top:.5em}
@media print{body{max-width:none;padding:0;font-size:10pt}.host{break-inside:avoid}}
"""

_STATE_CLASS = {CpuState.FREE: "c-free", CpuState.SHARED: "c-shared",
                CpuState.RESERVED: "c-reserved", CpuState.OTHER: "c-other"}


def h(value: object) -> str:
    """Escaped text for element content and quoted attribute values."""
    return html.escape(clean(str(value)), quote=True)


@cache
def _guest_style(colour: str) -> str:
    return f"background-color:{colour};color:{text_colour(colour)}"


def _cpus(cell: CellOccupancy, pic: HostPicture) -> str:
    by_cpu = {s.cpu: s for s in cell.cpus}
    cores = []
    for core in cell.cores:
        squares = []
        for cpu in core:
            slot = by_cpu[cpu]
            if slot.owner is not None:
                key = pic.keys.get(slot.owner, MORE)
                squares.append(
                    f'<span class="c c-guest" style="{_guest_style(pic.colours[slot.owner])}" '
                    f'data-guest="{h(slot.owner)}" title="CPU {cpu}: {h(slot.owner)}">'
                    f"{h(key)}</span>")
            else:
                squares.append(f'<span class="c {_STATE_CLASS[slot.state]}" '
                               f'title="CPU {cpu}: {STATE_TEXT[slot.state]}">'
                               f"{GLYPHS[slot.state]}</span>")
        cores.append(f'<span class="core">{"".join(squares)}</span>')
    return f'<div class="grid">{"".join(cores)}</div>'


def _bar(parts: Sequence[tuple[str | None, int, str]], total: int, title: str,
         pic: HostPicture, attr: str, *, size_kib: int | None = None) -> str:
    """A bar of ``total``: runs ``(guest, amount, what)``; guest None is reserved, "" other."""
    segs = []
    for guest, n, what in parts:
        if n <= 0 or total <= 0:
            continue
        width = f"{min(100.0, 100 * n / total):.3f}%"
        if guest:
            segs.append(f'<span class="seg" style="width:{width};'
                        f'{_guest_style(pic.colours[guest])}" data-guest="{h(guest)}" '
                        f'{attr}="{n}" title="{h(guest)}: {n} {what}"></span>')
        else:
            cls = "s-reserved" if guest is None else "s-other"
            label = "reserved" if guest is None else "used by no guest of the fleet"
            segs.append(f'<span class="seg {cls}" style="width:{width}" '
                        f'title="{label}: {n} {what}"></span>')
    size = f' data-size="{size_kib}"' if size_kib is not None else ""
    return f'<div class="bar"{size} title="{h(title)}">{"".join(segs)}</div>'


def _cell(cell: CellOccupancy, pic: HostPicture, when: str) -> str:
    free = cell.count(CpuState.FREE)
    pool = free + cell.count(CpuState.GUEST) + cell.count(CpuState.OTHER)
    out = [f'<div class="cell" data-host="{h(pic.name)}" data-cell="{cell.id}" '
           f'data-when="{when}">', _cpus(cell, pic),
           f'<div class="what">dedicated CPUs: {free} free of {pool}</div>']
    small = cell.pages[0].size_kib if cell.pages else None
    for use in cell.pages:
        if use.size_kib == small == 4:
            continue
        size = describe_page_size(use.size_kib)
        parts: list[tuple[str | None, int, str]] = [
            (g, n, f"{size} pages") for g, n in use.by_guest]
        parts += [("", use.other, f"{size} pages"), (None, use.reserved, f"{size} pages")]
        text = f"{size} pages: {use.free} free of {use.total}"
        if use.reserved:
            text += f" ({use.reserved} reserved)"
        out.append(_bar(parts, use.total, text, pic, "data-pages", size_kib=use.size_kib))
        out.append(f'<div class="what">{h(text)}</div>')
    mem: list[tuple[str | None, int, str]] = [(g, n, "MiB") for g, n in cell.memory_by_guest]
    mem.append(("", cell.memory_other_mib, "MiB"))
    text = f"memory: {cell.memory_used_mib} of {cell.memory_mib} MiB used"
    out.append(_bar(mem, cell.memory_mib, text, pic, "data-mib"))
    out.append(f'<div class="what">{h(text)}</div>')
    if cell.floating or cell.floating_other:
        floats = [f"{h(g)} {n}" for g, n in cell.floating]
        if cell.floating_other:
            floats.append(f"other {cell.floating_other}")
        out.append(f'<div class="what">floating vCPUs: {", ".join(floats)}</div>')
    out.append("</div>")
    return "".join(out)


def _legend(pic: HostPicture) -> str:
    items = []
    for g, key in pic.keys.items():
        note = ""
        if g in pic.departures:
            wave, dest = pic.departures[g]
            note = f' <span class="arrow">→ {h(dest)}</span> <span class="muted">wave {wave}</span>'
        elif g in pic.arrivals:
            wave, src = pic.arrivals[g]
            note = f' <span class="arrow">← {h(src)}</span> <span class="muted">wave {wave}</span>'
        elif pic.role == "drained":
            note = ' <span class="muted">stays (cannot move)</span>'
        items.append(f'<li><span class="c" style="{_guest_style(pic.colours[g])}">{h(key)}'
                     f"</span>{h(g)}{note}</li>")
    occ = [pic.before] + ([pic.after] if pic.after is not None else [])
    present = {s.state for o in occ for c in o.cells for s in c.cpus}
    for state in (CpuState.FREE, CpuState.SHARED, CpuState.RESERVED, CpuState.OTHER):
        if state not in present:
            continue
        items.append(f'<li><span class="c {_STATE_CLASS[state]}">{GLYPHS[state]}</span>'
                     f'<span class="muted">{STATE_TEXT[state]}</span></li>')
    return f'<ul class="legend">{"".join(items)}</ul>'


def _host(pic: HostPicture) -> str:
    role = f'<span class="role {pic.role}">{pic.role}</span>' if pic.role else ""
    head = [f'<section class="host r-{pic.role or "other"}" data-host="{h(pic.name)}">',
            f"<h3>{h(pic.name)}{role}</h3>"]
    occ: list[tuple[str, HostOccupancy]] = [("before", pic.before)]
    if pic.after is not None:
        occ.append(("after", pic.after))
    devices = pic.before.devices_total
    if devices:
        free = " → ".join(str(o.devices_free) for _, o in occ)
        head.append(f'<p class="what">PCI devices free: {free} of {devices}</p>')
    head.append(_legend(pic))
    if not pic.before.cells:
        head.append('<p class="muted">no NUMA cell reported</p></section>')
        return "".join(head)
    cols = "".join(f'<th scope="col">{w}</th>' for w, _ in occ) if pic.after is not None \
        else '<th scope="col">now</th>'
    rows = []
    for i, cell in enumerate(pic.before.cells):
        tds = "".join(f"<td>{_cell(o.cells[i], pic, w)}</td>" for w, o in occ)
        rows.append(f'<tr><th scope="row">cell {cell.id}</th>{tds}</tr>')
    head.append(f'<table class="cells"><thead><tr><th scope="col">cell</th>{cols}</tr>'
                f'</thead><tbody>{"".join(rows)}</tbody></table></section>')
    return "".join(head)


def _move_row(m: Move) -> str:
    cells = ", ".join(f"{c.guest_cell}→{c.host_cell}" for c in m.placement.cells) or "no NUMA"
    pins = CpuSet.of(frozenset(p for c in m.placement.cells for _, p in c.pinning or ()))
    emulator = m.placement.emulator_pins
    pin_text = pins.format() or "floating"
    if emulator:
        pin_text += f" (emulator {CpuSet.of(emulator).format()})"
    vfs = ", ".join(f"<code>{h(a)}</code>" for a in m.pci_devices)
    return (f'<tr data-guest="{h(m.guest)}"><td>{h(m.guest)}</td>'
            f'<td>{h(m.source)} <span class="arrow">→</span> {h(m.destination)}</td>'
            f"<td>{cells}</td><td>{pin_text}</td><td>{vfs}</td></tr>")


def _waves(plan: Plan) -> list[str]:
    if not plan.waves:
        return ["<h2>Waves</h2>", '<p class="muted">no move</p>']
    out = ["<h2>Waves</h2>",
           '<p class="muted">The moves of a wave run at the same time; each takes its '
           "destination's capacity when the wave starts and frees its source when the wave "
           "ends.</p>"]
    for i, wave in enumerate(plan.waves, 1):
        rows = "".join(_move_row(m) for m in wave.moves)
        n = len(wave.moves)
        out.append(f'<h3>Wave {i} <span class="muted">({n} move{"s" if n != 1 else ""})'
                   f'</span></h3><table class="wave"><thead><tr><th scope="col">guest</th>'
                   '<th scope="col">move</th><th scope="col">guest cell → host cell</th>'
                   '<th scope="col">pins</th><th scope="col">VFs</th></tr></thead>'
                   f"<tbody>{rows}</tbody></table>")
    return out


def _unplaceable(plan: Plan) -> list[str]:
    if not plan.unplaceable:
        return []
    items = "".join(
        f'<li data-guest="{h(u.guest)}"><strong>{h(u.guest)}</strong> stays on '
        f"{h(u.source)}: {h(u.reason)}</li>" for u in plan.unplaceable)
    return ["<h2>Guests that cannot move</h2>", f'<ul class="unplaceable">{items}</ul>']


def _summary(plan: Plan, drained: Iterable[str]) -> str:
    moves = len(plan.moves)
    waves = len(plan.waves)
    text = (f"drain {', '.join(drained)}: {moves} move{'s' if moves != 1 else ''} in {waves} "
            f"wave{'s' if waves != 1 else ''} ({plan.solver})")
    if plan.unplaceable:
        text += f"; {len(plan.unplaceable)} guest(s) cannot move"
    else:
        text += "; every guest has a destination"
    return f'<p class="summary{" bad" if plan.unplaceable else ""}">{h(text)}</p>'


def render_drain_html(picture: DrainPicture, source: str = "", *,
                      meta: Mapping[str, str] | None = None) -> str:
    """The page for ``picture`` (made with a plan); ``source`` names the fleet."""
    plan = picture.plan
    if plan is None:
        raise ValueError("a drain page needs a picture made with a plan")
    title = f"Drain {', '.join(picture.drained)}"
    body = [f"<h1>{h(title)}</h1>", _summary(plan, picture.drained)]
    if source:
        body.append(f'<p class="muted">fleet: {h(source)}</p>')
    body.append('<p class="muted">Each square is a host CPU, a core\'s threads side by side, '
                "coloured and lettered by the guest pinned there; the bars are the huge-page "
                "pools and the memory of the cell, split per guest. Hover for the names and "
                "counts.</p>")
    body.append("<h2>Hosts the plan touches: before and after</h2>")
    body.extend(_host(p) for p in picture.touched)
    body.extend(_waves(plan))
    body.extend(_unplaceable(plan))
    if picture.others:
        n = len(picture.others)
        body.append(f"<h2>Other hosts</h2><details><summary>{n} host{'s' if n != 1 else ''} "
                    "the plan does not touch</summary>"
                    + "".join(_host(p) for p in picture.others) + "</details>")
    extra = "".join(f" · {h(k)}: {h(v)}" for k, v in (meta or {}).items())
    body.append(f"<footer>numa-migrate {h(__version__)} · {h(plan.solver)} planner{extra}"
                "</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{h(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


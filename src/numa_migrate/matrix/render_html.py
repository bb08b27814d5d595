"""The matrix report as one self-contained HTML5 page.

Inline CSS only: no script, no web font, no image, nothing fetched, so the file can be
attached to a change request and opened (or printed) anywhere. Every string that comes from
outside (guest and host names, reasons, details, extra specs, the title, the environment)
goes through :func:`html.escape`; colours and class names are ours.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.matrix.report import (
    CPU_KINDS,
    FREE_COLOUR,
    RAN_ON_SHORT,
    RAN_ON_TEXT,
    STATUS_LABEL,
    CellPicture,
    HostPicture,
    Leg,
    MatrixReport,
    ScenarioResult,
    Status,
    cells_text,
    clean,
    downtime_text,
    duration_text,
    guest_colours,
    kinds_text,
    leg_outcome,
    pins_text,
    scenario_page_text,
    seconds_text,
    text_colour,
)

_CSS = """
:root{color-scheme:light}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:#1f2328;background:#fff;margin:0 auto;padding:1.5em 2em;max-width:86em}
h1{font-size:1.6em;margin:.2em 0 .5em}
h2{font-size:1.3em;margin:1.8em 0 .6em;padding-bottom:.2em;border-bottom:2px solid #d0d7de}
h3{font-size:1.1em;margin:0 0 .5em}
h4{font-size:.95em;margin:.9em 0 .3em}
table{border-collapse:collapse;margin:.3em 0 .8em}
th,td{border:1px solid #d0d7de;padding:.25em .55em;text-align:left;vertical-align:top}
thead th,th[scope=row]{background:#f3f5f7;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;
font-size:.92em;background:#f3f5f7;padding:0 .25em;border-radius:3px;overflow-wrap:anywhere}
a{color:#0a58ca}
.muted{color:#57606a}
.pre{white-space:pre-wrap;overflow-wrap:anywhere}
.badge{display:inline-block;padding:.05em .6em;border-radius:1em;font-size:.82em;
font-weight:700;letter-spacing:.03em;border:1px solid;white-space:nowrap}
.b-passed{background:#dafbe1;color:#0f5323;border-color:#4ac26b}
.b-failed{background:#ffebe9;color:#a40e26;border-color:#ff8182}
.b-skipped{background:#eaeef2;color:#3d444d;border-color:#afb8c1}
.b-fixtures{background:#fff8c5;color:#6c4a00;border-color:#d4a72c}
.verdict{font-size:1.15em;padding:.6em .9em;border-radius:.4em;border:1px solid;
margin:.4em 0 1em}
.v-passed{background:#dafbe1;border-color:#4ac26b}
.v-gaps{background:#fff8c5;border-color:#d4a72c}
.v-unproven{background:#eaeef2;border-color:#afb8c1}
.v-failed{background:#ffebe9;border-color:#ff8182}
.facts{display:flex;flex-wrap:wrap;gap:0 2.5em;align-items:flex-start}
.scenario{border:1px solid #d0d7de;border-left:6px solid #afb8c1;border-radius:.4em;
padding:.8em 1em;margin:1em 0}
.s-passed{border-left-color:#2da44e}.s-failed{border-left-color:#cf222e}
.s-fixtures{border-left-color:#d4a72c}
.reason{padding:.4em .7em;border-radius:.3em;background:#f6f8fa;border:1px solid #d0d7de}
.s-failed .reason{background:#ffebe9;border-color:#ff8182}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.4em 0}
dl.meta dt{font-weight:600}dl.meta dd{margin:0}
tr.o-fail td{background:#ffebe9}
.out-pass{color:#0f5323;font-weight:600}.out-fail{color:#a40e26;font-weight:700}
.out-skip{color:#57606a}
ul.refused{margin:.2em 0 .6em}
table.pics td{padding:.4em .6em}
.cellpic{margin:0 0 .6em}
.node{font-size:.85em;font-weight:600;margin-bottom:.15em}
.grid{display:grid;grid-template-columns:repeat(8,28px);gap:3px}
.cpu{width:28px;height:28px;display:flex;align-items:center;justify-content:center;
font:600 11px/1 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;border-radius:4px;
border:1px solid rgba(0,0,0,.28)}
.sw{display:inline-block;width:16px;height:16px;border-radius:3px;
border:1px solid rgba(0,0,0,.28)}
.k-dedicated{border:2px solid #1f2328}
.k-shared{border:2px dashed #57606a}
.k-reserved{border:2px dotted #57606a;background-image:repeating-linear-gradient(135deg,
rgba(0,0,0,.22) 0 2px,transparent 2px 6px)}
.own{font-size:.8em;color:#3d444d;margin-top:.2em;max-width:19em}
ul.legend{list-style:none;padding:0;margin:.3em 0;display:flex;flex-wrap:wrap;gap:.3em 1.2em;
font-size:.88em}
ul.legend li{display:flex;align-items:center;gap:.4em}
.cpu,.sw,.badge,.verdict,.reason,tr.o-fail td,thead th{-webkit-print-color-adjust:exact;
print-color-adjust:exact}
footer{margin-top:2.5em;font-size:.85em;color:#57606a;border-top:1px solid #d0d7de;
padding-top:.5em}
@media print{body{max-width:none;padding:0;font-size:10.5pt}a{color:inherit;
text-decoration:none}.scenario{break-inside:avoid}h2,h3,h4{break-after:avoid}
table.pics,tr{break-inside:avoid}}
"""

_OUTCOME = {"pass": "✔ pass", "fail": "✘ FAIL", "skip": "– skip"}
_KIND_HELP = {"dedicated": "dedicated (pinned vCPUs)", "shared": "shared (floating vCPUs)",
              "reserved": "reserved for the host"}


def h(value: object) -> str:
    """Escaped text for element content and quoted attribute values."""
    return html.escape(clean(str(value), newlines=True), quote=True)


def _anchor_ids(scenarios: Sequence[ScenarioResult]) -> list[str]:
    """Valid, unique ``id`` values (no spaces, never empty) for the scenarios' sections."""
    seen: set[str] = set()
    out = []
    for r in scenarios:
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", r.id).strip("-") or "scenario"
        anchor, n = base, 1
        while anchor in seen:
            n += 1
            anchor = f"{base}-{n}"
        seen.add(anchor)
        out.append(anchor)
    return out


def _badge(status: Status) -> str:
    return f'<span class="badge b-{status.value}">{STATUS_LABEL[status]}</span>'


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table from already escaped cells."""
    head = "".join(f'<th scope="col">{c}</th>' for c in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --------------------------------------------------------------------------- header


def _header(report: MatrixReport, anchors: Sequence[str]) -> list[str]:
    verdict = report.verdict()
    n = report.counts()
    parts = [
        "<header>",
        f"<h1>{h(report.title)}</h1>",
        f'<p class="verdict v-{verdict.kind}"><strong>Verdict: {h(verdict.label)}</strong>'
        f" — {h(verdict.text)}.<br>{h(report.summary_line())}.</p>",
        '<div class="facts">',
        "<table><tbody>"
        f'<tr><th scope="row">started</th><td>{h(report.started_at)}</td></tr>'
        f'<tr><th scope="row">finished</th><td>{h(report.finished_at)}</td></tr>'
        f'<tr><th scope="row">duration</th>'
        f"<td>{h(duration_text(report.duration_seconds()))}</td></tr>"
        + "".join(f'<tr><th scope="row">{h(k)}</th><td>{h(v)}</td></tr>'
                  for k, v in report.environment.items())
        + "</tbody></table>",
        '<table><thead><tr><th scope="col">status</th><th scope="col">scenarios</th></tr>'
        "</thead><tbody>"
        + "".join(f'<tr><td>{_badge(s)}</td><td class="num">{n[s]}</td></tr>' for s in Status)
        + f'<tr><th scope="row">total</th><td class="num">{len(report.scenarios)}</td></tr>'
        "</tbody></table>",
        "</div>",
        "</header>",
    ]
    if report.scenarios:
        rows = []
        for r, anchor in zip(report.scenarios, anchors, strict=True):
            legs = "<br>".join(_leg_short(leg) for leg in r.legs) or "—"
            counts = r.check_counts()
            checks = (f"{counts['pass']} pass, {counts['fail']} fail, {counts['skip']} skip"
                      if r.checks else "none")
            rows.append([f'<a href="#{anchor}">{h(r.id)}</a>', h(r.group), _badge(r.status),
                         h(RAN_ON_SHORT[r.ran_on]), h(scenario_page_text(r)), legs, h(checks)])
        parts += ["<section>", "<h2>Scenarios</h2>",
                  _table(["scenario", "group", "status", "ran on", "page size",
                          "legs (time / downtime)", "checks"], rows), "</section>"]
    return parts


def _leg_short(leg: Leg) -> str:
    route = f"{h(leg.source)} → {h(leg.destination)}"
    if leg.migrated:
        return f"{route}: {h(seconds_text(leg.seconds))} / {h(downtime_text(leg))}"
    return f"{route}: {'refused' if leg.refused else 'not migrated'}"


# --------------------------------------------------------------------------- one scenario


def _legs(r: ScenarioResult) -> list[str]:
    if not r.legs:
        return ['<p class="muted">No leg: nothing was moved.</p>']
    rows = []
    for number, leg in enumerate(r.legs, 1):
        rows.append([
            str(number), f"{h(leg.source)} → {h(leg.destination)}", h(leg_outcome(leg)),
            h(seconds_text(leg.seconds)), h(downtime_text(leg)),
            f"<code>{h(pins_text(leg.source_pins))}</code>",
            f"<code>{h(pins_text(leg.dest_pins))}</code>",
            f"<code>{h(cells_text(leg.source_cells))}</code>",
            f"<code>{h(cells_text(leg.dest_cells))}</code>",
        ])
    parts = ["<h4>Legs</h4>", _table(
        ["leg", "source → destination", "outcome", "time", "downtime",
         "source pins<br><span class=\"muted\">vCPU→pCPU</span>", "destination pins",
         "source cells<br><span class=\"muted\">guest cell→host node</span>",
         "destination cells"], rows, "legs")]
    for number, leg in enumerate(r.legs, 1):
        if leg.refused:
            parts.append(f"<p>Leg {number} ({h(leg.source)} → {h(leg.destination)}) was "
                         "refused because:</p>")
            parts.append('<ul class="refused">'
                         + "".join(f'<li class="pre">{h(x)}</li>' for x in leg.refused_reasons)
                         + "</ul>")
    return parts


def _checks(r: ScenarioResult) -> list[str]:
    if not r.checks:
        return ["<h4>Checks</h4>", '<p class="muted">No check was made.</p>']
    n = r.check_counts()
    rows = []
    for c in r.checks:
        rows.append(f'<tr class="o-{c.outcome}"><td class="out-{c.outcome}">'
                    f"{_OUTCOME[c.outcome]}</td><td>{h(c.title)}<br>"
                    f'<code class="muted">{h(c.name)}</code></td>'
                    f'<td class="pre">{h(c.detail)}</td></tr>')
    return [f"<h4>Checks — what was checked ({n['pass']} passed, {n['fail']} failed, "
            f"{n['skip']} skipped)</h4>",
            '<table class="checks"><thead><tr><th scope="col">outcome</th>'
            '<th scope="col">check</th><th scope="col">detail</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>"]


def _cell(cell: CellPicture, colours: Mapping[str, str]) -> str:
    squares = []
    for cpu in cell.cpus:
        owner = cell.owner(cpu)
        kind = cell.kinds.get(cpu, "")
        background = colours[owner] if owner else FREE_COLOUR
        label = " · ".join(x for x in (f"CPU {cpu}", kind, owner or "free") if x)
        cls = "cpu" + (f" k-{kind}" if kind else "")
        squares.append(f'<div class="{cls}" style="background-color:{background};'
                       f'color:{text_colour(background)}" title="{h(label)}">{cpu}</div>')
    by_guest: dict[str, list[int]] = {}
    for cpu in cell.cpus:
        by_guest.setdefault(cell.owner(cpu), []).append(cpu)
    owned = [f"{h(g)}: {CpuSet.of(c)}" for g, c in sorted(by_guest.items()) if g]
    if "" in by_guest:
        owned.append(f"free: {CpuSet.of(by_guest[''])}")
    roles = kinds_text(cell)
    return ('<div class="cellpic">'
            f'<div class="node">node {cell.node}</div>'
            f'<div class="grid">{"".join(squares)}</div>'
            f'<div class="own">{"; ".join(owned) or "no CPU"}'
            + (f"<br>{h(roles)}" if roles else "") + "</div></div>")


def _pictures(r: ScenarioResult) -> list[str]:
    colours = guest_colours(r.guests())
    hosts: dict[str, list[HostPicture]] = {}
    for p in r.pictures:
        hosts.setdefault(p.host, []).append(p)
    rows = []
    for host, shots in hosts.items():
        columns = []
        for when in ("before", "after"):
            cells = [_cell(c, colours) for p in shots if p.when == when for c in p.cells]
            taken = any(p.when == when for p in shots)
            columns.append("".join(cells) if cells else
                           '<span class="muted">'
                           + ("no NUMA cell reported" if taken else "not taken") + "</span>")
        rows.append(f'<tr><th scope="row">{h(host)}</th><td>{columns[0]}</td>'
                    f"<td>{columns[1]}</td></tr>")
    legend = [f'<li><span class="sw" style="background-color:{colours[g]}"></span>'
              f"{h(g)}</li>" for g in r.guests()]
    legend.append(f'<li><span class="sw" style="background-color:{FREE_COLOUR}"></span>'
                  "free</li>")
    kinds = {k for p in r.pictures for c in p.cells for k in c.kinds.values()}
    legend += [f'<li><span class="sw k-{k}" style="background-color:#ffffff"></span>'
               f"{h(_KIND_HELP[k])}</li>" for k in CPU_KINDS if k in kinds]
    return ["<h4>CPU pictures — the guest on each host CPU</h4>",
            '<table class="pics"><thead><tr><th scope="col">host</th>'
            '<th scope="col">before</th><th scope="col">after</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>",
            f'<ul class="legend">{"".join(legend)}</ul>']


def _scenario(r: ScenarioResult, anchor: str) -> list[str]:
    specs = ", ".join(f"<code>{h(k)}={h(v)}</code>" for k, v in sorted(r.extra_specs.items()))
    parts = [f'<article class="scenario s-{r.status.value}" id="{anchor}">',
             f"<h3>{_badge(r.status)} {h(r.id)}: {h(r.title)}</h3>"]
    if r.reason:
        parts.append(f'<p class="reason pre"><strong>Reason:</strong> {h(r.reason)}</p>')
    parts.append('<dl class="meta">'
                 f"<dt>status</dt><dd>{h(STATUS_LABEL[r.status])}</dd>"
                 f"<dt>ran on</dt><dd>{h(RAN_ON_TEXT[r.ran_on])}</dd>"
                 f"<dt>extra specs</dt><dd>{specs or 'none'}</dd>"
                 f"<dt>page size</dt><dd>{h(scenario_page_text(r))}</dd></dl>")
    parts += _legs(r)
    parts += _checks(r)
    if r.pictures:
        parts += _pictures(r)
    parts.append("</article>")
    return parts


def render_html(report: MatrixReport) -> str:
    anchors = _anchor_ids(report.scenarios)
    pending: dict[int, list[str]] = {}
    for r, anchor in zip(report.scenarios, anchors, strict=True):
        pending.setdefault(id(r), []).append(anchor)
    verdict = report.verdict()
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<meta name="generator" content="numa-migrate">',
             f"<title>{h(report.title)} — {h(verdict.label)}</title>",
             f"<style>{_CSS}</style>", "</head>", "<body>"]
    parts += _header(report, anchors)
    for group, results in report.grouped():
        parts += ["<section>", f"<h2>{h(group)}</h2>"]
        for r in results:
            parts += _scenario(r, pending[id(r)].pop(0))
        parts.append("</section>")
    if not report.scenarios:
        parts.append('<p class="muted">No scenario was run.</p>')
    parts += ["<footer>Written by numa-migrate validate-matrix: guests migrated there and "
              "back, then checked with validate.</footer>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"

"""The matrix report as markdown, readable raw in a terminal and rendered in a viewer.

Tables are padded so that their columns line up in a terminal too. Text from outside (guest
and host names, reasons, details, extra specs) cannot become markup: in prose the few
characters that could start markup are backslash-escaped (``<`` among them, so no raw HTML
reaches a viewer), extra specs are code spans, and the CPU pictures sit in a fenced block.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from numa_migrate.matrix.report import (
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
    display_width,
    downtime_text,
    duration_text,
    kinds_text,
    leg_outcome,
    pins_text,
    scenario_page_text,
    seconds_text,
)

_OUTCOME = {"pass": "pass", "fail": "FAIL", "skip": "skip"}
_MARK = {"pass": "✔", "fail": "✘", "skip": "–"}

# What could become markup in running text, and nothing more, so that details such as
# "0->1" or "hostdev_numa[0000:3b:02.2]" stay readable raw: code spans, emphasis ("_" only
# where it could open or close emphasis, not inside cpu_dedicated_set), raw HTML and
# autolinks ("<"), table cells ("|"), strikethrough, links and images ("](") and a
# backslash that would escape the character after it.
_ACTIVE = re.compile(
    r"[`*<|~]"
    r"|\\(?=[!-/:-@\[-`{-~])"
    r"|\](?=\()"
    r"|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])"
)
_TICKS = re.compile(r"`+")


def text(value: str) -> str:
    """Outside text as inert markdown on one line."""
    return _ACTIVE.sub(lambda m: "\\" + m.group(0), clean(value))


def code(value: str) -> str:
    """A code span holding ``value`` literally, whatever backticks it contains."""
    value = clean(value)
    longest = max((len(run) for run in _TICKS.findall(value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith(("`", " ")) or value.endswith(("`", " ")) else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]],
          right: Sequence[int] = ()) -> list[str]:
    """A pipe table with padded columns (cells must already be escaped markdown)."""
    widths = [max(3, *(display_width(r[i]) for r in [header, *rows]))
              for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - display_width(cell))
            out.append(pad + cell if i in right else cell + pad)
        return "| " + " | ".join(out) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if i in right else "-" * w
                             for i, w in enumerate(widths)) + " |"
    return [line(header), rule, *(line(r) for r in rows)]


def _check_counts(r: ScenarioResult) -> str:
    if not r.checks:
        return "none"
    n = r.check_counts()
    return f"{n['pass']} pass, {n['fail']} fail, {n['skip']} skip"


def _leg_times(r: ScenarioResult) -> str:
    parts = []
    for leg in r.legs:
        if leg.migrated:
            parts.append(f"{seconds_text(leg.seconds)} / {downtime_text(leg)}")
        else:
            parts.append("refused" if leg.refused else "not migrated")
    return "; ".join(parts) or "—"


def _header(report: MatrixReport) -> list[str]:
    verdict = report.verdict()
    out = [f"# {text(report.title)}", "",
           f"**Verdict: {verdict.label}** — {text(verdict.text)}.", "",
           f"Summary: {report.summary_line()}.", "",
           f"Run: {text(report.started_at)} → {text(report.finished_at)} "
           f"(duration {duration_text(report.duration_seconds())}).", ""]
    if report.environment:
        out += table(["environment", "value"],
                     [[text(k), text(v)] for k, v in report.environment.items()])
        out.append("")
    n = report.counts()
    out += table(["status", "scenarios"],
                 [*([STATUS_LABEL[s], str(n[s])] for s in Status),
                  ["total", str(len(report.scenarios))]], right=(1,))
    out.append("")
    if report.scenarios:
        out += table(
            ["scenario", "group", "status", "ran on", "page size", "time / downtime per leg",
             "checks"],
            [[text(r.id), text(r.group), STATUS_LABEL[r.status], RAN_ON_SHORT[r.ran_on],
              scenario_page_text(r), _leg_times(r), _check_counts(r)]
             for r in report.scenarios])
        out.append("")
    return out


def _leg(number: int, leg: Leg) -> list[str]:
    head = (f"- leg {number}: {text(leg.source)} → {text(leg.destination)} — "
            f"{leg_outcome(leg)}")
    if leg.migrated:
        head += f" in {seconds_text(leg.seconds)}, downtime {downtime_text(leg)}"
    out = [head,
           f"  - pins (vCPU→pCPU), source ⇒ destination: {pins_text(leg.source_pins)} ⇒ "
           f"{pins_text(leg.dest_pins)}",
           f"  - cells (guest cell→host node), source ⇒ destination: "
           f"{cells_text(leg.source_cells)} ⇒ {cells_text(leg.dest_cells)}"]
    if leg.refused:
        out.append("  - refused because:")
        out += [f"    - {text(reason)}" for reason in leg.refused_reasons]
    return out


def _grid(cell: CellPicture) -> str:
    return "".join(f"[{cpu}:{clean(cell.owner(cpu)) or '--'}]" for cpu in cell.cpus)


def _pictures(pictures: Sequence[HostPicture]) -> list[str]:
    hosts: dict[str, list[HostPicture]] = {}
    for p in pictures:
        hosts.setdefault(p.host, []).append(p)
    rows: list[tuple[str, str, str]] = []
    for host, shots in hosts.items():
        for when in ("before", "after"):
            for p in (s for s in shots if s.when == when):
                for cell in p.cells:
                    roles = kinds_text(cell)
                    rows.append((clean(host), when, f"node{cell.node}: {_grid(cell)}"
                                 + (f"  ({roles})" if roles else "")))
                if not p.cells:
                    rows.append((clean(host), when, "no NUMA cell reported"))
    host_w = max(display_width(h) for h, _w, _l in rows)
    lines = []
    last_host, last_when = "", ""
    for host, when, line in rows:
        shown_host = host if host != last_host else ""
        shown_when = when if (host, when) != (last_host, last_when) else ""
        lines.append(f"{shown_host}{' ' * (host_w - display_width(shown_host))}  "
                     f"{shown_when:<6}  {line}".rstrip())
        last_host, last_when = host, when
    longest = max((len(run) for line in lines for run in _TICKS.findall(line)), default=0)
    fence = "`" * max(3, longest + 1)
    return ["CPU pictures — the guest on each host CPU (`--`: free), before and after the "
            "move:", "", fence + "text", *lines, fence]


def _checks(r: ScenarioResult) -> list[str]:
    n = r.check_counts()
    out = [f"- checks (what was checked): {n['pass']} passed, {n['fail']} failed, "
           f"{n['skip']} skipped"]
    for c in r.checks:
        line = f"  - {_MARK[c.outcome]} {_OUTCOME[c.outcome]} — {text(c.title)}"
        if c.detail:
            line += f": {text(c.detail)}"
        out.append(line)
    return out


def _scenario(r: ScenarioResult) -> list[str]:
    out = [f"### {text(r.id)}: {text(r.title)} — {STATUS_LABEL[r.status]}", ""]
    specs = ", ".join(code(f"{k}={v}") for k, v in sorted(r.extra_specs.items()))
    out += [f"- status: **{STATUS_LABEL[r.status]}**, ran on {RAN_ON_TEXT[r.ran_on]}",
            f"- extra specs: {specs or 'none'}",
            f"- page size: {scenario_page_text(r)}"]
    if r.reason:
        out.append(f"- reason: {text(r.reason)}")
    for number, leg in enumerate(r.legs, 1):
        out += _leg(number, leg)
    if not r.legs:
        out.append("- legs: none (nothing was moved)")
    out += _checks(r) if r.checks else ["- checks: none made"]
    if r.pictures:
        out += ["", *_pictures(r.pictures)]
    out.append("")
    return out


def render_markdown(report: MatrixReport) -> str:
    out = _header(report)
    for group, results in report.grouped():
        out += [f"## {text(group)}", ""]
        for r in results:
            out += _scenario(r)
    if not report.scenarios:
        out += ["No scenario was run.", ""]
    return "\n".join(out).rstrip("\n") + "\n"

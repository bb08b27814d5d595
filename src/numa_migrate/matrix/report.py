"""The validation matrix report: its data model, JSON round trip, markdown and HTML.

The report stands on its own (an operator attaches it to a change request): per scenario
the status, extra specs, page size, each leg's pins and cells, times, refusal reasons,
every check made, and a picture of each host's CPUs before and after, coloured by guest.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from numa_migrate.cpuset import format_cpu_spec
from numa_migrate.errors import ParseError

GROUP_ORDER = ("NUMA awareness", "CPU pinning", "Huge pages", "SR-IOV", "Negative")
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#86bcb6")


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    FIXTURES = "fixtures"
    """Ran only on XML fixtures / libvirt's test driver: not run on hardware."""


class ReportError(ParseError):
    """A report document that does not follow the format; names the field."""


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    outcome: str  # "pass" | "fail" | "skip"
    detail: str = ""


@dataclass(frozen=True)
class CellPicture:
    node: int
    cpus: tuple[int, ...]
    owners: Mapping[int, str]
    kinds: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cpus", tuple(self.cpus))
        object.__setattr__(self, "owners", _frozen(self.owners))
        object.__setattr__(self, "kinds", _frozen(self.kinds))


@dataclass(frozen=True)
class HostPicture:
    host: str
    when: str  # "before" | "after"
    cells: tuple[CellPicture, ...]


@dataclass(frozen=True)
class Leg:
    source: str
    destination: str
    seconds: float | None
    downtime_ms: int | None
    source_pins: Mapping[int, tuple[int, ...]]
    dest_pins: Mapping[int, tuple[int, ...]]
    source_cells: Mapping[int, int]
    dest_cells: Mapping[int, int]
    refused_reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("source_pins", "dest_pins"):
            pins = getattr(self, name)
            object.__setattr__(self, name, _frozen({k: tuple(v) for k, v in pins.items()}))
        for name in ("source_cells", "dest_cells"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "refused_reasons", tuple(self.refused_reasons))


@dataclass(frozen=True)
class ScenarioResult:
    id: str
    group: str
    title: str
    extra_specs: Mapping[str, str]
    status: Status
    reason: str = ""
    page_size_kib: int | None = None
    legs: tuple[Leg, ...] = ()
    checks: tuple[Check, ...] = ()
    pictures: tuple[HostPicture, ...] = ()
    ran_on: str = "lab"  # "lab" | "hosts" | "fixtures" | "none"

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_specs", _frozen(self.extra_specs))


@dataclass(frozen=True)
class MatrixReport:
    title: str
    started_at: str
    finished_at: str
    environment: Mapping[str, str]
    scenarios: tuple[ScenarioResult, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "environment", _frozen(self.environment))

    def counts(self) -> dict[Status, int]:
        return {s: sum(1 for r in self.scenarios if r.status is s) for s in Status}

    @property
    def ok(self) -> bool:
        return not any(r.status is Status.FAILED for r in self.scenarios)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "numa-migrate-matrix", "version": 1, "title": self.title,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "environment": dict(self.environment), "ok": self.ok,
            "counts": {s.value: n for s, n in self.counts().items()},
            "scenarios": [_scenario_json(r) for r in self.scenarios],
        }

    @classmethod
    def from_json(cls, data: Any) -> MatrixReport:
        doc = _Reader(data, "report")
        if doc.get("format", str) != "numa-migrate-matrix":
            raise ReportError("report.format: expected 'numa-migrate-matrix'")
        return cls(
            title=doc.get("title", str), started_at=doc.get("started_at", str),
            finished_at=doc.get("finished_at", str),
            environment={str(k): str(v) for k, v in doc.get("environment", dict).items()},
            scenarios=tuple(_scenario_from(_Reader(s, f"report.scenarios[{i}]"))
                            for i, s in enumerate(doc.get("scenarios", list))),
        )


# --------------------------------------------------------------------------- JSON


def _scenario_json(r: ScenarioResult) -> dict[str, Any]:
    return {
        "id": r.id, "group": r.group, "title": r.title, "extra_specs": dict(r.extra_specs),
        "status": r.status.value, "reason": r.reason, "page_size_kib": r.page_size_kib,
        "ran_on": r.ran_on,
        "legs": [{
            "source": leg.source, "destination": leg.destination, "seconds": leg.seconds,
            "downtime_ms": leg.downtime_ms,
            "source_pins": {str(k): list(v) for k, v in leg.source_pins.items()},
            "dest_pins": {str(k): list(v) for k, v in leg.dest_pins.items()},
            "source_cells": {str(k): v for k, v in leg.source_cells.items()},
            "dest_cells": {str(k): v for k, v in leg.dest_cells.items()},
            "refused_reasons": list(leg.refused_reasons),
        } for leg in r.legs],
        "checks": [{"name": c.name, "title": c.title, "outcome": c.outcome,
                    "detail": c.detail} for c in r.checks],
        "pictures": [{"host": p.host, "when": p.when, "cells": [{
            "node": c.node, "cpus": list(c.cpus),
            "owners": {str(k): v for k, v in c.owners.items()},
            "kinds": {str(k): v for k, v in c.kinds.items()},
        } for c in p.cells]} for p in r.pictures],
    }


class _Reader:
    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ReportError(f"{where}: expected an object, got {type(data).__name__}")
        self.data, self.where = data, where

    def get(self, key: str, kind: type, *, optional: bool = False) -> Any:
        if key not in self.data:
            if optional:
                return None
            raise ReportError(f"{self.where}.{key}: missing")
        value = self.data[key]
        if value is None and optional:
            return None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ReportError(f"{self.where}.{key}: expected {kind.__name__}, "
                              f"got {type(value).__name__}")
        return value

    def int_keys(self, key: str, convert: Any) -> dict[int, Any]:
        raw = self.get(key, dict)
        try:
            return {int(k): convert(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise ReportError(f"{self.where}.{key}: keys must be integers") from None


def _scenario_from(s: _Reader) -> ScenarioResult:
    try:
        status = Status(s.get("status", str))
    except ValueError:
        raise ReportError(f"{s.where}.status: one of "
                          f"{', '.join(x.value for x in Status)}") from None
    legs = []
    for i, raw in enumerate(s.get("legs", list)):
        leg = _Reader(raw, f"{s.where}.legs[{i}]")
        legs.append(Leg(
            source=leg.get("source", str), destination=leg.get("destination", str),
            seconds=leg.get("seconds", float, optional=True),
            downtime_ms=leg.get("downtime_ms", int, optional=True),
            source_pins=leg.int_keys("source_pins", lambda v: tuple(int(x) for x in v)),
            dest_pins=leg.int_keys("dest_pins", lambda v: tuple(int(x) for x in v)),
            source_cells=leg.int_keys("source_cells", int),
            dest_cells=leg.int_keys("dest_cells", int),
            refused_reasons=tuple(str(x) for x in leg.get("refused_reasons", list)),
        ))
    checks = []
    for i, raw in enumerate(s.get("checks", list)):
        c = _Reader(raw, f"{s.where}.checks[{i}]")
        outcome = c.get("outcome", str)
        if outcome not in ("pass", "fail", "skip"):
            raise ReportError(f"{c.where}.outcome: one of pass, fail, skip")
        checks.append(Check(c.get("name", str), c.get("title", str), outcome,
                            c.get("detail", str)))
    pictures = []
    for i, raw in enumerate(s.get("pictures", list)):
        p = _Reader(raw, f"{s.where}.pictures[{i}]")
        cells = []
        for j, rawc in enumerate(p.get("cells", list)):
            c = _Reader(rawc, f"{p.where}.cells[{j}]")
            cells.append(CellPicture(c.get("node", int),
                                     tuple(int(x) for x in c.get("cpus", list)),
                                     c.int_keys("owners", str), c.int_keys("kinds", str)))
        pictures.append(HostPicture(p.get("host", str), p.get("when", str), tuple(cells)))
    return ScenarioResult(
        id=s.get("id", str), group=s.get("group", str), title=s.get("title", str),
        extra_specs={str(k): str(v) for k, v in s.get("extra_specs", dict).items()},
        status=status, reason=s.get("reason", str),
        page_size_kib=s.get("page_size_kib", int, optional=True), legs=tuple(legs),
        checks=tuple(checks), pictures=tuple(pictures), ran_on=s.get("ran_on", str),
    )


# --------------------------------------------------------------------------- shared text


def grouped(report: MatrixReport) -> list[tuple[str, list[ScenarioResult]]]:
    groups: dict[str, list[ScenarioResult]] = {}
    for r in report.scenarios:
        groups.setdefault(r.group, []).append(r)
    order = [g for g in GROUP_ORDER if g in groups] + sorted(set(groups) - set(GROUP_ORDER))
    return [(g, groups[g]) for g in order]


def pins_text(pins: Mapping[int, tuple[int, ...]]) -> str:
    return ", ".join(f"{v}→{format_cpu_spec(c)}" for v, c in sorted(pins.items())) or "none"


def cells_text(cells: Mapping[int, int]) -> str:
    return ", ".join(f"{g}→{n}" for g, n in sorted(cells.items())) or "none"


def page_text(kib: int | None) -> str:
    if kib is None:
        return "small pages"
    return f"{kib // 1048576} GiB" if kib >= 1048576 else f"{kib // 1024} MiB"


def _page_cell(r: ScenarioResult) -> str:
    return page_text(r.page_size_kib) if r.legs else "-"


def colour(name: str) -> str:
    """A stable colour per guest name (not Python's salted hash)."""
    digest = hashlib.sha256(name.encode()).digest()
    return PALETTE[digest[0] % len(PALETTE)]


def _summary_line(report: MatrixReport) -> str:
    n = report.counts()
    return (f"{n[Status.PASSED]} passed, {n[Status.FAILED]} failed, "
            f"{n[Status.SKIPPED]} skipped, {n[Status.FIXTURES]} on fixtures only")


def _verdict(report: MatrixReport) -> str:
    return "PASS: no scenario failed" if report.ok else "FAIL: at least one scenario failed"


def _leg_line(leg: Leg) -> str:
    if leg.refused_reasons or leg.seconds is None:
        return f"{leg.source} → {leg.destination}: refused"
    return (f"{leg.source} → {leg.destination}: {leg.seconds:.2f} s, downtime "
            f"{leg.downtime_ms if leg.downtime_ms is not None else '?'} ms; pins "
            f"{pins_text(leg.source_pins)} ⇒ {pins_text(leg.dest_pins)}; cells "
            f"{cells_text(leg.source_cells)} ⇒ {cells_text(leg.dest_cells)}")


# --------------------------------------------------------------------------- markdown

_MD_BADGE = {Status.PASSED: "✅ passed", Status.FAILED: "❌ FAILED",
             Status.SKIPPED: "⏭ skipped", Status.FIXTURES: "🧪 fixtures only"}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: MatrixReport) -> str:
    out = [f"# {report.title}", "",
           f"{report.started_at} – {report.finished_at}", "",
           f"**{_verdict(report)}** — {_summary_line(report)}", ""]
    out += ["| environment | |", "|---|---|"]
    out += [f"| {_md(k)} | {_md(v)} |" for k, v in report.environment.items()]
    out += ["", "| scenario | group | status | page size | there | back |",
            "|---|---|---|---|---|---|"]
    for r in report.scenarios:
        times = [f"{leg.seconds:.2f} s / {leg.downtime_ms} ms" if leg.seconds is not None
                 else "refused" for leg in r.legs]
        times += ["-"] * (2 - len(times))
        out.append(f"| {_md(r.id)} | {_md(r.group)} | {_MD_BADGE[r.status]} | "
                   f"{_page_cell(r)} | {times[0]} | {times[1]} |")
    for group, results in grouped(report):
        out += ["", f"## {_md(group)}"]
        for r in results:
            out += ["", f"### {_md(r.id)}: {_md(r.title)} — {_MD_BADGE[r.status]}", ""]
            specs = ", ".join(f"`{k}={v}`" for k, v in sorted(r.extra_specs.items()))
            out.append(f"- extra specs: {specs or 'none'}; page size: "
                       f"{page_text(r.page_size_kib)}; ran on: {r.ran_on}")
            if r.reason:
                out.append(f"- reason: {_md(r.reason)}")
            out += [f"- {_md(_leg_line(leg))}" for leg in r.legs]
            for leg in r.legs:
                out += [f"  - refused: {_md(x)}" for x in leg.refused_reasons]
            if r.checks:
                out.append("- checks:")
                mark = {"pass": "✔", "fail": "✘", "skip": "–"}
                out += [f"  - {mark.get(c.outcome, '?')} {_md(c.title)}"
                        + (f": {_md(c.detail)}" if c.detail else "") for c in r.checks]
            for p in r.pictures:
                for cell in p.cells:
                    grid = "".join(f"[{cpu}:{cell.owners.get(cpu) or '--'}]" for cpu in cell.cpus)
                    out.append(f"- {p.host} {p.when}, node{cell.node}: `{grid}`")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;background:#fff;max-width:70em}
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;
text-align:left;vertical-align:top}.badge{padding:.1em .5em;border-radius:.3em;color:#fff}
.passed{background:#2e7d32}.failed{background:#c62828}.skipped{background:#757575}
.fixtures{background:#6a1b9a}.verdict{font-weight:bold}.scenario{margin:1em 0;padding:.5em 1em;
border:1px solid #ddd;border-radius:.4em;page-break-inside:avoid}.pics{display:flex;
flex-wrap:wrap;gap:1.5em}.cell{display:inline-grid;grid-template-columns:repeat(8,2.2em);
gap:2px;margin:.2em .8em .2em 0}.cpu{width:2.2em;height:2.2em;display:flex;align-items:center;
justify-content:center;font-size:.8em;color:#fff;border-radius:3px}.free{background:#ccc;
color:#333}.fail{color:#c62828;font-weight:bold}.pass{color:#2e7d32}.skip{color:#757575}
code{background:#f4f4f4;padding:0 .2em}.legend span{margin-right:1em}
"""


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _picture_html(p: HostPicture) -> str:
    cells = []
    for cell in p.cells:
        cpus = []
        for cpu in cell.cpus:
            owner = cell.owners.get(cpu, "")
            kind = cell.kinds.get(cpu, "")
            label = f"CPU {cpu}" + (f" ({kind})" if kind else "") + (
                f": {owner}" if owner else ": free")
            style = f' style="background:{colour(owner)}"' if owner else ""
            cls = "cpu" if owner else "cpu free"
            cpus.append(f'<div class="{cls}"{style} title="{_h(label)}">{cpu}</div>')
        cells.append(f"<div>node {cell.node}<br><div class=\"cell\">{''.join(cpus)}</div></div>")
    return f"<div><b>{_h(p.host)}</b> {_h(p.when)}{''.join(cells)}</div>"


def _legend(r: ScenarioResult) -> str:
    owners = sorted({o for p in r.pictures for c in p.cells for o in c.owners.values() if o})
    items = [f'<span><span class="cpu" style="display:inline-flex;background:{colour(o)}">'
             f"&nbsp;</span> {_h(o)}</span>" for o in owners]
    items.append('<span><span class="cpu free" style="display:inline-flex">&nbsp;</span> '
                 "free</span>")
    return f'<div class="legend">{"".join(items)}</div>'


def render_html(report: MatrixReport) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_h(report.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_h(report.title)}</h1>",
             f"<p>{_h(report.started_at)} – {_h(report.finished_at)}</p>",
             f'<p class="verdict">{_h(_verdict(report))} — {_h(_summary_line(report))}</p>',
             "<table><tr><th>environment</th><th></th></tr>"]
    parts += [f"<tr><td>{_h(k)}</td><td>{_h(v)}</td></tr>"
              for k, v in report.environment.items()]
    parts.append("</table><table><tr><th>scenario</th><th>group</th><th>status</th>"
                 "<th>page size</th><th>legs</th></tr>")
    for r in report.scenarios:
        legs = "<br>".join(_h(_leg_line(leg)) for leg in r.legs) or _h(r.reason)
        parts.append(f'<tr><td><a href="#{_h(r.id)}">{_h(r.id)}</a></td><td>{_h(r.group)}'
                     f'</td><td><span class="badge {r.status.value}">{_h(r.status.value)}'
                     f"</span></td><td>{_h(_page_cell(r))}</td><td>{legs}</td></tr>")
    parts.append("</table>")
    for group, results in grouped(report):
        parts.append(f"<h2>{_h(group)}</h2>")
        for r in results:
            specs = ", ".join(f"<code>{_h(k)}={_h(v)}</code>"
                              for k, v in sorted(r.extra_specs.items())) or "none"
            parts += [f'<div class="scenario" id="{_h(r.id)}">',
                      f'<h3>{_h(r.id)}: {_h(r.title)} <span class="badge {r.status.value}">'
                      f"{_h(r.status.value)}</span></h3>",
                      f"<p>extra specs: {specs}; page size: {_h(page_text(r.page_size_kib))};"
                      f" ran on: {_h(r.ran_on)}</p>"]
            if r.reason:
                parts.append(f"<p>reason: {_h(r.reason)}</p>")
            for leg in r.legs:
                parts.append(f"<p>{_h(_leg_line(leg))}</p>")
                if leg.refused_reasons:
                    parts.append("<ul>" + "".join(f"<li>{_h(x)}</li>"
                                                  for x in leg.refused_reasons) + "</ul>")
            if r.checks:
                parts.append("<table><tr><th>check</th><th>outcome</th><th>detail</th></tr>")
                parts += [f'<tr><td>{_h(c.title)}</td><td class="{_h(c.outcome)}">'
                          f"{_h(c.outcome)}</td><td>{_h(c.detail)}</td></tr>" for c in r.checks]
                parts.append("</table>")
            if r.pictures:
                parts.append('<div class="pics">'
                             + "".join(_picture_html(p) for p in r.pictures) + "</div>")
                parts.append(_legend(r))
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

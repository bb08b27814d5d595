"""The validation matrix report: its data model, JSON round trip and what both renderings share.

The report stands on its own (an operator attaches it to a change request): per scenario the
status, extra specs, page size, each leg's pins and cells, times, refusal reasons, every check
made, and a picture of each host's CPUs before and after, coloured by guest. The runner
(:mod:`numa_migrate.matrix.runner`) fills the model; :func:`render_markdown`
(:mod:`~numa_migrate.matrix.render_md`) and :func:`render_html`
(:mod:`~numa_migrate.matrix.render_html`) turn it into text.

Every value is made immutable on construction (mappings become read-only copies, sequences
tuples; the caller's dicts are never kept), and enumerated fields are checked there, so that
whatever :meth:`MatrixReport.to_json` writes, :meth:`MatrixReport.from_json` reads back. The
reader is strict: a bad document raises :class:`ReportError` naming the field
(``report.scenarios[2].legs[0].dest_pins: keys must be integers ...``).
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import ParseError
from numa_migrate.core.model.guest import describe_page_size
from numa_migrate.inputs.documents import load_json
from numa_migrate.inputs.fields import Node, Obj, root, show

FORMAT: Final = "numa-migrate-matrix"
VERSION: Final = 1
GROUP_ORDER: Final = ("NUMA awareness", "CPU pinning", "Huge pages", "SR-IOV", "Negative")
OUTCOMES: Final = ("pass", "fail", "skip")
WHENS: Final = ("before", "after")
RAN_ON: Final = ("lab", "multi-node-lab", "hosts", "fixtures", "none")
"""Where a scenario ran: the two-daemon lab, real hosts, XML fixtures only, or nowhere."""
CPU_KINDS: Final = ("dedicated", "shared", "reserved")

PALETTE: Final = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
    "#b07aa1", "#ff9da7", "#9c755f", "#8cd17d", "#d37295", "#a0cbe8",
)
"""Guest colours (Tableau's, without grey: grey means a free CPU)."""
FREE_COLOUR: Final = "#e3e3e3"


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    FIXTURES = "fixtures"
    """Ran only on XML fixtures / libvirt's test driver: not run on hardware."""


class ReportError(ParseError):
    """A report (document or value) that does not follow the format; names the field."""


# --------------------------------------------------------------------------- value checks

_T = TypeVar("_T")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    names = {dict: "object", list: "list", str: "str", bool: "bool", int: "int",
             float: "float", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ReportError(f"{where}: expected str, got {_kind(value)} ({_show(value)})")
    return value


def _int(value: object, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportError(f"{where}: expected int, got {_kind(value)} ({_show(value)})")
    if value < minimum:
        raise ReportError(f"{where}: must be at least {minimum}, got {value}")
    return int(value)


def _choice(value: object, allowed: Iterable[str], where: str) -> str:
    options = tuple(allowed)
    if value not in options:
        raise ReportError(f"{where}: one of {', '.join(options)} (got {_show(value)})")
    return str(value)


def _str_map(mapping: Mapping[str, str], where: str) -> Mapping[str, str]:
    return MappingProxyType({_str(k, f"{where} key"): _str(v, f"{where}[{k!r}]")
                             for k, v in mapping.items()})


def _int_map(mapping: Mapping[int, _T], where: str,
             value: Callable[[Any, str], _T]) -> Mapping[int, _T]:
    items = {_int(k, f"{where} key"): value(v, f"{where}[{k}]") for k, v in mapping.items()}
    return MappingProxyType(dict(sorted(items.items())))


def _cpu_tuple(cpus: Iterable[int], where: str) -> tuple[int, ...]:
    if isinstance(cpus, str | bytes):
        raise ReportError(f"{where}: expected a list of CPU ids, got {_kind(cpus)}")
    out = tuple(_int(c, where) for c in cpus)
    if len(set(out)) != len(out):
        raise ReportError(f"{where}: CPU ids repeat ({', '.join(map(str, out))})")
    return out


def _tuple_of(items: Iterable[_T], kind: type[_T], where: str) -> tuple[_T, ...]:
    out = tuple(items)
    for i, item in enumerate(out):
        if not isinstance(item, kind):
            raise ReportError(f"{where}[{i}]: expected {kind.__name__}, got {_kind(item)}")
    return out


def _strs(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ReportError(f"{where}: expected a sequence of str, got {_kind(value)}")
    return _tuple_of(value, str, where)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Check:
    """One thing checked in a scenario; ``detail`` says what was found (or why skipped)."""

    name: str
    title: str
    outcome: str  # "pass" | "fail" | "skip"
    detail: str = ""

    def __post_init__(self) -> None:
        _str(self.name, "Check.name")
        _str(self.title, f"Check({self.name!r}).title")
        _str(self.detail, f"Check({self.name!r}).detail")
        _choice(self.outcome, OUTCOMES, f"Check({self.name!r}).outcome")

    @property
    def failed(self) -> bool:
        return self.outcome == "fail"


@dataclass(frozen=True, slots=True)
class CellPicture:
    """One host NUMA cell: its CPUs, the guest on each (pinned or floating), their roles.

    ``owners``: CPU -> guest name ("" or missing: free). ``kinds``: CPU -> "dedicated",
    "shared" or "reserved", the CPU's place in the host's CPU sets, where known.
    """

    node: int
    cpus: tuple[int, ...]
    owners: Mapping[int, str]
    kinds: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"CellPicture(node {self.node})"
        _int(self.node, "CellPicture.node")
        cpus = _cpu_tuple(self.cpus, f"{where}.cpus")
        owners = _int_map(self.owners, f"{where}.owners", _str)
        kinds = _int_map(self.kinds, f"{where}.kinds", lambda v, w: _choice(v, CPU_KINDS, w))
        for name, mapping in (("owners", owners), ("kinds", kinds)):
            stray = sorted(set(mapping) - set(cpus))
            if stray:
                raise ReportError(f"{where}.{name}: CPU {stray[0]} is not one of the cell's "
                                  f"CPUs ({CpuSet.of(cpus).format() or 'none'})")
        _set(self, "cpus", cpus)
        _set(self, "owners", MappingProxyType({c: o for c, o in owners.items() if o}))
        _set(self, "kinds", kinds)

    def owner(self, cpu: int) -> str:
        """The guest on ``cpu``, or "" when it is free."""
        return self.owners.get(cpu, "")

    def guests(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.owners.values())))


@dataclass(frozen=True, slots=True)
class HostPicture:
    """A host's CPUs per NUMA cell, ``when`` "before" or "after" the scenario's move."""

    host: str
    when: str  # "before" | "after"
    cells: tuple[CellPicture, ...]

    def __post_init__(self) -> None:
        _str(self.host, "HostPicture.host")
        _choice(self.when, WHENS, f"HostPicture({self.host!r}).when")
        _set(self, "cells", _tuple_of(self.cells, CellPicture, f"HostPicture({self.host!r}).cells"))

    def guests(self) -> tuple[str, ...]:
        return tuple(sorted({g for c in self.cells for g in c.guests()}))


@dataclass(frozen=True, slots=True)
class Leg:
    """One move of the guest, or one refused move (``refused_reasons`` non-empty).

    Pins map a vCPU to its host CPUs, cells a guest NUMA cell to its host node; ``source_*``
    as the guest ran before the move, ``dest_*`` as placed on the destination. ``seconds``
    is None when nothing migrated (refused, or planned on fixtures only).
    """

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
        _str(self.source, "Leg.source")
        _str(self.destination, "Leg.destination")
        where = f"Leg({self.source} -> {self.destination})"
        if self.seconds is not None:
            if isinstance(self.seconds, bool) or not isinstance(self.seconds, int | float):
                raise ReportError(f"{where}.seconds: expected float or None, "
                                  f"got {_kind(self.seconds)}")
            if not math.isfinite(self.seconds) or self.seconds < 0:
                raise ReportError(f"{where}.seconds: must be a finite number >= 0, "
                                  f"got {self.seconds}")
            _set(self, "seconds", float(self.seconds))
        if self.downtime_ms is not None:
            _int(self.downtime_ms, f"{where}.downtime_ms")
        for name in ("source_pins", "dest_pins"):
            _set(self, name, _int_map(getattr(self, name), f"{where}.{name}", _cpu_tuple))
        for name in ("source_cells", "dest_cells"):
            _set(self, name, _int_map(getattr(self, name), f"{where}.{name}", _int))
        _set(self, "refused_reasons", _strs(self.refused_reasons, f"{where}.refused_reasons"))

    @property
    def refused(self) -> bool:
        return bool(self.refused_reasons)

    @property
    def migrated(self) -> bool:
        return self.seconds is not None and not self.refused


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """What one scenario did and found. ``reason``: why skipped/failed/fixtures only."""

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
    ran_on: str = "lab"  # "lab" | "multi-node-lab" | "hosts" | "fixtures" | "none"

    def __post_init__(self) -> None:
        if not _str(self.id, "ScenarioResult.id"):
            raise ReportError("ScenarioResult.id: must not be empty")
        where = f"ScenarioResult({self.id!r})"
        _str(self.group, f"{where}.group")
        _str(self.title, f"{where}.title")
        _str(self.reason, f"{where}.reason")
        _set(self, "extra_specs", _str_map(self.extra_specs, f"{where}.extra_specs"))
        _set(self, "status", Status(_choice(self.status, [s.value for s in Status],
                                            f"{where}.status")))
        if self.page_size_kib is not None:
            _int(self.page_size_kib, f"{where}.page_size_kib", minimum=1)
        _set(self, "legs", _tuple_of(self.legs, Leg, f"{where}.legs"))
        _set(self, "checks", _tuple_of(self.checks, Check, f"{where}.checks"))
        _set(self, "pictures", _tuple_of(self.pictures, HostPicture, f"{where}.pictures"))
        _choice(self.ran_on, RAN_ON, f"{where}.ran_on")

    def check_counts(self) -> dict[str, int]:
        """Checks per outcome: ``{"pass": n, "fail": n, "skip": n}``."""
        return {o: sum(1 for c in self.checks if c.outcome == o) for o in OUTCOMES}

    def guests(self) -> tuple[str, ...]:
        """Every guest name on the scenario's pictures, sorted."""
        return tuple(sorted({g for p in self.pictures for g in p.guests()}))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The report's one-line answer. ``kind``: passed, gaps, unproven or failed."""

    kind: str
    label: str
    text: str


@dataclass(frozen=True, slots=True)
class MatrixReport:
    """One matrix run: when, where, and each scenario's result."""

    title: str
    started_at: str  # ISO 8601
    finished_at: str  # ISO 8601
    environment: Mapping[str, str]
    scenarios: tuple[ScenarioResult, ...]

    def __post_init__(self) -> None:
        _str(self.title, "MatrixReport.title")
        _str(self.started_at, "MatrixReport.started_at")
        _str(self.finished_at, "MatrixReport.finished_at")
        _set(self, "environment", _str_map(self.environment, "MatrixReport.environment"))
        _set(self, "scenarios",
             _tuple_of(self.scenarios, ScenarioResult, "MatrixReport.scenarios"))

    def counts(self) -> dict[Status, int]:
        """Scenarios per status, every status present (zero when none)."""
        return {s: sum(1 for r in self.scenarios if r.status is s) for s in Status}

    @property
    def ok(self) -> bool:
        """No scenario failed (skipped and fixtures-only ones do not fail the report)."""
        return not any(r.status is Status.FAILED for r in self.scenarios)

    def verdict(self) -> Verdict:
        n = self.counts()
        total = len(self.scenarios)
        if n[Status.FAILED]:
            return Verdict("failed", "FAILED",
                           f"{n[Status.FAILED]} of {_plural(total, 'scenario')} failed")
        if not total:
            return Verdict("unproven", "NOT PROVEN", "the report holds no scenario")
        gaps = []
        if n[Status.SKIPPED]:
            gaps.append(f"{n[Status.SKIPPED]} skipped")
        if n[Status.FIXTURES]:
            gaps.append(f"{n[Status.FIXTURES]} ran on fixtures only (not on hardware)")
        if not n[Status.PASSED]:
            return Verdict("unproven", "NOT PROVEN",
                           "no scenario failed, but none passed either: " + ", ".join(gaps))
        if gaps:
            return Verdict("gaps", "PASSED WITH GAPS",
                           f"no scenario failed; {n[Status.PASSED]} passed, "
                           + " and ".join(gaps))
        return Verdict("passed", "PASSED", f"all {_plural(total, 'scenario')} passed")

    def summary_line(self) -> str:
        n = self.counts()
        return (f"{n[Status.PASSED]} passed, {n[Status.FAILED]} failed, "
                f"{n[Status.SKIPPED]} skipped, {n[Status.FIXTURES]} fixtures-only")

    def duration_seconds(self) -> float | None:
        """Seconds from start to finish, or None when the times cannot be compared."""
        try:
            start = datetime.fromisoformat(self.started_at)
            end = datetime.fromisoformat(self.finished_at)
            return (end - start).total_seconds()
        except (ValueError, TypeError):
            return None

    def grouped(self) -> tuple[tuple[str, tuple[ScenarioResult, ...]], ...]:
        """Scenarios by group: :data:`GROUP_ORDER` first, other groups after, by name."""
        groups: dict[str, list[ScenarioResult]] = {}
        for r in self.scenarios:
            groups.setdefault(r.group, []).append(r)
        order = [g for g in GROUP_ORDER if g in groups] + sorted(set(groups) - set(GROUP_ORDER))
        return tuple((g, tuple(groups[g])) for g in order)

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "title": self.title,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "environment": dict(self.environment),
            "ok": self.ok,
            "counts": {s.value: n for s, n in self.counts().items()},
            "scenarios": [_scenario_json(r) for r in self.scenarios],
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str | None = None) -> MatrixReport:
        """Read a document :meth:`to_json` wrote; anything else raises :class:`ReportError`
        naming the field (``source``: the file, for messages)."""
        doc = _obj(root(data, source=source, label="report", error=ReportError))
        fmt = doc.req("format")
        if fmt.value != FORMAT:
            fmt.fail(f"expected {FORMAT!r}, got {show(fmt.value)}")
        version = doc.req("version").integer()
        if version != VERSION:
            doc.req("version").fail(f"this numa-migrate reads version {VERSION}, "
                                    f"not {version}")
        title = doc.req("title").text()
        times = {}
        for key in ("started_at", "finished_at"):
            node = doc.req(key)
            times[key] = node.text(max_chars=64)
            try:
                datetime.fromisoformat(times[key])
            except ValueError:
                node.fail(f"not an ISO 8601 time ({show(times[key])})")
        environment = doc.req("environment").str_map()
        ok = doc.get("ok", Node.boolean, None)
        counts = doc.opt("counts")
        scenarios = tuple(_scenario_from(_obj(n)) for n in doc.req("scenarios").items())
        doc.done()
        report = cls(title=title, started_at=times["started_at"],
                     finished_at=times["finished_at"], environment=environment,
                     scenarios=scenarios)
        if ok is not None and ok != report.ok:
            doc.req("ok").fail(f"says {ok} but the scenarios say {report.ok}")
        if counts is not None:
            real = {s.value: n for s, n in report.counts().items()}
            given_obj = _obj(counts)
            given = {s: given_obj.req(s).integer() for s in real}
            given_obj.done()
            if given != real:
                counts.fail(f"{given} does not match the scenarios ({real})")
        return report


def load_report(path: Path | str) -> MatrixReport:
    """Read a report file (JSON) through the input layer; :class:`ReportError` names the
    file and the field."""
    data = load_json(path, what="matrix report", error=ReportError)
    return MatrixReport.from_json(data, source=str(path))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --------------------------------------------------------------------------- JSON details


def _scenario_json(r: ScenarioResult) -> dict[str, Any]:
    return {
        "id": r.id,
        "group": r.group,
        "title": r.title,
        "extra_specs": dict(r.extra_specs),
        "status": r.status.value,
        "reason": r.reason,
        "page_size_kib": r.page_size_kib,
        "ran_on": r.ran_on,
        "legs": [{
            "source": leg.source,
            "destination": leg.destination,
            "seconds": leg.seconds,
            "downtime_ms": leg.downtime_ms,
            "source_pins": {str(k): list(v) for k, v in leg.source_pins.items()},
            "dest_pins": {str(k): list(v) for k, v in leg.dest_pins.items()},
            "source_cells": {str(k): v for k, v in leg.source_cells.items()},
            "dest_cells": {str(k): v for k, v in leg.dest_cells.items()},
            "refused_reasons": list(leg.refused_reasons),
        } for leg in r.legs],
        "checks": [{"name": c.name, "title": c.title, "outcome": c.outcome,
                    "detail": c.detail} for c in r.checks],
        "pictures": [{
            "host": p.host,
            "when": p.when,
            "cells": [{
                "node": c.node,
                "cpus": list(c.cpus),
                "owners": {str(k): v for k, v in c.owners.items()},
                "kinds": {str(k): v for k, v in c.kinds.items()},
            } for c in p.cells],
        } for p in r.pictures],
    }


def _obj(node: Node) -> Obj:
    return node.obj()


def _cpu_list(node: Node) -> tuple[int, ...]:
    cpus = node.int_list(what="list of CPU ids")
    out = tuple(cpus)
    if len(set(out)) != len(out):
        node.fail(f"CPU ids repeat ({', '.join(map(str, out[:20]))})")
    return out


def _text(node: Node) -> str:
    return node.text()


def _nullable_seconds(node: Node) -> float:
    return node.number(minimum=0)


def _scenario_from(s: Obj) -> ScenarioResult:
    status = s.req("status").choice([x.value for x in Status])
    legs = []
    for node in s.list("legs"):
        leg = _obj(node)
        legs.append(Leg(
            source=leg.req("source").text(),
            destination=leg.req("destination").text(),
            seconds=leg.get("seconds", _nullable_seconds, None),
            downtime_ms=leg.get("downtime_ms", Node.integer, None),
            source_pins=leg.req("source_pins").int_key_map(_cpu_list),
            dest_pins=leg.req("dest_pins").int_key_map(_cpu_list),
            source_cells=leg.req("source_cells").int_key_map(Node.integer),
            dest_cells=leg.req("dest_cells").int_key_map(Node.integer),
            refused_reasons=tuple(n.text() for n in leg.list("refused_reasons")),
        ))
        leg.done()
    checks = []
    for node in s.list("checks"):
        c = _obj(node)
        checks.append(Check(c.req("name").text(), c.req("title").text(),
                            c.req("outcome").choice(OUTCOMES), c.get("detail", _text, "")))
        c.done()
    pictures = []
    for node in s.list("pictures"):
        p = _obj(node)
        host, when = p.req("host").text(), p.req("when").choice(WHENS)
        cells = []
        for cell_node in p.req("cells").items():
            c = _obj(cell_node)
            cell_id, cpus = c.req("node").integer(), _cpu_list(c.req("cpus"))
            owners = c.req("owners").int_key_map(_text)
            no_kinds: dict[int, str] = {}
            kinds = c.get("kinds", lambda n: n.int_key_map(lambda v: v.choice(CPU_KINDS)),
                          no_kinds)
            for name, mapping in (("owners", owners), ("kinds", kinds)):
                stray = sorted(set(mapping) - set(cpus))
                if stray:
                    c.req(name).fail(f"CPU {stray[0]} is not in {c.path}.cpus "
                                     f"({CpuSet.of(cpus).format() or 'none'})")
            c.done()
            cells.append(CellPicture(cell_id, cpus, owners, kinds))
        p.done()
        pictures.append(HostPicture(host, when, tuple(cells)))
    ident = s.req("id").text(non_empty=True)
    result = ScenarioResult(
        id=ident,
        group=s.req("group").text(),
        title=s.req("title").text(),
        extra_specs=s.req("extra_specs").str_map(),
        status=Status(status),
        reason=s.get("reason", _text, ""),
        page_size_kib=s.get("page_size_kib", lambda n: n.integer(minimum=1), None),
        legs=tuple(legs),
        checks=tuple(checks),
        pictures=tuple(pictures),
        ran_on=s.req("ran_on").choice(RAN_ON),
    )
    s.done()
    return result


# --------------------------------------------------------------------------- shared text


def grouped(report: MatrixReport) -> tuple[tuple[str, tuple[ScenarioResult, ...]], ...]:
    """Scenarios by group in report order (see :meth:`MatrixReport.grouped`)."""
    return report.grouped()


def pins_text(pins: Mapping[int, tuple[int, ...]]) -> str:
    """vCPU -> host CPUs, e.g. ``0→1, 1→3``; vCPUs sharing a CPU set together (``0-3→4-7``)."""
    if not pins:
        return "none"
    together: dict[tuple[int, ...], list[int]] = {}
    for vcpu, cpus in sorted(pins.items()):
        together.setdefault(tuple(sorted(set(cpus))), []).append(vcpu)
    parts = [f"{CpuSet.of(vcpus)}→{CpuSet.of(cpus).format() or 'none'}"
             for cpus, vcpus in together.items()]
    return ("; " if any("," in p for p in parts) else ", ").join(parts)


def cells_text(cells: Mapping[int, int]) -> str:
    """Guest cell -> host node, e.g. ``0→1, 1→0``."""
    return ", ".join(f"{g}→{n}" for g, n in sorted(cells.items())) or "none"


def page_text(kib: int | None) -> str:
    return "small pages" if kib is None else f"{describe_page_size(kib)} huge pages"


def scenario_page_text(r: ScenarioResult) -> str:
    """The page size the guest ran with; a guest never placed has none to show."""
    if r.page_size_kib is None and not r.legs:
        return "not placed"
    return page_text(r.page_size_kib)


def leg_outcome(leg: Leg) -> str:
    if leg.refused:
        return "refused, nothing moved"
    if leg.seconds is None:
        return "planned only, not migrated"
    return "migrated"


def seconds_text(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.2f} s"


def downtime_text(leg: Leg) -> str:
    if not leg.migrated:
        return "—"
    return "not reported" if leg.downtime_ms is None else f"{leg.downtime_ms} ms"


def duration_text(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "unknown"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min {secs} s"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


RAN_ON_TEXT: Final = {
    "lab": "the two-daemon lab (real libvirt and QEMU)",
    "multi-node-lab": "the multi-node lab (the two-daemon lab in a QEMU VM with 2 NUMA nodes, "
                      "SMT threads and 1 GiB pages; real libvirt and QEMU)",
    "hosts": "real hosts",
    "fixtures": "XML fixtures / libvirt's test driver only — not run on hardware",
    "none": "not run",
}

RAN_ON_SHORT: Final = {"lab": "lab", "multi-node-lab": "multi-node lab (VM)",
                       "hosts": "real hosts", "fixtures": "fixtures only", "none": "—"}

STATUS_LABEL: Final = {Status.PASSED: "PASSED", Status.FAILED: "FAILED",
                       Status.SKIPPED: "SKIPPED", Status.FIXTURES: "FIXTURES ONLY"}

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff]")


def clean(text: str, *, newlines: bool = False) -> str:
    """Text fit to show: control characters, bidi overrides and lone surrogates become
    U+FFFD; line breaks are kept when ``newlines`` or else become spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    if not newlines:
        text = text.replace("\n", " ")
    return _UNSAFE.sub("\ufffd", text)


def kinds_text(cell: CellPicture) -> str:
    """The cell's CPU roles compactly, e.g. ``dedicated 2-7 · shared 0-1``; "" if unknown."""
    parts = []
    for kind in CPU_KINDS:
        cpus = [c for c, k in cell.kinds.items() if k == kind]
        if cpus:
            parts.append(f"{kind} {CpuSet.of(cpus)}")
    return " · ".join(parts)


# --------------------------------------------------------------------------- colours


def _slot(name: str) -> int:
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % len(PALETTE)


def colour(name: str) -> str:
    """A guest's own colour: chosen by SHA-256 of its name, the same in every run."""
    return PALETTE[_slot(name)]


def guest_colours(names: Iterable[str]) -> dict[str, str]:
    """Colours for guests shown together: each keeps :func:`colour` unless another guest
    has it already; then (names in sorted order) the next free palette colour. The result
    depends only on the set of names; past the palette's size colours repeat."""
    unique = sorted({n for n in names if n})
    taken: dict[int, str] = {}
    out: dict[str, str] = {}
    for name in unique:
        slot = _slot(name)
        if slot not in taken:
            taken[slot] = name
            out[name] = PALETTE[slot]
    for name in unique:
        if name in out:
            continue
        slot = _slot(name)
        if len(taken) < len(PALETTE):
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
            taken[slot] = name
        out[name] = PALETTE[slot]
    return out


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour(background: str) -> str:
    """Black or white, whichever reads better on ``background``."""
    return "#000000" if contrast(background, "#000000") >= contrast(background, "#ffffff") \
        else "#ffffff"


def display_width(text: str) -> int:
    """Terminal columns: wide (CJK, emoji) characters take two, combining marks none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


# --------------------------------------------------------------------------- renderings


def render_markdown(report: MatrixReport) -> str:
    """The report as markdown: readable raw in a terminal and in a markdown viewer."""
    from numa_migrate.matrix.render_md import render_markdown as render

    return render(report)


def render_html(report: MatrixReport) -> str:
    """The report as one self-contained HTML5 page (inline CSS, no script, no fetches)."""
    from numa_migrate.matrix.render_html import render_html as render

    return render(report)

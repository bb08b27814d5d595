"""A JSON form of :class:`~numa_migrate.adapters.rewrite.DestinationPlan` (``--plan`` files).

::

    {
      "format": "numa-migrate/destination-plan", "version": 1,
      "domain": "db-1", "host": "cmp-02",            # optional, for checking
      "vcpu_pins": {"0": "2", "1": "3"},              # vCPU -> host CPU list
      "emulator_pins": "4",                           # "" for none
      "iothread_pins": {},
      "shared_cpuset": null,                          # or a CPU list
      "memory_nodes": "0",
      "cell_nodes": {"0": 0},                         # guest cell -> host node
      "hugepage_kib": {"0": 2048},                    # or null (keep as it is)
      "hostdev_map": {"0000:3b:02.1": "0000:5e:02.3"}
    }

CPU and node lists are written as libvirt CPU lists (``"2-3,6"``); lists of integers are
read too. Every mistake is a :class:`PlanFormatError` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from numa_migrate.adapters.rewrite import DestinationPlan, RewriteError
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import ParseError

FORMAT = "numa-migrate/destination-plan"
VERSION = 1
KEYS = (
    "format",
    "version",
    "domain",
    "host",
    "vcpu_pins",
    "emulator_pins",
    "iothread_pins",
    "shared_cpuset",
    "memory_nodes",
    "cell_nodes",
    "hugepage_kib",
    "hostdev_map",
)
REQUIRED = ("vcpu_pins", "emulator_pins", "memory_nodes", "cell_nodes")


class PlanFormatError(ParseError):
    """A plan document that does not follow the plan JSON format."""


_Fail = Callable[[str], PlanFormatError]
_T = TypeVar("_T")


@dataclass(frozen=True)
class PlanDocument:
    """A plan read from JSON, with the domain and host it names (if it names them)."""

    plan: DestinationPlan
    domain: str | None = None
    host: str | None = None


def plan_to_json(
    plan: DestinationPlan, *, domain: str | None = None, host: str | None = None
) -> dict[str, Any]:
    """The JSON document of ``plan`` (``json.dumps``-ready)."""
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if domain is not None:
        doc["domain"] = domain
    if host is not None:
        doc["host"] = host
    doc.update(
        vcpu_pins={str(v): CpuSet.of(c).format() for v, c in sorted(plan.vcpu_pins.items())},
        emulator_pins=CpuSet.of(plan.emulator_pins).format(),
        iothread_pins={
            str(t): CpuSet.of(c).format() for t, c in sorted(plan.iothread_pins.items())
        },
        shared_cpuset=(
            None if plan.shared_cpuset is None else CpuSet.of(plan.shared_cpuset).format()
        ),
        memory_nodes=CpuSet.of(plan.memory_nodes).format(),
        cell_nodes={str(g): n for g, n in sorted(plan.cell_nodes.items())},
        hugepage_kib=None if plan.hugepage_kib is None else {
            str(g): s for g, s in sorted(plan.hugepage_kib.items())},
        hostdev_map=dict(sorted(plan.hostdev_map.items())),
    )
    return doc


def plan_from_json(data: object, *, source: str = "plan") -> PlanDocument:
    """Read a plan document (a parsed JSON value); raises :class:`PlanFormatError`."""

    def fail(message: str) -> PlanFormatError:
        return PlanFormatError(message, source=source)

    if not isinstance(data, dict):
        raise fail(f"a plan is a JSON object (got {type(data).__name__})")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise fail(f"unknown key {', '.join(map(repr, unknown))} (allowed: {', '.join(KEYS)})")
    if data.get("format", FORMAT) != FORMAT:
        raise fail(f"format is {data['format']!r}, expected {FORMAT!r}")
    if data.get("version", VERSION) != VERSION:
        raise fail(f"version {data['version']!r} is not supported (only {VERSION})")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise fail(f"missing key {', '.join(missing)} (required: {', '.join(REQUIRED)})")
    for key in ("domain", "host"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise fail(f"{key} must be a string")
    shared = data.get("shared_cpuset")
    pages = data.get("hugepage_kib")
    try:
        plan = DestinationPlan(
            vcpu_pins=_map(data["vcpu_pins"], "vcpu_pins", fail, _cpu_value),
            emulator_pins=_cpu_value(data["emulator_pins"], "emulator_pins", fail),
            iothread_pins=_map(data.get("iothread_pins", {}), "iothread_pins", fail,
                               _cpu_value),
            shared_cpuset=None if shared is None else _cpu_value(shared, "shared_cpuset", fail),
            memory_nodes=_cpu_value(data["memory_nodes"], "memory_nodes", fail),
            cell_nodes=_map(data["cell_nodes"], "cell_nodes", fail, _int_value),
            hugepage_kib=None if pages is None else _map(pages, "hugepage_kib", fail,
                                                         _int_value),
            hostdev_map=_str_map(data.get("hostdev_map", {}), fail),
        )
    except RewriteError as exc:
        raise fail(str(exc).removeprefix(f"{exc.source}: ")) from None
    for cell, node in plan.cell_nodes.items():
        if node not in plan.memory_nodes:
            raise fail(f"cell_nodes: guest cell {cell} on host node {node}, outside "
                       f"memory_nodes {CpuSet.of(plan.memory_nodes).format() or 'none'}")
    return PlanDocument(plan, data.get("domain"), data.get("host"))


def load_plan(path: Path | str) -> PlanDocument:
    """Read a plan file; every problem is a :class:`PlanFormatError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanFormatError("plan file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFormatError(f"cannot read the plan: {exc}", source=str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFormatError(
            f"not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}", source=str(path)
        ) from None
    return plan_from_json(data, source=str(path))


def _cpu_value(value: object, where: str, fail: _Fail) -> frozenset[int]:
    if isinstance(value, str):
        try:
            return CpuSet.parse(value, field=where)
        except ParseError as exc:
            raise fail(str(exc)) from None
    if isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        return frozenset(value)
    raise fail(f"{where}: {value!r} is not a CPU list (\"2-3,6\" or [2, 3, 6])")


def _int_value(value: object, where: str, fail: _Fail) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise fail(f"{where}: {value!r} is not a non-negative integer")


def _map(
    value: object, where: str, fail: _Fail, read: Callable[[object, str, _Fail], _T]
) -> dict[int, _T]:
    if not isinstance(value, Mapping):
        raise fail(f"{where} must be an object with integer keys (got {type(value).__name__})")
    out: dict[int, _T] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key.isdigit():
            raise fail(f"{where}: key {key!r} is not a non-negative integer")
        out[int(key)] = read(item, f"{where}[{key}]", fail)
    return out


def _str_map(value: object, fail: _Fail) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise fail('hostdev_map must be an object of PCI addresses ("0000:3b:02.1": "...")')
    return dict(value)

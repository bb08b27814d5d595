"""A JSON form of :class:`~numa_migrate.core.destination.DestinationPlan` (``--plan`` files).

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
      "hostdev_map": {"0000:3b:02.1": "0000:5e:02.3"},
      "realtime_priority": 1                          # or null (keep the guest's)
    }

CPU and node lists are written as libvirt CPU lists (``"2-3,6"``); lists of integers are
read too. Every mistake is a :class:`PlanFormatError` naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.destination import DestinationPlan, RewriteError
from numa_migrate.core.errors import ParseError
from numa_migrate.core.limits import MAX_CPUS, MAX_NUMA_NODES, MAX_PAGE_SIZE_KIB

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
    "realtime_priority",
)
REQUIRED = ("vcpu_pins", "emulator_pins", "memory_nodes", "cell_nodes")
INFORMATIONAL = (
    "fits",
    "dry_run",
    "uuid",
    "source",
    "destination",
    "inferred_request",
    "page_size_kib",
    "source_pins",
    "vf_moves",
    "notes",
    "diff",
)
"""Keys ``migrate --dry-run --json`` writes next to the plan, for people; read by nobody."""
MAX_ID: Final = 1 << 20
"""vCPU, guest cell and IOThread ids (keys) are below this; far above any real guest."""


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
    plan: DestinationPlan,
    *,
    domain: str | None = None,
    host: str | None = None,
    cpu_lists: bool = False,
) -> dict[str, Any]:
    """The JSON document of ``plan`` (``json.dumps``-ready); CPU and node sets as libvirt
    CPU lists (``"2-3,6"``), or as sorted lists of integers when ``cpu_lists``."""

    def cpus(ids: frozenset[int]) -> Any:
        return sorted(ids) if cpu_lists else CpuSet.of(ids).format()

    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if domain is not None:
        doc["domain"] = domain
    if host is not None:
        doc["host"] = host
    doc.update(
        vcpu_pins={str(v): cpus(c) for v, c in sorted(plan.vcpu_pins.items())},
        emulator_pins=cpus(plan.emulator_pins),
        iothread_pins={str(t): cpus(c) for t, c in sorted(plan.iothread_pins.items())},
        shared_cpuset=None if plan.shared_cpuset is None else cpus(plan.shared_cpuset),
        memory_nodes=cpus(plan.memory_nodes),
        cell_nodes={str(g): n for g, n in sorted(plan.cell_nodes.items())},
        hugepage_kib=None if plan.hugepage_kib is None else {
            str(g): s for g, s in sorted(plan.hugepage_kib.items())},
        hostdev_map=dict(sorted(plan.hostdev_map.items())),
        realtime_priority=plan.realtime_priority,
    )
    return doc


def plan_from_json(data: object, *, source: str = "plan") -> PlanDocument:
    """Read a plan document (a parsed JSON value); raises :class:`PlanFormatError`."""

    def fail(message: str) -> PlanFormatError:
        return PlanFormatError(message, source=source)

    if not isinstance(data, dict):
        raise fail(f"a plan is a JSON object (got {type(data).__name__})")
    if data.get("fits") is False:
        raise fail("this document is a refusal (fits: false), not a plan: the guest did not "
                   "fit on the destination")
    unknown = sorted(set(data) - set(KEYS) - set(INFORMATIONAL))
    if unknown:
        raise fail(f"unknown key {', '.join(map(repr, unknown))} (allowed: {', '.join(KEYS)})")
    if data.get("format", FORMAT) != FORMAT:
        raise fail(f"format is {_show(data['format'])}, expected {FORMAT!r}")
    if data.get("version", VERSION) != VERSION:
        raise fail(f"version {_show(data['version'])} is not supported (only {VERSION})")
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
            cell_nodes=_map(data["cell_nodes"], "cell_nodes", fail, _node_value),
            hugepage_kib=None if pages is None else _map(pages, "hugepage_kib", fail,
                                                         _page_value),
            hostdev_map=_str_map(data.get("hostdev_map", {}), fail),
            realtime_priority=data.get("realtime_priority"),
        )
    except RewriteError as exc:
        raise fail(str(exc).removeprefix(f"{exc.source}: ")) from None
    for cell, node in plan.cell_nodes.items():
        if node not in plan.memory_nodes:
            raise fail(f"cell_nodes: guest cell {cell} on host node {node}, outside "
                       f"memory_nodes {CpuSet.of(plan.memory_nodes).format() or 'none'}")
    return PlanDocument(plan, data.get("domain"), data.get("host"))


def _show(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "<a very large integer>"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: object, maximum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def _cpu_value(value: object, where: str, fail: _Fail) -> frozenset[int]:
    if isinstance(value, str):
        try:
            return CpuSet.parse(value, field=where)
        except ParseError as exc:
            raise fail(str(exc)) from None
    if isinstance(value, list) and len(value) <= MAX_CPUS and all(
        _is_int(v, MAX_CPUS - 1) for v in value
    ):
        return frozenset(value)
    raise fail(f"{where}: {_show(value)} is not a CPU list (\"2-3,6\" or [2, 3, 6] with ids "
               f"below {MAX_CPUS})")


def _int_value(value: object, where: str, fail: _Fail, maximum: int) -> int:
    if _is_int(value, maximum):
        return value  # type: ignore[return-value]
    raise fail(f"{where}: {_show(value)} is not a non-negative integer (at most {maximum})")


def _node_value(value: object, where: str, fail: _Fail) -> int:
    return _int_value(value, where, fail, MAX_NUMA_NODES - 1)


def _page_value(value: object, where: str, fail: _Fail) -> int:
    return _int_value(value, where, fail, MAX_PAGE_SIZE_KIB)


def _map(
    value: object, where: str, fail: _Fail, read: Callable[[object, str, _Fail], _T]
) -> dict[int, _T]:
    if not isinstance(value, Mapping):
        raise fail(f"{where} must be an object with integer keys (got {type(value).__name__})")
    out: dict[int, _T] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not (key.isascii() and key.isdigit()) \
                or len(key) > 8 or int(key) >= MAX_ID:
            raise fail(f"{where}: key {_show(key)} is not a non-negative integer "
                       f"(below {MAX_ID})")
        out[int(key)] = read(item, f"{where}[{key}]", fail)
    return out


def _str_map(value: object, fail: _Fail) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise fail('hostdev_map must be an object of PCI addresses ("0000:3b:02.1": "...")')
    return dict(value)

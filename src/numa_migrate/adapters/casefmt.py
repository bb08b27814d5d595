"""The fit-case / fit-answer JSON documents (shared/formats/fit-case.md).

A case is a host with usage plus a guest request; an answer is a placement, a refusal with a
reason for people, or an error with Nova's exception type. One bad case never stops a batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from numa_migrate.core.errors import InvalidCaseError, InvalidRequestError
from numa_migrate.core.fit.cellfit import Limits
from numa_migrate.core.fit.fitter import FitOptions, FitResult, fit_guest
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.request import Flavor, guest_from_flavor


@dataclass(frozen=True)
class FitCase:
    id: object
    host: HostTopology
    flavor: Flavor
    image_properties: Mapping[str, object]
    options: FitOptions


def _field(obj: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in obj:
        raise InvalidCaseError(f"{where}.{key} is missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidCaseError(f"{where}.{key} must be {names}, got {value!r}")
    return value


def _optional(obj: Mapping[str, Any], key: str, where: str, kind: type, default: Any) -> Any:
    if obj.get(key) is None:
        return default
    return _field(obj, key, where, kind)


def _int_list(obj: Mapping[str, Any], key: str, where: str, default: Any = None) -> frozenset[int]:
    value = obj.get(key, default)
    if value is None:
        raise InvalidCaseError(f"{where}.{key} is missing")
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise InvalidCaseError(f"{where}.{key} must be a list of CPU ids (integers >= 0)")
    return frozenset(value)


def _cell_from_json(raw: object, where: str) -> HostCell:
    if not isinstance(raw, dict):
        raise InvalidCaseError(f"{where} must be an object")
    groups = raw.get("siblings") or []
    if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
        raise InvalidCaseError(f"{where}.siblings must be a list of lists of CPU ids")
    siblings = [_int_list({"g": g}, "g", f"{where}.siblings[{i}]") for i, g in enumerate(groups)]
    pools = []
    for i, page in enumerate(raw.get("mempages") or []):
        pw = f"{where}.mempages[{i}]"
        if not isinstance(page, dict):
            raise InvalidCaseError(f"{pw} must be an object")
        pools.append(
            PagePool(
                size_kib=_field(page, "size_kib", pw, int),
                total=_field(page, "total", pw, int),
                used=_optional(page, "used", pw, int, 0),
                reserved=_optional(page, "reserved", pw, int, 0),
            )
        )
    return HostCell(
        id=_field(raw, "id", where, int),
        cpuset=_int_list(raw, "cpuset", where, []),
        pcpuset=_int_list(raw, "pcpuset", where, []),
        memory_mib=_field(raw, "memory_mib", where, int),
        siblings=tuple(siblings),
        memory_usage_mib=_optional(raw, "memory_usage_mib", where, int, 0),
        cpu_usage=_optional(raw, "cpu_usage", where, int, 0),
        pinned_cpus=_int_list(raw, "pinned_cpus", where, []),
        mempages=tuple(pools),
    )


def host_from_json(raw: object, name: str = "host", where: str = "host") -> HostTopology:
    if not isinstance(raw, dict):
        raise InvalidCaseError(f"{where} must be an object with 'cells'")
    cells = _field(raw, "cells", where, list)
    return HostTopology(
        name=str(raw.get("name", name)),
        cells=tuple(_cell_from_json(c, f"{where}.cells[{i}]") for i, c in enumerate(cells)),
    )


def _limits(raw: object) -> Limits | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidCaseError("limits must be null or an object with allocation ratios")
    ratios = []
    for key in ("cpu_allocation_ratio", "ram_allocation_ratio"):
        value = raw.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise InvalidCaseError(f"limits.{key} must be a number > 0, got {value!r}")
        ratios.append(float(value))
    return Limits(*ratios)


def case_from_json(raw: object) -> FitCase:
    """Validate one case document; raises :class:`InvalidCaseError` naming the field."""
    if not isinstance(raw, dict):
        raise InvalidCaseError("a case must be a JSON object")
    flavor_raw = _field(raw, "flavor", "case", dict)
    specs = _optional(flavor_raw, "extra_specs", "flavor", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in specs.items()):
        raise InvalidCaseError("flavor.extra_specs must map strings to strings")
    vcpus = _field(flavor_raw, "vcpus", "flavor", int)
    memory = _field(flavor_raw, "memory_mib", "flavor", int)
    if vcpus < 1 or memory < 1:
        raise InvalidCaseError("flavor.vcpus and flavor.memory_mib must be >= 1")
    current = _optional(raw, "current_pagesize_kib", "case", int, None)
    return FitCase(
        id=raw.get("id"),
        host=host_from_json(_field(raw, "host", "case", dict)),
        flavor=Flavor(vcpus, memory, specs, str(flavor_raw.get("name", "flavor"))),
        image_properties=_optional(raw, "image_properties", "case", dict, {}),
        options=FitOptions(
            limits=_limits(raw.get("limits")),
            packing=bool(_optional(raw, "packing", "case", bool, False)),
            current_pagesize_kib=current,
        ),
    )


def placement_to_json(placement: Placement) -> dict[str, object]:
    return {
        "cells": [
            {
                "guest_cell": c.guest_cell,
                "host_cell": c.host_cell,
                "vcpus": sorted(c.vcpus),
                "memory_mib": c.memory_mib,
                "pagesize_kib": c.pagesize_kib,
                "cpu_pinning": None if c.pinning is None else {str(v): p for v, p in c.pinning},
            }
            for c in placement.cells
        ],
        "emulator_pins": None
        if placement.emulator_pins is None
        else sorted(placement.emulator_pins),
    }


def result_to_answer(case_id: object, result: FitResult) -> dict[str, object]:
    if result.placement is None:
        return {
            "id": case_id,
            "fits": False,
            "cells": [],
            "emulator_pins": None,
            "reason": result.summary,
        }
    return {"id": case_id, "fits": True, **placement_to_json(result.placement), "reason": None}


def error_answer(case_id: object, error_type: str, message: str) -> dict[str, object]:
    return {"id": case_id, "error": {"type": error_type, "message": message}}


def answer_case(raw: object) -> dict[str, object]:
    """The answer document for one case document: never raises for bad input."""
    case_id = raw.get("id") if isinstance(raw, dict) else None
    try:
        case = case_from_json(raw)
    except InvalidCaseError as exc:
        return error_answer(case_id, "InvalidCase", str(exc))
    try:
        guest = guest_from_flavor(case.flavor, case.image_properties)
    except InvalidRequestError as exc:
        return error_answer(case_id, exc.nova_type, exc.message)
    return result_to_answer(case_id, fit_guest(case.host, guest, case.options))

"""The fit-case / fit-answer JSON documents (shared/formats/fit-case.md).

A case is a host with usage plus a guest request; an answer is a placement, a refusal with a
reason for people, or an error with Nova's exception type. One bad case never stops a batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from numa_migrate.adapters.pcicase import pci_devices_from_node, pci_requests_from_node
from numa_migrate.core.errors import InvalidCaseError, InvalidRequestError
from numa_migrate.core.fit.cellfit import Limits
from numa_migrate.core.fit.fitter import FitOptions, FitResult, fit_guest
from numa_migrate.core.limits import (
    MAX_ALLOCATION_RATIO,
    MAX_CPUS,
    MAX_GUEST_VCPUS,
    MAX_MEMORY_MIB,
    MAX_NUMA_NODES,
    MAX_PAGE_COUNT,
    MAX_PAGE_SIZE_KIB,
)
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool
from numa_migrate.core.model.pcidev import PciDevice, PciRequest
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.request import Flavor, guest_from_flavor
from numa_migrate.inputs.bounds import MAX_LINE_BYTES
from numa_migrate.inputs.documents import parse_json
from numa_migrate.inputs.fields import Node, Obj, root
from numa_migrate.inputs.files import bounded_lines


@dataclass(frozen=True)
class FitCase:
    id: object
    host: HostTopology
    flavor: Flavor
    image_properties: Mapping[str, object]
    options: FitOptions
    pci_requests: tuple[PciRequest, ...] = ()


MAX_SOCKET = 4095
"""The largest CPU socket id a host cell may name."""

_CELL_KEYS = ("id", "cpuset", "pcpuset", "siblings", "memory_mib", "memory_usage_mib",
              "cpu_usage", "pinned_cpus", "mempages", "socket")


def _cpus(node: Node) -> frozenset[int]:
    return frozenset(node.int_list(max_items=MAX_CPUS, what="a list of CPU ids",
                                   maximum=MAX_CPUS - 1, why=f"CPU ids are below {MAX_CPUS}"))


def _opt_cpus(cell: Obj, key: str) -> frozenset[int]:
    return cell.get(key, _cpus, frozenset())


def _count(node: Node, maximum: int, why: str = "") -> int:
    return node.integer(minimum=0, maximum=maximum, why=why)


def _page_pool(node: Node) -> PagePool:
    page = node.obj()
    size = page.req("size_kib").integer(minimum=1, maximum=MAX_PAGE_SIZE_KIB,
                                        why="the largest page size, 16 GiB")
    return PagePool(
        size_kib=size,
        total=_count(page.req("total"), MAX_PAGE_COUNT),
        used=page.get("used", lambda n: _count(n, MAX_PAGE_COUNT), 0),
        reserved=page.get("reserved", lambda n: _count(n, MAX_PAGE_COUNT), 0),
    )


def _cell_from_node(node: Node) -> HostCell:
    cell = node.obj()
    no_groups: tuple[frozenset[int], ...] = ()
    siblings = cell.get("siblings", lambda n: tuple(_cpus(g) for g in
                                                    n.items(max_items=MAX_CPUS)), no_groups)
    no_pools: tuple[PagePool, ...] = ()
    pools = cell.get("mempages", lambda n: tuple(_page_pool(p) for p in n.items(max_items=64)),
                     no_pools)
    memory = cell.req("memory_mib")
    return HostCell(
        id=cell.req("id").integer(maximum=MAX_NUMA_NODES - 1,
                                  why=f"NUMA node ids are below {MAX_NUMA_NODES}"),
        cpuset=_opt_cpus(cell, "cpuset"),
        pcpuset=_opt_cpus(cell, "pcpuset"),
        memory_mib=memory.integer(maximum=MAX_MEMORY_MIB, why="4 PiB"),
        siblings=siblings,
        memory_usage_mib=cell.get("memory_usage_mib",
                                  lambda n: n.integer(maximum=MAX_MEMORY_MIB, why="4 PiB"), 0),
        cpu_usage=cell.get("cpu_usage", lambda n: _count(n, MAX_CPUS * MAX_GUEST_VCPUS), 0),
        pinned_cpus=_opt_cpus(cell, "pinned_cpus"),
        mempages=pools,
        socket=cell.get("socket", lambda n: n.integer(maximum=MAX_SOCKET,
                                                      why=f"socket ids are below "
                                                          f"{MAX_SOCKET + 1}"), None),
    )


def _host_from_node(node: Node, name: str) -> HostTopology:
    if not isinstance(node.value, dict):
        node.fail("must be an object with 'cells'")
    host = node.obj()
    cells = host.req("cells").items(max_items=MAX_NUMA_NODES)
    ids = [_cell_from_node(c) for c in cells]
    seen: set[int] = set()
    for c, cell in zip(cells, ids, strict=True):
        if cell.id in seen:
            c.child(cell.id, "id").fail(f"cell id {cell.id} is given twice")
        seen.add(cell.id)
    host_name = host.get("name", lambda n: n.text(max_chars=255), name)
    no_devices: tuple[PciDevice, ...] = ()
    devices = host.get("pci_devices", pci_devices_from_node, no_devices)
    return HostTopology(name=host_name, cells=tuple(ids), pci_devices=devices)


def host_from_node(node: Node, name: str) -> HostTopology:
    """A host (with usage) in the fit-case format, read from a field of a document."""
    return _host_from_node(node, name)


def host_from_json(raw: object, name: str = "host", where: str = "host") -> HostTopology:
    """A host (with usage) in the fit-case format; :class:`InvalidCaseError` names the field."""
    return _host_from_node(root(raw, label=where, error=InvalidCaseError), name)


def _limits(node: Node | None) -> Limits | None:
    if node is None:
        return None
    if not isinstance(node.value, dict):
        node.fail("must be null or an object with allocation ratios")
    raw = node.obj()
    ratios = [raw.get(key, lambda n: n.number(above=0, maximum=MAX_ALLOCATION_RATIO), 1.0)
              for key in ("cpu_allocation_ratio", "ram_allocation_ratio")]
    return Limits(*ratios)


def _image_properties(node: Node) -> dict[str, object]:
    props = node.obj()
    out: dict[str, object] = {}
    for key, value in props.items():
        if isinstance(value.value, dict | list):
            value.expected("a string, number or boolean")
        out[key] = value.value
    return out


def case_from_json(raw: object, *, source: str | None = None) -> FitCase:
    """Validate one case document; raises :class:`InvalidCaseError` naming the field."""
    doc = root(raw, source=source, label="case", error=InvalidCaseError)
    if not isinstance(raw, dict):
        doc.fail("a case must be a JSON object")
    case = doc.obj()
    flavor = case.req("flavor").renamed("flavor").obj()
    specs_node = flavor.opt("extra_specs")
    specs = {} if specs_node is None else specs_node.str_map(max_chars=4096)
    if len(specs) > 1024:
        specs_node.fail(f"{len(specs)} extra specs, more than 1024")  # type: ignore[union-attr]
    vcpus = flavor.req("vcpus").integer(minimum=1, maximum=MAX_GUEST_VCPUS,
                                        why="QEMU's maximum vCPUs")
    memory = flavor.req("memory_mib").integer(minimum=1, maximum=MAX_MEMORY_MIB, why="4 PiB")
    name = flavor.get("name", lambda n: n.text(max_chars=255), "flavor")
    current = case.get("current_pagesize_kib",
                       lambda n: n.integer(minimum=1, maximum=MAX_PAGE_SIZE_KIB,
                                           why="the largest page size, 16 GiB"), None)
    host_node = case.req("host").renamed("host")
    if not isinstance(host_node.value, dict):
        host_node.expected("an object")
    no_image: dict[str, object] = {}
    image = case.get("image_properties", _image_properties, no_image)
    limits = _limits(case.opt("limits"))
    packing = case.get("packing", lambda n: n.boolean(), False)
    no_requests: tuple[PciRequest, ...] = ()
    pci_requests = case.get("pci_requests", pci_requests_from_node, no_requests)
    return FitCase(
        id=case.node.value.get("id"),
        host=_host_from_node(host_node, "host"),
        flavor=Flavor(vcpus, memory, specs, name),
        image_properties=image,
        options=FitOptions(limits=limits, packing=packing, current_pagesize_kib=current),
        pci_requests=pci_requests,
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


def _case_id(raw: object) -> object:
    """The case's ``id`` when it is a string, integer or null (echoed back as given)."""
    case_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(case_id, str) and len(case_id) <= 1024:
        return case_id
    if isinstance(case_id, int | float) and abs(case_id) < 10**20:
        return case_id
    return None


def answer_case(raw: object) -> dict[str, object]:
    """The answer document for one case document: never raises for bad input."""
    case_id = _case_id(raw)
    try:
        case = case_from_json(raw)
    except InvalidCaseError as exc:
        return error_answer(case_id, "InvalidCase", str(exc))
    try:
        guest = guest_from_flavor(case.flavor, case.image_properties, case.pci_requests)
    except InvalidRequestError as exc:
        return error_answer(case_id, exc.nova_type, exc.message)
    return result_to_answer(case_id, fit_guest(case.host, guest, case.options))


@dataclass(frozen=True)
class BatchAnswer:
    """The answer to one line of a batch; ``parsed`` is False when the line was no JSON."""

    answer: dict[str, object]
    parsed: bool


def _line_error(number: int, message: str) -> BatchAnswer:
    return BatchAnswer(error_answer(None, "InvalidCase", f"line {number}: {message}"), False)


def answer_lines(
    stream: BinaryIO, *, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[BatchAnswer]:
    """One answer per line of a JSON Lines stream of cases, whatever the line holds: a line
    that is empty, too long, not UTF-8, not JSON or beyond the document bounds gets an
    ``InvalidCase`` error answer, and the next line is read."""
    for number, line in enumerate(bounded_lines(stream, max_bytes=max_line_bytes), 1):
        if line is None:
            yield _line_error(number, f"longer than {max_line_bytes} bytes")
            continue
        if not line.strip():
            yield _line_error(number, "empty line (expected one fit case as a JSON object)")
            continue
        try:
            raw = parse_json(line, source=f"line {number}", error=InvalidCaseError)
        except InvalidCaseError as exc:
            yield BatchAnswer(error_answer(None, "InvalidCase", str(exc)), False)
            continue
        yield BatchAnswer(answer_case(raw), True)

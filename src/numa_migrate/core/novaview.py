"""Nova's view of a server's NUMA placement (the server topology API), as core values.

Nova reports, per guest cell, the host NUMA node, the vCPUs, the memory and the pinning of
each dedicated vCPU, and one page size for the whole guest. :func:`placement_from_nova`
turns that into a :class:`~numa_migrate.core.model.placement.Placement`, the same value our
fitter produces, so that a server placed by Nova is validated by the same checks and the
same destination rules (:func:`numa_migrate.core.destination.plan_from_placement`) as a
guest placed by numa-migrate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from numa_migrate.core.errors import ParseError
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import CellPlacement, Placement
from numa_migrate.core.validation import Check, Status


@dataclass(frozen=True)
class TopologyCell:
    host_node: int | None
    vcpus: frozenset[int]
    memory_mib: int
    pinning: Mapping[int, int] = field(hash=False)  # guest vCPU -> host CPU
    siblings: tuple[frozenset[int], ...] = ()


@dataclass(frozen=True)
class ServerTopology:
    """The server topology API's answer (microversion 2.78): cells in guest-cell order."""

    cells: tuple[TopologyCell, ...]
    pagesize_kib: int | None


class NovaViewError(ParseError):
    """Nova's topology cannot be a placement (a cell without a host node, a pin of a vCPU
    the cell does not hold)."""


def placement_from_nova(topology: ServerTopology) -> Placement:
    cells = []
    for index, cell in enumerate(topology.cells):
        if cell.host_node is None:
            raise NovaViewError(f"Nova's topology: guest cell {index} has no host node")
        stray = sorted(set(cell.pinning) - cell.vcpus)
        if stray:
            raise NovaViewError(f"Nova's topology: guest cell {index} pins vCPU {stray[0]}, "
                                f"which is not one of its vCPUs")
        pinning = tuple(sorted(cell.pinning.items())) or None
        cells.append(CellPlacement(index, cell.host_node, cell.vcpus, cell.memory_mib,
                                   topology.pagesize_kib, pinning))
    return Placement(tuple(cells))


def nova_view_checks(name: str, topology: ServerTopology, host: HostTopology,
                     others: Mapping[str, ServerTopology]) -> tuple[Check, ...]:
    """What Nova's own records must satisfy, before the domain is looked at: every cell on a
    host node that exists, every pin a dedicated CPU of that node, no pin shared with another
    server (Nova's view of the other servers on the same compute)."""
    from numa_migrate.core.cpuset import CpuSet

    checks = []
    nodes = {c.id: c for c in host.cells}
    bad_nodes = [c.host_node for c in topology.cells if c.host_node not in nodes]
    checks.append(Check(
        "nova-cells", "Nova: guest cells on host nodes that exist",
        Status.FAILED if bad_nodes else Status.PASSED,
        expected=f"nodes of {CpuSet.of(nodes).format()}",
        actual=", ".join(f"cell {i} -> node {c.host_node}" for i, c in enumerate(topology.cells)),
        detail=f"host {host.name} has no node {bad_nodes[0]}" if bad_nodes else ""))
    wrong = []
    for index, cell in enumerate(topology.cells):
        node = nodes.get(cell.host_node) if cell.host_node is not None else None
        if node is None:
            continue
        for vcpu, cpu in sorted(cell.pinning.items()):
            if cpu not in node.pcpuset:
                wrong.append(f"vCPU {vcpu} -> CPU {cpu} (cell {index}, node {node.id})")
    pins = {cpu for cell in topology.cells for cpu in cell.pinning.values()}
    dedicated = host.dedicated_cpus
    checks.append(Check(
        "nova-pins-dedicated", "Nova: pins on the node's dedicated CPUs",
        Status.FAILED if wrong else (Status.PASSED if pins else Status.SKIPPED),
        expected=f"within {dedicated.format() or '-'}", actual=CpuSet.of(pins).format() or "-",
        detail=("not dedicated CPUs of their node: " + "; ".join(wrong)) if wrong else
        ("" if pins else "the server has no pinned vCPU")))
    clashes = []
    for other, other_top in sorted(others.items()):
        shared = pins & {cpu for c in other_top.cells for cpu in c.pinning.values()}
        if shared:
            clashes.append(f"{other} also pinned to {CpuSet.of(shared).format()}")
    checks.append(Check(
        "nova-pins-exclusive", f"Nova: no other server on {host.name} holds these CPUs",
        Status.FAILED if clashes else (Status.PASSED if pins else Status.SKIPPED),
        expected="no overlap", actual="; ".join(clashes) or "none",
        detail="; ".join(clashes) if clashes else ("" if pins else "nothing pinned")))
    return tuple(checks)

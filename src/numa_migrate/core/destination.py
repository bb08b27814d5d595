"""Where a domain runs on its destination host, and Nova's rules for choosing it (pure).

:class:`DestinationPlan` is what a live migration changes in a domain, in host CPU / host
node / PCI terms; :func:`plan_from_placement` turns a fitter :class:`Placement` into one with
the rules Nova's libvirt driver writes a guest's XML by:

- a dedicated vCPU on its own host CPU, a floating one on its host cell's shared CPUs;
- emulator threads on the ``isolate`` CPU, else on every non-real-time vCPU's CPUs;
- ``<vcpu cpuset>`` on the shared CPUs of the placed cells;
- huge pages per guest cell, ordinary pages for a cell on its host cell's smallest size;
- a real-time guest's ``<vcpusched priority>`` is the destination's
  ``[libvirt] realtime_scheduler_priority`` when it is known.

The XML rewrite that applies a plan is :mod:`numa_migrate.adapters.rewrite`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import NumaMigrateError, ParseError
from numa_migrate.core.model.domain import REALTIME_SCHEDULERS, DomainInfo
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.pci import PciAddress
from numa_migrate.core.model.placement import Placement

__all__ = [
    "MAX_REALTIME_PRIORITY",
    "MIN_REALTIME_PRIORITY",
    "DestinationPlan",
    "RewriteError",
    "check_realtime_priority",
    "plan_from_placement",
]

MIN_REALTIME_PRIORITY = 1
MAX_REALTIME_PRIORITY = 99
"""Linux SCHED_FIFO / SCHED_RR priorities (``sched_get_priority_min/max``)."""

_K = TypeVar("_K", bound=int | str)
_V = TypeVar("_V")


class RewriteError(NumaMigrateError):
    """A plan that does not match the domain it is applied to, or a plan that is invalid.

    ``element`` is the XML element concerned (``"cputune/vcpupin"``, ``"numatune/memnode"``,
    ...), so that callers can tell which part of the plan to fix.
    """

    def __init__(self, message: str, *, source: str | None = None, element: str) -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.source = source
        self.element = element


def _frozen_map(items: Mapping[_K, _V]) -> Mapping[_K, _V]:
    return MappingProxyType({key: items[key] for key in sorted(items)})


@dataclass(frozen=True)
class DestinationPlan:
    """Where a domain runs on its destination host, in host CPU / host node / PCI terms.

    - ``vcpu_pins``: guest vCPU -> host CPUs (one CPU for a dedicated vCPU, the shared pool
      for a floating one). It must name every vCPU of the domain, or be empty: a guest with
      no NUMA topology, whose ``<vcpupin>`` elements are all removed.
    - ``emulator_pins``: host CPUs of the emulator threads; empty removes ``<emulatorpin>``.
    - ``iothread_pins``: IOThread id -> host CPUs; an IOThread it does not name follows the
      emulator pins (and is unpinned when those are empty).
    - ``shared_cpuset``: ``<vcpu cpuset>``; None drops the attribute.
    - ``memory_nodes``: ``<numatune><memory nodeset>``; empty removes the host-node parts
      of ``<numatune>``. It must contain every node of ``cell_nodes``.
    - ``cell_nodes``: guest NUMA cell -> host NUMA node, one per guest cell of the domain.
    - ``hugepage_kib``: guest cell -> page size in KiB; None leaves ``<hugepages>`` as it
      is, an empty mapping removes it (every cell on the host's small pages), and a cell it
      does not name is backed by ordinary pages.
    - ``hostdev_map``: source PCI address -> destination PCI address (``dddd:bb:ss.f``).
      A device whose source address is gone but whose destination address is present
      counts as already moved, so that a rewritten XML can be rewritten again (a cyclic
      swap, A -> B and B -> A, is the one plan that is not idempotent).
    - ``realtime_priority``: the priority of every real-time ``<vcpusched>`` (scheduler
      ``fifo`` or ``rr``), 1 to 99; None keeps the source's. Nova writes its destination's
      ``[libvirt] realtime_scheduler_priority``, so a plan gives the destination's value.

    Otherwise ``<vcpusched>`` is kept as is (vCPU ids do not change).
    Mappings are copied into read-only, key-sorted views; PCI addresses are normalised.
    """

    vcpu_pins: Mapping[int, frozenset[int]] = field(hash=False)
    emulator_pins: frozenset[int]
    iothread_pins: Mapping[int, frozenset[int]] = field(hash=False)
    shared_cpuset: frozenset[int] | None
    memory_nodes: frozenset[int]
    cell_nodes: Mapping[int, int] = field(hash=False)
    hugepage_kib: Mapping[int, int] | None = field(hash=False)
    hostdev_map: Mapping[str, str] = field(default_factory=dict, hash=False)
    realtime_priority: int | None = None

    def __post_init__(self) -> None:
        for name, pins in (("vcpu_pins", self.vcpu_pins), ("iothread_pins", self.iothread_pins)):
            minimum = 0 if name == "vcpu_pins" else 1
            for key, cpus in pins.items():
                _check_ids(name, (key,), minimum=minimum, what="id")
                _check_ids(f"{name}[{key}]", cpus, what="host CPU")
                if not cpus:
                    raise _plan_error(name, f"{name}[{key}] pins to no host CPU")
        _check_ids("emulator_pins", self.emulator_pins, what="host CPU")
        if self.shared_cpuset is not None:
            _check_ids("shared_cpuset", self.shared_cpuset, what="host CPU")
            if not self.shared_cpuset:
                raise _plan_error(
                    "shared_cpuset", "shared_cpuset is empty (use None to drop <vcpu cpuset>)"
                )
        _check_ids("memory_nodes", self.memory_nodes, what="host node")
        if self.realtime_priority is not None:
            try:
                check_realtime_priority(self.realtime_priority, field="realtime_priority")
            except ParseError as exc:
                raise _plan_error("realtime_priority", str(exc)) from None
        _check_ids("cell_nodes", self.cell_nodes, what="guest cell")
        _check_ids("cell_nodes", self.cell_nodes.values(), what="host node")
        if self.hugepage_kib is not None:
            _check_ids("hugepage_kib", self.hugepage_kib, what="guest cell")
            _check_ids("hugepage_kib", self.hugepage_kib.values(), minimum=1, what="page size")
        set_ = object.__setattr__
        set_(self, "vcpu_pins", _frozen_map({k: frozenset(v) for k, v in self.vcpu_pins.items()}))
        set_(
            self,
            "iothread_pins",
            _frozen_map({k: frozenset(v) for k, v in self.iothread_pins.items()}),
        )
        set_(self, "emulator_pins", frozenset(self.emulator_pins))
        set_(self, "memory_nodes", frozenset(self.memory_nodes))
        set_(self, "cell_nodes", _frozen_map(self.cell_nodes))
        if self.hugepage_kib is not None:
            set_(self, "hugepage_kib", _frozen_map(self.hugepage_kib))
        set_(
            self,
            "hostdev_map",
            _frozen_map(
                {
                    _pci("hostdev_map", old): _pci(f"hostdev_map[{old!r}]", new)
                    for old, new in self.hostdev_map.items()
                }
            ),
        )


def _plan_error(name: str, message: str) -> RewriteError:
    return RewriteError(f"invalid plan: {message}", source="plan", element=name)


def _check_ids(name: str, ids: Iterable[int], *, minimum: int = 0, what: str) -> None:
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _plan_error(
                name, f"{name}: {what} {value!r} is not an integer of at least {minimum}"
            )


def _pci(name: str, address: str) -> str:
    try:
        return PciAddress.normalise(address, field=name)
    except ParseError as exc:
        raise _plan_error(name, str(exc)) from None


def check_realtime_priority(value: object, *, field: str) -> int:
    """``value`` if it is a Linux real-time priority (an integer 1 to 99), else ParseError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_REALTIME_PRIORITY <= value <= MAX_REALTIME_PRIORITY
    ):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ParseError(
            f"{field}: {shown} is not a real-time scheduler priority (an integer from "
            f"{MIN_REALTIME_PRIORITY} to {MAX_REALTIME_PRIORITY}, Linux SCHED_FIFO/SCHED_RR)"
        )
    return value


# --------------------------------------------------------------------------- planning


def plan_from_placement(
    info: DomainInfo,
    placement: Placement,
    host: HostTopology,
    *,
    shared_cpus: frozenset[int] | None = None,
    hostdev_map: Mapping[str, str] | None = None,
    realtime_priority: int | None = None,
) -> DestinationPlan:
    """The destination plan for ``info`` placed on ``host`` by ``placement``.

    - a dedicated vCPU is pinned to its placement CPU; a floating one to ``shared_cpus``
      if given, else to the shared CPUs (``cpuset``) of its guest cell's host cell;
    - emulator threads go to ``placement.emulator_pins`` (``isolate``), else to the union
      of the pins of every vCPU that has no real-time scheduler (Nova's default: the shared
      pool and the pinned CPUs, never a real-time vCPU's CPU); IOThreads follow the
      emulator threads;
    - ``<vcpu cpuset>`` is ``shared_cpus`` if given; otherwise it is kept (with destination
      CPUs: the placed host cells' shared CPUs, or the whole host's for a guest without
      NUMA cells) only when the source domain had one;
    - memory goes to the placed host cells; huge pages follow each cell's page size, a cell
      on its host cell's smallest page size gets ordinary pages (as Nova writes it), and
      ``hugepage_kib`` is None when the placement chose no page size.

    - a real-time guest (a ``<vcpusched>`` with scheduler ``fifo``/``rr``) gets
      ``realtime_priority``, the destination's ``realtime_scheduler_priority`` (Nova writes
      its destination's value); without one, or for a guest with no real-time vCPU, the
      plan keeps the source's priority.

    A placement with no cells (a guest with no NUMA need) pins no vCPU and tunes no memory:
    the source's pins and nodesets are removed rather than carried over.
    """
    vcpu_pins: dict[int, frozenset[int]] = {}
    cell_nodes: dict[int, int] = {}
    pages: dict[int, int | None] = {}
    cell_pools: set[int] = set()
    for cell in placement.cells:
        try:
            host_cell = host.cell(cell.host_cell)
        except KeyError:
            known = CpuSet.of(c.id for c in host.cells).format() or "none"
            raise RewriteError(
                f"placement puts guest cell {cell.guest_cell} on host cell {cell.host_cell}, "
                f"which host {host.name} does not have (cells: {known})",
                source=info.name,
                element="cpu/numa/cell",
            ) from None
        if cell.guest_cell in cell_nodes:
            raise RewriteError(
                f"placement places guest cell {cell.guest_cell} twice",
                source=info.name,
                element="cpu/numa/cell",
            )
        cell_nodes[cell.guest_cell] = host_cell.id
        cell_pools |= host_cell.cpuset
        pinned = cell.pinning_map()
        pool = host_cell.cpuset if shared_cpus is None else shared_cpus
        for vcpu in sorted(cell.vcpus):
            if vcpu in vcpu_pins:
                raise RewriteError(
                    f"placement places vCPU {vcpu} in more than one guest cell",
                    source=info.name,
                    element="cputune/vcpupin",
                )
            if vcpu in pinned:
                vcpu_pins[vcpu] = frozenset({pinned[vcpu]})
            elif pool:
                vcpu_pins[vcpu] = pool
            else:
                raise RewriteError(
                    f"floating vCPU {vcpu} of guest cell {cell.guest_cell} has no shared CPU "
                    f"to run on: host cell {host_cell.id} of {host.name} has none and no "
                    "shared_cpus were given",
                    source=info.name,
                    element="cputune/vcpupin",
                )
        if cell.pagesize_kib is not None and cell.pagesize_kib != host_cell.smallest_page_kib:
            pages[cell.guest_cell] = cell.pagesize_kib
        elif cell.pagesize_kib is not None:
            pages[cell.guest_cell] = None
    all_pins = frozenset().union(*vcpu_pins.values())
    emulator = placement.emulator_pins
    if emulator is None:
        realtime = frozenset().union(
            *(s.vcpus for s in info.vcpusched if s.scheduler in REALTIME_SCHEDULERS)
        )
        emulator = (
            frozenset().union(*(c for v, c in vcpu_pins.items() if v not in realtime)) or all_pins
        )
    return DestinationPlan(
        vcpu_pins=vcpu_pins,
        emulator_pins=emulator,
        iothread_pins={},
        shared_cpuset=_shared_cpuset(
            info, placement, host, shared_cpus=shared_cpus, pools=cell_pools, pins=all_pins
        ),
        memory_nodes=frozenset(cell_nodes.values()),
        cell_nodes=cell_nodes,
        hugepage_kib=_hugepages_of(info, placement, pages),
        hostdev_map=dict(hostdev_map or {}),
        realtime_priority=realtime_priority if _is_realtime(info) else None,
    )


def _is_realtime(info: DomainInfo) -> bool:
    return any(s.scheduler in REALTIME_SCHEDULERS for s in info.vcpusched)


def _shared_cpuset(
    info: DomainInfo,
    placement: Placement,
    host: HostTopology,
    *,
    shared_cpus: frozenset[int] | None,
    pools: set[int],
    pins: frozenset[int],
) -> frozenset[int] | None:
    if shared_cpus is not None:
        return shared_cpus
    if info.vcpu_cpuset is None:
        return None
    pool = frozenset(pools)
    if not placement.cells:
        pool = frozenset().union(*(c.cpuset for c in host.cells))
    return pool or (pins | (placement.emulator_pins or frozenset())) or None


def _hugepages_of(
    info: DomainInfo, placement: Placement, pages: dict[int, int | None]
) -> dict[int, int] | None:
    if not pages:
        return None
    if len(pages) != len(placement.cells):
        sized = CpuSet.of(pages).format()
        raise RewriteError(
            f"placement gives a page size to guest cells {sized} only; a guest's cells are "
            "either all on a chosen page size or none is",
            source=info.name,
            element="memoryBacking/hugepages",
        )
    return {cell: size for cell, size in pages.items() if size is not None}

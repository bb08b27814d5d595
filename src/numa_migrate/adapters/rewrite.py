"""Rewrite a domain XML for its destination host: CPU pins, NUMA tuning, huge pages, VF addresses.

A live migration carries two XML documents to the destination: the live one
(``VIR_MIGRATE_PARAM_DEST_XML``) and the persistent one (``VIR_MIGRATE_PARAM_PERSIST_XML``).
Both must name the destination's CPUs, NUMA nodes and PCI devices: a persistent XML that
keeps the source's pins restarts the guest on CPUs the destination gave to someone else
(CVE-2020-17376). :func:`rewrite_domain_xml` is applied to each of them.

Unlike Nova's ``_update_numa_xml``, which calls ``find()`` and then changes whatever it found
(and fails with an ``AttributeError`` on ``None``, or leaves a vCPU with no ``<vcpupin>`` on
its source pin), every function here is pure (XML text in, XML text out), the whole plan is
checked against the domain *before* anything is changed, and each mismatch is a
:class:`RewriteError` that says what is missing. Elements the domain lacks are created in
libvirt's own order; every element the plan does not cover is kept as it was (comments
excepted: the safe parser drops them, and libvirt never writes any).

What is rewritten, and nothing else:

- ``<vcpu placement cpuset>``: ``cpuset`` set or dropped; ``placement='auto'`` becomes
  ``'static'`` when the plan pins anything (numad would otherwise choose other CPUs);
- ``<cputune>``: one ``<vcpupin>`` per vCPU, ``<emulatorpin>``, one ``<iothreadpin>`` per
  IOThread id; ``<vcpusched>`` and every tunable are kept (vCPU ids do not change);
- ``<numatune>``: ``<memory nodeset>`` (its mode kept) and one ``<memnode>`` per guest NUMA
  cell (an existing memnode keeps its mode; a new one is ``strict``, or ``restrictive``
  when ``<memory>`` is);
- ``<memoryBacking><hugepages>``: one ``<page size unit='KiB' nodeset>`` per distinct size;
- the PCI ``<source><address>`` of ``<hostdev>`` and ``<interface type='hostdev'>``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from lxml import etree

from numa_migrate.adapters.domain import REALTIME_SCHEDULERS, DomainInfo, domain_from_xml
from numa_migrate.adapters.xmlsafe import XmlDoc, format_pci_address, parse_xml
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import Placement

__all__ = [
    "DestinationPlan",
    "RewriteError",
    "plan_from_placement",
    "rewrite_domain_xml",
    "xml_diff",
]

# Top-level elements up to <numatune>, in the order libvirt formats a domain.
_DOMAIN_ORDER = (
    "name",
    "uuid",
    "hwuuid",
    "genid",
    "title",
    "description",
    "metadata",
    "maxMemory",
    "memory",
    "currentMemory",
    "blkiotune",
    "memtune",
    "memoryBacking",
    "vcpu",
    "vcpus",
    "iothreads",
    "iothreadids",
    "defaultiothread",
    "cputune",
    "numatune",
)
# <cputune> children in libvirt's order (tunables first, then pins, schedulers, resctrl).
_CPUTUNE_ORDER = (
    "shares",
    "period",
    "quota",
    "global_period",
    "global_quota",
    "emulator_period",
    "emulator_quota",
    "iothread_period",
    "iothread_quota",
    "vcpupin",
    "emulatorpin",
    "iothreadpin",
    "vcpusched",
    "iothreadsched",
    "emulatorsched",
    "cachetune",
    "memorytune",
)
_NUMATUNE_ORDER = ("memory", "memnode")
_MEMORY_BACKING_ORDER = (
    "hugepages",
    "nosharepages",
    "locked",
    "source",
    "access",
    "allocation",
    "discard",
)
_PCI_ADDRESS = re.compile(
    r"(?P<domain>[0-9a-f]{1,4}):(?P<bus>[0-9a-f]{1,2}):(?P<slot>[0-9a-f]{1,2})\."
    r"(?P<function>[0-7])",
    re.IGNORECASE,
)
_MAX_PCI_SLOT = 0x1F
_K = TypeVar("_K", bound=int | str)
_V = TypeVar("_V")
_DEFAULT_INDENT = "  "


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

    ``<vcpusched>`` is not part of the plan: vCPU ids do not change, so it is kept as is.
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
    match = _PCI_ADDRESS.fullmatch(address.strip()) if isinstance(address, str) else None
    if match is None or int(match["slot"], 16) > _MAX_PCI_SLOT:
        raise _plan_error(
            name, f"{name}: {address!r} is not a PCI address dddd:bb:ss.f (slot at most 1f)"
        )
    return format_pci_address(*(int(match[k], 16) for k in ("domain", "bus", "slot", "function")))


# --------------------------------------------------------------------------- planning


def plan_from_placement(
    info: DomainInfo,
    placement: Placement,
    host: HostTopology,
    *,
    shared_cpus: frozenset[int] | None = None,
    hostdev_map: Mapping[str, str] | None = None,
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
    )


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


# --------------------------------------------------------------------------- rewriting


_Fail = Callable[[str, str], RewriteError]


@dataclass(frozen=True, slots=True)
class _Target:
    """What the domain has that the plan must match (read before anything is changed)."""

    info: DomainInfo
    doc: XmlDoc
    iothread_ids: tuple[int, ...]
    explicit_cells: bool

    @property
    def cell_ids(self) -> frozenset[int]:
        return frozenset(c.id for c in self.info.numa_cells) or frozenset({0})


def rewrite_domain_xml(xml: str | bytes, plan: DestinationPlan, *, source: str = "domain") -> str:
    """``xml`` (a live or persistent domain XML) rewritten for its destination by ``plan``.

    The domain is read with the safe parser and fully validated (:func:`domain_from_xml`),
    the plan is checked against it, and only then is a copy changed. Raises
    :class:`~numa_migrate.core.errors.ParseError` for unreadable or hostile XML and
    :class:`RewriteError` when the plan and the domain do not match. Rewriting the result
    again with the same plan returns it unchanged.
    """
    info = domain_from_xml(xml, source=source)
    doc = XmlDoc.load(xml, source=source, root="domain")
    target = _Target(info, doc, _iothread_ids(doc), bool(info.numa_cells))
    _check_plan(target, plan)
    root = doc.root
    _rewrite_vcpu(root, plan)
    _rewrite_cputune(root, target, plan)
    _rewrite_numatune(root, target, plan)
    _rewrite_hugepages(root, target, plan)
    _rewrite_hostdevs(target, plan)
    return etree.tostring(root, encoding="unicode") + "\n"


def xml_diff(
    before: str, after: str, *, before_name: str = "source", after_name: str = "destination"
) -> str:
    """A unified diff of two domain XMLs for ``--dry-run``; empty when they are equal.

    Both sides are parsed safely and serialised the same way first, so that quoting,
    comments and the XML declaration do not show up as changes.
    """
    lines = [
        etree.tostring(parse_xml(text, source=name), encoding="unicode").splitlines(keepends=True)
        for text, name in ((before, before_name), (after, after_name))
    ]
    diff = difflib.unified_diff(lines[0], lines[1], fromfile=before_name, tofile=after_name)
    return "".join(line if line.endswith("\n") else line + "\n" for line in diff)


def _iothread_ids(doc: XmlDoc) -> tuple[int, ...]:
    ids_el = doc.root.find("iothreadids")
    if ids_el is not None and len(ids_el):
        return tuple(
            sorted(doc.int_attr(el, "id", minimum=1) for el in ids_el.iterfind("iothread"))
        )
    count_el = doc.root.find("iothreads")
    count = 0 if count_el is None else doc.int_text(count_el)
    return tuple(range(1, count + 1))


def _check_plan(target: _Target, plan: DestinationPlan) -> None:
    """Every mismatch between plan and domain, found before the domain is changed."""
    info, source = target.info, target.doc.source

    def fail(element: str, message: str) -> RewriteError:
        return RewriteError(message, source=source, element=element)

    vcpus = frozenset(range(info.vcpus))
    unknown = frozenset(plan.vcpu_pins) - vcpus
    if unknown:
        raise fail(
            "cputune/vcpupin",
            f"the plan pins vCPU {CpuSet.of(unknown)}, which the domain does not have "
            f"(<vcpu> gives {info.vcpus} vCPUs: {CpuSet.of(vcpus)})",
        )
    missing = vcpus - frozenset(plan.vcpu_pins)
    if plan.vcpu_pins and missing:
        raise fail(
            "cputune/vcpupin",
            f"the plan has no pin for vCPU {CpuSet.of(missing)} of the domain "
            f"({info.vcpus} vCPUs); it would keep its source pin or float over the whole host",
        )
    unknown_io = frozenset(plan.iothread_pins) - frozenset(target.iothread_ids)
    if unknown_io:
        have = CpuSet.of(target.iothread_ids).format() or "none"
        raise fail(
            "cputune/iothreadpin",
            f"the plan pins IOThread {CpuSet.of(unknown_io)}, which the domain does not "
            f"have (IOThreads: {have})",
        )
    _check_cells(target, plan, fail)
    _check_hostdevs(target, plan, fail)


def _check_cells(target: _Target, plan: DestinationPlan, fail: _Fail) -> None:
    cells = target.cell_ids
    described = (
        f"guest NUMA cells {CpuSet.of(cells)}"
        if target.explicit_cells
        else "no <cpu><numa> cells (only the implicit cell 0)"
    )
    for name, keys in (("cell_nodes", plan.cell_nodes), ("hugepage_kib", plan.hugepage_kib)):
        unknown = frozenset(keys or ()) - cells
        if unknown:
            raise fail(
                "numatune/memnode" if name == "cell_nodes" else "memoryBacking/hugepages",
                f"the plan's {name} names guest cell {CpuSet.of(unknown)}, but the domain "
                f"has {described}",
            )
    if target.explicit_cells:
        missing = cells - frozenset(plan.cell_nodes)
        if missing:
            raise fail(
                "numatune/memnode",
                f"guest NUMA cell {CpuSet.of(missing)} has no host node in the plan "
                f"(cell_nodes names {CpuSet.of(plan.cell_nodes).format() or 'none'})",
            )
    outside = frozenset(plan.cell_nodes.values()) - plan.memory_nodes
    if outside:
        raise fail(
            "numatune/memory",
            f"the plan puts guest cells on host node {CpuSet.of(outside)}, outside "
            f"memory_nodes ({CpuSet.of(plan.memory_nodes).format() or 'none'})",
        )


def _check_hostdevs(target: _Target, plan: DestinationPlan, fail: _Fail) -> None:
    present = [dev.address for dev in target.info.hostdevs]
    unknown = sorted(
        old for old, new in plan.hostdev_map.items() if old not in present and new not in present
    )
    if unknown:
        have = ", ".join(present) or "none"
        raise fail(
            "devices/hostdev",
            f"the plan moves PCI device {', '.join(unknown)}, which is not in the domain "
            f"(its PCI hostdevs: {have})",
        )
    final = [plan.hostdev_map.get(address, address) for address in present]
    clashes = sorted({a for a in final if final.count(a) > 1})
    if clashes:
        raise fail(
            "devices/hostdev",
            f"after the plan's swaps, PCI device {', '.join(clashes)} would be given to the "
            "guest twice",
        )


# --------------------------------------------------------------------------- the steps


def _pins_anything(plan: DestinationPlan) -> bool:
    return bool(plan.vcpu_pins or plan.emulator_pins or plan.shared_cpuset or plan.iothread_pins)


def _rewrite_vcpu(root: etree._Element, plan: DestinationPlan) -> None:
    """``<vcpu cpuset>`` from the plan; ``placement='auto'`` pinned down to ``'static'``."""
    vcpu = root.find("vcpu")
    assert vcpu is not None  # domain_from_xml requires it
    if plan.shared_cpuset is None:
        if "cpuset" in vcpu.attrib:
            del vcpu.attrib["cpuset"]
    else:
        vcpu.set("cpuset", CpuSet.of(plan.shared_cpuset).format())
    if vcpu.get("placement") == "auto" and _pins_anything(plan):
        vcpu.set("placement", "static")


def _rewrite_cputune(root: etree._Element, target: _Target, plan: DestinationPlan) -> None:
    """One ``<vcpupin>`` per planned vCPU, ``<emulatorpin>``, one ``<iothreadpin>`` per
    IOThread; everything else in ``<cputune>`` is kept in place."""
    emulator = plan.emulator_pins
    iothreads = {
        thread: cpus
        for thread in target.iothread_ids
        if (cpus := plan.iothread_pins.get(thread, emulator))
    }
    cputune = root.find("cputune")
    if cputune is None:
        if not (plan.vcpu_pins or emulator or iothreads):
            return
        cputune = _insert(root, etree.Element("cputune"), _DOMAIN_ORDER)
    _set_pins(target.doc, cputune, "vcpupin", "vcpu", plan.vcpu_pins)
    pin = cputune.find("emulatorpin")
    if not emulator:
        if pin is not None:
            _remove(pin)
    else:
        if pin is None:
            pin = _insert(cputune, etree.Element("emulatorpin"), _CPUTUNE_ORDER)
        pin.set("cpuset", CpuSet.of(emulator).format())
    _set_pins(target.doc, cputune, "iothreadpin", "iothread", iothreads)
    _drop_if_empty(cputune)


def _set_pins(
    doc: XmlDoc,
    cputune: etree._Element,
    tag: str,
    id_attr: str,
    pins: Mapping[int, frozenset[int]],
) -> None:
    """Exactly one ``<tag id_attr=N cpuset>`` per entry of ``pins``, in id order.

    An existing element keeps its place and other attributes; one for an id not in ``pins``
    is removed; a new one goes before the first element with a higher id, else after the
    last one (or where libvirt puts the first).
    """
    existing: dict[int, etree._Element] = {}
    for old in list(cputune.iterfind(tag)):
        number = doc.int_attr(old, id_attr)
        if number in pins and number not in existing:
            existing[number] = old
        else:
            _remove(old)
    for number, cpus in pins.items():
        pin = existing.get(number)
        if pin is None:
            pin = etree.Element(tag, {id_attr: str(number)})
            later = [e for n, e in existing.items() if n > number]
            if later:
                _place(cputune, cputune.index(min(later, key=cputune.index)), pin)
            else:
                _insert(cputune, pin, _CPUTUNE_ORDER)
            existing[number] = pin
        pin.set("cpuset", CpuSet.of(cpus).format())


def _rewrite_numatune(root: etree._Element, target: _Target, plan: DestinationPlan) -> None:
    """``<memory nodeset>`` and one ``<memnode>`` per guest NUMA cell from the plan."""
    numatune = root.find("numatune")
    if not plan.memory_nodes:
        if numatune is None:
            return
        for old in list(numatune.iterfind("memnode")):
            _remove(old)
        memory = numatune.find("memory")
        if memory is not None and memory.get("placement") != "auto":
            _remove(memory)
        _drop_if_empty(numatune)
        return
    if numatune is None:
        numatune = _insert(root, etree.Element("numatune"), _DOMAIN_ORDER)
    memory = numatune.find("memory")
    if memory is None:
        memory = _insert(numatune, etree.Element("memory", mode="strict"), _NUMATUNE_ORDER)
    if memory.get("placement") == "auto":
        memory.set("placement", "static")
    memory.set("nodeset", CpuSet.of(plan.memory_nodes).format())
    cells = plan.cell_nodes if target.explicit_cells else {}
    new_mode = "restrictive" if memory.get("mode") == "restrictive" else "strict"
    existing: dict[int, etree._Element] = {}
    for old in list(numatune.iterfind("memnode")):
        cell = target.doc.int_attr(old, "cellid")
        if cell in cells and cell not in existing:
            existing[cell] = old
        else:
            _remove(old)
    for cell, node in cells.items():
        memnode = existing.get(cell)
        if memnode is None:
            memnode = etree.Element("memnode", cellid=str(cell), mode=new_mode)
            later = [e for c, e in existing.items() if c > cell]
            if later:
                _place(numatune, numatune.index(min(later, key=numatune.index)), memnode)
            else:
                _insert(numatune, memnode, _NUMATUNE_ORDER)
            existing[cell] = memnode
        memnode.set("nodeset", str(node))


def _rewrite_hugepages(root: etree._Element, target: _Target, plan: DestinationPlan) -> None:
    """One ``<page size unit='KiB' nodeset>`` per distinct page size of the plan.

    Pages that already say the same (in any unit) are left as written. Without guest NUMA
    cells the single page gets no ``nodeset``.
    """
    if plan.hugepage_kib is None:
        return
    backing = root.find("memoryBacking")
    hugepages = None if backing is None else backing.find("hugepages")
    if not plan.hugepage_kib:
        if hugepages is not None and backing is not None:
            _remove(hugepages)
            _drop_if_empty(backing)
        return
    by_size: dict[int, set[int]] = {}
    for cell, size in plan.hugepage_kib.items():
        by_size.setdefault(size, set()).add(cell)
    wanted = {
        (size, CpuSet.of(cells).format() if target.explicit_cells else None)
        for size, cells in by_size.items()
    }
    if hugepages is not None and _pages_of(target, hugepages) == wanted:
        return
    if backing is None:
        backing = _insert(root, etree.Element("memoryBacking"), _DOMAIN_ORDER)
    if hugepages is None:
        hugepages = _insert(backing, etree.Element("hugepages"), _MEMORY_BACKING_ORDER)
    for page in list(hugepages):
        _remove(page)
    for size, nodeset in sorted(wanted, key=lambda item: item[0]):
        page = etree.Element("page", size=str(size), unit="KiB")
        if nodeset is not None:
            page.set("nodeset", nodeset)
        _place(hugepages, len(hugepages), page)


def _pages_of(target: _Target, hugepages: etree._Element) -> set[tuple[int, str | None]] | None:
    """The ``(size KiB, nodeset)`` of each ``<page>``; None if the element holds anything else."""
    doc = target.doc
    pages: set[tuple[int, str | None]] = set()
    for page in hugepages:
        if page.tag != "page":
            return None
        nodes = doc.opt_cpus_attr(page, "nodeset")
        size = doc.attr_kib(page, "size")
        pages.add((size, None if nodes is None else CpuSet.of(nodes).format()))
    if len(pages) != len(hugepages):
        return None
    if len(pages) == 1 and target.explicit_cells:
        ((size, nodeset),) = pages
        if nodeset is None:  # the one page size of every cell
            return {(size, CpuSet.of(target.cell_ids).format())}
    return pages


def _rewrite_hostdevs(target: _Target, plan: DestinationPlan) -> None:
    """The host-side PCI address of each hostdev the plan moves (the guest-side stays)."""
    if not plan.hostdev_map:
        return
    doc = target.doc
    devices = doc.root.find("devices")
    assert devices is not None  # _check_hostdevs found the mapped devices in it
    for el in devices:
        pci = (
            el.tag == "hostdev"
            and el.get("mode", "subsystem") == "subsystem"
            and el.get("type") == "pci"
        ) or (el.tag == "interface" and el.get("type") == "hostdev")
        address = el.find("source/address") if pci else None
        if address is None:
            continue
        new = plan.hostdev_map.get(doc.pci_address(address))
        if new is None:
            continue
        domain, rest = new.split(":", 1)
        bus, rest = rest.split(":", 1)
        slot, function = rest.split(".")
        address.set("domain", f"0x{domain}")
        address.set("bus", f"0x{bus}")
        address.set("slot", f"0x{slot}")
        address.set("function", f"0x{function}")


# --------------------------------------------------------------------------- tree editing
# Insertions and removals keep the document's indentation: a new element gets the
# whitespace its siblings have, and removing the last child hands its closing whitespace
# to the element before it.


def _insert(
    parent: etree._Element, child: etree._Element, order: tuple[str, ...]
) -> etree._Element:
    """Insert ``child`` after the last sibling libvirt writes before it (or first)."""
    before = set(order[: order.index(str(child.tag)) + 1])
    position = 0
    for index, sibling in enumerate(parent):
        if sibling.tag in before:
            position = index + 1
    _place(parent, position, child)
    return child


def _place(parent: etree._Element, position: int, child: etree._Element) -> None:
    children = list(parent)
    if not children:
        outer = _whitespace_before(parent)
        if outer is not None:
            parent.text = outer + _indent_unit(parent)
            child.tail = outer
    else:
        inner = _whitespace_before(children[0])
        if inner is not None:
            if position == len(children):
                child.tail = children[-1].tail
                children[-1].tail = inner
            else:
                child.tail = inner
    parent.insert(position, child)


def _whitespace_before(el: etree._Element) -> str | None:
    """The line break and indentation before ``el``; None if the document is not indented."""
    parent = el.getparent()
    if parent is None:
        return "\n"
    previous = el.getprevious()
    text = parent.text if previous is None else previous.tail
    if not text or text.strip() or "\n" not in text:
        return None
    return text[text.rindex("\n") :]


def _indent_unit(el: etree._Element) -> str:
    root = el.getroottree().getroot()
    first = root[0] if len(root) else None
    indent = None if first is None else _whitespace_before(first)
    return indent[1:] if indent and len(indent) > 1 else _DEFAULT_INDENT


def _remove(el: etree._Element) -> None:
    parent = el.getparent()
    assert parent is not None
    if el.getnext() is None:
        previous = el.getprevious()
        if previous is not None:
            previous.tail = el.tail
        else:
            parent.text = None
    parent.remove(el)


def _drop_if_empty(el: etree._Element) -> None:
    if len(el) == 0 and not (el.text or "").strip() and not el.attrib:
        _remove(el)

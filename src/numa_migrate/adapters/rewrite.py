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
  IOThread id; the ``priority`` of each real-time ``<vcpusched>`` (``fifo``/``rr``) when
  the plan gives the destination's; every other tunable is kept (vCPU ids do not change);
- ``<numatune>``: ``<memory nodeset>`` (its mode kept) and one ``<memnode>`` per guest NUMA
  cell (an existing memnode keeps its mode; a new one is ``strict``, or ``restrictive``
  when ``<memory>`` is);
- ``<memoryBacking><hugepages>``: one ``<page size unit='KiB' nodeset>`` per distinct size;
- the PCI ``<source><address>`` of ``<hostdev>`` and ``<interface type='hostdev'>``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lxml import etree

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.xmlsafe import XmlDoc, parse_xml
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.destination import DestinationPlan, RewriteError
from numa_migrate.core.model.domain import REALTIME_SCHEDULERS, DomainInfo
from numa_migrate.core.model.pci import PciAddress

__all__ = ["rewrite_domain_xml", "xml_diff"]

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
_DEFAULT_INDENT = "  "


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
    _rewrite_vcpusched(root, plan)
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


def _rewrite_vcpusched(root: etree._Element, plan: DestinationPlan) -> None:
    """The destination's priority on every real-time ``<vcpusched>`` (Nova writes its
    destination's ``realtime_scheduler_priority``); without one in the plan, the source's
    priority stays. A non-real-time scheduler (batch, idle) has no priority to change."""
    if plan.realtime_priority is None:
        return
    cputune = root.find("cputune")
    if cputune is None:
        return
    for sched in cputune.iterfind("vcpusched"):
        if sched.get("scheduler") in REALTIME_SCHEDULERS:
            sched.set("priority", str(plan.realtime_priority))


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
        for name, value in PciAddress.parse(new).libvirt_attributes().items():
            address.set(name, value)


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

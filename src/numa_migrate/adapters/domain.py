"""Read a libvirt domain XML (``virsh dumpxml``) into a :class:`DomainInfo`.

:func:`domain_from_xml` reads the values of a domain XML and keeps no element; the values
and what they mean for placement live in the core (:mod:`numa_migrate.core.model.domain`,
:mod:`numa_migrate.core.domainrequest`).
"""

from __future__ import annotations

from lxml import etree

from numa_migrate.adapters.xmlsafe import XmlDoc, kib_to_mib
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.limits import MAX_GUEST_VCPUS, MAX_NUMA_NODES
from numa_migrate.core.model.domain import (
    MEMORY_MODES,
    REALTIME_SCHEDULERS,
    SCHEDULERS,
    DomainInfo,
    GuestNumaCell,
    HugePages,
    MemNode,
    NovaMetadata,
    NumaTune,
    PciHostdev,
    VcpuSched,
)

NOVA_NAMESPACE_PREFIX = "http://openstack.org/xmlns/libvirt/nova/"
NM_NAMESPACE = "urn:numa-migrate:guest:1"
"""``<metadata><nm:guest xmlns:nm=NM_NAMESPACE><nm:spec key='hw:...'>value</nm:spec>``: the
Nova-style extra specs a guest was created from (numa-migrate writes them when it defines a
guest), so that what a domain XML cannot say (thread policy, emulator-thread policy) travels
with the guest and its migrations keep honouring it."""


def domain_from_xml(xml: str | bytes, *, source: str = "domain") -> DomainInfo:
    doc = XmlDoc.load(xml, source=source, root="domain")
    root = doc.root
    vcpu = doc.child(root, "vcpu")
    vcpus = doc.int_text(vcpu, minimum=1, maximum=MAX_GUEST_VCPUS)
    memory_mib = _memory_mib(doc, doc.child(root, "memory"))
    current_memory = root.find("currentMemory")
    cputune = root.find("cputune")
    numa_cells = _numa_cells(doc, root.find("cpu/numa"), vcpus)
    cpu = root.find("cpu")
    return DomainInfo(
        name=doc.text(doc.child(root, "name")),
        uuid=doc.text(doc.child(root, "uuid")),
        vcpus=vcpus,
        vcpu_current=doc.int_attr(vcpu, "current", default=vcpus, minimum=1, maximum=vcpus),
        vcpu_cpuset=doc.opt_cpus_attr(vcpu, "cpuset"),
        memory_mib=memory_mib,
        current_memory_mib=(
            memory_mib if current_memory is None else _memory_mib(doc, current_memory)
        ),
        vcpupin=_vcpupins(doc, cputune, vcpus),
        emulatorpin=_emulatorpin(doc, cputune),
        iothreadpins=_iothreadpins(doc, cputune),
        vcpusched=_vcpuscheds(doc, cputune, vcpus),
        numatune=_numatune(doc, root.find("numatune"), {c.id for c in numa_cells}),
        numa_cells=numa_cells,
        hugepages=_hugepages(doc, root.find("memoryBacking/hugepages")),
        hostdevs=_hostdevs(doc, root.find("devices")),
        nova=_nova_metadata(doc, root.find("metadata")),
        cpu_mode=None if cpu is None else cpu.get("mode", "custom"),
        cpu_model=None if cpu is None else doc.opt_text(cpu, "model"),
        declared_specs=_declared_specs(doc, root.find("metadata")),
    )


def _memory_mib(doc: XmlDoc, el: etree._Element) -> int:
    return kib_to_mib(doc.text_kib(el), round_up=True)


def _check_vcpu_ids(
    doc: XmlDoc, el: etree._Element, attr: str, ids: frozenset[int], vcpus: int
) -> None:
    beyond = sorted(i for i in ids if i >= vcpus)
    if beyond:
        raise doc.error(
            el,
            f"{attr} {el.get(attr)!r} names vCPU {CpuSet.of(beyond)} but <vcpu> gives "
            f"{vcpus} vCPUs (ids 0-{vcpus - 1})",
        )


def _vcpupins(
    doc: XmlDoc, cputune: etree._Element | None, vcpus: int
) -> tuple[tuple[int, frozenset[int]], ...]:
    if cputune is None:
        return ()
    pins: dict[int, frozenset[int]] = {}
    for el in cputune.iterfind("vcpupin"):
        vcpu = doc.int_attr(el, "vcpu")
        _check_vcpu_ids(doc, el, "vcpu", frozenset({vcpu}), vcpus)
        if vcpu in pins:
            raise doc.error(el, f"vcpu {vcpu} is pinned more than once")
        pins[vcpu] = doc.cpus_attr(el, "cpuset")
    return tuple(sorted(pins.items()))


def _emulatorpin(doc: XmlDoc, cputune: etree._Element | None) -> frozenset[int] | None:
    pin = None if cputune is None else cputune.find("emulatorpin")
    return None if pin is None else doc.cpus_attr(pin, "cpuset")


def _iothreadpins(
    doc: XmlDoc, cputune: etree._Element | None
) -> tuple[tuple[int, frozenset[int]], ...]:
    if cputune is None:
        return ()
    return tuple(
        sorted(
            (doc.int_attr(el, "iothread", minimum=1), doc.cpus_attr(el, "cpuset"))
            for el in cputune.iterfind("iothreadpin")
        )
    )


def _vcpuscheds(doc: XmlDoc, cputune: etree._Element | None, vcpus: int) -> tuple[VcpuSched, ...]:
    if cputune is None:
        return ()
    return tuple(_vcpusched(doc, el, vcpus) for el in cputune.iterfind("vcpusched"))


def _vcpusched(doc: XmlDoc, el: etree._Element, vcpus: int) -> VcpuSched:
    ids = doc.opt_cpus_attr(el, "vcpus", bound=MAX_GUEST_VCPUS)
    if ids is None:
        ids = frozenset(range(vcpus))
    _check_vcpu_ids(doc, el, "vcpus", ids, vcpus)
    scheduler = doc.choice(el, "scheduler", SCHEDULERS)
    priority = (
        doc.int_attr(el, "priority")
        if scheduler in REALTIME_SCHEDULERS
        else doc.opt_int_attr(el, "priority")
    )
    return VcpuSched(vcpus=ids, scheduler=scheduler, priority=priority)


def _numatune(doc: XmlDoc, el: etree._Element | None, cell_ids: set[int]) -> NumaTune | None:
    if el is None:
        return None
    memory = el.find("memory")
    return NumaTune(
        mode="strict" if memory is None else _memory_mode(doc, memory),
        nodeset=None if memory is None else doc.opt_cpus_attr(
            memory, "nodeset", bound=MAX_NUMA_NODES
        ),
        memnodes=tuple(_memnode(doc, node, cell_ids) for node in el.iterfind("memnode")),
    )


def _memory_mode(doc: XmlDoc, el: etree._Element) -> str:
    return doc.choice(el, "mode", MEMORY_MODES, default="strict")


def _memnode(doc: XmlDoc, el: etree._Element, cell_ids: set[int]) -> MemNode:
    cell_id = doc.int_attr(el, "cellid")
    if cell_id not in cell_ids:
        known = ", ".join(map(str, sorted(cell_ids))) or "none"
        raise doc.error(
            el, f"cellid {cell_id} is not a guest NUMA cell in <cpu><numa> (cells: {known})"
        )
    return MemNode(
        cell_id=cell_id,
        mode=_memory_mode(doc, el),
        nodeset=doc.cpus_attr(el, "nodeset", bound=MAX_NUMA_NODES),
    )


def _numa_cells(doc: XmlDoc, numa: etree._Element | None, vcpus: int) -> tuple[GuestNumaCell, ...]:
    if numa is None:
        return ()
    cells: list[GuestNumaCell] = []
    for index, el in enumerate(numa.iterfind("cell")):
        cpus = doc.opt_cpus_attr(el, "cpus", bound=MAX_GUEST_VCPUS) or frozenset()
        _check_vcpu_ids(doc, el, "cpus", cpus, vcpus)
        taken = cpus & frozenset().union(*(c.cpus for c in cells))
        if taken:
            raise doc.error(
                el,
                f"cpus {el.get('cpus')!r} overlaps another cell on vCPUs {CpuSet.of(taken)}",
            )
        cells.append(
            GuestNumaCell(
                id=doc.int_attr(el, "id", default=index),
                cpus=cpus,
                memory_mib=kib_to_mib(doc.attr_kib(el, "memory"), round_up=True),
                mem_access=el.get("memAccess"),
            )
        )
    ids = sorted(cell.id for cell in cells)
    if ids != list(range(len(cells))):
        raise doc.error(numa, f"cell ids {ids} must be 0 to {len(cells) - 1}, each once")
    return tuple(cells)


def _hugepages(doc: XmlDoc, el: etree._Element | None) -> tuple[HugePages, ...]:
    if el is None:
        return ()
    pages = tuple(
        HugePages(
            size_kib=doc.attr_kib(page, "size"),
            nodeset=doc.opt_cpus_attr(page, "nodeset", bound=MAX_NUMA_NODES),
        )
        for page in el.iterfind("page")
    )
    return pages or (HugePages(size_kib=None, nodeset=None),)


def _hostdevs(doc: XmlDoc, devices: etree._Element | None) -> tuple[PciHostdev, ...]:
    if devices is None:
        return ()
    found: list[PciHostdev] = []
    for el in devices:
        is_hostdev = (
            el.tag == "hostdev"
            and el.get("mode", "subsystem") == "subsystem"
            and el.get("type") == "pci"
        )
        is_interface = el.tag == "interface" and el.get("type") == "hostdev"
        address = el.find("source/address")
        if (is_hostdev or is_interface) and address is not None:
            found.append(
                PciHostdev(
                    address=doc.pci_address(address),
                    managed=doc.yes_no(el, "managed"),
                    interface=is_interface,
                    mac=_child_attr(el, "mac", "address") if is_interface else None,
                    alias=_child_attr(el, "alias", "name"),
                )
            )
    return tuple(found)


def _child_attr(el: etree._Element, path: str, attr: str) -> str | None:
    child = el.find(path)
    return None if child is None else child.get(attr)


def _nova_metadata(doc: XmlDoc, metadata: etree._Element | None) -> NovaMetadata | None:
    instance = None if metadata is None else _nova_instance(metadata)
    if instance is None:
        return None
    namespace = etree.QName(instance).namespace
    flavor = f"{{{namespace}}}flavor"
    return NovaMetadata(
        namespace=namespace,
        instance_name=doc.opt_text(instance, f"{{{namespace}}}name"),
        flavor_name=_child_attr(instance, flavor, "name"),
        flavor_memory_mib=doc.opt_int_text(instance, f"{flavor}/{{{namespace}}}memory"),
        flavor_vcpus=doc.opt_int_text(instance, f"{flavor}/{{{namespace}}}vcpus"),
    )


def _declared_specs(
    doc: XmlDoc, metadata: etree._Element | None
) -> tuple[tuple[str, str], ...] | None:
    guest = None if metadata is None else metadata.find(f"{{{NM_NAMESPACE}}}guest")
    if guest is None:
        return None
    specs: dict[str, str] = {}
    for el in guest.iterfind(f"{{{NM_NAMESPACE}}}spec"):
        key = el.get("key")
        if not key:
            raise doc.error(el, "numa-migrate metadata: <spec> needs a key='hw:...' attribute")
        if key in specs:
            raise doc.error(el, f"numa-migrate metadata: extra spec {key} appears twice")
        specs[key] = (el.text or "").strip()
    return tuple(sorted(specs.items()))


def declared_specs_xml(specs: dict[str, str] | tuple[tuple[str, str], ...]) -> str:
    """The ``<nm:guest>`` metadata element holding ``specs`` (to put in ``<metadata>``)."""
    guest = etree.Element(f"{{{NM_NAMESPACE}}}guest", nsmap={"nm": NM_NAMESPACE})
    for key, value in sorted(dict(specs).items()):
        etree.SubElement(guest, f"{{{NM_NAMESPACE}}}spec", key=key).text = value
    return etree.tostring(guest, encoding="unicode")


def _nova_instance(metadata: etree._Element) -> etree._Element | None:
    for el in metadata:
        qname = etree.QName(el)
        if qname.localname == "instance" and (qname.namespace or "").startswith(
            NOVA_NAMESPACE_PREFIX
        ):
            return el
    return None

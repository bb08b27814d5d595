"""What a libvirt domain runs with (pins, NUMA, huge pages, PCI devices) and its NUMA request.

:func:`domain_from_xml` reads the values of a domain XML (``virsh dumpxml``) and keeps no
element; :func:`guest_request_from_domain` infers the Nova-style request the domain satisfies.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lxml import etree

from numa_migrate.adapters.xmlsafe import XmlDoc, kib_to_mib
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import InvalidRequestError, ParseError
from numa_migrate.core.limits import MAX_GUEST_VCPUS, MAX_NUMA_NODES
from numa_migrate.core.model.guest import (
    CPUPolicy,
    EmulatorPolicy,
    GuestCell,
    GuestRequest,
    PageSizeKind,
    PageSizeRequest,
    describe_page_size,
)
from numa_migrate.core.request import Flavor, guest_from_flavor

NOVA_NAMESPACE_PREFIX = "http://openstack.org/xmlns/libvirt/nova/"
NM_NAMESPACE = "urn:numa-migrate:guest:1"
"""``<metadata><nm:guest xmlns:nm=NM_NAMESPACE><nm:spec key='hw:...'>value</nm:spec>``: the
Nova-style extra specs a guest was created from (numa-migrate writes them when it defines a
guest), so that what a domain XML cannot say (thread policy, emulator-thread policy) travels
with the guest and its migrations keep honouring it."""
MEMORY_MODES = ("strict", "preferred", "interleave", "restrictive")
SCHEDULERS = ("batch", "idle", "fifo", "rr")
REALTIME_SCHEDULERS = frozenset({"fifo", "rr"})


@dataclass(frozen=True, slots=True)
class VcpuSched:
    vcpus: frozenset[int]
    scheduler: str
    priority: int | None


@dataclass(frozen=True, slots=True)
class MemNode:
    """``<numatune><memnode cellid mode nodeset/>``: host nodes for one guest cell."""

    cell_id: int
    mode: str
    nodeset: frozenset[int]


@dataclass(frozen=True, slots=True)
class NumaTune:
    """``<numatune>``; ``nodeset`` is None without ``<memory nodeset>`` (e.g. placement auto)."""

    mode: str
    nodeset: frozenset[int] | None
    memnodes: tuple[MemNode, ...]


@dataclass(frozen=True, slots=True)
class GuestNumaCell:
    """``<cpu><numa><cell>``: a guest NUMA cell's vCPUs and memory."""

    id: int
    cpus: frozenset[int]
    memory_mib: int
    mem_access: str | None


@dataclass(frozen=True, slots=True)
class HugePages:
    """One ``<hugepages><page>``; ``size_kib`` None for ``<hugepages/>`` (the default size)."""

    size_kib: int | None
    nodeset: frozenset[int] | None


@dataclass(frozen=True, slots=True)
class PciHostdev:
    """A PCI device given to the guest: a PCI ``<hostdev>`` or an ``<interface type='hostdev'>``."""

    address: str
    managed: bool
    interface: bool
    mac: str | None
    alias: str | None


@dataclass(frozen=True, slots=True)
class NovaMetadata:
    """Nova's ``<nova:instance>`` metadata; flavor memory is in MiB."""

    namespace: str
    instance_name: str | None
    flavor_name: str | None
    flavor_memory_mib: int | None
    flavor_vcpus: int | None


@dataclass(frozen=True, slots=True)
class DomainInfo:
    """Values read from a domain XML. Pins and sets are host CPU / host node ids."""

    name: str
    uuid: str
    vcpus: int
    vcpu_current: int
    vcpu_cpuset: frozenset[int] | None
    memory_mib: int
    current_memory_mib: int
    vcpupin: tuple[tuple[int, frozenset[int]], ...]
    emulatorpin: frozenset[int] | None
    iothreadpins: tuple[tuple[int, frozenset[int]], ...]
    vcpusched: tuple[VcpuSched, ...]
    numatune: NumaTune | None
    numa_cells: tuple[GuestNumaCell, ...]
    hugepages: tuple[HugePages, ...]
    hostdevs: tuple[PciHostdev, ...]
    nova: NovaMetadata | None
    cpu_mode: str | None
    cpu_model: str | None
    declared_specs: tuple[tuple[str, str], ...] | None = None
    """The extra specs of numa-migrate's metadata (see NM_NAMESPACE); None: there is none."""

    @property
    def nova_managed(self) -> bool:
        return self.nova is not None


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


def guest_request_from_domain(info: DomainInfo) -> tuple[GuestRequest | None, str]:
    """The NUMA request the domain runs as, and how it was inferred (None: no NUMA need).

    A vCPU pinned to exactly one host CPU counts as dedicated, any other vCPU as shared.
    A domain with numa-migrate's metadata (:data:`NM_NAMESPACE`) runs as the request of the
    extra specs it declares, which must agree with its guest NUMA cells.
    """
    if info.declared_specs is not None:
        return _declared_request(info)
    if not (info.vcpupin or info.numa_cells or info.hugepages):
        return None, (
            f"{info.name}: no NUMA need (no <vcpupin>, no guest NUMA cells, no huge pages)"
        )
    dedicated = frozenset(vcpu for vcpu, cpus in info.vcpupin if len(cpus) == 1)
    notes: list[str] = []
    cells = _guest_cells(info, dedicated, notes)
    cpu_policy = _cpu_policy(info, dedicated, notes)
    emulator_policy = _emulator_policy(info, cpu_policy, notes)
    page_size = _page_size(info, notes)
    realtime = frozenset().union(
        *(s.vcpus for s in info.vcpusched if s.scheduler in REALTIME_SCHEDULERS)
    )
    if realtime:
        notes.append(f"vCPUs {CpuSet.of(realtime)} have a real-time scheduler: realtime")
    notes.append("thread policy: cannot be inferred from a domain, left unset")
    request = GuestRequest(
        cells=cells,
        cpu_policy=cpu_policy,
        emulator_policy=emulator_policy,
        page_size=page_size,
        realtime_vcpus=realtime or None,
    )
    return request, f"{info.name}: " + "; ".join(notes)


def declared_dedicated_vcpus(info: DomainInfo) -> frozenset[int] | None:
    """The vCPUs the domain's numa-migrate metadata declares dedicated; None without
    metadata (or with metadata Nova's rules refuse: the caller then infers from the pins).

    A pin to exactly one host CPU does not prove a vCPU dedicated: a floating vCPU on a
    one-CPU shared set is pinned to one CPU too. The declared request settles it.
    """
    if info.declared_specs is None:
        return None
    return _declared_dedicated(info.declared_specs, info.vcpus, info.memory_mib)


@lru_cache(maxsize=1024)
def _declared_dedicated(
    specs: tuple[tuple[str, str], ...], vcpus: int, memory_mib: int
) -> frozenset[int] | None:
    try:
        request = guest_from_flavor(Flavor(vcpus, memory_mib, dict(specs))).numa
    except InvalidRequestError:
        return None
    if request is None:
        return frozenset()
    return frozenset().union(*(c.dedicated_vcpus for c in request.cells))


def _declared_request(info: DomainInfo) -> tuple[GuestRequest | None, str]:
    specs = dict(info.declared_specs or ())
    flavor = Flavor(info.vcpus, info.memory_mib, specs, f"{info.name} (numa-migrate metadata)")
    listed = ", ".join(f"{k}={v}" for k, v in sorted(specs.items())) or "no extra specs"
    try:
        request = guest_from_flavor(flavor).numa
    except InvalidRequestError as exc:
        raise ParseError(f"the extra specs of its numa-migrate metadata: {exc}",
                         source=f"{info.name}: metadata/guest") from None
    if request is None:
        return None, f"{info.name}: no NUMA need, per its numa-migrate metadata ({listed})"
    declared = [(c.vcpus, c.memory_mib) for c in request.cells]
    actual = [(c.cpus, c.memory_mib) for c in info.numa_cells]
    if actual and declared != actual:
        def show(cells: list[tuple[frozenset[int], int]]) -> str:
            return ", ".join(f"vCPUs {CpuSet.of(v)} {m} MiB" for v, m in cells)

        raise ParseError(
            f"{info.name}: the extra specs of its numa-migrate metadata ask for guest cells "
            f"[{show(declared)}] but its <cpu><numa> has [{show(actual)}]; fix the metadata "
            "or remove it (the request is then inferred from the XML)",
            source=f"{info.name}: metadata/guest",
        )
    return request, f"{info.name}: request from its numa-migrate metadata ({listed})"


def _guest_cells(
    info: DomainInfo, dedicated: frozenset[int], notes: list[str]
) -> tuple[GuestCell, ...]:
    if not info.numa_cells:
        notes.append(
            f"no <cpu><numa>: one guest cell with all {info.vcpus} vCPUs and {info.memory_mib} MiB"
        )
        return (_guest_cell(0, frozenset(range(info.vcpus)), dedicated, info.memory_mib),)
    first, *others = info.numa_cells
    loose = frozenset(range(info.vcpus)).difference(*(c.cpus for c in info.numa_cells))
    count = len(info.numa_cells)
    notes.append(f"{count} guest cell{'s' if count != 1 else ''} from <cpu><numa>")
    if loose:
        notes.append(
            f"vCPUs {CpuSet.of(loose)} are in no guest cell: counted in cell {first.id}, "
            "where QEMU puts them"
        )
    return (
        _guest_cell(first.id, first.cpus | loose, dedicated, first.memory_mib),
        *(_guest_cell(c.id, c.cpus, dedicated, c.memory_mib) for c in others),
    )


def _guest_cell(
    index: int, vcpus: frozenset[int], dedicated: frozenset[int], memory_mib: int
) -> GuestCell:
    return GuestCell(
        index=index,
        shared_vcpus=vcpus - dedicated,
        dedicated_vcpus=vcpus & dedicated,
        memory_mib=memory_mib,
    )


def _cpu_policy(info: DomainInfo, dedicated: frozenset[int], notes: list[str]) -> CPUPolicy | None:
    if len(dedicated) == info.vcpus:
        notes.append(f"all {info.vcpus} vCPUs pinned to one host CPU each: dedicated")
        return CPUPolicy.DEDICATED
    if dedicated:
        notes.append(
            f"vCPUs {CpuSet.of(dedicated)} pinned to one host CPU each, the others "
            "float: mixed"
        )
        return CPUPolicy.MIXED
    if info.vcpu_cpuset is not None:
        notes.append(
            f"no vCPU pinned to a single host CPU, <vcpu cpuset="
            f"'{CpuSet.of(info.vcpu_cpuset)}'>: shared"
        )
        return CPUPolicy.SHARED
    notes.append("no vCPU pinned to a single host CPU and no <vcpu cpuset>: no CPU policy")
    return None


def _emulator_policy(
    info: DomainInfo, cpu_policy: CPUPolicy | None, notes: list[str]
) -> EmulatorPolicy | None:
    if info.emulatorpin is None or cpu_policy not in (CPUPolicy.DEDICATED, CPUPolicy.MIXED):
        notes.append("emulator threads: no <emulatorpin> or no pinned vCPU, policy unset")
        return None
    shared = info.emulatorpin & frozenset().union(*(cpus for _, cpus in info.vcpupin))
    if shared:
        notes.append(
            f"emulator threads share host CPUs {CpuSet.of(shared)} with vCPU pins, "
            "policy unset"
        )
        return None
    notes.append(
        f"emulator threads pinned to host CPUs {CpuSet.of(info.emulatorpin)}, apart "
        "from every vCPU: isolate"
    )
    return EmulatorPolicy.ISOLATE


def _page_size(info: DomainInfo, notes: list[str]) -> PageSizeRequest | None:
    sizes = {page.size_kib for page in info.hugepages}
    if not sizes:
        notes.append("no huge pages: page size unset")
        return None
    size = sizes.pop()
    if size is not None and not sizes:
        notes.append(f"{describe_page_size(size)} huge pages: explicit page size")
        return PageSizeRequest.explicit(size)
    notes.append("huge pages of the default size or of several sizes: any large page size")
    return PageSizeRequest(PageSizeKind.LARGE)

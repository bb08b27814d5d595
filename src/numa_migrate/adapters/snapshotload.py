"""Read a fleet snapshot (format: :mod:`numa_migrate.adapters.snapshot`) back into a fleet.

Every field is checked and a bad one refused with its path (``hosts[3].guests[0].placement
.cells[1].host_cell: ...``). Each host is built from its capabilities XML (or topology),
then what its ``other_usage`` says is used, then its guests in order, each with its
placement *as recorded*: a placement that does not fit the host at that point (a pinned CPU
already taken, too few free pages, a cell the host lacks, pins that do not match the
request) is an error naming the guest and why, never silently re-fitted.
"""

from __future__ import annotations

from dataclasses import replace

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.casefmt import host_from_node
from numa_migrate.adapters.fleet import Fleet, HostInputs, LeftOut, PlacedGuest
from numa_migrate.adapters.pcicase import pci_devices_from_node, pci_requests_from_node
from numa_migrate.adapters.snapshot import SNAPSHOT_FORMAT, SNAPSHOT_VERSION
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.drain.hosts import add_guest
from numa_migrate.core.errors import ParseError
from numa_migrate.core.limits import (
    MAX_GUEST_VCPUS,
    MAX_GUESTS_PER_HOST,
    MAX_HOSTS,
    MAX_MEMORY_MIB,
    MAX_NUMA_NODES,
    MAX_PAGE_COUNT,
    MAX_PAGE_SIZE_KIB,
    MAX_PCI_DEVICES,
)
from numa_migrate.core.model.guest import (
    CPUPolicy,
    EmulatorPolicy,
    Guest,
    GuestCell,
    GuestRequest,
    PageSizeKind,
    PageSizeRequest,
    ThreadPolicy,
)
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.pci import PciAddress
from numa_migrate.core.model.pcidev import PciRequest
from numa_migrate.core.model.placement import CellPlacement, Placement
from numa_migrate.core.placementcheck import placement_problems
from numa_migrate.inputs.fields import Node, Obj

__all__ = ["fleet_from_snapshot"]

MAX_TEXT = 4096
MAX_NOTES = 1_000_000
TOP_KEYS = ("format", "version", "taken_at", "taken_from", "numa_migrate", "notes", "left_out",
            "hosts")
HOST_KEYS = ("name", "uri", "capabilities_xml", "cpu_dedicated_set", "cpu_shared_set",
             "reserved_huge_pages", "topology", "pci_devices", "other_usage", "guests")
GUEST_KEYS = ("name", "request_name", "uuid", "vcpus", "memory_mib", "numa", "pci_requests",
              "placement", "pci_devices")
USAGE_IN_TOPOLOGY = ("pinned_cpus", "cpu_usage", "memory_usage_mib")


def _cpus(node: Node, *, bound: int = 16384) -> frozenset[int]:
    if not isinstance(node.value, str):
        node.expected("a CPU list string like '2-19,22-39'")
    try:
        return CpuSet.parse(node.value, field=node.path, bound=bound)
    except ParseError as exc:
        raise ParseError(str(exc), source=node.ctx.source) from None


def _opt_cpus(raw: Obj, key: str, *, bound: int = 16384) -> frozenset[int] | None:
    node = raw.opt(key)
    return None if node is None else _cpus(node, bound=bound)


def _text(node: Node) -> str:
    return node.text(max_chars=MAX_TEXT, one_line=True)


def fleet_from_snapshot(doc: Node, *, source: str) -> Fleet:
    """The fleet of the snapshot document ``doc`` (already parsed with snapshot bounds)."""
    top = doc.obj(known=TOP_KEYS)
    if top.req("format").value != SNAPSHOT_FORMAT:
        top.req("format").fail(f"must be {SNAPSHOT_FORMAT!r}")
    version = top.req("version")
    if isinstance(version.value, bool) or version.value != SNAPSHOT_VERSION:
        version.fail(f"{version.value!r} is not a snapshot version this numa-migrate reads "
                     f"(it reads version {SNAPSHOT_VERSION}); take the snapshot again with "
                     "this version")
    taken_at = _text(top.req("taken_at"))
    taken_from = _text(top.req("taken_from"))
    top.get("numa_migrate", _text, "")
    notes = tuple(_text(n) for n in top.list("notes", max_items=MAX_NOTES))
    hosts: list[HostTopology] = []
    guests: list[PlacedGuest] = []
    inputs: list[HostInputs] = []
    names: set[str] = set()
    for node in top.req("hosts").items(max_items=MAX_HOSTS):
        host, placed, host_inputs = _host(node)
        if host.name in names:
            node.child(host.name, "name").fail(f"host {host.name!r} is listed twice")
        names.add(host.name)
        hosts.append(host)
        guests.extend(placed)
        if host_inputs is not None:
            inputs.append(host_inputs)
    left_out = tuple(_left_out(n, names) for n in top.list("left_out", max_items=MAX_NOTES))
    label = f"snapshot {source} (taken {taken_at} from {taken_from})"
    return Fleet(label, tuple(hosts), tuple(guests), notes, tuple(inputs), left_out)


def _left_out(node: Node, hosts: set[str]) -> LeftOut:
    """A guest the live read could not model: ``{"host", "name", "reason"}``."""
    raw = node.obj(known=("host", "name", "reason"))
    host = _text(raw.req("host"))
    if host not in hosts:
        raw.req("host").fail(f"{host!r} is not one of the snapshot's hosts")
    return LeftOut(host, _text(raw.req("name")), _text(raw.req("reason")))


def _reserved(raw: Obj) -> tuple[tuple[int, int, int], ...]:
    out: dict[tuple[int, int], int] = {}
    for item in raw.list("reserved_huge_pages", max_items=MAX_NUMA_NODES * 8):
        entry = item.obj(known=("node", "size_kib", "count"))
        key = (entry.req("node").integer(maximum=MAX_NUMA_NODES - 1),
               entry.req("size_kib").integer(minimum=1, maximum=MAX_PAGE_SIZE_KIB))
        if key in out:
            item.fail(f"node {key[0]} size {key[1]} KiB is given twice")
        out[key] = entry.req("count").integer(maximum=MAX_PAGE_COUNT)
    return tuple(sorted((n, s, c) for (n, s), c in out.items()))


def _bare_host(node: Node, raw: Obj, name: str) -> tuple[HostTopology, HostInputs | None]:
    caps = raw.opt("capabilities_xml")
    topology = raw.opt("topology")
    if (caps is None) == (topology is None):
        node.fail("give either capabilities_xml (the XML inline) or topology, not both")
    if topology is not None:
        for key in ("cpu_dedicated_set", "cpu_shared_set", "reserved_huge_pages"):
            if raw.opt(key) is not None:
                raw.req(key).fail("goes with capabilities_xml (a topology has its CPU sets)")
        for cell in topology.obj(known=("cells",)).list("cells", max_items=MAX_NUMA_NODES):
            if not isinstance(cell.value, dict):
                cell.expected("a cell object")
            for key in USAGE_IN_TOPOLOGY:
                if key in cell.value:
                    cell.child(None, key).fail("usage goes in the host's other_usage")
        return host_from_node(topology, name), None
    assert caps is not None
    xml = caps.text(non_empty=True)
    dedicated = _opt_cpus(raw, "cpu_dedicated_set")
    shared = _opt_cpus(raw, "cpu_shared_set")
    reserved = _reserved(raw)
    host = host_from_capabilities(
        xml, name=name, cpu_dedicated_set=dedicated, cpu_shared_set=shared,
        reserved_huge_pages={(n, s): c for n, s, c in reserved} or None,
        source=f"{node.ctx.source}: {caps.path}")
    uri = raw.get("uri", _text, None)
    return host, HostInputs(name, xml, dedicated, shared, reserved, uri)


def _host(node: Node) -> tuple[HostTopology, list[PlacedGuest], HostInputs | None]:
    if not isinstance(node.value, dict) or not isinstance(node.value.get("name"), str):
        node.fail("a host is an object with a 'name'")
    raw = node.obj(known=HOST_KEYS)
    name = raw.req("name").text(max_chars=255, non_empty=True, one_line=True)
    raw.get("uri", _text, None)
    host, inputs = _bare_host(node, raw, name)
    devices = raw.opt("pci_devices")
    if devices is not None:
        host = replace(host, pci_devices=pci_devices_from_node(devices))
    cells: set[object] = set()
    for item in raw.list("other_usage", max_items=MAX_NUMA_NODES):
        cell = item.value.get("cell") if isinstance(item.value, dict) else None
        if cell in cells:
            item.child(cell, "cell").fail(f"cell {cell} is given twice (one entry per cell)")
        cells.add(cell)
        host = _other_usage(host, item)
    placed: list[PlacedGuest] = []
    for item in raw.list("guests", max_items=MAX_GUESTS_PER_HOST):
        host, guest = _guest(host, item)
        placed.append(guest)
    return host, placed, inputs


def _other_usage(host: HostTopology, node: Node) -> HostTopology:
    use = node.obj(known=("cell", "pinned_cpus", "shared_vcpus", "memory_mib", "pages"))
    cell_node = use.req("cell")
    cell = host.find_cell(cell_node.integer(maximum=MAX_NUMA_NODES - 1))
    if cell is None:
        cell_node.fail(f"host {host.name} has no cell {cell_node.value} "
                       f"(cells {CpuSet.of(host.cell_ids).format()})")
    pinned = _opt_cpus(use, "pinned_cpus") or frozenset()
    if not pinned <= cell.cpus:
        use.req("pinned_cpus").fail(f"CPUs {CpuSet.of(pinned - cell.cpus).format()} are not "
                                    f"in cell {cell.id} ({cell.cpus.format()})")
    pages: list[tuple[int, int]] = []
    for item in use.list("pages", max_items=64):
        entry = item.obj(known=("size_kib", "count"))
        size = entry.req("size_kib").integer(minimum=1, maximum=MAX_PAGE_SIZE_KIB)
        count = entry.req("count").integer(maximum=MAX_PAGE_COUNT)
        pool = cell.page_pool(size)
        if pool is None:
            item.fail(f"cell {cell.id} has no {size} KiB pages")
        if pool.used + count > pool.total:
            item.fail(f"{count} pages of {size} KiB used, cell {cell.id} has {pool.total}")
        pages.append((size, count))
    updated = cell.with_usage(
        pinned=pinned,
        cpu_usage=use.get("shared_vcpus", lambda n: n.integer(maximum=MAX_GUEST_VCPUS * 4096),
                          0),
        memory_mib=use.get("memory_mib", lambda n: n.integer(maximum=MAX_MEMORY_MIB), 0),
        pages=tuple(pages))
    return replace(host, cells=tuple(updated if c.id == cell.id else c for c in host.cells))


def _page_size(node: Node) -> PageSizeRequest:
    if isinstance(node.value, str):
        kind = node.choice(("small", "large", "any"))
        return PageSizeRequest(PageSizeKind(kind))
    return PageSizeRequest.explicit(node.number(above=0, maximum=MAX_PAGE_SIZE_KIB))


def _request(node: Node, vcpus: int) -> GuestRequest:
    raw = node.obj(known=("cells", "cpu_policy", "thread_policy", "emulator_policy",
                          "page_size", "realtime_vcpus"))
    cells: list[GuestCell] = []
    seen: set[int] = set()
    cell_nodes = raw.req("cells").items(max_items=MAX_NUMA_NODES)
    if not cell_nodes:
        raw.req("cells").fail("a NUMA request has at least one cell")
    for i, item in enumerate(cell_nodes):
        cell = item.obj(known=("shared_vcpus", "dedicated_vcpus", "memory_mib"))
        shared = _cpus(cell.req("shared_vcpus"), bound=MAX_GUEST_VCPUS)
        dedicated = _cpus(cell.req("dedicated_vcpus"), bound=MAX_GUEST_VCPUS)
        mine = shared | dedicated
        if shared & dedicated or mine & seen or not mine:
            item.fail("each vCPU is in one cell, shared or dedicated, and a cell has vCPUs")
        seen |= mine
        cells.append(GuestCell(i, shared, dedicated,
                               cell.req("memory_mib").integer(minimum=1,
                                                              maximum=MAX_MEMORY_MIB)))
    if seen != set(range(vcpus)):
        raw.req("cells").fail(f"the cells' vCPUs are {CpuSet.of(seen).format()}, the guest "
                              f"has vCPUs 0-{vcpus - 1}")

    return GuestRequest(
        cells=tuple(cells),
        cpu_policy=raw.get("cpu_policy", lambda n: CPUPolicy(n.choice(CPUPolicy)), None),
        thread_policy=raw.get("thread_policy",
                              lambda n: ThreadPolicy(n.choice(ThreadPolicy)), None),
        emulator_policy=raw.get("emulator_policy",
                                lambda n: EmulatorPolicy(n.choice(EmulatorPolicy)), None),
        page_size=raw.get("page_size", _page_size, None),
        realtime_vcpus=_opt_cpus(raw, "realtime_vcpus", bound=MAX_GUEST_VCPUS),
    )


def _placement(node: Node) -> Placement:
    raw = node.obj(known=("cells", "emulator_pins"))
    cells: list[CellPlacement] = []
    for item in raw.req("cells").items(max_items=MAX_NUMA_NODES):
        cell = item.obj(known=("guest_cell", "host_cell", "vcpus", "memory_mib",
                               "pagesize_kib", "cpu_pinning"))
        pins = cell.get("cpu_pinning", lambda n: n.int_key_map(
            lambda p: p.integer(maximum=16383), maximum=MAX_GUEST_VCPUS - 1), None)
        cells.append(CellPlacement(
            guest_cell=cell.req("guest_cell").integer(maximum=MAX_NUMA_NODES - 1),
            host_cell=cell.req("host_cell").integer(maximum=MAX_NUMA_NODES - 1),
            vcpus=frozenset(cell.req("vcpus").int_list(maximum=MAX_GUEST_VCPUS - 1,
                                                       max_items=MAX_GUEST_VCPUS)),
            memory_mib=cell.req("memory_mib").integer(minimum=1, maximum=MAX_MEMORY_MIB),
            pagesize_kib=cell.get("pagesize_kib", lambda n: n.integer(
                minimum=1, maximum=MAX_PAGE_SIZE_KIB), None),
            pinning=None if pins is None else tuple(sorted(pins.items())) or None,
        ))
    emulator = raw.get("emulator_pins", lambda n: frozenset(n.int_list(
        maximum=16383, max_items=MAX_GUEST_VCPUS)), None)
    return Placement(tuple(cells), emulator)


def _guest(host: HostTopology, node: Node) -> tuple[HostTopology, PlacedGuest]:
    if not isinstance(node.value, dict) or not isinstance(node.value.get("name"), str):
        node.fail("a guest is an object with a 'name'")
    raw = node.obj(known=GUEST_KEYS)
    name = raw.req("name").text(max_chars=255, non_empty=True, one_line=True)
    vcpus = raw.req("vcpus").integer(minimum=1, maximum=MAX_GUEST_VCPUS)
    memory = raw.req("memory_mib").integer(minimum=1, maximum=MAX_MEMORY_MIB)
    numa = raw.get("numa", lambda n: _request(n, vcpus), None)
    no_requests: tuple[PciRequest, ...] = ()
    requests = raw.get("pci_requests", pci_requests_from_node, no_requests)
    placement_node = raw.req("placement")
    placement = _placement(placement_node)
    problems = placement_problems(host, numa, placement)
    if problems:
        placement_node.fail(f"({name}) does not fit {host.name} as recorded: "
                            + "; ".join(problems))
    held = tuple(_held(host, n) for n in raw.list("pci_devices", max_items=MAX_PCI_DEVICES))
    if len(set(held)) != len(held):
        raw.req("pci_devices").fail("a device is listed twice")
    request_name = raw.get("request_name", lambda n: n.text(max_chars=255, one_line=True), name)
    guest = Guest(vcpus, memory, numa, request_name, requests)
    placed = PlacedGuest(name, host.name, guest, placement, held,
                         raw.get("uuid", lambda n: n.text(max_chars=64, one_line=True), None))
    return add_guest(host, guest, placement, held), placed


def _held(host: HostTopology, node: Node) -> str:
    try:
        address = PciAddress.normalise(node.text(max_chars=64), field=node.path)
    except ParseError as exc:
        raise node.error(str(exc).removeprefix(f"{node.path}: ")) from None
    device = next((d for d in host.pci_devices if d.address == address), None)
    if device is None:
        node.fail(f"{address} is not among the PCI devices of {host.name}")
    if device.allocated:
        node.fail(f"{address} of {host.name} is already allocated")
    return address

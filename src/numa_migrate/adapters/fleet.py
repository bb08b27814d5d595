"""Fleet files: hosts from libvirt capabilities XML plus Nova CPU sets, with guests on them.

A fleet file (JSON) names, per host, its capabilities XML, ``cpu_dedicated_set`` /
``cpu_shared_set`` (Nova ``[compute]`` options; both absent means legacy ``vcpu_pin_set``
style), ``reserved_huge_pages``, its PCI devices and the guests already running there, each
as a Nova flavor (with ``pci_requests`` for SR-IOV ports and PCI aliases).

PCI devices come either as ``pci_devices`` in the fit-case format, or from node-device XML:
``nodedevs`` (file names of ``virsh nodedev-dumpxml`` output, beside the fleet file) with
``physical_networks`` (physnet -> PF interface names or PCI addresses, as in an inventory).
A guest's devices are chosen by the fitter with its cells and become allocated.
The guests are placed in order with the fitter and their usage accounted, so the fleet's
state is exactly what placing those guests produces. The bundled sample fleet is the
offline default for ``fit``, ``explain`` and ``demo``.

A fleet *snapshot* (``numa-migrate fleet snapshot``: hosts and guests with their placements
as recorded, :mod:`numa_migrate.adapters.snapshot`) is read by the same :func:`load_fleet`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.nodedev import pci_functions_from_nodedevs
from numa_migrate.adapters.pcicase import pci_devices_from_node, pci_requests_from_node
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.drain.hosts import add_guest
from numa_migrate.core.errors import InvalidRequestError, ParseError, UnknownHostError
from numa_migrate.core.fit.fitter import fit_guest
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
from numa_migrate.core.model.guest import Guest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.pcidev import PciDevice, PciRequest
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.pcidevices import PhysNets, fit_devices
from numa_migrate.core.request import Flavor, guest_from_flavor
from numa_migrate.inputs.bounds import MAX_FILE_BYTES, DocBounds
from numa_migrate.inputs.documents import parse_json
from numa_migrate.inputs.fields import Node, Obj, root
from numa_migrate.inputs.files import read_bytes

SAMPLE_FLEET = "sample-fleet.json"
MAX_SPEC_CHARS = 4096
MAX_XML_BYTES = 16 * 1024 * 1024
MAX_NODEDEV_BYTES = 64 * 1024 * 1024
"""All the node-device XML files of one fleet host together."""
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
"""A fleet snapshot: every host's capabilities XML is inline (about 10-50 KiB each)."""
SNAPSHOT_BOUNDS = DocBounds(max_bytes=MAX_SNAPSHOT_BYTES, max_string_chars=MAX_XML_BYTES)
SNAPSHOT_START = re.compile(rb'\s*\{\s*"format"\s*:\s*"numa-migrate fleet snapshot"')


@dataclass(frozen=True)
class LeftOut:
    """A guest running on ``host`` that could not be modelled (so no plan can move it):
    its ``name`` and why."""

    host: str
    name: str
    reason: str


@dataclass(frozen=True)
class PlacedGuest:
    name: str
    host: str
    guest: Guest
    placement: Placement
    pci_devices: tuple[str, ...] = ()
    """Addresses of the host's PCI devices the guest holds."""
    uuid: str | None = None
    """The libvirt domain's UUID, for a guest read live (None in a fleet file)."""


@dataclass(frozen=True)
class HostInputs:
    """What a fleet host was built from, kept so that a snapshot can write it out whole."""

    name: str
    capabilities_xml: str
    cpu_dedicated_set: frozenset[int] | None = None
    cpu_shared_set: frozenset[int] | None = None
    reserved_huge_pages: tuple[tuple[int, int, int], ...] = ()
    """(host node, page size KiB, count), sorted."""
    uri: str | None = None
    """Where the host was read (a live host's libvirt URI)."""


@dataclass(frozen=True)
class Fleet:
    source: str
    hosts: tuple[HostTopology, ...]
    guests: tuple[PlacedGuest, ...]
    notes: tuple[str, ...] = ()
    """What was left out or approximated (domains that could not be modelled, hosts that
    could not be read), one line each."""
    inputs: tuple[HostInputs, ...] = ()
    """Per host, what it was built from (empty when not known)."""
    left_out: tuple[LeftOut, ...] = ()
    """Guests running on a host of the fleet that are not among ``guests`` (they could not
    be modelled, or cannot be live-migrated): a drain of their host cannot move them."""

    def host(self, name: str) -> HostTopology:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise UnknownHostError(f"host {name!r} is not in {self.source} (hosts: {known})")

    def guests_on(self, name: str) -> tuple[PlacedGuest, ...]:
        return tuple(g for g in self.guests if g.host == name)


def _cpu_set(raw: Obj, key: str) -> frozenset[int] | None:
    node = raw.opt(key)
    if node is None:
        return None
    if not isinstance(node.value, str):
        node.expected("a CPU list string like '2-19,22-39'")
    try:
        return CpuSet.parse(node.text(max_chars=MAX_SPEC_CHARS), field=node.path)
    except ParseError as exc:
        raise ParseError(str(exc), source=node.ctx.source) from None


def _reserved_pages(raw: Obj) -> dict[tuple[int, int], int]:
    out: dict[tuple[int, int], int] = {}
    node = raw.opt("reserved_huge_pages")
    for item in [] if node is None else node.items(max_items=MAX_NUMA_NODES * 8):
        if not isinstance(item.value, dict):
            item.expected("{'node': N, 'size_kib': KiB, 'count': N}")
        entry = item.obj()
        key = (
            entry.req("node").integer(maximum=MAX_NUMA_NODES - 1,
                                      why=f"NUMA node ids are below {MAX_NUMA_NODES}"),
            entry.req("size_kib").integer(minimum=1, maximum=MAX_PAGE_SIZE_KIB,
                                          why="the largest page size, 16 GiB"),
        )
        if key in out:
            item.fail(f"node {key[0]} size {key[1]} KiB is given twice")
        out[key] = entry.req("count").integer(maximum=MAX_PAGE_COUNT)
    return out


def _spec_value(node: Node) -> str:
    value = node.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return node.text(max_chars=MAX_SPEC_CHARS)


def _flavor(raw: Obj) -> Flavor:
    specs = raw.opt("extra_specs")
    return Flavor(
        raw.req("vcpus").integer(minimum=1, maximum=MAX_GUEST_VCPUS, why="QEMU's maximum vCPUs"),
        raw.req("memory_mib").integer(minimum=1, maximum=MAX_MEMORY_MIB, why="4 PiB"),
        {} if specs is None else {k: _spec_value(v) for k, v in specs.obj().items()},
        raw.get("name", lambda n: n.text(max_chars=255), ""),
    )


def _image_properties(node: Node) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in node.obj().items():
        if isinstance(value.value, dict | list):
            value.expected("a string, number or boolean")
        out[key] = value.value
    return out


def _place_guests(
    host: HostTopology, raw_guests: Node | None
) -> tuple[HostTopology, list[PlacedGuest]]:
    placed: list[PlacedGuest] = []
    items = [] if raw_guests is None else raw_guests.items(max_items=MAX_GUESTS_PER_HOST)
    for i, node in enumerate(items):
        if not isinstance(node.value, dict):
            node.expected("a guest object with 'vcpus', 'memory_mib' and optional "
                          "'extra_specs'")
        raw = node.obj()
        name = raw.get("name", lambda n: n.text(max_chars=255, one_line=True), f"guest-{i}")
        flavor = _flavor(raw)
        no_props: dict[str, object] = {}
        no_requests: tuple[PciRequest, ...] = ()
        requests = raw.get("pci_requests", pci_requests_from_node, no_requests)
        try:
            guest = guest_from_flavor(flavor, raw.get("image_properties", _image_properties,
                                                      no_props), requests)
        except InvalidRequestError as exc:
            node.fail(f"({name}): {exc.message}")
        result = fit_guest(host, guest)
        if result.placement is None:
            node.fail(f"({name}) does not fit on {host.name}: {result.summary}")
        held = result.pci_addresses
        host = add_guest(host, guest, result.placement, held)
        placed.append(PlacedGuest(name, host.name, guest, result.placement, held))
    return host, placed


def _bounded(node: Node, names: list[str],
             read_xml: Callable[[str], bytes]) -> Iterator[tuple[str, bytes]]:
    """The node-device files, each read once, refused past MAX_NODEDEV_BYTES in all."""
    total = 0
    for name in names:
        data = read_xml(name)
        total += len(data)
        if total > MAX_NODEDEV_BYTES:
            node.fail(f"the node-device files are more than {MAX_NODEDEV_BYTES // 2**20} MiB "
                      f"in all (at {name!r}); one device's XML is about 1 KiB")
        yield name, data


def _pci_devices(raw: Obj, read_xml: Callable[[str], bytes]) -> tuple[PciDevice, ...]:
    """The host's ``pci_devices`` (fit-case format) or its ``nodedevs`` XML files with
    ``physical_networks``; not both."""
    listed = raw.opt("pci_devices")
    files = raw.opt("nodedevs")
    nets_node = raw.opt("physical_networks")
    if listed is not None and files is not None:
        listed.fail("give either pci_devices or nodedevs, not both")
    if listed is not None:
        if nets_node is not None:
            nets_node.fail("goes with nodedevs (pci_devices name their physical_network)")
        return pci_devices_from_node(listed)
    if files is None:
        if nets_node is not None:
            nets_node.fail("goes with nodedevs (node-device XML files)")
        return ()
    # the inventory's reader of physical_networks, imported only for fleets that need it
    from numa_migrate.adapters.inventory import InventoryError, physical_networks_from

    names = [n.text(max_chars=4096, non_empty=True)
             for n in files.items(max_items=MAX_PCI_DEVICES)]
    functions = pci_functions_from_nodedevs(_bounded(files, names, read_xml))
    try:
        nets = physical_networks_from(nets_node.path if nets_node else "physical_networks",
                                  None if nets_node is None else nets_node.value)
    except InventoryError as exc:
        raise ParseError(str(exc), source=raw.node.ctx.source) from None
    return fit_devices(functions, nets=PhysNets(dict(nets)), busy={})


def _is_snapshot(data: bytes) -> bool:
    """A snapshot as numa-migrate writes it: its ``format`` field first."""
    return SNAPSHOT_START.match(data[:512]) is not None


def _load_snapshot(data: bytes, source: str) -> Fleet:
    from numa_migrate.adapters.snapshotload import fleet_from_snapshot

    doc = parse_json(data, source=source, bounds=SNAPSHOT_BOUNDS)
    return fleet_from_snapshot(root(doc, source=source), source=source)


def load_fleet(path: Path | None = None) -> Fleet:
    """Read a fleet file or a fleet snapshot (the bundled sample fleet when ``path`` is
    None)."""
    if path is None:
        base = resources.files("numa_migrate") / "data" / "fleet"
        data: bytes = (base / SAMPLE_FLEET).read_bytes()
        source = f"sample fleet ({SAMPLE_FLEET})"

        def read_xml(name: str) -> bytes:
            return (base / name).read_bytes()
    else:
        source = str(path)
        data = read_bytes(path, what="fleet file", max_bytes=MAX_SNAPSHOT_BYTES)
        if _is_snapshot(data):
            return _load_snapshot(data, source)
        if len(data) > MAX_FILE_BYTES:
            raise ParseError(f"fleet file is {len(data)} bytes, more than the "
                             f"{MAX_FILE_BYTES // 2**20} MiB allowed (only a fleet snapshot, "
                             f"written by `numa-migrate fleet snapshot`, may be larger)",
                             source=source)

        def read_xml(name: str) -> bytes:
            return read_bytes(path.parent / name, what="capabilities XML file",
                              max_bytes=MAX_XML_BYTES)

    doc = root(parse_json(data, source=source), source=source)
    if isinstance(doc.value, dict) and "format" in doc.value:
        return _load_snapshot(data, source)
    if not isinstance(doc.value, dict) or not isinstance(doc.value.get("hosts"), list):
        doc.fail("a fleet file is an object with a 'hosts' list")
    hosts: list[HostTopology] = []
    guests: list[PlacedGuest] = []
    inputs: list[HostInputs] = []
    for node in doc.obj().req("hosts").items(max_items=MAX_HOSTS):
        if not isinstance(node.value, dict) or not isinstance(node.value.get("name"), str):
            node.fail("needs a 'name'")
        raw = node.obj()
        name = raw.req("name").text(max_chars=255, non_empty=True, one_line=True)
        caps = raw.req("capabilities")
        if not isinstance(caps.value, str):
            node.fail("needs 'capabilities' (an XML file name)")
        caps_name = caps.text(max_chars=4096, non_empty=True)
        caps_xml = read_xml(caps_name)
        dedicated = _cpu_set(raw, "cpu_dedicated_set")
        shared = _cpu_set(raw, "cpu_shared_set")
        reserved = _reserved_pages(raw)
        host = host_from_capabilities(
            caps_xml,
            name=name,
            cpu_dedicated_set=dedicated,
            cpu_shared_set=shared,
            reserved_huge_pages=reserved,
            source=f"{source}: {caps_name}",
        )
        host = replace(host, pci_devices=_pci_devices(raw, read_xml))
        host, placed = _place_guests(host, raw.opt("guests"))
        hosts.append(host)
        guests.extend(placed)
        try:
            text = caps_xml.decode("utf-8")
        except UnicodeDecodeError:  # a snapshot then writes the host as a topology
            continue
        inputs.append(HostInputs(name, text, dedicated, shared,
                                 tuple(sorted((n, s, c) for (n, s), c in reserved.items()))))
    return Fleet(source, tuple(hosts), tuple(guests), inputs=tuple(inputs))

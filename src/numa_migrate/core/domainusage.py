"""What libvirt domains use on a host, from their live XML alone (pure: no libvirt, no I/O).

The rules, which are those of Nova's libvirt driver read backwards:

- a vCPU pinned to exactly one host CPU is *dedicated*: that CPU is pinned on the host cell
  it belongs to. Any other vCPU *floats* over its ``<vcpupin>`` set, else ``<vcpu cpuset>``,
  else the whole host;
- emulator threads are an *isolated* set (``hw:emulator_threads_policy=isolate``) when the
  domain has dedicated vCPUs and ``<emulatorpin>`` shares no CPU with any vCPU pin nor, on
  a host with a separate ``cpu_shared_set``, with the shared pool (that is where Nova puts
  them for ``share``). Isolated emulator CPUs are pinned too;
- each guest NUMA cell (``<cpu><numa><cell>``; without any, the whole guest is one cell)
  lives on the host node of its ``<memnode>``, else the single node of
  ``<numatune><memory nodeset>``, else the one host cell its vCPUs' pins lie in, else the
  one host cell ``<vcpu cpuset>`` lies in. Its floating vCPUs count as CPU usage there, its
  memory as memory usage, in pages of its ``<hugepages>`` size (``<page nodeset>`` names
  guest cells), or of the cell's smallest size without huge pages;
- a domain with no pins, no guest NUMA cells, no ``<numatune>`` and no huge pages has no
  NUMA placement: like a Nova instance without NUMA topology it uses no cell;
- PCI hostdevs (and ``<interface type='hostdev'>``) are in use by the domain.

What cannot be known from XML is said in notes: the ``isolate`` CPU thread policy (whole
SMT cores) is not recorded, so only the pinned CPUs themselves are counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from numa_migrate.adapters.domain import DomainInfo, declared_dedicated_vcpus
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.model.host import HostCell, HostTopology

_EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class CellUse:
    """What one domain uses in one host cell; ``pages`` is (page size KiB, count) pairs."""

    host_cell: int
    pinned: frozenset[int] = _EMPTY
    floating_vcpus: int = 0
    memory_mib: int = 0
    pages: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class DomainUsage:
    """One domain's footprint on a host.

    - ``dedicated``: vCPU -> the one host CPU it is pinned to;
    - ``floating``: vCPU -> the host CPUs it may run on (None: any host CPU);
    - ``emulator_isolated``: the isolated emulator CPUs (empty if the emulator is not
      isolated); ``guest_cells``: guest cell -> host cell (None: not known);
    - ``cells``: usage per host cell; ``devices``: PCI addresses of its hostdevs.
    """

    name: str
    uuid: str
    numa_placed: bool
    dedicated: Mapping[int, int]
    floating: Mapping[int, frozenset[int] | None]
    emulator_isolated: frozenset[int]
    guest_cells: Mapping[int, int | None]
    cells: tuple[CellUse, ...]
    devices: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def pinned_cpus(self) -> frozenset[int]:
        """Every host CPU this domain holds exclusively (dedicated vCPUs, isolated emulator)."""
        return frozenset(self.dedicated.values()) | self.emulator_isolated

    def floating_cpus(self, all_cpus: frozenset[int]) -> frozenset[int]:
        """The host CPUs its floating vCPUs may run on (``all_cpus`` for unrestricted ones)."""
        return frozenset().union(
            *((all_cpus if cpus is None else cpus) for cpus in self.floating.values())
        )


@dataclass(frozen=True)
class HostUsage:
    """A host with its domains' usage applied, the per-domain usage, and what was noticed.

    ``conflicts`` lists CPUs pinned by more than one domain and PCI devices given to more
    than one (a healthy host has none); ``devices_in_use`` maps PCI address -> domain names.
    """

    topology: HostTopology
    domains: tuple[DomainUsage, ...]
    devices_in_use: Mapping[str, tuple[str, ...]]
    conflicts: tuple[str, ...]
    notes: tuple[str, ...]


# --------------------------------------------------------------------------- one domain


def host_cpus(host: HostTopology) -> frozenset[int]:
    """Every CPU of the host that any pool or SMT group names."""
    return host.cpus


def cell_of_cpu(host: HostTopology, cpu: int) -> int | None:
    cell = host.cell_of(cpu)
    return None if cell is None else cell.id


def cells_of_cpus(host: HostTopology, cpus: Iterable[int]) -> frozenset[int]:
    """The host cells the CPUs lie in (CPUs the host does not have are ignored)."""
    return host.cells_of(cpus)


def dedicated_vcpus(info: DomainInfo) -> dict[int, int]:
    """vCPU -> host CPU for every dedicated vCPU: pinned to exactly one host CPU and, when
    the domain's numa-migrate metadata declares its request, declared dedicated by it."""
    declared = declared_dedicated_vcpus(info)
    return {vcpu: next(iter(cpus)) for vcpu, cpus in info.vcpupin
            if len(cpus) == 1 and (declared is None or vcpu in declared)}


def floating_vcpus(info: DomainInfo) -> dict[int, frozenset[int] | None]:
    """vCPU -> allowed host CPUs for every vCPU that is not dedicated (None: anywhere)."""
    pins = dict(info.vcpupin)
    dedicated = dedicated_vcpus(info)
    out: dict[int, frozenset[int] | None] = {}
    for vcpu in range(info.vcpus):
        cpus = pins.get(vcpu)
        if vcpu in dedicated:
            continue
        out[vcpu] = cpus if cpus is not None else info.vcpu_cpuset
    return out


def isolated_emulator(info: DomainInfo, host: HostTopology | None = None) -> frozenset[int]:
    """The emulator CPUs when they form an isolated set (see the module rules), else empty."""
    emulator = info.emulatorpin
    if not emulator or not dedicated_vcpus(info):
        return _EMPTY
    vcpu_cpus = frozenset().union(*(cpus for _, cpus in info.vcpupin))
    if emulator & vcpu_cpus:
        return _EMPTY
    if host is not None:
        for cell in host.cells:
            if not cell.legacy_pin_set and emulator & cell.cpuset:
                return _EMPTY  # emulator_threads_policy=share with a cpu_shared_set
    return frozenset(emulator)


def guest_cell_vcpus(info: DomainInfo) -> dict[int, frozenset[int]]:
    """Guest cell -> its vCPUs; vCPUs in no cell belong to the first (where QEMU puts them);
    without ``<cpu><numa>`` the whole guest is cell 0."""
    if not info.numa_cells:
        return {0: frozenset(range(info.vcpus))}
    loose = frozenset(range(info.vcpus)).difference(*(c.cpus for c in info.numa_cells))
    out = {c.id: c.cpus for c in info.numa_cells}
    first = info.numa_cells[0].id
    out[first] = out[first] | loose
    return out


def guest_cell_memory(info: DomainInfo) -> dict[int, int]:
    if not info.numa_cells:
        return {0: info.memory_mib}
    return {c.id: c.memory_mib for c in info.numa_cells}


def guest_cell_page_kib(info: DomainInfo) -> dict[int, int | None]:
    """Guest cell -> huge page size in KiB from ``<memoryBacking><hugepages>``.

    0 stands for ``<page>`` without a size (the host's default huge page size); a cell
    with no entry is missing from the result (ordinary pages).
    """
    out: dict[int, int | None] = {}
    cells = guest_cell_vcpus(info)
    for page in info.hugepages:
        size = page.size_kib or 0
        for cell in cells:
            if page.nodeset is None or cell in page.nodeset:
                out.setdefault(cell, size)
    return out


def is_numa_placed(info: DomainInfo) -> bool:
    """False for a domain Nova would call "without NUMA topology": nothing ties it to cells."""
    return bool(info.vcpupin or info.numa_cells or info.numatune or info.hugepages)


def _guest_cell_host(
    host: HostTopology, info: DomainInfo, cell: int, vcpus: frozenset[int], notes: list[str]
) -> int | None:
    known = host.cell_ids
    memnodes = {m.cell_id: m.nodeset for m in (info.numatune.memnodes if info.numatune else ())}
    pins = dict(info.vcpupin)
    pin_cells = cells_of_cpus(host, frozenset().union(*(pins.get(v, _EMPTY) for v in vcpus)))
    nodeset = memnodes.get(cell)
    if nodeset is None and info.numatune is not None and info.numatune.nodeset is not None:
        nodeset = info.numatune.nodeset
    if nodeset is not None:
        nodes = nodeset & known
        if len(nodes) == 1:
            return next(iter(nodes))
        if len(pin_cells & nodes) == 1 and pin_cells <= nodes:
            return next(iter(pin_cells))
        if not nodes:
            notes.append(
                f"{info.name}: guest cell {cell} is bound to host node "
                f"{CpuSet.of(nodeset)}, which the host does not have"
            )
            return None
    elif len(pin_cells) == 1:
        return next(iter(pin_cells))
    elif info.vcpu_cpuset is not None and not any(v in pins for v in vcpus):
        cpuset_cells = cells_of_cpus(host, info.vcpu_cpuset)
        if len(cpuset_cells) == 1:
            return next(iter(cpuset_cells))
    where = (
        f"numatune nodes {CpuSet.of(nodeset)}" if nodeset is not None
        else f"pins on host cells {CpuSet.of(pin_cells)}" if pin_cells
        else "no pin or numatune"
    )
    notes.append(
        f"{info.name}: guest cell {cell} is not tied to one host cell ({where}); its memory "
        "and floating vCPUs are not counted against a cell"
    )
    return None


def domain_usage(host: HostTopology, info: DomainInfo) -> DomainUsage:
    """The usage of one domain on ``host`` (which need not include it yet)."""
    notes: list[str] = []
    dedicated = dedicated_vcpus(info)
    floating = floating_vcpus(info)
    emulator = isolated_emulator(info, host)
    placed = is_numa_placed(info)
    pinned: dict[int, set[int]] = defaultdict(set)
    for cpu in sorted(frozenset(dedicated.values()) | emulator):
        cell = cell_of_cpu(host, cpu)
        if cell is None:
            notes.append(f"{info.name}: pinned to CPU {cpu}, which {host.name} does not have")
        else:
            pinned[cell].add(cpu)
    floating_count: dict[int, int] = defaultdict(int)
    memory: dict[int, int] = defaultdict(int)
    pages: dict[tuple[int, int], int] = defaultdict(int)
    guest_cells: dict[int, int | None] = {}
    if placed:
        sizes = guest_cell_page_kib(info)
        cell_memory = guest_cell_memory(info)
        for gcell, vcpus in sorted(guest_cell_vcpus(info).items()):
            hcell = _guest_cell_host(host, info, gcell, vcpus, notes)
            guest_cells[gcell] = hcell
            if hcell is None:
                continue
            floating_count[hcell] += sum(1 for v in vcpus if v in floating)
            mem = cell_memory.get(gcell, 0)
            memory[hcell] += mem
            size = _page_size(host.cell(hcell), info, gcell, sizes.get(gcell), notes)
            if size is not None:
                pages[(hcell, size)] += mem * 1024 // size
        _mode_notes(info, notes)
    elif info.vcpus:
        notes.append(
            f"{info.name}: no pins, guest NUMA cells, numatune or huge pages: no NUMA "
            "placement, counted against no cell (as Nova does)"
        )
    cells = []
    for host_cell in host.cells:
        cid = host_cell.id
        use = CellUse(
            host_cell=cid,
            pinned=frozenset(pinned.get(cid, ())),
            floating_vcpus=floating_count.get(cid, 0),
            memory_mib=memory.get(cid, 0),
            pages=tuple(sorted((size, n) for (c, size), n in pages.items() if c == cid)),
        )
        if use != CellUse(cid):
            cells.append(use)
    return DomainUsage(
        name=info.name,
        uuid=info.uuid,
        numa_placed=placed,
        dedicated=MappingProxyType(dedicated),
        floating=MappingProxyType(floating),
        emulator_isolated=emulator,
        guest_cells=MappingProxyType(guest_cells),
        cells=tuple(cells),
        devices=tuple(dev.address for dev in info.hostdevs),
        notes=tuple(notes),
    )


def _page_size(
    cell: HostCell, info: DomainInfo, gcell: int, size: int | None, notes: list[str]
) -> int | None:
    """The page size (KiB) guest cell ``gcell`` takes from host ``cell``; None: no pools."""
    if not cell.mempages:
        return None
    if size is None:
        return cell.smallest_page_kib
    if size == 0:
        huge = [p.size_kib for p in cell.mempages if p.size_kib != cell.smallest_page_kib]
        if not huge:
            notes.append(
                f"{info.name}: guest cell {gcell} wants huge pages of the default size but "
                f"host cell {cell.id} has none; not counted in pages"
            )
            return None
        notes.append(
            f"{info.name}: <hugepages> without a size: counted as {huge[0]} KiB pages (the "
            f"smallest huge page size of host cell {cell.id}; the kernel default may differ)"
        )
        return huge[0]
    if cell.page_pool(size) is None:
        notes.append(
            f"{info.name}: guest cell {gcell} uses {size} KiB pages, which host cell "
            f"{cell.id} does not have; not counted in pages"
        )
        return None
    return size


def _mode_notes(info: DomainInfo, notes: list[str]) -> None:
    if info.numatune is None:
        return
    loose = {info.numatune.mode} | {m.mode for m in info.numatune.memnodes}
    loose -= {"strict", "restrictive"}
    if loose:
        notes.append(
            f"{info.name}: numatune mode {', '.join(sorted(loose))}: memory counted on the "
            "named node, though the kernel may place it elsewhere"
        )


# --------------------------------------------------------------------------- whole host


def host_usage(host: HostTopology, domains: Iterable[DomainInfo]) -> HostUsage:
    """``host`` with the usage of every (running) domain in ``domains`` added.

    ``host`` is not changed; the result's topology is a new value. Pins two domains share
    and devices two domains hold are reported in ``conflicts`` (and counted once).
    """
    usages = tuple(domain_usage(host, info) for info in domains)
    notes = [n for u in usages for n in u.notes]
    conflicts: list[str] = []
    holders: dict[int, list[str]] = defaultdict(list)
    for usage in usages:
        for cpu in sorted(usage.pinned_cpus):
            holders[cpu].append(usage.name)
    for cpu, names in sorted(holders.items()):
        if len(names) > 1:
            conflicts.append(f"CPU {cpu} is pinned by {', '.join(names)}")
    devices: dict[str, list[str]] = defaultdict(list)
    for usage in usages:
        for address in usage.devices:
            devices[address].append(usage.name)
    for address, names in sorted(devices.items()):
        if len(names) > 1:
            conflicts.append(f"PCI device {address} is given to {', '.join(names)}")
    cells = []
    for cell in host.cells:
        uses = [u for usage in usages for u in usage.cells if u.host_cell == cell.id]
        page_use: dict[int, int] = defaultdict(int)
        for use in uses:
            for size, count in use.pages:
                page_use[size] += count
        updated = cell.with_usage(
            pinned=frozenset().union(*(u.pinned for u in uses)),
            cpu_usage=sum(u.floating_vcpus for u in uses),
            memory_mib=sum(u.memory_mib for u in uses),
            pages=tuple(sorted(page_use.items())),
        )
        for pool in updated.mempages:
            if pool.overcommitted:
                notes.append(
                    f"host cell {cell.id}: domains use {pool.used} pages of {pool.size_kib} KiB "
                    f"but the cell has {pool.total} ({pool.reserved} reserved)"
                )
        if updated.memory_usage_mib > updated.memory_mib:
            notes.append(
                f"host cell {cell.id}: domains use {updated.memory_usage_mib} MiB of its "
                f"{updated.memory_mib} MiB"
            )
        cells.append(updated)
    if any(c.threads_per_core > 1 for c in host.cells) and any(u.dedicated for u in usages):
        notes.append(
            "the CPU thread policy is not recorded in domain XML: SMT siblings of pinned CPUs "
            "are not counted as used (hw:cpu_thread_policy=isolate would hold them)"
        )
    return HostUsage(
        topology=replace(host, cells=tuple(cells)),
        domains=usages,
        devices_in_use=MappingProxyType({a: tuple(n) for a, n in sorted(devices.items())}),
        conflicts=tuple(conflicts),
        notes=tuple(notes),
    )

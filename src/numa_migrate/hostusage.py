"""What running domains use on a host (pure): pins, shared vCPUs, memory and pages per cell.

Input: the host topology (no usage yet) and the parsed live XML of every running domain.
Output: the topology with that usage added, and notes saying what had to be inferred.

- a vCPU pinned to exactly one host CPU is dedicated: that CPU is pinned on its cell;
- any other vCPU is shared: it counts once against the cell its guest cell's memory is
  bound to (``<memnode>``), else the first cell its pin set or ``<vcpu cpuset>`` touches;
  a vCPU free to run anywhere counts nowhere (noted);
- emulator threads pinned apart from every vCPU of a fully pinned guest are an isolated
  emulator set: those CPUs are pinned too;
- memory of each guest cell goes to its ``<memnode>`` node, else the single node of
  ``<numatune><memory nodeset>``, else the cell of its vCPUs' pins; with huge pages it is
  counted in pages of that size, otherwise in the cell's smallest pages (when the host
  reports page pools).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from numa_migrate.adapters.domain import DomainInfo
from numa_migrate.model.host import HostCell, HostTopology


def _cell_of_cpus(host: HostTopology, cpus: frozenset[int]) -> int | None:
    for cell in host.cells:
        if cpus & (cell.cpuset | cell.pcpuset | frozenset().union(*cell.siblings)):
            return cell.id
    return None


class _Acc:
    def __init__(self) -> None:
        self.pinned: dict[int, set[int]] = defaultdict(set)
        self.shared: dict[int, int] = defaultdict(int)
        self.memory: dict[int, int] = defaultdict(int)
        self.pages: dict[tuple[int, int], int] = defaultdict(int)


def _memory_cells(host: HostTopology, info: DomainInfo,
                  pins: dict[int, frozenset[int]]) -> list[tuple[int | None, int, frozenset[int]]]:
    """(host cell or None, MiB, vCPUs) per guest cell (one pseudo-cell without NUMA cells)."""
    memnodes = {m.cell_id: m.nodeset for m in (info.numatune.memnodes if info.numatune else ())}
    nodeset = info.numatune.nodeset if info.numatune else None
    cells = info.numa_cells or ()
    out: list[tuple[int | None, int, frozenset[int]]] = []
    groups = [(c.id, c.memory_mib, c.cpus) for c in cells] or [
        (0, info.memory_mib, frozenset(range(info.vcpus)))]
    for gid, mem, vcpus in groups:
        node: int | None = None
        if gid in memnodes and len(memnodes[gid]) == 1:
            node = next(iter(memnodes[gid]))
        elif nodeset is not None and len(nodeset) == 1:
            node = next(iter(nodeset))
        else:
            pinned = frozenset().union(*(pins[v] for v in vcpus if v in pins))
            node = _cell_of_cpus(host, pinned) if pinned else None
        out.append((node, mem, vcpus))
    return out


def _add_domain(host: HostTopology, info: DomainInfo, acc: _Acc, notes: list[str]) -> None:
    pins = dict(info.vcpupin)
    known = {c.id for c in host.cells}
    huge = {p.size_kib for p in info.hugepages}
    page_kib = next(iter(huge)) if len(huge) == 1 else None
    cell_of_vcpu: dict[int, int | None] = {}
    for node, mem, vcpus in _memory_cells(host, info, pins):
        if node is None or node not in known:
            notes.append(f"{info.name}: {mem} MiB of memory not bound to a host cell of "
                         f"{host.name}; not counted against any cell")
        else:
            acc.memory[node] += mem
            host_cell = host.cell(node)
            size = page_kib if page_kib else host_cell.smallest_page_kib
            if size and host_cell.page_pool(size) is not None:
                acc.pages[(node, size)] += mem * 1024 // size
        for v in vcpus:
            cell_of_vcpu[v] = node
    dedicated: set[int] = set()
    for vcpu in range(info.vcpus):
        cpus = pins.get(vcpu)
        if cpus is not None and len(cpus) == 1:
            cpu = next(iter(cpus))
            pin_cell = _cell_of_cpus(host, cpus)
            if pin_cell is None:
                notes.append(f"{info.name}: vCPU {vcpu} is pinned to CPU {cpu}, which "
                             f"{host.name} does not have")
                continue
            acc.pinned[pin_cell].add(cpu)
            dedicated.add(cpu)
            continue
        where = cell_of_vcpu.get(vcpu)
        if where is None:
            where = _cell_of_cpus(host, cpus or info.vcpu_cpuset or frozenset())
        if where is None:
            notes.append(f"{info.name}: vCPU {vcpu} floats over the whole host; not counted "
                         "against a cell")
            continue
        acc.shared[where] += 1
    emulator = info.emulatorpin
    if emulator and dedicated and len(dedicated) == info.vcpus and not emulator & dedicated:
        emu_cell = _cell_of_cpus(host, emulator)
        if emu_cell is not None:
            acc.pinned[emu_cell] |= emulator


def usage_from_domains(
    host: HostTopology, domains: Iterable[DomainInfo]
) -> tuple[HostTopology, tuple[str, ...]]:
    """``host`` with the usage of ``domains`` added, and notes on what was inferred."""
    acc = _Acc()
    notes: list[str] = []
    for info in domains:
        _add_domain(host, info, acc, notes)
    cells: list[HostCell] = []
    for cell in host.cells:
        cells.append(cell.with_usage(
            pinned=frozenset(acc.pinned.get(cell.id, ())),
            cpu_usage=acc.shared.get(cell.id, 0),
            memory_mib=acc.memory.get(cell.id, 0),
            pages=tuple((size, n) for (cid, size), n in sorted(acc.pages.items())
                        if cid == cell.id),
        ))
    return HostTopology(host.name, tuple(cells), host.labels), tuple(notes)

"""Who holds what in each host cell: the model the fleet's pictures are drawn from.

Per host cell: every CPU with its owner (the guest pinned there) or its state (free in the
dedicated pool, in the shared pool, reserved for the host, or pinned by no guest of the
fleet), in SMT order (a core's threads side by side); every page pool split into pages per
guest, pages used by no guest of the fleet, reserved and free; the memory per guest; the
floating (shared) vCPUs per guest. The guests' shares are counted by the same rules as the
usage accounting (:mod:`numa_migrate.core.usage`), so on a consistent fleet they add up to the
cell's own used counts and the "other" counts are 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from numa_migrate.core.drain.state import FleetGuest, FleetState
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.usage import cell_pages, cell_pins

__all__ = ["CellOccupancy", "CpuSlot", "CpuState", "HostOccupancy", "PageUse",
           "fleet_occupancy", "host_occupancy"]


class CpuState(StrEnum):
    GUEST = "guest"
    """Pinned by a guest of the fleet (``CpuSlot.owner`` names it)."""
    FREE = "free"
    """In the dedicated pool, not pinned."""
    SHARED = "shared"
    """In the shared pool only (floating guests run there)."""
    RESERVED = "reserved"
    """In neither pool: the host's own."""
    OTHER = "other"
    """Pinned, but by no guest of the fleet."""


@dataclass(frozen=True, slots=True)
class CpuSlot:
    cpu: int
    state: CpuState
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class PageUse:
    """One page pool of a cell: pages per guest, used by no known guest, reserved, free."""

    size_kib: int
    total: int
    reserved: int
    free: int
    by_guest: tuple[tuple[str, int], ...]
    other: int

    @property
    def used(self) -> int:
        return sum(n for _, n in self.by_guest) + self.other


@dataclass(frozen=True, slots=True)
class CellOccupancy:
    id: int
    cpus: tuple[CpuSlot, ...]
    """Every CPU of the cell, core by core (SMT siblings adjacent)."""
    cores: tuple[tuple[int, ...], ...]
    """The CPU ids of each core (SMT group), in the order of ``cpus``."""
    pages: tuple[PageUse, ...]
    memory_mib: int
    memory_by_guest: tuple[tuple[str, int], ...]
    memory_other_mib: int
    floating: tuple[tuple[str, int], ...]
    """Floating (shared) vCPUs per guest placed on this cell."""
    floating_other: int

    @property
    def memory_used_mib(self) -> int:
        return sum(n for _, n in self.memory_by_guest) + self.memory_other_mib

    def count(self, state: CpuState, owner: str | None = None) -> int:
        return sum(1 for s in self.cpus if s.state is state
                   and (owner is None or s.owner == owner))

    @property
    def guests(self) -> tuple[str, ...]:
        """Every guest with a share of this cell, in order of first appearance."""
        names = [s.owner for s in self.cpus if s.owner is not None]
        names += [g for g, _ in self.memory_by_guest]
        names += [g for g, _ in self.floating]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class HostOccupancy:
    name: str
    cells: tuple[CellOccupancy, ...]
    guests: tuple[str, ...]
    """The guests on the host (with or without a NUMA placement), in fleet order."""
    devices_total: int
    devices_free: int
    devices_by_guest: tuple[tuple[str, int], ...]


def _cell(cell: HostCell, guests: Iterable[FleetGuest]) -> CellOccupancy:
    owner: dict[int, str] = {}
    pages: dict[int, dict[str, int]] = {}
    memory: dict[str, int] = {}
    floating: dict[str, int] = {}
    for g in guests:
        numa = g.guest.numa
        if numa is None:
            continue
        first = g.placement.cells[0].host_cell if g.placement.cells else None
        for placed in g.placement.cells:
            if placed.host_cell != cell.id:
                continue
            emulator = (g.placement.emulator_pins or frozenset()) if cell.id == first \
                else frozenset()
            for cpu in cell_pins(cell, numa, placed, frozenset(emulator)):
                owner.setdefault(cpu, g.name)
            taken = cell_pages(cell, placed)
            if taken is not None:
                per = pages.setdefault(taken[0], {})
                per[g.name] = per.get(g.name, 0) + taken[1]
            memory[g.name] = memory.get(g.name, 0) + placed.memory_mib
            shared = len(numa.cells[placed.guest_cell].shared_vcpus)
            if shared:
                floating[g.name] = floating.get(g.name, 0) + shared
    slots: list[CpuSlot] = []
    cores: list[tuple[int, ...]] = []
    for core in cell.siblings:
        ids = tuple(sorted(core))
        cores.append(ids)
        for cpu in ids:
            slots.append(_slot(cell, cpu, owner.get(cpu)))
    pools = []
    for pool in cell.mempages:
        per = pages.get(pool.size_kib, {})
        pools.append(PageUse(pool.size_kib, pool.total, pool.reserved, pool.free,
                             tuple(per.items()), max(0, pool.used - sum(per.values()))))
    return CellOccupancy(
        cell.id, tuple(slots), tuple(cores), tuple(pools), cell.memory_mib,
        tuple(memory.items()), max(0, cell.memory_usage_mib - sum(memory.values())),
        tuple(floating.items()), max(0, cell.cpu_usage - sum(floating.values())))


def _slot(cell: HostCell, cpu: int, owner: str | None) -> CpuSlot:
    if cpu in cell.pinned_cpus:
        if owner is not None:
            return CpuSlot(cpu, CpuState.GUEST, owner)
        return CpuSlot(cpu, CpuState.OTHER)
    if cpu in cell.pcpuset:
        return CpuSlot(cpu, CpuState.FREE)
    if cpu in cell.cpuset:
        return CpuSlot(cpu, CpuState.SHARED)
    return CpuSlot(cpu, CpuState.RESERVED)


def host_occupancy(host: HostTopology, guests: Iterable[FleetGuest]) -> HostOccupancy:
    """Who holds what on ``host``, given the guests that run there."""
    mine = tuple(guests)
    devices: dict[str, int] = {}
    for g in mine:
        if g.pci_devices:
            devices[g.name] = len(g.pci_devices)
    return HostOccupancy(
        host.name, tuple(_cell(c, mine) for c in host.cells), tuple(g.name for g in mine),
        len(host.pci_devices), sum(1 for d in host.pci_devices if not d.allocated),
        tuple(devices.items()))


def fleet_occupancy(state: FleetState, hosts: Iterable[str] | None = None
                    ) -> tuple[HostOccupancy, ...]:
    """Who holds what on each host of ``hosts`` (default: every host, in fleet order)."""
    on: dict[str, list[FleetGuest]] = {}
    for g in state.guests:
        on.setdefault(g.host, []).append(g)
    names = [h.name for h in state.hosts] if hosts is None else list(dict.fromkeys(hosts))
    return tuple(host_occupancy(state.host(n), on.get(n, ())) for n in names)

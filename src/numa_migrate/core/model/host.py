"""Host NUMA topology: cells, CPU pools, SMT siblings, memory and page pools, current usage.

Units are in the names: ``*_mib`` for memory, ``size_kib`` for page sizes, page counts are
plain counts. All types are frozen; "changing" usage returns a new object.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property

from numa_migrate.core.cpuset import EMPTY, CpuSet
from numa_migrate.core.model.pcidev import PciDevice


@dataclass(frozen=True, slots=True)
class PagePool:
    """Pages of one size in one host cell. ``total``/``used``/``reserved`` are page counts."""

    size_kib: int
    total: int
    used: int = 0
    reserved: int = 0

    @property
    def free(self) -> int:
        """Pages a new guest can have: never below 0, even when the pages in use and the
        reserved pages overlap (guests placed before a reservation was configured)."""
        return max(0, self.total - self.used - self.reserved)

    @property
    def overcommitted(self) -> int:
        """Pages in use beyond what the reservation leaves (0 on a consistent host)."""
        return max(0, self.used + self.reserved - self.total)

    @property
    def free_kib(self) -> int:
        return self.free * self.size_kib

    @property
    def total_kib(self) -> int:
        return self.total * self.size_kib


def normalise_siblings(
    groups: Iterable[Iterable[int]], cpus: Iterable[int]
) -> tuple[CpuSet, ...]:
    """SMT groups covering every CPU once: given groups first (in order), then singletons.

    A CPU that appears in no group has no SMT sibling; empty groups are dropped and a CPU
    listed twice stays in its first group.
    """
    seen: set[int] = set()
    out: list[CpuSet] = []
    for group in groups:
        g = CpuSet(group) - seen
        if g:
            out.append(g)
            seen |= g
    out.extend(CpuSet({cpu}) for cpu in sorted(set(cpus) - seen))
    return tuple(out)


@dataclass(frozen=True)
class HostCell:
    """One host NUMA cell with the usage of the guests already on it.

    ``cpuset`` holds CPUs for floating (shared) guests, ``pcpuset`` CPUs for pinned
    (dedicated) guests; in legacy ``vcpu_pin_set`` style data the two are equal.
    ``siblings`` always covers every CPU of the cell (see :func:`normalise_siblings`).
    """

    id: int
    cpuset: frozenset[int]
    pcpuset: frozenset[int]
    memory_mib: int
    siblings: tuple[frozenset[int], ...] = ()
    memory_usage_mib: int = 0
    cpu_usage: int = 0
    pinned_cpus: frozenset[int] = EMPTY
    mempages: tuple[PagePool, ...] = ()
    socket: int | None = None
    """The CPU socket the cell is on (Nova's ``NUMACell.socket``; None: not known)."""

    def __post_init__(self) -> None:
        for name in ("cpuset", "pcpuset", "pinned_cpus"):
            value = getattr(self, name)
            if not isinstance(value, CpuSet):
                object.__setattr__(self, name, CpuSet(value))
        covered = frozenset().union(*self.siblings) if self.siblings else frozenset()
        if not (self.cpuset | self.pcpuset) <= covered:
            object.__setattr__(
                self, "siblings", normalise_siblings(self.siblings, self.cpuset | self.pcpuset)
            )
        elif not all(isinstance(g, CpuSet) for g in self.siblings):
            object.__setattr__(self, "siblings", tuple(CpuSet.of(g) for g in self.siblings))
        object.__setattr__(self, "mempages", tuple(sorted(self.mempages, key=lambda p: p.size_kib)))

    @cached_property
    def cpus(self) -> CpuSet:
        """Every CPU of the cell that a pool or an SMT group names."""
        return CpuSet(self.cpuset.union(self.pcpuset, *self.siblings))

    def has_cpu(self, cpu: int) -> bool:
        return cpu in self.cpus

    @cached_property
    def free_pcpus(self) -> frozenset[int]:
        return self.pcpuset - self.pinned_cpus

    @property
    def avail_memory_mib(self) -> int:
        return self.memory_mib - self.memory_usage_mib

    @cached_property
    def threads_per_core(self) -> int:
        return max((len(g) for g in self.siblings), default=1) or 1

    @cached_property
    def free_sibling_groups(self) -> tuple[tuple[int, ...], ...]:
        """Free dedicated CPUs of each SMT group, in group order, ids ascending; empties kept."""
        free = self.free_pcpus
        # frozenset's own intersection: no CpuSet is built for each group (start-up cost)
        return tuple(tuple(sorted(frozenset.intersection(free, g))) for g in self.siblings)

    @property
    def legacy_pin_set(self) -> bool:
        """True for ``vcpu_pin_set``-style data, where shared and dedicated sets are one."""
        return self.cpuset == self.pcpuset

    def page_pool(self, size_kib: int) -> PagePool | None:
        for pool in self.mempages:
            if pool.size_kib == size_kib:
                return pool
        return None

    @property
    def smallest_page_kib(self) -> int | None:
        return self.mempages[0].size_kib if self.mempages else None

    def free_pages(self, size_kib: int) -> int:
        """Free pages of ``size_kib`` in this cell (0 when the cell has no such pool)."""
        pool = self.page_pool(size_kib)
        return pool.free if pool is not None else 0

    def core_of(self, cpu: int) -> CpuSet:
        """The SMT group (thread siblings) ``cpu`` belongs to, itself included."""
        for group in self.siblings:
            if cpu in group:
                return CpuSet.of(group)
        return CpuSet({cpu})

    def with_usage(
        self,
        *,
        pinned: frozenset[int] = frozenset(),
        cpu_usage: int = 0,
        memory_mib: int = 0,
        pages: tuple[tuple[int, int], ...] = (),
    ) -> HostCell:
        """A copy with more usage added (negative numbers release usage)."""
        pools = []
        for pool in self.mempages:
            delta = sum(n for size, n in pages if size == pool.size_kib)
            pools.append(replace(pool, used=max(0, pool.used + delta)))
        return replace(
            self,
            pinned_cpus=self.pinned_cpus | pinned,
            cpu_usage=self.cpu_usage + cpu_usage,
            memory_usage_mib=self.memory_usage_mib + memory_mib,
            mempages=tuple(pools),
        )


@dataclass(frozen=True)
class HostTopology:
    """A host: a name, its NUMA cells (in the order the source listed them), its PCI devices."""

    name: str
    cells: tuple[HostCell, ...]
    labels: tuple[tuple[str, str], ...] = field(default=())
    pci_devices: tuple[PciDevice, ...] = field(default=())
    """Assignable PCI functions (VFs, PFs, whole devices), free or held by a guest."""

    def cell(self, cell_id: int) -> HostCell:
        """The cell with id ``cell_id``; ``KeyError`` when the host has none."""
        found = self.find_cell(cell_id)
        if found is None:
            raise KeyError(cell_id)
        return found

    def find_cell(self, cell_id: int) -> HostCell | None:
        for c in self.cells:
            if c.id == cell_id:
                return c
        return None

    @cached_property
    def cell_ids(self) -> frozenset[int]:
        return frozenset(c.id for c in self.cells)

    @cached_property
    def cpus(self) -> CpuSet:
        """Every CPU of the host that any pool or SMT group names."""
        return CpuSet(frozenset().union(*(c.cpus for c in self.cells)))

    @cached_property
    def shared_cpus(self) -> CpuSet:
        """The host's shared pool (``cpu_shared_set``; every CPU in legacy data)."""
        return CpuSet(frozenset().union(*(c.cpuset for c in self.cells)))

    @cached_property
    def dedicated_cpus(self) -> CpuSet:
        """The host's dedicated pool (``cpu_dedicated_set``; every CPU in legacy data)."""
        return CpuSet(frozenset().union(*(c.pcpuset for c in self.cells)))

    @cached_property
    def pinned_cpus(self) -> CpuSet:
        return CpuSet(frozenset().union(*(c.pinned_cpus for c in self.cells)))

    @cached_property
    def _cell_by_cpu(self) -> dict[int, HostCell]:
        out: dict[int, HostCell] = {}
        for c in self.cells:
            for cpu in c.cpus:
                out.setdefault(cpu, c)
        return out

    def cell_of(self, cpu: int) -> HostCell | None:
        """The cell ``cpu`` lies in, or ``None`` when the host has no such CPU."""
        return self._cell_by_cpu.get(cpu)

    def cells_of(self, cpus: Iterable[int]) -> frozenset[int]:
        """Ids of the cells the CPUs lie in (CPUs the host does not have are ignored)."""
        by_cpu = self._cell_by_cpu
        return frozenset(by_cpu[cpu].id for cpu in cpus if cpu in by_cpu)

    def siblings_of(self, cpu: int) -> CpuSet:
        """The thread siblings of ``cpu`` (itself included; just itself if unknown)."""
        cell = self.cell_of(cpu)
        return cell.core_of(cpu) if cell is not None else CpuSet({cpu})

    def page_pool(self, cell_id: int, size_kib: int) -> PagePool | None:
        """The pool of ``size_kib`` pages of cell ``cell_id``, if the host has one."""
        cell = self.find_cell(cell_id)
        return cell.page_pool(size_kib) if cell is not None else None

    def free_pages(self, size_kib: int) -> dict[int, int]:
        """Free pages of ``size_kib`` per cell id (cells without such a pool are left out)."""
        return {
            c.id: pool.free
            for c in self.cells
            if (pool := c.page_pool(size_kib)) is not None
        }

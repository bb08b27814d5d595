"""Host NUMA topology: cells, CPU pools, SMT siblings, memory and page pools, current usage.

Units are in the names: ``*_mib`` for memory, ``size_kib`` for page sizes, page counts are
plain counts. All types are frozen; "changing" usage returns a new object.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property


@dataclass(frozen=True, slots=True)
class PagePool:
    """Pages of one size in one host cell. ``total``/``used``/``reserved`` are page counts."""

    size_kib: int
    total: int
    used: int = 0
    reserved: int = 0

    @property
    def free(self) -> int:
        return self.total - self.used - self.reserved

    @property
    def free_kib(self) -> int:
        return self.free * self.size_kib

    @property
    def total_kib(self) -> int:
        return self.total * self.size_kib


def normalise_siblings(
    groups: Iterable[Iterable[int]], cpus: Iterable[int]
) -> tuple[frozenset[int], ...]:
    """SMT groups covering every CPU once: given groups first (in order), then singletons.

    A CPU that appears in no group has no SMT sibling; empty groups are dropped and a CPU
    listed twice stays in its first group.
    """
    seen: set[int] = set()
    out: list[frozenset[int]] = []
    for group in groups:
        g = frozenset(group) - seen
        if g:
            out.append(g)
            seen |= g
    out.extend(frozenset({cpu}) for cpu in sorted(set(cpus) - seen))
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
    pinned_cpus: frozenset[int] = frozenset()
    mempages: tuple[PagePool, ...] = ()

    def __post_init__(self) -> None:
        covered = frozenset().union(*self.siblings) if self.siblings else frozenset()
        if not (self.cpuset | self.pcpuset) <= covered:
            object.__setattr__(
                self, "siblings", normalise_siblings(self.siblings, self.cpuset | self.pcpuset)
            )
        object.__setattr__(self, "mempages", tuple(sorted(self.mempages, key=lambda p: p.size_kib)))

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
        return tuple(tuple(sorted(g & free)) for g in self.siblings)

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

    def core_of(self, cpu: int) -> frozenset[int]:
        for group in self.siblings:
            if cpu in group:
                return group
        return frozenset({cpu})

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
    """A host: a name and its NUMA cells (in the order the source listed them)."""

    name: str
    cells: tuple[HostCell, ...]
    labels: tuple[tuple[str, str], ...] = field(default=())

    def cell(self, cell_id: int) -> HostCell:
        for c in self.cells:
            if c.id == cell_id:
                return c
        raise KeyError(cell_id)

"""Where a guest goes: per guest cell, the host cell, the page size and the CPU pins."""

from __future__ import annotations

from dataclasses import dataclass

from numa_migrate.core.cpuset import CpuSet


@dataclass(frozen=True, slots=True)
class CellPlacement:
    guest_cell: int
    host_cell: int
    vcpus: frozenset[int]
    memory_mib: int
    pagesize_kib: int | None
    pinning: tuple[tuple[int, int], ...] | None
    """(guest vCPU, host CPU) pairs for every dedicated vCPU, sorted by vCPU; None if none."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "vcpus", CpuSet.of(self.vcpus))

    def pinning_map(self) -> dict[int, int]:
        return dict(self.pinning or ())


@dataclass(frozen=True, slots=True)
class Placement:
    cells: tuple[CellPlacement, ...]
    emulator_pins: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if self.emulator_pins is not None:
            object.__setattr__(self, "emulator_pins", CpuSet.of(self.emulator_pins))

    def pinned_host_cpus(self) -> CpuSet:
        out: set[int] = set()
        for cell in self.cells:
            out.update(p for _, p in cell.pinning or ())
        return CpuSet(out)

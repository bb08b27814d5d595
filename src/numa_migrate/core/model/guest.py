"""What a guest asks for: its NUMA cells, CPU policies and page size (Nova's rules)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.model.pcidev import PciRequest


class CPUPolicy(StrEnum):
    SHARED = "shared"
    DEDICATED = "dedicated"
    MIXED = "mixed"


class ThreadPolicy(StrEnum):
    PREFER = "prefer"
    ISOLATE = "isolate"
    REQUIRE = "require"


class EmulatorPolicy(StrEnum):
    SHARE = "share"
    ISOLATE = "isolate"


class PageSizeKind(Enum):
    SMALL = "small"
    LARGE = "large"
    ANY = "any"
    EXPLICIT = "explicit"


@dataclass(frozen=True, slots=True)
class PageSizeRequest:
    """``small``/``large``/``any`` or an explicit size in KiB (``hw:mem_page_size``)."""

    kind: PageSizeKind
    size_kib: float | None = None

    @classmethod
    def explicit(cls, size_kib: float) -> PageSizeRequest:
        return cls(PageSizeKind.EXPLICIT, size_kib)

    def __str__(self) -> str:
        if self.kind is PageSizeKind.EXPLICIT:
            return describe_page_size(self.size_kib or 0)
        return str(self.kind.value)


def describe_page_size(size_kib: float) -> str:
    if size_kib >= 1048576 and size_kib % 1048576 == 0:
        return f"{int(size_kib // 1048576)} GiB"
    if size_kib >= 1024 and size_kib % 1024 == 0:
        return f"{int(size_kib // 1024)} MiB"
    return f"{size_kib:g} KiB"


@dataclass(frozen=True, slots=True)
class GuestCell:
    """One guest NUMA cell: its shared and dedicated vCPUs and its memory."""

    index: int
    shared_vcpus: frozenset[int]
    dedicated_vcpus: frozenset[int]
    memory_mib: int

    def __post_init__(self) -> None:
        # typed frozenset[int] so that callers may pass any frozenset; held as a CpuSet
        object.__setattr__(self, "shared_vcpus", CpuSet.of(self.shared_vcpus))
        object.__setattr__(self, "dedicated_vcpus", CpuSet.of(self.dedicated_vcpus))

    @property
    def vcpus(self) -> frozenset[int]:
        return self.shared_vcpus | self.dedicated_vcpus


@dataclass(frozen=True, slots=True)
class GuestRequest:
    """A guest's NUMA topology request (Nova's ``InstanceNUMATopology`` before fitting).

    ``cpu_policy`` None means no policy was given (behaves as shared).
    """

    cells: tuple[GuestCell, ...]
    cpu_policy: CPUPolicy | None = None
    thread_policy: ThreadPolicy | None = None
    emulator_policy: EmulatorPolicy | None = None
    page_size: PageSizeRequest | None = None
    realtime_vcpus: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if self.realtime_vcpus is not None:
            object.__setattr__(self, "realtime_vcpus", CpuSet.of(self.realtime_vcpus))

    @property
    def emulator_isolated(self) -> bool:
        return self.emulator_policy is EmulatorPolicy.ISOLATE

    @property
    def pinned(self) -> bool:
        return self.cpu_policy in (CPUPolicy.DEDICATED, CPUPolicy.MIXED)

    @property
    def vcpu_count(self) -> int:
        return sum(len(c.vcpus) for c in self.cells)

    @property
    def memory_mib(self) -> int:
        return sum(c.memory_mib for c in self.cells)

    def describe(self) -> str:
        """Short human description: '4 dedicated vCPUs, isolate, 2 cells, 1 GiB pages'."""
        ded = sum(len(c.dedicated_vcpus) for c in self.cells)
        shr = sum(len(c.shared_vcpus) for c in self.cells)
        parts = []
        if ded:
            parts.append(f"{ded} dedicated vCPU{'s' if ded != 1 else ''}")
        if shr:
            parts.append(f"{shr} shared vCPU{'s' if shr != 1 else ''}")
        parts.append(f"{self.memory_mib} MiB")
        if self.thread_policy:
            parts.append(self.thread_policy.value)
        if self.emulator_isolated:
            parts.append("isolated emulator threads")
        parts.append(f"{len(self.cells)} cell{'s' if len(self.cells) != 1 else ''}")
        if self.page_size:
            parts.append(f"{self.page_size} pages")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Guest:
    """A flavor-sized guest: vCPU count, memory and its NUMA request (None: no NUMA need)."""

    vcpus: int
    memory_mib: int
    numa: GuestRequest | None
    name: str = "guest"
    pci_requests: tuple[PciRequest, ...] = ()
    """PCI devices the guest needs (SR-IOV ports, flavor aliases), each with its policy."""

"""What a libvirt domain runs with: the values read from a domain XML (pure, no XML here).

:class:`DomainInfo` holds a domain's pins, NUMA tuning, guest NUMA cells, huge pages, PCI
devices and metadata as host CPU / host node ids; the XML parser that builds it is
:func:`numa_migrate.adapters.domain.domain_from_xml`.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """The extra specs of numa-migrate's guest metadata (``<nm:guest>``, see
    :data:`numa_migrate.adapters.domain.NM_NAMESPACE`); None: there is none."""

    @property
    def nova_managed(self) -> bool:
        return self.nova is not None

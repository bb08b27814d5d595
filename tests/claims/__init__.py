"""Tests of the claims store, and small builders they share (hosts, requests, placements)."""

from __future__ import annotations

from collections.abc import Sequence

from numa_migrate.core.model.guest import CPUPolicy, GuestCell, GuestRequest, PageSizeRequest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import CellPlacement, Placement
from tests.topologies import host, smt_cell

PAGE_2M = 2048


def lab_host(
    name: str = "lab-dst",
    *,
    pages_2m: int = 2048,
    pinned: Sequence[int] = (),
    used_2m: int = 0,
    shared_cores: int = 0,
) -> HostTopology:
    """2 cells x 4 cores x 2 threads (cell 0: CPUs 0-7, cell 1: CPUs 8-15), 2 MiB pages."""
    pins = frozenset(pinned)
    return host(
        smt_cell(
            0,
            4,
            pages_2m=pages_2m,
            used_2m=used_2m,
            shared_cores=shared_cores,
            pinned=frozenset(p for p in pins if p < 8),
        ),
        smt_cell(
            1,
            4,
            first_cpu=8,
            pages_2m=pages_2m,
            used_2m=used_2m,
            shared_cores=shared_cores,
            pinned=frozenset(p for p in pins if p >= 8),
        ),
        name=name,
    )


def pinned_request(vcpus: int, memory_mib: int, *, page_kib: int | None = PAGE_2M) -> GuestRequest:
    """One guest cell with ``vcpus`` dedicated vCPUs (and explicit pages unless None)."""
    return GuestRequest(
        cells=(GuestCell(0, frozenset(), frozenset(range(vcpus)), memory_mib),),
        cpu_policy=CPUPolicy.DEDICATED,
        page_size=PageSizeRequest.explicit(page_kib) if page_kib else None,
    )


def shared_request(vcpus: int, memory_mib: int, *, page_kib: int | None = None) -> GuestRequest:
    """One guest cell with ``vcpus`` floating (shared) vCPUs."""
    return GuestRequest(
        cells=(GuestCell(0, frozenset(range(vcpus)), frozenset(), memory_mib),),
        cpu_policy=CPUPolicy.SHARED,
        page_size=PageSizeRequest.explicit(page_kib) if page_kib else None,
    )


def pinned_placement(
    host_cell: int, cpus: Sequence[int], memory_mib: int, *, page_kib: int | None = PAGE_2M
) -> Placement:
    """Guest cell 0 on ``host_cell``, vCPU i pinned to ``cpus[i]``."""
    return Placement(
        (
            CellPlacement(
                guest_cell=0,
                host_cell=host_cell,
                vcpus=frozenset(range(len(cpus))),
                memory_mib=memory_mib,
                pagesize_kib=page_kib,
                pinning=tuple(enumerate(cpus)) or None,
            ),
        )
    )


def shared_placement(
    host_cell: int, vcpus: int, memory_mib: int, *, page_kib: int | None = None
) -> Placement:
    return Placement(
        (
            CellPlacement(
                guest_cell=0,
                host_cell=host_cell,
                vcpus=frozenset(range(vcpus)),
                memory_mib=memory_mib,
                pagesize_kib=page_kib,
                pinning=None,
            ),
        )
    )

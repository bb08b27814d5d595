"""Builders for host topologies used by table tests (no copy-pasted literals)."""

from __future__ import annotations

from numa_migrate.core.model.host import HostCell, HostTopology, PagePool


def smt_cell(
    cell_id: int, cores: int, *, threads: int = 2, first_cpu: int = 0, shared_cores: int = 0,
    legacy: bool = False, memory_mib: int = 16384, pages_2m: int = 0, pages_1g: int = 0,
    pinned: frozenset[int] = frozenset(), memory_usage_mib: int = 0, cpu_usage: int = 0,
    used_2m: int = 0, small_pages: bool = True,
) -> HostCell:
    """``cores`` cores of ``threads`` consecutive CPUs; the first ``shared_cores`` are shared."""
    groups = [frozenset(range(first_cpu + c * threads, first_cpu + (c + 1) * threads))
              for c in range(cores)]
    cpus = frozenset().union(*groups)
    shared = frozenset().union(*groups[:shared_cores]) if shared_cores else frozenset()
    huge_kib = pages_2m * 2048 + pages_1g * 1048576
    pools = [PagePool(4, (memory_mib * 1024 - huge_kib) // 4)] if small_pages else []
    if pages_2m:
        pools.append(PagePool(2048, pages_2m, used_2m))
    if pages_1g:
        pools.append(PagePool(1048576, pages_1g))
    return HostCell(
        id=cell_id, cpuset=cpus if legacy else shared, pcpuset=cpus if legacy else cpus - shared,
        memory_mib=memory_mib, siblings=tuple(groups), memory_usage_mib=memory_usage_mib,
        cpu_usage=cpu_usage, pinned_cpus=pinned, mempages=tuple(pools),
    )


def host(*cells: HostCell, name: str = "h") -> HostTopology:
    return HostTopology(name, tuple(cells))


def two_socket_smt(**kw: object) -> HostTopology:
    """2 cells x 4 cores x 2 threads, 1 shared core per cell."""
    return host(smt_cell(0, 4, shared_cores=1, **kw),  # type: ignore[arg-type]
                smt_cell(1, 4, first_cpu=8, shared_cores=1, **kw))  # type: ignore[arg-type]

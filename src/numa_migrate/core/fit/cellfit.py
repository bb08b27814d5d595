"""Fit one guest cell onto one host cell (Nova's per-cell rules), or say every reason why not.

The decision follows Nova 34's ``_numa_fit_instance_cell``: page size selection, memory
(free pages for pinned guests, total for floating ones), dedicated and shared CPU counts,
the thread policy, the emulator-thread reservation, and allocation ratios for shared CPUs.
Unlike Nova, nothing is mutated and every shortfall is reported, not just the first.

CPU choice inside the cell follows Nova's packing order (fullest free cores first, one thread
per core for ``isolate``), so that pins look like what Nova would choose.
"""

from __future__ import annotations

from dataclasses import dataclass

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.fit.reasons import Code, Reason, describe_pool, plural
from numa_migrate.core.model.guest import (
    CPUPolicy,
    GuestCell,
    GuestRequest,
    PageSizeKind,
    ThreadPolicy,
    describe_page_size,
)
from numa_migrate.core.model.host import HostCell
from numa_migrate.core.model.placement import CellPlacement


@dataclass(frozen=True, slots=True)
class Limits:
    """Allocation ratios (Nova's ``NUMATopologyLimits``), applied to shared vCPUs only."""

    cpu_allocation_ratio: float
    ram_allocation_ratio: float


@dataclass(frozen=True, slots=True)
class CellFit:
    """A guest cell's placement on a host cell, and the CPUs it reserves for emulators."""

    placement: CellPlacement
    emulator_pins: frozenset[int]


def page_size_for(
    host: HostCell, guest: GuestRequest, cell: GuestCell, current_kib: int | None
) -> tuple[float | None, list[Reason]]:
    """Page size Nova would choose for the cell; (None, reasons) when none fits."""
    assert guest.page_size is not None
    need_kib = cell.memory_mib * 1024
    sizes: list[float] = [p.size_kib for p in host.mempages]
    kind = guest.page_size.kind
    explicit: float | None = guest.page_size.size_kib
    if current_kib is not None:
        kind, explicit = PageSizeKind.EXPLICIT, current_kib
    if kind is PageSizeKind.SMALL:
        candidates: list[float] = sizes[:1]
    elif kind is PageSizeKind.LARGE:
        candidates = sorted(sizes[1:], reverse=True)
    elif kind is PageSizeKind.ANY:
        candidates = sorted(sizes, reverse=True)
    else:
        assert explicit is not None
        candidates = [explicit]
    reasons: list[Reason] = []
    for size in candidates:
        pool = next((p for p in host.mempages if p.size_kib == size), None)
        if pool is None:
            offered = ", ".join(describe_page_size(s) for s in sizes) or "none"
            reasons.append(
                Reason(
                    Code.PAGE_SIZE_MISSING,
                    f"no {describe_page_size(size)} pages (cell offers: {offered})",
                    host.id,
                    cell.index,
                    details=(("page_size_kib", size),),
                )
            )
            continue
        if need_kib % pool.size_kib:
            reasons.append(
                Reason(
                    Code.PAGES_NOT_DIVISIBLE,
                    f"{cell.memory_mib} MiB is not a whole number of "
                    f"{describe_page_size(pool.size_kib)} pages",
                    host.id,
                    cell.index,
                    details=(("page_size_kib", pool.size_kib),),
                )
            )
            continue
        if need_kib > pool.free_kib:
            need_pages = need_kib // pool.size_kib
            reasons.append(
                Reason(
                    Code.PAGES_SHORT,
                    f"needs {plural(need_pages, describe_page_size(pool.size_kib) + ' page')}, "
                    f"{describe_pool(pool.total, pool.used, pool.reserved)}",
                    host.id,
                    cell.index,
                    need=need_pages,
                    have=pool.free,
                    details=(("page_size_kib", pool.size_kib),),
                )
            )
            continue
        return size, []
    if not candidates:
        what = "huge page size" if kind is PageSizeKind.LARGE else "page size"
        reasons.append(
            Reason(
                Code.PAGE_SIZE_MISSING,
                f"no {what} offered for {guest.page_size} pages",
                host.id,
                cell.index,
            )
        )
    return None, reasons


def _memory_reasons(host: HostCell, guest: GuestRequest, cell: GuestCell) -> list[Reason]:
    """Memory check when no page size was requested."""
    pinned = guest.pinned
    if host.mempages:
        pool = host.mempages[0]
        need_kib = cell.memory_mib * 1024
        have_kib = pool.free_kib if pinned else pool.total_kib
        if need_kib <= have_kib and need_kib % pool.size_kib == 0:
            return []
        have_mib = have_kib // 1024
        what = "free" if pinned else "in total"
        return [
            Reason(
                Code.MEMORY_SHORT,
                f"needs {cell.memory_mib} MiB, {have_mib} MiB {what} in "
                f"{describe_page_size(pool.size_kib)} pages",
                host.id,
                cell.index,
                need=cell.memory_mib,
                have=have_mib,
            )
        ]
    have = host.avail_memory_mib if pinned else host.memory_mib
    if cell.memory_mib <= have:
        return []
    what = f"{have} of {host.memory_mib} MiB free" if pinned else f"cell has {have} MiB"
    return [
        Reason(
            Code.MEMORY_SHORT,
            f"needs {cell.memory_mib} MiB, {what}",
            host.id,
            cell.index,
            need=cell.memory_mib,
            have=have,
        )
    ]


def _first_free(groups: list[tuple[int, ...]], taken: set[int]) -> int | None:
    for group in groups:
        for cpu in group:
            if cpu not in taken:
                return cpu
    return None


def _pin(vcpus: frozenset[int], pcpus: list[int]) -> tuple[tuple[int, int], ...]:
    return tuple(zip(sorted(vcpus), pcpus, strict=False))


def _pack(
    host: HostCell, cell: GuestCell, policy: ThreadPolicy | None, reserve: int
) -> tuple[tuple[tuple[int, int], ...], frozenset[int]] | Reason:
    """Choose host CPUs for the cell's dedicated vCPUs; the pins and the emulator CPUs."""
    n = len(cell.dedicated_vcpus)
    groups = [g for g in host.free_sibling_groups if g]
    tpc = host.threads_per_core
    if n == 0 and (reserve or policy is ThreadPolicy.ISOLATE):
        # Nova derives the emulator CPU and the isolate reservation from the vCPU pins;
        # a guest cell with only shared vCPUs has none, so Nova never fits it here.
        what = "the emulator threads" if reserve else "the isolate policy"
        return Reason(
            Code.EMULATOR_NO_SPARE if reserve else Code.ISOLATE_NO_FREE_CORES,
            f"a guest cell without dedicated vCPUs cannot anchor {what} (Nova refuses)",
            host.id,
            cell.index,
        )

    if policy is ThreadPolicy.ISOLATE:
        whole = [g for g in groups if len(g) >= tpc]
        if not whole:
            return Reason(
                Code.ISOLATE_NO_FREE_CORES,
                f"isolate needs {plural(n, 'whole free core')}, none is free",
                host.id,
                cell.index,
                need=n,
                have=0,
            )
        if tpc > 1 and not host.legacy_pin_set:
            return Reason(
                Code.ISOLATE_SMT_DEDICATED_SET,
                "isolate cannot be met on an SMT host configured with cpu_dedicated_set "
                "(Nova 34 would have to reserve the siblings too; bug 1889633)",
                host.id,
                cell.index,
            )
        if len(whole) < n:
            return Reason(
                Code.ISOLATE_NO_FREE_CORES,
                f"isolate needs {plural(n, 'whole free core')}, {len(whole)} free",
                host.id,
                cell.index,
                need=n,
                have=len(whole),
            )
        used = whole[:n]
        pins = _pin(cell.dedicated_vcpus, [g[0] for g in used])
        rest = [g for g in groups if g not in used]
        # Nova takes the first free CPU outside the isolated cores, even on a core another
        # guest half uses, and then cannot claim its sibling (isolate pins whole cores): a
        # whole free core first, when there is one, keeps the same decision and claims cleanly
        whole_rest = [g for g in rest if len(g) >= tpc]
        emu = _first_free(whole_rest or rest, set()) if reserve else None
        if reserve and emu is None:
            return Reason(
                Code.EMULATOR_NO_SPARE,
                "no free CPU outside the isolated cores for the emulator threads",
                host.id,
                cell.index,
            )
        return pins, frozenset() if emu is None else frozenset({emu})

    if policy is ThreadPolicy.REQUIRE and tpc <= 1:
        return Reason(
            Code.REQUIRE_NO_SMT,
            "require needs SMT thread siblings; this cell has none",
            host.id,
            cell.index,
        )
    widest = max((len(g) for g in groups), default=0)
    for threads in range(widest, 0, -1):
        if policy is ThreadPolicy.REQUIRE and threads <= 1:
            break
        usable = [g for g in groups if len(g) >= threads]
        if threads * len(usable) < n:
            continue
        chosen = [cpu for g in usable for cpu in g[:threads]][:n]
        taken = set(chosen)
        emu = _first_free(groups, taken) if reserve else None
        if reserve and emu is None:
            continue
        return _pin(cell.dedicated_vcpus, chosen), (
            frozenset() if emu is None else frozenset({emu})
        )
    if policy is ThreadPolicy.REQUIRE:
        pairs = sum(len(g) // 2 * 2 for g in groups)
        return Reason(
            Code.REQUIRE_NO_SIBLINGS,
            f"require needs {plural(n, 'CPU')} on free thread siblings, {pairs} available",
            host.id,
            cell.index,
            need=n,
            have=pairs,
        )
    flat = [cpu for g in groups for cpu in g]
    emu_list = flat[n : n + reserve]
    return _pin(cell.dedicated_vcpus, flat[:n]), frozenset(emu_list)


def _cpu_reasons(
    host: HostCell,
    guest: GuestRequest,
    cell: GuestCell,
    reserve: int,
    limits: Limits | None,
) -> list[Reason]:
    reasons: list[Reason] = []
    n_ded = len(cell.dedicated_vcpus)
    n_shared = len(cell.shared_vcpus)
    pinned = guest.pinned
    extra = f" + {reserve} for emulator threads" if reserve else ""
    if pinned and n_ded + reserve > len(host.pcpuset):
        reasons.append(
            Reason(
                Code.DEDICATED_CPUS_TOO_FEW,
                f"needs {plural(n_ded, 'dedicated CPU')}{extra}, cell has {len(host.pcpuset)}",
                host.id,
                cell.index,
                need=n_ded + reserve,
                have=len(host.pcpuset),
            )
        )
    shared_policy = guest.cpu_policy in (CPUPolicy.SHARED, CPUPolicy.MIXED, None)
    if shared_policy and n_shared > len(host.cpuset):
        reasons.append(
            Reason(
                Code.SHARED_CPUS_TOO_FEW,
                f"needs {plural(n_shared, 'shared CPU')}, cell has {len(host.cpuset)}",
                host.id,
                cell.index,
                need=n_shared,
                have=len(host.cpuset),
            )
        )
    if pinned and not reasons:
        free = len(host.free_pcpus)
        if n_ded + reserve > free:
            busy = len(host.pcpuset & host.pinned_cpus)
            reasons.append(
                Reason(
                    Code.DEDICATED_CPUS_BUSY,
                    f"needs {plural(n_ded, 'dedicated CPU')}{extra}, {free} free of "
                    f"{len(host.pcpuset)} ({busy} pinned)",
                    host.id,
                    cell.index,
                    need=n_ded + reserve,
                    have=free,
                )
            )
    if shared_policy and limits is not None:
        cpu_limit = len(host.cpuset) * limits.cpu_allocation_ratio
        if host.cpu_usage + n_shared > cpu_limit:
            reasons.append(
                Reason(
                    Code.CPU_LIMIT,
                    f"{plural(host.cpu_usage, 'shared vCPU')} placed + {n_shared} > "
                    f"{cpu_limit:g} ({plural(len(host.cpuset), 'CPU')} x ratio "
                    f"{limits.cpu_allocation_ratio:g})",
                    host.id,
                    cell.index,
                    need=host.cpu_usage + n_shared,
                    have=cpu_limit,
                )
            )
        ram_limit = host.memory_mib * limits.ram_allocation_ratio
        if host.memory_usage_mib + cell.memory_mib > ram_limit:
            reasons.append(
                Reason(
                    Code.RAM_LIMIT,
                    f"{host.memory_usage_mib} MiB used + {cell.memory_mib} MiB > "
                    f"{ram_limit:g} MiB ({host.memory_mib} MiB x ratio "
                    f"{limits.ram_allocation_ratio:g})",
                    host.id,
                    cell.index,
                    need=host.memory_usage_mib + cell.memory_mib,
                    have=ram_limit,
                )
            )
    return reasons


def fit_cell(
    host: HostCell,
    guest: GuestRequest,
    cell: GuestCell,
    *,
    reserve: int = 0,
    limits: Limits | None = None,
    current_pagesize_kib: int | None = None,
) -> CellFit | list[Reason]:
    """Place ``cell`` of ``guest`` on ``host``; ``reserve`` CPUs for emulator threads.

    Returns the placement, or every reason it cannot be placed (never empty).
    """
    pagesize: float | None = None
    if guest.page_size is not None:
        pagesize, reasons = page_size_for(host, guest, cell, current_pagesize_kib)
    else:
        reasons = _memory_reasons(host, guest, cell)
    reasons += _cpu_reasons(host, guest, cell, reserve, limits)
    if reasons:
        return reasons
    pins: tuple[tuple[int, int], ...] | None = None
    emulator: frozenset[int] = frozenset()
    if guest.pinned:
        packed = _pack(host, cell, guest.thread_policy, reserve)
        if isinstance(packed, Reason):
            return [packed]
        pins, emulator = packed
    return CellFit(
        CellPlacement(
            guest_cell=cell.index,
            host_cell=host.id,
            vcpus=cell.vcpus,
            memory_mib=cell.memory_mib,
            pagesize_kib=None if pagesize is None else int(pagesize),
            pinning=pins or None,
        ),
        emulator,
    )


def describe_cpus(cpus: frozenset[int]) -> str:
    return CpuSet.of(cpus).format() or "none"

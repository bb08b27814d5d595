"""The Nova-style NUMA request a domain runs as, inferred from its :class:`DomainInfo`.

Pure: it reads values, never XML. :func:`guest_request_from_domain` infers the request from
the pins, guest NUMA cells and huge pages (or takes the extra specs the domain declares in
numa-migrate's metadata); :func:`declared_dedicated_vcpus` says which vCPUs that metadata
makes dedicated.
"""

from __future__ import annotations

from functools import lru_cache

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import InvalidRequestError, ParseError
from numa_migrate.core.model.domain import REALTIME_SCHEDULERS, DomainInfo
from numa_migrate.core.model.guest import (
    CPUPolicy,
    EmulatorPolicy,
    GuestCell,
    GuestRequest,
    PageSizeKind,
    PageSizeRequest,
    describe_page_size,
)
from numa_migrate.core.request import Flavor, guest_from_flavor


def guest_request_from_domain(info: DomainInfo) -> tuple[GuestRequest | None, str]:
    """The NUMA request the domain runs as, and how it was inferred (None: no NUMA need).

    A vCPU pinned to exactly one host CPU counts as dedicated, any other vCPU as shared.
    A domain with numa-migrate's guest metadata (``<nm:guest>``) runs as the request of the
    extra specs it declares, which must agree with its guest NUMA cells.
    """
    if info.declared_specs is not None:
        return _declared_request(info)
    if not (info.vcpupin or info.numa_cells or info.hugepages):
        return None, (
            f"{info.name}: no NUMA need (no <vcpupin>, no guest NUMA cells, no huge pages)"
        )
    dedicated = frozenset(vcpu for vcpu, cpus in info.vcpupin if len(cpus) == 1)
    notes: list[str] = []
    cells = _guest_cells(info, dedicated, notes)
    cpu_policy = _cpu_policy(info, dedicated, notes)
    emulator_policy = _emulator_policy(info, cpu_policy, notes)
    page_size = _page_size(info, notes)
    realtime = frozenset().union(
        *(s.vcpus for s in info.vcpusched if s.scheduler in REALTIME_SCHEDULERS)
    )
    if realtime:
        notes.append(f"vCPUs {CpuSet.of(realtime).format()} have a real-time scheduler: realtime")
    notes.append("thread policy: cannot be inferred from a domain, left unset")
    request = GuestRequest(
        cells=cells,
        cpu_policy=cpu_policy,
        emulator_policy=emulator_policy,
        page_size=page_size,
        realtime_vcpus=realtime or None,
    )
    return request, f"{info.name}: " + "; ".join(notes)


def declared_dedicated_vcpus(info: DomainInfo) -> frozenset[int] | None:
    """The vCPUs the domain's numa-migrate metadata declares dedicated; None without
    metadata (or with metadata Nova's rules refuse: the caller then infers from the pins).

    A pin to exactly one host CPU does not prove a vCPU dedicated: a floating vCPU on a
    one-CPU shared set is pinned to one CPU too. The declared request settles it.
    """
    if info.declared_specs is None:
        return None
    return _declared_dedicated(info.declared_specs, info.vcpus, info.memory_mib)


@lru_cache(maxsize=1024)
def _declared_dedicated(
    specs: tuple[tuple[str, str], ...], vcpus: int, memory_mib: int
) -> frozenset[int] | None:
    try:
        request = guest_from_flavor(Flavor(vcpus, memory_mib, dict(specs))).numa
    except InvalidRequestError:
        return None
    if request is None:
        return frozenset()
    return frozenset().union(*(c.dedicated_vcpus for c in request.cells))


def _declared_request(info: DomainInfo) -> tuple[GuestRequest | None, str]:
    specs = dict(info.declared_specs or ())
    flavor = Flavor(info.vcpus, info.memory_mib, specs, f"{info.name} (numa-migrate metadata)")
    listed = ", ".join(f"{k}={v}" for k, v in sorted(specs.items())) or "no extra specs"
    try:
        request = guest_from_flavor(flavor).numa
    except InvalidRequestError as exc:
        raise ParseError(f"the extra specs of its numa-migrate metadata: {exc}",
                         source=f"{info.name}: metadata/guest") from None
    if request is None:
        return None, f"{info.name}: no NUMA need, per its numa-migrate metadata ({listed})"
    declared = [(c.vcpus, c.memory_mib) for c in request.cells]
    actual = [(c.cpus, c.memory_mib) for c in info.numa_cells]
    if actual and declared != actual:
        def show(cells: list[tuple[frozenset[int], int]]) -> str:
            return ", ".join(f"vCPUs {CpuSet.of(v).format()} {m} MiB" for v, m in cells)

        raise ParseError(
            f"{info.name}: the extra specs of its numa-migrate metadata ask for guest cells "
            f"[{show(declared)}] but its <cpu><numa> has [{show(actual)}]; fix the metadata "
            "or remove it (the request is then inferred from the XML)",
            source=f"{info.name}: metadata/guest",
        )
    return request, f"{info.name}: request from its numa-migrate metadata ({listed})"


def _guest_cells(
    info: DomainInfo, dedicated: frozenset[int], notes: list[str]
) -> tuple[GuestCell, ...]:
    if not info.numa_cells:
        notes.append(
            f"no <cpu><numa>: one guest cell with all {info.vcpus} vCPUs and {info.memory_mib} MiB"
        )
        return (_guest_cell(0, frozenset(range(info.vcpus)), dedicated, info.memory_mib),)
    first, *others = info.numa_cells
    loose = frozenset(range(info.vcpus)).difference(*(c.cpus for c in info.numa_cells))
    count = len(info.numa_cells)
    notes.append(f"{count} guest cell{'s' if count != 1 else ''} from <cpu><numa>")
    if loose:
        notes.append(
            f"vCPUs {CpuSet.of(loose).format()} are in no guest cell: counted in cell {first.id}, "
            "where QEMU puts them"
        )
    return (
        _guest_cell(first.id, first.cpus | loose, dedicated, first.memory_mib),
        *(_guest_cell(c.id, c.cpus, dedicated, c.memory_mib) for c in others),
    )


def _guest_cell(
    index: int, vcpus: frozenset[int], dedicated: frozenset[int], memory_mib: int
) -> GuestCell:
    return GuestCell(
        index=index,
        shared_vcpus=vcpus - dedicated,
        dedicated_vcpus=vcpus & dedicated,
        memory_mib=memory_mib,
    )


def _cpu_policy(info: DomainInfo, dedicated: frozenset[int], notes: list[str]) -> CPUPolicy | None:
    if len(dedicated) == info.vcpus:
        notes.append(f"all {info.vcpus} vCPUs pinned to one host CPU each: dedicated")
        return CPUPolicy.DEDICATED
    if dedicated:
        notes.append(
            f"vCPUs {CpuSet.of(dedicated).format()} pinned to one host CPU each, the others "
            "float: mixed"
        )
        return CPUPolicy.MIXED
    if info.vcpu_cpuset is not None:
        notes.append(
            f"no vCPU pinned to a single host CPU, <vcpu cpuset="
            f"'{CpuSet.of(info.vcpu_cpuset).format()}'>: shared"
        )
        return CPUPolicy.SHARED
    notes.append("no vCPU pinned to a single host CPU and no <vcpu cpuset>: no CPU policy")
    return None


def _emulator_policy(
    info: DomainInfo, cpu_policy: CPUPolicy | None, notes: list[str]
) -> EmulatorPolicy | None:
    if info.emulatorpin is None or cpu_policy not in (CPUPolicy.DEDICATED, CPUPolicy.MIXED):
        notes.append("emulator threads: no <emulatorpin> or no pinned vCPU, policy unset")
        return None
    shared = info.emulatorpin & frozenset().union(*(cpus for _, cpus in info.vcpupin))
    if shared:
        notes.append(
            f"emulator threads share host CPUs {CpuSet.of(shared).format()} with vCPU pins, "
            "policy unset"
        )
        return None
    notes.append(
        f"emulator threads pinned to host CPUs {CpuSet.of(info.emulatorpin).format()}, apart "
        "from every vCPU: isolate"
    )
    return EmulatorPolicy.ISOLATE


def _page_size(info: DomainInfo, notes: list[str]) -> PageSizeRequest | None:
    sizes = {page.size_kib for page in info.hugepages}
    if not sizes:
        notes.append("no huge pages: page size unset")
        return None
    size = sizes.pop()
    if size is not None and not sizes:
        notes.append(f"{describe_page_size(size)} huge pages: explicit page size")
        return PageSizeRequest.explicit(size)
    notes.append("huge pages of the default size or of several sizes: any large page size")
    return PageSizeRequest(PageSizeKind.LARGE)

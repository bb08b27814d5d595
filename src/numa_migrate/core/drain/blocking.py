"""Why no host can take a guest: the binding constraint, in one sentence.

The fitter explains one host at a time; a drain needs the fleet-wide sentence: "needs 8
dedicated CPUs on one cell; the largest free is 6, on host-07 cell 1". The single-cell
headline checks (cells, dedicated CPUs, pages of the guest's size, memory, PCI devices) are
tried first; when none of them binds, the closest host's own summary from the fitter is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from numa_migrate.core.fit.fitter import FitResult
from numa_migrate.core.model.guest import Guest, describe_page_size
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.pcidev import PciNumaPolicy, PciRequest

__all__ = ["binding_reason"]


def _largest(
    hosts: Sequence[HostTopology], value: str, size_kib: int | None = None
) -> tuple[int, str, int] | None:
    """The largest per-cell ``value`` over the hosts: (amount, host, cell id)."""
    best: tuple[int, str, int] | None = None
    for h in hosts:
        for c in h.cells:
            if value == "pcpus":
                amount = len(c.free_pcpus)
            elif value == "pages":
                amount = c.free_pages(size_kib or 0)
            else:
                amount = c.avail_memory_mib
            if best is None or amount > best[0]:
                best = (amount, h.name, c.id)
    return best


def _pci_reason(guest: Guest, hosts: Sequence[HostTopology]) -> tuple[str, str] | None:
    for req in guest.pci_requests:
        best = max(
            ((sum(1 for d in h.pci_devices if not d.allocated and req.matches(d)), h.name)
             for h in hosts),
            default=None,
            key=lambda x: x[0],
        )
        if best is not None and best[0] < req.count:
            return (f"needs {req.describe()} on one host; the most free is {best[0]}, "
                    f"on {best[1]}", best[1])
    return None


def binding_reason(
    guest: Guest,
    pagesize_kib: int | None,
    hosts: Sequence[HostTopology],
    results: Sequence[FitResult],
) -> tuple[str, str | None]:
    """The reason and the host it is about (None: no host in particular)."""
    if not hosts:
        return "no host is left to take it (every host is drained or excluded)", None
    numa = guest.numa
    if numa is not None:
        most_cells = max(len(h.cells) for h in hosts)
        if len(numa.cells) > most_cells:
            return (f"needs {len(numa.cells)} NUMA cells; the most any host has is "
                    f"{most_cells}", None)
        if numa.pinned:
            emulator = 1 if numa.emulator_isolated else 0
            need = max(len(c.dedicated_vcpus) + (emulator if c.index == 0 else 0)
                       for c in numa.cells)
            big = _largest(hosts, "pcpus")
            if big is not None and big[0] < need:
                what = f"{need} dedicated CPUs" + (
                    f" ({need - 1} + 1 for emulator threads)" if emulator else "")
                return (f"needs {what} on one cell; the largest free is "
                        f"{big[0]}, on {big[1]} cell {big[2]}", big[1])
        if pagesize_kib is not None:
            need = max(c.memory_mib * 1024 // pagesize_kib for c in numa.cells)
            big = _largest(hosts, "pages", pagesize_kib)
            if big is not None and big[0] < need:
                size = describe_page_size(pagesize_kib)
                if big[0] == 0:
                    return (f"needs {need} pages of {size} on one cell (it runs with {size} "
                            f"pages); no other host has a free one", None)
                return (f"needs {need} pages of {size} on one cell; the largest free is "
                        f"{big[0]}, on {big[1]} cell {big[2]}", big[1])
        elif numa.pinned:
            need = max(c.memory_mib for c in numa.cells)
            big = _largest(hosts, "memory")
            if big is not None and big[0] < need:
                return (f"needs {need} MiB on one cell; the largest free is {big[0]} MiB, "
                        f"on {big[1]} cell {big[2]}", big[1])
    pci = _pci_reason(guest, hosts)
    if pci is not None:
        return pci
    funnel = _one_cell_funnel(guest, pagesize_kib, hosts)
    if funnel is not None:
        return funnel, None
    # nothing binds fleet-wide on its own: the best-looking host's own reasons (the most
    # free dedicated CPUs, then memory)
    looks = {h.name: (sum(len(c.free_pcpus) for c in h.cells),
                      sum(c.avail_memory_mib for c in h.cells)) for h in hosts}
    closest = max(results, key=lambda r: (looks.get(r.host, (0, 0)), r.host), default=None)
    if closest is None:
        return "no host can take it", None
    return f"no host can take it; closest is {closest.host}: {closest.summary}", closest.host


Check = Callable[[HostTopology, HostCell], bool]


def _cpus_check(need: int) -> Check:
    return lambda h, c: len(c.free_pcpus) >= need


def _pages_check(size_kib: int, pages: int) -> Check:
    return lambda h, c: c.free_pages(size_kib) >= pages


def _memory_check(memory_mib: int) -> Check:
    def ok(h: HostTopology, c: HostCell) -> bool:
        if c.mempages:
            return c.mempages[0].free_kib >= memory_mib * 1024
        return c.avail_memory_mib >= memory_mib

    return ok


def _devices_check(req: PciRequest) -> Check:
    nodes: tuple[int | None, ...] = (None,) if req.policy is PciNumaPolicy.LEGACY else ()

    def ok(h: HostTopology, c: HostCell) -> bool:
        free = sum(1 for d in h.pci_devices
                   if not d.allocated and req.matches(d)
                   and (d.numa_node == c.id or d.numa_node in nodes))
        return free >= req.count

    return ok


def _one_cell_funnel(
    guest: Guest, pagesize_kib: int | None, hosts: Sequence[HostTopology]
) -> str | None:
    """For a one-cell guest: how many host cells meet each need in turn (CPUs, memory or
    pages, devices near the cell), when together they are more than any cell has."""
    numa = guest.numa
    if numa is None or len(numa.cells) != 1:
        return None
    cell = numa.cells[0]
    stages: list[tuple[str, str, Check]] = []  # (the need, a short noun, the check)
    if numa.pinned:
        need = len(cell.dedicated_vcpus) + (1 if numa.emulator_isolated else 0)
        stages.append((f"{need} free dedicated CPUs", "the CPUs", _cpus_check(need)))
    if pagesize_kib is not None:
        pages = cell.memory_mib * 1024 // pagesize_kib
        stages.append((f"{pages} free {describe_page_size(pagesize_kib)} pages", "the pages",
                       _pages_check(pagesize_kib, pages)))
    elif numa.pinned:
        stages.append((f"{cell.memory_mib} MiB free", "the memory",
                       _memory_check(cell.memory_mib)))
    for req in guest.pci_requests:
        if req.policy is PciNumaPolicy.REQUIRED:
            stages.append((f"{req.describe()} on its node", "the devices",
                           _devices_check(req)))
        elif req.policy is PciNumaPolicy.LEGACY:
            stages.append((f"{req.describe()} on its node or with no node", "the devices",
                           _devices_check(req)))
    cells = [(h, c) for h in hosts for c in h.cells]
    counts: list[str] = []
    for i, (_, noun, ok) in enumerate(stages):
        cells = [(h, c) for h, c in cells if ok(h, c)]
        if not cells:
            if i == 0:
                return None  # one need alone binds: the headline checks say it better
            needs = ", ".join(n for n, _, _ in stages[: i + 1])
            return (f"needs {needs} on one host cell: {', '.join(counts)}, "
                    f"none of those also {noun}")
        n = len(cells)
        cell_word = "host cell has" if n == 1 else "host cells have"
        counts.append(f"{n} {cell_word} {noun}" if i == 0 else f"{n} of those also {noun}")
    return None

"""Why no host can take a guest: the binding constraint, in one sentence.

The fitter explains one host at a time; a drain needs the fleet-wide sentence: "needs 8
dedicated CPUs on one cell; the largest free is 6, on host-07 cell 1". The single-cell
headline checks (cells, dedicated CPUs, pages of the guest's size, memory, PCI devices) are
tried first; when none of them binds, the closest host's own summary from the fitter is given.
"""

from __future__ import annotations

from collections.abc import Sequence

from numa_migrate.core.fit.fitter import FitResult
from numa_migrate.core.model.guest import Guest, describe_page_size
from numa_migrate.core.model.host import HostTopology

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
            need = max(len(c.dedicated_vcpus) for c in numa.cells)
            big = _largest(hosts, "pcpus")
            if big is not None and big[0] < need:
                return (f"needs {need} dedicated CPUs on one cell; the largest free is "
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
    # nothing binds fleet-wide on its own: the closest host's own reasons (fewest reasons)
    closest = min(results, key=lambda r: (len(r.reasons), r.host), default=None)
    if closest is None:
        return "no host can take it", None
    return f"no host can take it; closest is {closest.host}: {closest.summary}", closest.host

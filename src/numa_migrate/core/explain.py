"""Explain, for one guest, every host and every host cell: fits, or why not.

The one-line summary improves on Kubernetes' scheduler message: hosts that fit first, then
the reasons sorted by how many hosts they stop, each host counted once per reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from numa_migrate.core.fit.cellfit import CellFit, fit_cell
from numa_migrate.core.fit.fitter import FitOptions, FitResult, fit_guest
from numa_migrate.core.fit.pcifit import PciPools
from numa_migrate.core.fit.reasons import SUMMARY_LABEL, Code, Reason, summarize_counts
from numa_migrate.core.model.guest import Guest
from numa_migrate.core.model.host import HostTopology


@dataclass(frozen=True)
class CellVerdict:
    guest_cell: int
    host_cell: int
    fit: CellFit | None
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class HostExplanation:
    result: FitResult
    cells: tuple[CellVerdict, ...]
    """Every (guest cell, host cell) pair, host cells in the host's own order."""
    pci_free: tuple[tuple[int | None, tuple[int, ...]], ...] = ()
    """Per NUMA node (None: devices that report none), the free devices matching each of the
    guest's PCI requests (empty when the guest asks for none)."""

    @property
    def labels(self) -> tuple[str, ...]:
        """Distinct summary labels of what stops this host (empty when it fits)."""
        if self.result.fits:
            return ()
        codes = [r.code for r in self.result.reasons]
        if Code.NO_CELL_ASSIGNMENT in codes or Code.TOO_FEW_HOST_CELLS in codes:
            codes = [c for c in codes if c in (Code.NO_CELL_ASSIGNMENT, Code.TOO_FEW_HOST_CELLS)]
        return tuple(dict.fromkeys(SUMMARY_LABEL[c] for c in codes))


@dataclass(frozen=True)
class Explanation:
    guest: Guest
    hosts: tuple[HostExplanation, ...]
    summary: str

    @property
    def fitting_hosts(self) -> tuple[str, ...]:
        return tuple(h.result.host for h in self.hosts if h.result.fits)


def _cell_verdicts(
    host: HostTopology, guest: Guest, options: FitOptions
) -> tuple[CellVerdict, ...]:
    request = guest.numa
    if request is None or len(host.cells) < len(request.cells):
        return ()
    out = []
    for gcell in request.cells:
        reserve = 1 if (gcell.index == 0 and request.emulator_isolated) else 0
        for hcell in host.cells:
            verdict = fit_cell(
                hcell,
                request,
                gcell,
                reserve=reserve,
                limits=options.limits,
                current_pagesize_kib=options.current_pagesize_kib,
            )
            if isinstance(verdict, CellFit):
                out.append(CellVerdict(gcell.index, hcell.id, verdict, ()))
            else:
                out.append(CellVerdict(gcell.index, hcell.id, None, tuple(verdict)))
    return tuple(out)


def pci_free_per_node(
    host: HostTopology, guest: Guest
) -> tuple[tuple[int | None, tuple[int, ...]], ...]:
    """Per NUMA node (None: no node), the free devices matching each of the guest's requests."""
    if not guest.pci_requests:
        return ()
    pools = PciPools(host.pci_devices)
    counts = [pools.node_counts(r) for r in guest.pci_requests]
    nodes: list[int | None] = [c.id for c in host.cells]
    if any(None in c for c in counts):
        nodes.append(None)
    return tuple((n, tuple(c.get(n, 0) for c in counts)) for n in nodes)


def summary_line(guest: Guest, hosts: Sequence[HostExplanation]) -> str:
    fitting = sum(1 for h in hosts if h.result.fits)
    what = guest.numa.describe() if guest.numa else f"{guest.vcpus} vCPUs, no NUMA need"
    if guest.pci_requests:
        what += ", PCI: " + "; ".join(
            f"{r.describe()} ({r.policy.value})" for r in guest.pci_requests)
    head = f"{fitting}/{len(hosts)} hosts can take {guest.name} ({what})"
    blocked = summarize_counts(label for h in hosts for label in h.labels)
    return f"{head}: {blocked}" if blocked else f"{head}."


def explain_host(
    host: HostTopology, guest: Guest, options: FitOptions, result: FitResult | None = None
) -> HostExplanation:
    """One host explained; ``result`` is its fit when the caller already has it."""
    return HostExplanation(result or fit_guest(host, guest, options),
                           _cell_verdicts(host, guest, options),
                           pci_free_per_node(host, guest))


def explain_guest(
    hosts: Sequence[HostTopology], guest: Guest, options: FitOptions | None = None
) -> Explanation:
    options = options or FitOptions()
    explained = tuple(explain_host(h, guest, options) for h in hosts)
    return Explanation(guest, explained, summary_line(guest, explained))

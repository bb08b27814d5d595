"""Where can a guest already placed on a fleet host go: every other host, ranked (pure).

The guest keeps its NUMA request, its PCI requests and the page size it runs with (a live
migration cannot change it). Every host but its own is first checked against cheap capacity
bounds (:class:`numa_migrate.core.rank.CapacityBound`), then fitted; hosts that fit are
ranked by :func:`numa_migrate.core.rank.score`, the others keep their reasons — cell by cell
from the fit (with explain's per-cell verdicts), or per host cell from the bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from numa_migrate.core.explain import HostExplanation, explain_host, pci_free_per_node
from numa_migrate.core.fit.fitter import FitOptions, FitResult, fit_guest
from numa_migrate.core.fit.reasons import SUMMARY_LABEL, Reason, summarize_counts
from numa_migrate.core.model.guest import Guest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.rank import CapacityBound, Score, rank_key, score


@dataclass(frozen=True)
class Destination:
    host: str
    result: FitResult
    score: Score


@dataclass(frozen=True)
class Refusal:
    host: str
    stage: Literal["bound", "fit"]
    """``bound``: refused by the capacity bounds, before the fit; ``fit``: by the fit."""
    summary: str
    reasons: tuple[Reason, ...]
    explained: HostExplanation | None = None
    """The fit's per-cell verdicts (stage ``fit``)."""
    pci_free: tuple[tuple[int | None, tuple[int, ...]], ...] = ()
    """Per NUMA node, the free devices matching each PCI request (as explain shows)."""

    @property
    def labels(self) -> tuple[str, ...]:
        if self.explained is not None:
            return self.explained.labels
        return tuple(dict.fromkeys(SUMMARY_LABEL[r.code] for r in self.reasons))


@dataclass(frozen=True)
class WhereAnswer:
    guest: Guest
    source: str
    placement: Placement
    """Where the guest is now, on ``source``."""
    current_pagesize_kib: int | None
    destinations: tuple[Destination, ...]
    """Best first."""
    refused: tuple[Refusal, ...]
    """In the fleet's host order."""
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        total = len(self.destinations) + len(self.refused)
        head = f"{len(self.destinations)}/{total} other hosts can take {self.guest.name}"
        if self.destinations:
            head += f" (best: {self.destinations[0].host})"
        blocked = summarize_counts(label for r in self.refused for label in r.labels)
        return f"{head}: {blocked}" if blocked else f"{head}."


def running_pagesize_kib(guest: Guest, placement: Placement) -> tuple[int | None, tuple[str, ...]]:
    """The page size the guest runs with (None: it asks for none); a note when its cells
    have different sizes (the first cell's is kept)."""
    if guest.numa is None or guest.numa.page_size is None:
        return None, ()
    sizes = [c.pagesize_kib for c in placement.cells if c.pagesize_kib is not None]
    if not sizes:
        return None, ()
    notes: tuple[str, ...] = ()
    if len(set(sizes)) > 1:
        notes = (f"{guest.name}'s cells run with different page sizes "
                 f"({', '.join(str(s) for s in sorted(set(sizes)))} KiB); "
                 f"destinations must offer {sizes[0]} KiB pages for every cell",)
    return sizes[0], notes


def where_guest(
    hosts: Sequence[HostTopology],
    source: str,
    guest: Guest,
    placement: Placement,
    options: FitOptions | None = None,
) -> WhereAnswer:
    """Every host but ``source`` for ``guest`` (placed there as ``placement``)."""
    from dataclasses import replace

    page, notes = running_pagesize_kib(guest, placement)
    options = replace(options or FitOptions(), current_pagesize_kib=page)
    fitting: list[Destination] = []
    refused: list[Refusal] = []
    bounds = CapacityBound(guest, page)
    for host in hosts:
        if host.name == source:
            continue
        bound = bounds.check(host)
        if bound:
            refused.append(Refusal(host.name, "bound", bound[0].message, bound,
                                   pci_free=pci_free_per_node(host, guest)))
            continue
        result = fit_guest(host, guest, options)
        if result.placement is None:
            explained = explain_host(host, guest, options, result)
            refused.append(Refusal(host.name, "fit", result.summary, result.reasons, explained,
                                   explained.pci_free))
            continue
        fitting.append(Destination(host.name, result, score(host, guest.numa,
                                                               result.placement)))
    fitting.sort(key=lambda d: rank_key(d.host, d.score))
    return WhereAnswer(guest, source, placement, page, tuple(fitting), tuple(refused), notes)

"""Fit a guest's NUMA cells onto a host: Nova's accept/reject semantics, without its search.

Nova tries host-cell permutations one by one (``itertools.permutations``), which is
factorial in the number of host cells and, since Nova 26, is wrong for multi-cell guests
because its fit cache is keyed on ids it mutates. Here the fit of one guest cell on one
host cell is computed once (it does not depend on the other cells: only guest cell 0 carries
the emulator-thread reservation), and the choice of host cells is a bipartite matching:

1. host cells are ordered as Nova orders them (spread by default, pack as an option);
2. a greedy pass gives each guest cell the first free host cell that fits: if it completes,
   it is exactly Nova's first successful permutation;
3. otherwise a maximum matching over all (guest cell, host cell) verdicts either proves
   that no assignment exists (and which guest cells compete for which host cells), or
   yields the lexicographically first assignment, which is again Nova's choice.

PCI requests couple the guest cells: the *set* of host cells chosen must let every request be
served under its NUMA affinity policy (:mod:`numa_migrate.core.fit.pcifit`). The first
assignment is kept when its cells serve the requests; otherwise the sets of host cells are
tried in Nova's order, each checked for devices first (cheap) and then for a matching of the
guest cells inside it. That search is exponential in the worst case, so it is bounded
(:data:`MAX_PCI_CELL_SETS` sets): beyond the bound the answer says the search stopped rather
than claim a proof.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from math import comb

from numa_migrate.core.fit.cellfit import CellFit, Limits, fit_cell
from numa_migrate.core.fit.pcifit import PciPools, PciServed, PciShort
from numa_migrate.core.fit.reasons import Code, Reason, unique
from numa_migrate.core.model.guest import Guest, GuestCell, GuestRequest
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.pcidev import PciDevice, PciNumaPolicy, PciRequest
from numa_migrate.core.model.placement import Placement

Verdict = CellFit | list[Reason]

MAX_PCI_CELL_SETS = 20_000
"""Sets of host cells the PCI search tries before it gives up (C(16, 8) = 12,870 fit)."""


@dataclass(frozen=True, slots=True)
class FitOptions:
    limits: Limits | None = None
    packing: bool = False
    current_pagesize_kib: int | None = None
    """Live-migration refit: the destination must use the page size the guest runs with."""


@dataclass(frozen=True)
class FitResult:
    host: str
    placement: Placement | None
    reasons: tuple[Reason, ...]
    summary: str
    pci: PciServed | None = None
    """The devices the placement's cells serve each PCI request with (None: no request)."""

    @property
    def fits(self) -> bool:
        return self.placement is not None

    @property
    def pci_addresses(self) -> tuple[str, ...]:
        """Every PCI device the placement takes (all requests, in order)."""
        return () if self.pci is None else tuple(a for t in self.pci.taken for a in t)

    @property
    def messages(self) -> tuple[str, ...]:
        """The reasons' messages, each once, without one that only repeats the summary."""
        return unique(r.message for r in self.reasons if r.message != self.summary)


def order_host_cells(
    cells: Sequence[HostCell],
    request: GuestRequest,
    packing: bool,
    pci_per_node: dict[int | None, int] | None = None,
    pci_requested: bool = False,
) -> tuple[HostCell, ...]:
    """Nova's host-cell order: only reordered when the host has more cells than the guest.

    With PCI devices on the host, Nova last moves the cells with the most free devices first
    when the guest asks for devices, and last when it does not (a stable sort).
    """
    if len(cells) <= len(request.cells):
        return tuple(cells)
    ordered = _order_by_usage(cells, request, packing)
    if pci_per_node:
        sign = -1 if pci_requested else 1
        ordered = tuple(sorted(ordered, key=lambda c: sign * pci_per_node.get(c.id, 0)))
    return ordered


def _order_by_usage(
    cells: Sequence[HostCell], request: GuestRequest, packing: bool
) -> tuple[HostCell, ...]:
    sign = 1 if packing else -1
    indexed = list(enumerate(cells))
    key: Callable[[tuple[int, HostCell]], tuple[int, int, int]]
    if request.pinned:

        def key(item: tuple[int, HostCell]) -> tuple[int, int, int]:
            i, c = item
            return (sign * len(c.free_pcpus), sign * c.avail_memory_mib, i)
    else:

        def key(item: tuple[int, HostCell]) -> tuple[int, int, int]:
            i, c = item
            return (-sign * c.cpu_usage, sign * c.avail_memory_mib, i)

    return tuple(c for _, c in sorted(indexed, key=key))


def _relabel(verdict: Verdict, cell: GuestCell) -> Verdict:
    """A verdict computed for another guest cell of the same shape, for ``cell``."""
    if isinstance(verdict, CellFit):
        placed = verdict.placement
        pins = None
        if placed.pinning is not None:
            pins = tuple(
                zip(sorted(cell.dedicated_vcpus), (p for _, p in placed.pinning), strict=True)
            )
        return CellFit(
            replace(placed, guest_cell=cell.index, vcpus=cell.vcpus, pinning=pins),
            verdict.emulator_pins,
        )
    return [replace(r, guest_cell=cell.index) for r in verdict]


class Verdicts:
    """(guest cell position, host cell position) -> verdict, memoised on the cell's shape.

    A guest cell's verdict depends on its vCPU counts, memory and emulator reservation, not on
    which vCPU ids it holds: same-shaped cells (all but cell 0 in an even split) share one
    ``fit_cell`` call per host cell, relabelled for their own vCPUs.
    """

    def __init__(
        self, cells: tuple[HostCell, ...], request: GuestRequest, options: FitOptions
    ) -> None:
        self.cells = cells
        self.request = request
        self.options = options
        self.memo: dict[tuple[int, int], Verdict] = {}
        self.by_shape: dict[tuple[int, int, int, int, int], Verdict] = {}

    def get(self, g: int, h: int) -> Verdict:
        key = (g, h)
        verdict = self.memo.get(key)
        if verdict is None:
            cell = self.request.cells[g]
            reserve = 1 if (g == 0 and self.request.emulator_isolated) else 0
            shape = (len(cell.dedicated_vcpus), len(cell.shared_vcpus), cell.memory_mib, reserve, h)
            base = self.by_shape.get(shape)
            if base is None:
                verdict = fit_cell(
                    self.cells[h],
                    self.request,
                    cell,
                    reserve=reserve,
                    limits=self.options.limits,
                    current_pagesize_kib=self.options.current_pagesize_kib,
                )
                self.by_shape[shape] = verdict
            else:
                verdict = _relabel(base, cell)
            self.memo[key] = verdict
        return verdict

    def ok(self, g: int, h: int) -> bool:
        return isinstance(self.get(g, h), CellFit)


def _greedy(v: Verdicts, n_guest: int, n_host: int) -> list[int] | None:
    used: set[int] = set()
    chosen: list[int] = []
    for g in range(n_guest):
        h = next((h for h in range(n_host) if h not in used and v.ok(g, h)), None)
        if h is None:
            return None
        used.add(h)
        chosen.append(h)
    return chosen


def _max_matching(
    adj: list[list[int]], guests: Sequence[int], blocked: frozenset[int] = frozenset()
) -> dict[int, int]:
    """Kuhn's augmenting paths: guest -> host, restricted to ``guests`` and unblocked hosts."""
    host_of: dict[int, int] = {}
    guest_of: dict[int, int] = {}

    def augment(g: int, seen: set[int]) -> bool:
        for h in adj[g]:
            if h in blocked or h in seen:
                continue
            seen.add(h)
            if h not in guest_of or augment(guest_of[h], seen):
                guest_of[h] = g
                host_of[g] = h
                return True
        return False

    for g in guests:
        augment(g, set())
    return host_of


def _lexicographic_assignment(adj: list[list[int]], n_guest: int) -> list[int] | None:
    """First assignment in permutation order, or None when no perfect matching exists."""
    if len(_max_matching(adj, range(n_guest))) < n_guest:
        return None
    chosen: list[int] = []
    for g in range(n_guest):
        rest = range(g + 1, n_guest)
        for h in adj[g]:
            if h in chosen:
                continue
            blocked = frozenset([*chosen, h])
            if len(_max_matching(adj, rest, blocked)) == n_guest - g - 1:
                chosen.append(h)
                break
    return chosen


def _hall_violation(adj: list[list[int]], n_guest: int) -> tuple[set[int], set[int]]:
    """Guest cells S with fewer usable host cells N(S) than |S| (König's construction)."""
    match = _max_matching(adj, range(n_guest))
    guest_of = {h: g for g, h in match.items()}
    free = [g for g in range(n_guest) if g not in match]
    seen_g: set[int] = set(free)
    seen_h: set[int] = set()
    stack = list(free)
    while stack:
        g = stack.pop()
        for h in adj[g]:
            if h not in seen_h:
                seen_h.add(h)
                owner = guest_of.get(h)
                if owner is not None and owner not in seen_g:
                    seen_g.add(owner)
                    stack.append(owner)
    return seen_g, seen_h


def _fmt_ids(ids: Sequence[int] | set[int]) -> str:
    return ", ".join(str(i) for i in sorted(ids))


def _no_fit_reasons(
    v: Verdicts, n_guest: int, n_host: int, adj: list[list[int]]
) -> tuple[tuple[Reason, ...], str]:
    reasons: list[Reason] = []
    parts: list[str] = []
    for g in range(n_guest):
        if adj[g]:
            continue
        per_cell = []
        for h in sorted(range(n_host), key=lambda h: v.cells[h].id):
            verdict = v.get(g, h)
            assert not isinstance(verdict, CellFit)
            reasons.extend(verdict)
            text = ", ".join(unique(r.message for r in verdict))
            per_cell.append(f"cell {v.cells[h].id}: {text}")
        parts.append(f"0/{n_host} host cells can take guest cell {g}: " + "; ".join(per_cell))
    if not parts:
        guests, hosts = _hall_violation(adj, n_guest)
        host_ids = [v.cells[h].id for h in hosts]
        msg = (
            f"guest cells {_fmt_ids(guests)} ({len(guests)}) can only use host cells "
            f"{_fmt_ids(host_ids)} ({len(host_ids)}): each guest cell needs its own host cell"
        )
        reasons.append(
            Reason(
                Code.NO_CELL_ASSIGNMENT,
                msg,
                need=len(guests),
                have=len(host_ids),
                details=(("guest_cells", sorted(guests)), ("host_cells", sorted(host_ids))),
            )
        )
        parts.append(msg)
    return tuple(reasons), "; ".join(parts)


def _device_rich_set(
    v: Verdicts, adj: list[list[int]], pools: PciPools, requests: Sequence[PciRequest]
) -> list[int] | None:
    """Positions of a set of host cells that can take the guest and holds the most matching
    devices: host cells by free matching devices (most first), each kept when the guest cells
    can still be matched into the set (the sets that can be matched form a matroid, so this
    greedy set is the one with the most devices on its cells). None: the guest cannot be
    matched at all."""
    n_guest, n_host = len(adj), len(v.cells)
    counts = [pools.node_counts(r) for r in requests]
    weight = [sum(c.get(v.cells[h].id, 0) for c in counts) for h in range(n_host)]
    chosen: list[int] = []
    for h in sorted(range(n_host), key=lambda h: -weight[h]):
        trial = frozenset([*chosen, h])
        sub = [[x for x in adj[g] if x in trial] for g in range(n_guest)]
        if len(_max_matching(sub, range(n_guest))) > len(chosen):
            chosen.append(h)
            if len(chosen) == n_guest:
                return sorted(chosen)
    return None


def _first_with_pci(
    v: Verdicts, adj: list[list[int]], pools: PciPools, requests: Sequence[PciRequest]
) -> tuple[list[int], PciServed] | PciShort | int:
    """The first assignment whose host cells serve the PCI requests.

    Sets are tried in order (positions in Nova's host-cell order), each checked for devices
    first and then for a matching of the guest cells inside it. When there are more sets
    than the bound, the set with the most matching devices is tried first (it serves the
    requests whenever any set does for a single request under ``required``/``legacy``). Returns the
    assignment and the devices; or the shortage of the first matchable set (the reason to
    show) — or, when no set is even matchable, the number of sets tried.
    """
    n_guest, n_host = len(adj), len(v.cells)
    first_short: PciShort | None = None
    tried = 0
    if comb(n_host, n_guest) > MAX_PCI_CELL_SETS:
        # too many sets to try them all: the richest one first
        rich = _device_rich_set(v, adj, pools, requests)
        if rich is not None:
            served = pools.serve(requests, frozenset(v.cells[h].id for h in rich))
            chosen = _lexicographic_assignment(
                [[h for h in adj[g] if h in rich] for g in range(n_guest)], n_guest)
            if chosen is not None and not isinstance(served, PciShort):
                return chosen, served
    for positions in combinations(range(n_host), n_guest):
        if tried >= MAX_PCI_CELL_SETS:
            break
        tried += 1
        ids = frozenset(v.cells[h].id for h in positions)
        served = pools.serve(requests, ids)
        if isinstance(served, PciShort) and first_short is not None:
            continue
        inside = set(positions)
        sub = [[h for h in adj[g] if h in inside] for g in range(n_guest)]
        chosen = _lexicographic_assignment(sub, n_guest)
        if chosen is None:
            continue
        if isinstance(served, PciShort):
            first_short = served
            continue
        return chosen, served
    return first_short if first_short is not None else tried


def _pci_no_fit(short: PciShort, cells: Sequence[HostCell], n_host: int, n_guest: int,
                searched: int) -> tuple[tuple[Reason, ...], str]:
    """Reasons when no matchable set of host cells serves the PCI requests: per host cell,
    the free matching devices there; the summary names the request that is short."""
    per_node = dict(short.per_node)
    total_sets = comb(n_host, n_guest)
    scope = {
        PciNumaPolicy.REQUIRED: "on this cell",
        PciNumaPolicy.LEGACY: "on this cell or with no NUMA node",
        PciNumaPolicy.SOCKET: "on this cell or its socket",
        PciNumaPolicy.PREFERRED: "anywhere on the host",
    }[short.policy]
    no_node = per_node.get(None, 0)
    reasons = [
        Reason(
            Code.PCI_DEVICES_SHORT,
            f"needs {short.request.describe()} {scope} ({short.policy.value}); "
            f"{per_node.get(c.id, 0)} free here"
            + (f", {no_node} with no NUMA node" if short.policy is PciNumaPolicy.LEGACY else ""),
            host_cell=c.id,
            need=short.request.count,
            have=per_node.get(c.id, 0),
            details=(("pci_request", short.index + 1),),
        )
        for c in sorted(cells, key=lambda c: c.id)
    ]
    summary = short.message()
    if n_guest < n_host:
        if searched < total_sets:
            summary += (f"; nor do the other sets of {n_guest} host cells tried ({searched} "
                        f"of {total_sets}: the search stopped at its bound)")
        else:
            summary += (f"; nor does any other choice of {n_guest} host cell"
                        f"{'s' if n_guest > 1 else ''} that can take the guest")
    reasons.append(Reason(Code.PCI_DEVICES_SHORT, summary, need=short.request.count,
                          have=short.usable, details=(("pci_request", short.index + 1),)))
    return tuple(reasons), summary


def _free_per_node(devices: Sequence[PciDevice]) -> dict[int | None, int]:
    """Free devices (any type) per NUMA node, as :meth:`PciPools.free_per_node` counts them."""
    out: dict[int | None, int] = {}
    for d in devices:
        if not d.allocated:
            out[d.numa_node] = out.get(d.numa_node, 0) + 1
    return out


def fit_request(
    host: HostTopology,
    request: GuestRequest,
    options: FitOptions | None = None,
    pci_requests: Sequence[PciRequest] = (),
) -> FitResult:
    """Place a NUMA request on a host, or explain per host cell why it cannot be placed.

    ``pci_requests``: devices the guest needs; the chosen host cells must serve them.
    """
    options = options or FitOptions()
    n_guest, n_host = len(request.cells), len(host.cells)
    if n_host < n_guest:
        msg = f"guest needs {n_guest} NUMA cells, host has {n_host}"
        reason = Reason(Code.TOO_FEW_HOST_CELLS, msg, need=n_guest, have=n_host)
        return FitResult(host.name, None, (reason,), msg)
    pools = PciPools(host.pci_devices, {c.id: c.socket for c in host.cells}) \
        if pci_requests else None
    # the free devices per node order the cells even for a guest that asks for none (counted
    # directly then: the pools are built only to serve requests)
    per_node = pools.free_per_node() if pools is not None else (
        _free_per_node(host.pci_devices) if host.pci_devices else None)
    cells = order_host_cells(host.cells, request, options.packing, per_node,
                             bool(pci_requests))
    v = Verdicts(cells, request, options)
    chosen = _greedy(v, n_guest, n_host)
    adj: list[list[int]] = []
    if chosen is None:
        adj = [[h for h in range(n_host) if v.ok(g, h)] for g in range(n_guest)]
        chosen = _lexicographic_assignment(adj, n_guest)
    if chosen is None:
        reasons, summary = _no_fit_reasons(v, n_guest, n_host, adj)
        return FitResult(host.name, None, reasons, summary)
    served: PciServed | None = None
    if pci_requests:
        assert pools is not None
        first = pools.serve(pci_requests, frozenset(cells[h].id for h in chosen))
        if isinstance(first, PciShort):
            adj = adj or [[h for h in range(n_host) if v.ok(g, h)] for g in range(n_guest)]
            found = _first_with_pci(v, adj, pools, pci_requests)
            if not isinstance(found, tuple):
                short = found if isinstance(found, PciShort) else first
                searched = found if isinstance(found, int) else MAX_PCI_CELL_SETS
                reasons, summary = _pci_no_fit(short, cells, n_host, n_guest,
                                               min(searched, comb(n_host, n_guest)))
                return FitResult(host.name, None, reasons, summary)
            chosen, first = found
        served = first
    fits = [v.get(g, h) for g, h in enumerate(chosen)]
    assert all(isinstance(f, CellFit) for f in fits)
    cell_fits = [f for f in fits if isinstance(f, CellFit)]
    emulator: frozenset[int] | None = None
    if request.emulator_isolated:
        emulator = frozenset().union(*(f.emulator_pins for f in cell_fits))
    placement = Placement(tuple(f.placement for f in cell_fits), emulator)
    where = ", ".join(
        f"guest cell {p.guest_cell} -> host cell {p.host_cell}" for p in placement.cells
    )
    return FitResult(host.name, placement, (), f"fits: {where}", served)


def fit_pci_only(host: HostTopology, requests: Sequence[PciRequest]) -> FitResult:
    """A guest with no NUMA topology: its devices are not filtered by node (Nova's
    PciPassthroughFilter), but they must exist and be free."""
    pools = PciPools(host.pci_devices)
    served = pools.serve(requests, None)
    if isinstance(served, PciShort):
        msg = served.message()
        reason = Reason(Code.PCI_DEVICES_SHORT, msg, need=served.request.count,
                        have=served.usable, details=(("pci_request", served.index + 1),))
        return FitResult(host.name, None, (reason,), msg)
    return FitResult(host.name, Placement(()), (), "fits: no NUMA topology requested", served)


def fit_guest(host: HostTopology, guest: Guest, options: FitOptions | None = None) -> FitResult:
    """Fit a flavor-sized guest; a guest with no NUMA need fits with no cell placement."""
    if guest.numa is None:
        if guest.pci_requests:
            return fit_pci_only(host, guest.pci_requests)
        return FitResult(host.name, Placement(()), (), "fits: no NUMA topology requested")
    return fit_request(host, guest.numa, options, guest.pci_requests)

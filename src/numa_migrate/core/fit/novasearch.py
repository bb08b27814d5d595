"""Replay Nova's own host-cell search, fit caches and all, to say where it answers wrongly.

Since Nova 26 (Zed), ``numa_fit_instance_to_host`` walks ``itertools.permutations`` of the
(ordered) host cells and remembers, in a ``fit_cache`` and a ``not_fit_cache``, the pairs
(host cell id, guest cell id) it has checked. But a guest cell's id is not stable during the
walk: Nova overwrites it with the host cell's id

- whenever the per-cell check succeeds, also inside a permutation that later fails;
- when a ``fit_cache`` hit lets a cell through without a check;
- as soon as a pinned cell's CPUs are packed, even when the ``mixed`` policy's allocation
  ratio check then refuses the cell.

Its requested page size is overwritten too: ``small``/``large``/``any`` becomes the size chosen
on the first host cell whose page check passes (even if a later CPU check fails), and every
later check of that guest cell asks for exactly that size. Neither cache key holds the
emulator-thread reservation (guest cell 0 only) or the page size. So a cached pair can stand
for another guest cell, another reservation or another page size, and Nova can refuse a host
on which an assignment exists, accept a cell it never checked there, or return a cell with
the CPU pins of the host cell it was last checked on.

:func:`nova_search` replays that walk with our own per-(guest cell, host cell) verdicts in
place of Nova's per-cell check, and compares its answer with the fitter's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from numa_migrate.core.fit.cellfit import CellFit, page_size_for
from numa_migrate.core.fit.fitter import (
    FitOptions,
    Verdict,
    Verdicts,
    fit_request,
    order_host_cells,
)
from numa_migrate.core.fit.reasons import plural, unique
from numa_migrate.core.model.guest import (
    CPUPolicy,
    GuestRequest,
    PageSizeKind,
    PageSizeRequest,
    describe_page_size,
)
from numa_migrate.core.model.host import HostCell, HostTopology

MAX_PERMUTATIONS = 100_000
"""Beyond this many permutations tried, the replay stops and says it did not decide."""


@dataclass(frozen=True, slots=True)
class NovaSearch:
    """What Nova's permutation search would answer for a host, and why it differs from ours.

    ``host_cells`` is the host cell id of each guest cell in Nova's answer (None when it
    refuses or was not simulated); ``defect`` is one line, set only when Nova's answer
    differs from the fitter's (a refusal where we fit, an assignment we refuse, another
    assignment than ours, or a cell returned with another host cell's pins or page size).
    """

    decided: bool
    fits: bool
    host_cells: tuple[int, ...] | None
    defect: str | None
    tried: int
    """Permutations Nova starts before it answers."""
    summary: str


@dataclass(frozen=True, slots=True)
class _Check:
    """One real per-cell check, as Nova caches it under (host cell id, ``cell_id``)."""

    guest_cell: int
    host_cell: int
    cell_id: int
    page: PageSizeRequest | None
    reserve: bool
    fits: bool
    reasons: tuple[str, ...]


def _reasons(verdict: Verdict) -> tuple[str, ...]:
    if isinstance(verdict, CellFit):
        return ()
    return unique(r.message for r in verdict)


def _pages(page: PageSizeRequest | None) -> str:
    if page is None:
        return "no page size"
    if page.kind is PageSizeKind.EXPLICIT:
        return f"{describe_page_size(page.size_kib or 0)} pages"
    return f"{page.kind.value} pages"


def _assignment(host_ids: Sequence[int]) -> str:
    return ", ".join(f"guest cell {g} -> host cell {h}" for g, h in enumerate(host_ids))


class _Walk:
    """Nova's mutable search state: guest cell ids, page sizes, pins and both caches."""

    def __init__(
        self, cells: tuple[HostCell, ...], request: GuestRequest, options: FitOptions
    ) -> None:
        n = len(request.cells)
        self.cells = cells
        self.request = request
        # Nova's search knows nothing of the page size a migrating guest runs with: the move
        # claim compares it afterwards.
        self.options = replace(options, current_pagesize_kib=None)
        self.tables: dict[tuple[PageSizeRequest | None, bool], Verdicts] = {}
        self.ids = list(range(n))
        self.page: list[PageSizeRequest | None] = [request.page_size] * n
        self.page_fixed_on: list[int | None] = [None] * n
        self.packed_on: list[int | None] = [None] * n
        self.fit_cache: dict[tuple[int, int], _Check] = {}
        self.not_fit_cache: dict[tuple[int, int], _Check] = {}

    def verdict(
        self, g: int, h: int, page: PageSizeRequest | None, *, limits: bool = True
    ) -> Verdict:
        """Our verdict for guest cell ``g`` on host cell position ``h`` asking for ``page``."""
        key = (page, limits)
        table = self.tables.get(key)
        if table is None:
            request = replace(self.request, page_size=page)
            options = self.options if limits else replace(self.options, limits=None)
            table = self.tables[key] = Verdicts(self.cells, request, options)
        return table.get(g, h)

    def check(self, g: int, h: int) -> _Check:
        """Nova's per-cell check of guest cell ``g`` on host cell ``h``, with its mutations."""
        host = self.cells[h]
        page = self.page[g]
        verdict = self.verdict(g, h, page)
        fits = isinstance(verdict, CellFit)
        if page is not None and page.kind is not PageSizeKind.EXPLICIT:
            size, _ = page_size_for(
                host, replace(self.request, page_size=page), self.request.cells[g], None
            )
            if size is not None:  # fixed even when a later check refuses the cell
                self.page[g] = PageSizeRequest.explicit(size)
                self.page_fixed_on[g] = host.id
        packed = fits and self.request.pinned
        if (
            not fits
            and self.request.cpu_policy is CPUPolicy.MIXED
            and self.options.limits is not None
        ):
            # Nova packs mixed cells' CPUs (and takes the host cell's id) before the
            # allocation-ratio check that may still refuse them
            packed = isinstance(self.verdict(g, h, page, limits=False), CellFit)
        check = _Check(
            g,
            host.id,
            self.ids[g],
            page,
            g == 0 and self.request.emulator_isolated,
            fits,
            _reasons(verdict),
        )
        if fits or packed:
            self.ids[g] = host.id
        if packed:
            self.packed_on[g] = host.id
        return check


@dataclass(frozen=True, slots=True)
class _Outcome:
    tried: int
    chosen: tuple[int, ...] | None
    """Host cell positions of the accepted permutation."""
    hits: dict[int, _Check]
    """Guest cells of the accepted permutation let through by a fit-cache hit."""
    our_visit: _Rejection | None
    """Why Nova rejected our assignment when it tried it (None: not tried or accepted)."""


def _who(check: _Check, g: int, request: GuestRequest, page: PageSizeRequest | None) -> str:
    """'guest cell k's <what> check on host cell Y (how it differs from guest cell g's)'."""
    quals = []
    if check.reserve and g != 0:
        quals.append("with guest cell 0's emulator-thread CPU")
    if check.page != page:
        quals.append(f"asking for {_pages(check.page)}")
    if check.guest_cell != g:
        cell = request.cells[check.guest_cell]
        quals.append(f"{plural(len(cell.vcpus), 'vCPU')}, {cell.memory_mib} MiB")
    qual = f" ({'; '.join(quals)})" if quals else ""
    return f"guest cell {check.guest_cell}'s check on host cell {check.host_cell}{qual}"


def _since(g: int, cell_id: int) -> str:
    if cell_id == g:
        return ""
    return f" since Nova tried it on host cell {cell_id}"


@dataclass(frozen=True, slots=True)
class _Rejection:
    by_cache: bool
    why: str


def _rejection(walk: _Walk, g: int, h: int, cell_id: int, cached: _Check | None) -> _Rejection:
    """Why Nova rejects guest cell ``g`` on host cell position ``h`` where ours fits it."""
    host_id = walk.cells[h].id
    page = walk.page[g]
    verdict = walk.verdict(g, h, page)
    if cached is not None and isinstance(verdict, CellFit):
        because = "; ".join(cached.reasons)
        return _Rejection(
            True,
            f"{_who(cached, g, walk.request, page)} failed ({because}) and was cached under "
            f"id {cell_id}, which guest cell {g} carries{_since(g, cell_id)}, so Nova refuses "
            f"guest cell {g} on host cell {host_id} from the cache without checking it",
        )
    because = "; ".join(_reasons(verdict))
    fixed_on = walk.page_fixed_on[g]
    if fixed_on is not None and page != walk.request.page_size:
        return _Rejection(
            False,
            f"guest cell {g}'s page size was fixed to {_pages(page)} when Nova tried it on "
            f"host cell {fixed_on}, and host cell {host_id} cannot give it those: {because}",
        )
    return _Rejection(
        False,
        f"guest cell {g} asks Nova for {_pages(page)}, which host cell {host_id} cannot "
        f"give it: {because}",
    )


def _walk(walk: _Walk, ours: tuple[int, ...] | None, bound: int) -> _Outcome | None:
    """Nova's permutation loop; None when it would try more than ``bound`` permutations."""
    n, cells = len(walk.request.cells), walk.cells
    tried = 0
    our_visit: _Rejection | None = None
    for perm in itertools.permutations(range(len(cells)), n):
        tried += 1
        if tried > bound:
            return None
        hits: dict[int, _Check] = {}
        broke: tuple[int, int, int, _Check | None] | None = None
        for g, h in enumerate(perm):
            key = (cells[h].id, walk.ids[g])
            refused = walk.not_fit_cache.get(key)
            if refused is not None:
                broke = (g, h, key[1], refused)
                break
            cached = walk.fit_cache.get(key)
            if cached is not None:
                walk.ids[g] = cells[h].id
                hits[g] = cached
                continue
            check = walk.check(g, h)
            if check.fits:
                walk.fit_cache[key] = check
            else:
                walk.not_fit_cache[key] = check
                broke = (g, h, key[1], None)
                break
        if broke is None:
            return _Outcome(tried, perm, hits, our_visit)
        if perm == ours:
            g, h, cell_id, cached = broke
            our_visit = _rejection(walk, g, h, cell_id, cached)
    return _Outcome(tried, None, {}, our_visit)


def _accepted_problems(
    walk: _Walk, ours: Verdicts, chosen: tuple[int, ...], hits: dict[int, _Check]
) -> list[str]:
    """Where Nova's accepted permutation is not what a real check would give."""
    unfit: list[str] = []
    stale: list[str] = []
    for g, h in enumerate(chosen):
        host_id = walk.cells[h].id
        hit = hits.get(g)
        page = walk.page[g]
        our_verdict = ours.get(g, h)
        if hit is not None:
            nova_verdict = walk.verdict(g, h, page)
            failed = our_verdict if not isinstance(our_verdict, CellFit) else nova_verdict
            if not isinstance(failed, CellFit):
                unfit.append(
                    f"Nova's fit cache lets guest cell {g} onto host cell {host_id} unchecked "
                    f"({_who(hit, g, walk.request, page)} fitted, cached under id "
                    f"{hit.cell_id}), but guest cell {g} does not fit there: "
                    + "; ".join(_reasons(failed))
                )
                continue
            packed_on = walk.packed_on[g]
            if walk.request.pinned and packed_on != host_id:
                where = (
                    "no CPU pins (it was never checked itself)"
                    if packed_on is None
                    else f"the CPU pins of its last check, on host cell {packed_on}"
                )
                stale.append(
                    f"Nova's fit cache lets guest cell {g} onto host cell {host_id} unchecked "
                    f"({_who(hit, g, walk.request, page)} fitted), so Nova returns it with "
                    f"{where}"
                )
            continue
        if not isinstance(our_verdict, CellFit):
            fixed_on = walk.page_fixed_on[g]
            since = f" since host cell {fixed_on}" if fixed_on is not None else ""
            unfit.append(
                f"Nova checks guest cell {g} on host cell {host_id} asking for "
                f"{_pages(page)}{since}, which fits, but the request's "
                f"{_pages(walk.request.page_size)} do not: " + "; ".join(_reasons(our_verdict))
            )
    return unfit + stale


def _permutations(m: int, n: int) -> int:
    return math.perm(m, n) if m >= n else 0


def nova_search(
    host: HostTopology,
    request: GuestRequest,
    options: FitOptions | None = None,
    *,
    bound: int = MAX_PERMUTATIONS,
) -> NovaSearch:
    """Nova's answer for ``request`` on ``host``, replayed with our per-cell verdicts."""
    options = options or FitOptions()
    n, m = len(request.cells), len(host.cells)
    ours = fit_request(host, request, options)
    if m < n:
        return NovaSearch(True, False, None, None, 0, f"Nova refuses: {ours.summary}")
    cells = order_host_cells(host.cells, request, options.packing)
    position = {c.id: i for i, c in enumerate(cells)}
    our_perm: tuple[int, ...] | None = None
    if ours.placement is not None:
        our_perm = tuple(position[c.host_cell] for c in ours.placement.cells)
    walk = _Walk(cells, request, options)
    outcome = _walk(walk, our_perm, bound)
    if outcome is None:
        total = _permutations(m, n)
        return NovaSearch(
            False,
            False,
            None,
            None,
            bound,
            f"not simulated: Nova would try more than {bound:,} of the {total:,} "
            "host-cell permutations",
        )
    our_ids = None if our_perm is None else tuple(cells[h].id for h in our_perm)
    current = options.current_pagesize_kib
    kept = "" if current is None else f" with the {describe_page_size(current)} pages it runs with"
    if outcome.chosen is None:
        summary = f"Nova refuses after trying all {outcome.tried:,} host-cell permutations"
        defect = None
        if our_ids is not None:
            visit = outcome.our_visit
            lead = "Nova's fit cache" if visit is not None and visit.by_cache else "Nova"
            why = "Nova never accepts it" if visit is None else visit.why
            defect = (
                f"{lead} would refuse this host, which fits{kept} ({_assignment(our_ids)}): {why}"
            )
        return NovaSearch(True, False, None, defect, outcome.tried, summary)

    nova_ids = tuple(cells[h].id for h in outcome.chosen)
    verdicts = Verdicts(cells, request, options)
    problems = _accepted_problems(walk, verdicts, outcome.chosen, outcome.hits)
    if current is not None:
        wrong = [g for g, page in enumerate(walk.page) if page != PageSizeRequest.explicit(current)]
        if wrong:
            g = wrong[0]
            summary = (
                f"Nova's search picks {_assignment(nova_ids)} with {_pages(walk.page[g])} for "
                f"guest cell {g}; its move claim refuses that, the guest runs with "
                f"{describe_page_size(current)} pages"
            )
            defect = None
            if our_ids is not None:
                defect = f"Nova's move claim would refuse this host: {summary}"
            return NovaSearch(True, False, None, defect, outcome.tried, summary)
    summary = f"Nova fits after {outcome.tried:,} permutations: {_assignment(nova_ids)}"
    defect = None
    if problems:
        lead = (
            "Nova would accept an assignment we refuse"
            if our_ids is None
            else "Nova would accept an invalid assignment"
        )
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        defect = f"{lead} ({_assignment(nova_ids)}): {problems[0]}{more}"
    elif our_ids is None:
        defect = f"Nova fits ({_assignment(nova_ids)}) where our fitter refuses: {ours.summary}"
    elif nova_ids != our_ids:
        visit = outcome.our_visit
        why = "Nova tries it later" if visit is None else visit.why
        lead = "Nova's fit cache" if visit is not None and visit.by_cache else "Nova"
        defect = (
            f"{lead} skips our assignment ({_assignment(our_ids)}) and picks "
            f"{_assignment(nova_ids)} instead: {why}"
        )
    return NovaSearch(True, True, nova_ids, defect, outcome.tried, summary)

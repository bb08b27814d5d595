"""16 OS processes claim overlapping CPUs, pages and VFs at once against one real database.

Every process opens the (fresh) store itself, so the schema migration also runs 16 times
concurrently. Then, for several rounds, all processes claim at the same moment (a barrier),
and in a second phase, again all at once, winners move their claims along the life cycle or
free them while losers retry with a placement computed from live usage minus the claims held
by others. Afterwards the test checks, from what the processes saw and from the database:
no CPU, page or VF was ever booked twice, winners never hold more pages than there are,
every refusal was a ClaimConflict naming real holders of what was asked, and the store's
counters agree with its rows.
"""

from __future__ import annotations

import multiprocessing
import random
import re
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from numa_migrate.claims import (
    Claim,
    ClaimConflict,
    ClaimState,
    ClaimStore,
    subtract_holdings,
)
from numa_migrate.core.fit.fitter import fit_request
from numa_migrate.core.model.guest import GuestRequest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import Placement
from tests.claims import (
    lab_host,
    pinned_placement,
    pinned_request,
    shared_placement,
    shared_request,
)

PROCESSES = 16
ROUNDS = 12
HOST = "conc"
PAGES_PER_CELL = 24  # 2 MiB pages per cell
VFS = tuple(f"0000:3b:02.{i}" for i in range(6))
BARRIER_TIMEOUT_S = 120.0


def conc_host() -> HostTopology:
    """2 cells x 8 dedicated CPUs, 24 free 2 MiB pages per cell."""
    return lab_host(HOST, pages_2m=PAGES_PER_CELL)


@dataclass
class Attempt:
    """One claim attempt, as plain data (sent back to the test process)."""

    worker: int
    round: int
    phase: str
    cell: int
    cpus: tuple[int, ...]
    pages: int
    vf: str | None
    ok: bool = False
    claim_id: int | None = None
    error_type: str | None = None
    message: str = ""
    conflicts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Freed:
    worker: int
    round: int
    claim_id: int
    state: str


def _random_attempt(rng: random.Random, worker: int, rnd: int, phase: str) -> Attempt:
    cell = rng.randrange(2)
    base = cell * 8
    style = rng.randrange(3)
    if style == 0:  # a few CPUs from a crowded corner, some pages, maybe a VF
        cpus = tuple(rng.sample(range(base, base + 6), rng.randint(1, 3)))
        return Attempt(
            worker,
            rnd,
            phase,
            cell,
            cpus,
            rng.randint(2, 8),
            rng.choice(VFS[:3]) if rng.random() < 0.5 else None,
        )
    if style == 1:  # pages only (a floating guest with explicit 2 MiB pages)
        return Attempt(
            worker,
            rnd,
            phase,
            cell,
            (),
            rng.randint(4, 10),
            rng.choice(VFS) if rng.random() < 0.3 else None,
        )
    # one CPU anywhere in the cell and a VF
    return Attempt(worker, rnd, phase, cell, (rng.randrange(base, base + 8),), 2, rng.choice(VFS))


def _fitted_attempt(
    store: ClaimStore, rng: random.Random, worker: int, rnd: int, phase: str
) -> tuple[Attempt, GuestRequest, Placement] | None:
    """Plan like an operator: fit on live usage minus the claims held by others."""
    live = conc_host()
    holdings = store.held_by_others(HOST)
    pages = rng.randint(2, 6)
    request = pinned_request(2, pages * 2)
    fit = fit_request(subtract_holdings(live, holdings), request)
    if fit.placement is None:
        return None
    free_vfs = [v for v in VFS if v not in holdings.vfs]
    placed = fit.placement.cells[0]
    attempt = Attempt(
        worker,
        rnd,
        phase,
        placed.host_cell,
        tuple(p for _, p in placed.pinning or ()),
        pages,
        free_vfs[0] if free_vfs and rng.random() < 0.5 else None,
    )
    return attempt, request, fit.placement


def _request_for(a: Attempt) -> tuple[GuestRequest, Placement]:
    if a.cpus:
        return pinned_request(len(a.cpus), a.pages * 2), pinned_placement(
            a.cell, a.cpus, a.pages * 2
        )
    return shared_request(1, a.pages * 2, page_kib=2048), shared_placement(
        a.cell, 1, a.pages * 2, page_kib=2048
    )


def _try(
    store: ClaimStore, a: Attempt, request: GuestRequest, placement: Placement
) -> Claim | None:
    try:
        claim = store.claim(
            conc_host(),
            request,
            placement,
            domain=f"g{a.worker}-{a.round}{a.phase}",
            owner=f"w{a.worker}@test",
            ttl_s=3600,
            vfs=[a.vf] if a.vf else [],
        )
    except ClaimConflict as exc:
        a.error_type = "ClaimConflict"
        a.message = str(exc)
        a.conflicts = [
            {
                "resource": c.resource,
                "items": list(c.items),
                "holders": list(c.holders),
                "need": c.need,
                "have": c.have,
                "held": c.held,
                "cell": c.cell,
                "message": c.message,
                "live": c.live,
            }
            for c in exc.conflicts
        ]
        return None
    except Exception as exc:  # recorded, and the test fails on it
        a.error_type = type(exc).__name__
        a.message = f"{exc}\n{traceback.format_exc()}"
        return None
    a.ok, a.claim_id = True, claim.id
    return claim


def _worker(url: str, worker: int, barrier: Any, results: Any) -> None:
    attempts: list[Attempt] = []
    freed: list[Freed] = []
    errors: list[str] = []
    rng = random.Random(1000 + worker)
    try:
        store = ClaimStore.open(url)  # 16 concurrent migrations of a fresh database
        mine: dict[int, ClaimState] = {}
        for rnd in range(ROUNDS):
            # phase A: everybody claims at once
            barrier.wait(BARRIER_TIMEOUT_S)
            planned = _fitted_attempt(store, rng, worker, rnd, "A") if worker % 4 == 0 else None
            if planned is None:
                a = _random_attempt(rng, worker, rnd, "A")
                req, placement = _request_for(a)
            else:
                a, req, placement = planned
            attempts.append(a)
            won = _try(store, a, req, placement)
            # phase B: winners move on or free, losers re-plan, all at once
            barrier.wait(BARRIER_TIMEOUT_S)
            if won is not None:
                mine[won.id] = ClaimState.RESERVED
            for cid, state in sorted(mine.items()):
                roll = rng.random()
                if state is ClaimState.RESERVED and roll < 0.3:
                    store.set_state(cid, ClaimState.MIGRATING)
                    mine[cid] = store.set_state(cid, ClaimState.ACTIVE).state
                elif roll < 0.55:
                    new = store.release(cid) if state is not ClaimState.MIGRATING else None
                    if new is not None:
                        freed.append(Freed(worker, rnd, cid, new.state.value))
                        del mine[cid]
                elif roll < 0.75 and state is ClaimState.RESERVED:
                    store.set_state(cid, ClaimState.MIGRATING)
                    store.rollback(cid)
                    freed.append(Freed(worker, rnd, cid, ClaimState.ROLLED_BACK.value))
                    del mine[cid]
            if won is None:
                planned = _fitted_attempt(store, rng, worker, rnd, "B")
                if planned is not None:
                    b, req, placement = planned
                    attempts.append(b)
                    again = _try(store, b, req, placement)
                    if again is not None:
                        mine[again.id] = ClaimState.RESERVED
        barrier.wait(BARRIER_TIMEOUT_S)
        store.close()
    except Exception:
        errors.append(traceback.format_exc())
        barrier.abort()
    results.put((attempts, freed, errors))


CPU_MSG = re.compile(
    r"^host conc: CPUs? [\d,]+ (is|are) held by claim (\d+) \(owner w\d+@test, "
    r"(reserved|migrating|active) g\d+-\d+[AB], expires in \d+ s\)$"
)
VF_MSG = re.compile(
    r"^host conc: VF 0000:3b:02\.\d is held by claim (\d+) \(owner w\d+@test, "
    r"(reserved|migrating|active) g\d+-\d+[AB], expires in \d+ s\)$"
)
PAGES_MSG = re.compile(
    r"^host conc cell (\d): needs (\d+) 2 MiB pages?; (\d+) 2 MiB pages? free on the host, "
    r"of which claims hold (\d+): (claim \d+ \(owner w\d+@test, (reserved|migrating|active) "
    r"g\d+-\d+[AB], expires in \d+ s\) holds \d+ 2 MiB pages?(, )?)+$"
)


def _check_disjoint(live: dict[int, Attempt], where: str) -> None:
    cpus: Counter[tuple[int, int]] = Counter()
    vfs: Counter[str] = Counter()
    pages: Counter[int] = Counter()
    for a in live.values():
        cpus.update((a.cell, c) for c in a.cpus)
        if a.vf:
            vfs[a.vf] += 1
        pages[a.cell] += a.pages
    assert not [k for k, n in cpus.items() if n > 1], f"{where}: CPU booked twice"
    assert not [k for k, n in vfs.items() if n > 1], f"{where}: VF booked twice"
    assert all(n <= PAGES_PER_CELL for n in pages.values()), f"{where}: pages over {pages}"


@pytest.mark.slow
def test_concurrent_processes_never_double_book(empty_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(empty_url, i, barrier, results), daemon=True)
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        collected = [results.get(timeout=240) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    attempts: list[Attempt] = [a for got in collected for a in got[0]]
    freed: list[Freed] = [f for got in collected for f in got[1]]
    crashes = [e for got in collected for e in got[2]]
    assert crashes == [], crashes[0] if crashes else ""
    assert all(p.exitcode == 0 for p in procs)

    granted = {a.claim_id: a for a in attempts if a.ok and a.claim_id is not None}
    refused = [a for a in attempts if not a.ok]
    unexpected = [a for a in refused if a.error_type != "ClaimConflict"]
    assert unexpected == [], unexpected[0].message
    # the test means something: plenty of both outcomes
    assert len(granted) >= ROUNDS * 2
    assert len(refused) >= ROUNDS * 2

    # every refusal names real holders of exactly what was asked for
    for a in refused:
        assert a.message == "; ".join(c["message"] for c in a.conflicts)
        assert a.conflicts
        for c in a.conflicts:
            assert not c["live"]
            for holder in c["holders"]:
                assert holder in granted, f"{c['message']}: unknown holder"
            if c["resource"] == "cpus":
                assert CPU_MSG.match(c["message"]), c["message"]
                (holder,) = c["holders"]
                assert set(c["items"]) <= set(a.cpus)
                assert set(c["items"]) <= set(granted[holder].cpus)
                assert granted[holder].cell == a.cell
            elif c["resource"] == "vfs":
                assert VF_MSG.match(c["message"]), c["message"]
                (holder,) = c["holders"]
                assert c["items"] == [a.vf] == [granted[holder].vf]
            else:
                assert c["resource"] == "pages"
                m = PAGES_MSG.match(c["message"])
                assert m, c["message"]
                assert (c["cell"], c["need"], c["have"]) == (a.cell, a.pages, PAGES_PER_CELL)
                assert c["held"] + c["need"] > c["have"]
                assert c["held"] == sum(granted[h].pages for h in c["holders"]), (
                    "holders' pages add up to what is held"
                )

    # by construction: at the end of each phase the live claims are disjoint and fit
    live: dict[int, Attempt] = {}
    for rnd in range(ROUNDS):
        live.update({i: a for i, a in granted.items() if a.round == rnd and a.phase == "A"})
        _check_disjoint(live, f"round {rnd} after the claims")
        for f in freed:
            if f.round == rnd:
                live.pop(f.claim_id)
        live.update({i: a for i, a in granted.items() if a.round == rnd and a.phase == "B"})
        _check_disjoint(live, f"round {rnd} after frees and re-plans")

    # and in the database
    with ClaimStore.open(empty_url, migrate=False) as store:
        assert store.verify() == []
        in_db = {c.id: c for c in store.list_claims(HOST)}
        assert set(in_db) == set(live)
        every = store.list_claims(HOST, states=list(ClaimState))
        assert {c.id for c in every} == set(granted)
        for cid, claim in in_db.items():
            a = live[cid]
            assert claim.resources.pinned_cpus == set(a.cpus)
            assert claim.resources.vfs == ({a.vf} if a.vf else set())
        holdings = store.held_by_others(HOST)
        view = subtract_holdings(conc_host(), holdings)
        for cell in view.cells:
            pool = cell.page_pool(2048)
            assert pool is not None and pool.used <= PAGES_PER_CELL
        all_cpus = [c for claim in in_db.values() for c in claim.resources.pinned_cpus]
        assert len(all_cpus) == len(set(all_cpus))
        all_vfs = [v for claim in in_db.values() for v in claim.resources.vfs]
        assert len(all_vfs) == len(set(all_vfs))

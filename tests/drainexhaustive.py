"""Exhaustive drain search for tiny fleets (shares no code with core/drain).

Decides, for a fleet and the hosts to drain, the most guests any plan can move and the fewest
waves that moving that many needs. Only drained hosts release capacity and they never receive,
so a destination's free capacity only shrinks: a set of placements computed one after another
on each destination (every one on the state the earlier ones left) stays valid whatever the
order the moves then run in. So the search is in two parts:

- placements: every order of the guests, each guest on every destination with every map of
  its cells onto host cells (the fitter on the host restricted to those cells) or left
  behind; states already seen (the guests left and the destinations' usage) are not searched
  again;
- waves: for the moves of each set of placements, every partition into W waves for W from 1
  up, the first W whose partition keeps both limits (at most ``max_parallel`` moves per wave,
  at most ``per_host`` touching a host).

Meant for ≤ 5 guests and ≤ 3 destinations of ≤ 2 cells; it grows factorially.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import permutations
from typing import Any

from numa_migrate.core.fit.fitter import FitOptions, fit_guest
from numa_migrate.core.pcidevices import take_devices
from numa_migrate.core.usage import apply_placement


@dataclass(frozen=True)
class Best:
    placed: int
    """The most guests any plan moves."""
    waves: int
    """The fewest waves moving that many needs."""


def _placements(host: Any, g: Any) -> list[tuple[Any, tuple[str, ...]]]:
    """Every distinct (placement, devices) of ``g`` on ``host``, one per cell map."""
    options = FitOptions(current_pagesize_kib=g.pagesize_kib)
    numa = g.guest.numa
    out: list[tuple[Any, tuple[str, ...]]] = []
    maps: Iterable[tuple[int, ...]]
    maps = [()] if numa is None else permutations([c.id for c in host.cells], len(numa.cells))
    for cells in maps:
        only = host if not cells else replace(
            host, cells=tuple(c for c in host.cells if c.id in cells))
        r = fit_guest(only, g.guest, options)
        if r.placement is not None and (r.placement, r.pci_addresses) not in out:
            out.append((r.placement, r.pci_addresses))
    return out


def _add(host: Any, g: Any, placement: Any, devices: tuple[str, ...]) -> Any:
    if g.guest.numa is not None:
        host = apply_placement(host, g.guest.numa, placement)
    if devices:
        host = replace(host, pci_devices=take_devices(host.pci_devices, devices))
    return host


def min_waves(edges: Sequence[tuple[str, str]], max_parallel: int, per_host: int) -> int:
    """The fewest waves for ``edges`` (source, destination), by trying every partition."""
    if not edges:
        return 0
    for w in range(1, len(edges) + 1):
        if _partition(list(edges), w, max_parallel, per_host):
            return w
    raise AssertionError("one move per wave always works")


def _partition(edges: list[tuple[str, str]], w: int, max_parallel: int, per_host: int) -> bool:
    size = [0] * w
    touch: list[dict[str, int]] = [{} for _ in range(w)]

    def go(i: int, used: int) -> bool:
        if i == len(edges):
            return True
        s, d = edges[i]
        for k in range(min(used + 1, w)):  # waves are interchangeable: open one new at most
            if size[k] >= max_parallel or touch[k].get(s, 0) >= per_host \
                    or touch[k].get(d, 0) >= per_host:
                continue
            size[k] += 1
            touch[k][s] = touch[k].get(s, 0) + 1
            touch[k][d] = touch[k].get(d, 0) + 1
            if go(i + 1, max(used, k + 1)):
                return True
            size[k] -= 1
            touch[k][s] -= 1
            touch[k][d] -= 1
        return False

    return go(0, 0)


def search(state: Any, drained: Iterable[str], max_parallel: int, per_host: int) -> Best:
    drained = set(drained)
    guests = {g.name: g for g in state.guests if g.host in drained}
    dests = tuple(sorted(h.name for h in state.hosts if h.name not in drained))
    start = {h.name: h for h in state.hosts}
    seen: set[tuple[frozenset[str], tuple[Any, ...], tuple[tuple[str, str], ...]]] = set()
    best = [(-1, 0)]  # (placed, -waves), the larger the better
    wave_memo: dict[tuple[tuple[str, str], ...], int] = {}

    def leaf(moves: tuple[tuple[str, str], ...]) -> None:
        key = tuple(sorted(moves))
        if key not in wave_memo:
            wave_memo[key] = min_waves(key, max_parallel, per_host)
        score = (len(moves), -wave_memo[key])
        best[0] = max(best[0], score)

    # moving every guest needs at least this many waves (counting alone): once a plan moves
    # every guest in that many, nothing can beat it
    n = len(guests)
    floor = max([-(-n // max_parallel)] + [-(-len(state.guests_on(h)) // per_host)
                                           for h in drained]) if n else 0

    def go(left: frozenset[str], hosts: dict[str, Any], moves: tuple[tuple[str, str], ...]
           ) -> None:
        if best[0] == (n, -floor) or len(moves) + len(left) < best[0][0]:
            return  # solved, or cannot move as many as the best plan found
        key = (left, tuple(hosts[d] for d in dests), tuple(sorted(moves)))
        if key in seen:
            return
        seen.add(key)
        if not left:
            leaf(moves)
            return
        for name in sorted(left):
            g = guests[name]
            go(left - {name}, hosts, moves)  # left behind
            for d in dests:
                for placement, devices in _placements(hosts[d], g):
                    after = dict(hosts)
                    after[d] = _add(hosts[d], g, placement, devices)
                    go(left - {name}, after, (*moves, (g.host, d)))

    go(frozenset(guests), start, ())
    placed, neg_waves = best[0]
    return Best(placed, -neg_waves)

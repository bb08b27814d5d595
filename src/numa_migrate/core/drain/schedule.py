"""Waves for a set of moves whose placements are already fixed.

Only drained hosts release capacity and they never receive, so once every move's placement is
computed on its destination with the earlier ones accounted (disjoint CPUs, pages and VFs, all
free at the start), the moves can run in any order: the waves are a pure scheduling question.
A move is an edge source → destination; a wave holds at most ``max_parallel`` edges and at
most ``per_host`` edges at any host. The fewest waves is at least

    max(ceil(moves / max_parallel), max over hosts ceil(moves touching it / per_host))

(:func:`lower_bound`) and, the graph being bipartite (drained sources, kept destinations), de
Werra's theorem on balanced equitable edge colourings says that many waves always suffice.
:func:`schedule` builds waves greedily, most urgent edge first (the edge whose endpoint has
the least slack: remaining moves minus what the remaining waves of the bound can absorb); it
reaches the bound on every fleet measured, and the plan says when it does not.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["lower_bound", "schedule"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def lower_bound(edges: Sequence[tuple[str, str]], max_parallel: int, per_host: int) -> int:
    """The fewest waves that can run ``edges`` (0 for none)."""
    if not edges:
        return 0
    degree: dict[str, int] = {}
    for s, d in edges:
        degree[s] = degree.get(s, 0) + 1
        degree[d] = degree.get(d, 0) + 1
    return max(_ceil_div(len(edges), max_parallel),
               _ceil_div(max(degree.values()), per_host))


def schedule(
    edges: Sequence[tuple[str, str]], max_parallel: int, per_host: int
) -> list[list[int]]:
    """Waves of edge indices (each edge once; in each wave the indices ascend)."""
    target = lower_bound(edges, max_parallel, per_host)
    left = dict.fromkeys(range(len(edges)), True)
    degree: dict[str, int] = {}
    for s, d in edges:
        degree[s] = degree.get(s, 0) + 1
        degree[d] = degree.get(d, 0) + 1
    waves: list[list[int]] = []
    while left:
        later = max(target - len(waves) - 1, 0)  # waves of the bound after this one
        absorb = later * per_host

        def urgency(i: int, absorb: int = absorb) -> tuple[int, int, int]:
            s, d = edges[i]
            slack = min(absorb - degree[s], absorb - degree[d])
            return (slack, -(degree[s] + degree[d]), i)

        order = sorted(left, key=urgency)
        touched: dict[str, int] = {}
        wave: list[int] = []
        for i in order:
            if len(wave) >= max_parallel:
                break
            s, d = edges[i]
            if touched.get(s, 0) >= per_host or touched.get(d, 0) >= per_host:
                continue
            touched[s] = touched.get(s, 0) + 1
            touched[d] = touched.get(d, 0) + 1
            wave.append(i)
        if not wave:  # cannot happen: per_host >= 1 lets the first edge in
            raise AssertionError("an empty wave")
        for i in wave:
            del left[i]
            s, d = edges[i]
            degree[s] -= 1
            degree[d] -= 1
        waves.append(sorted(wave))
    return waves

"""What the fleet's pictures share, in the terminal and in HTML: which hosts to draw, a key
letter and a colour per guest, and how a bar is split among guests.

A drain picture draws the hosts the plan touches (the drained hosts, then the destinations, in
fleet order) before and after every move, and the other hosts once. On each host every guest
that is there before or after gets a key letter (A-Z, a-z, 0-9 in order of appearance; past
62 guests ``+``) and a colour (:func:`numa_migrate.matrix.report.guest_colours`: distinct on a
host of up to 12 guests); a CPU shows its owner's letter, or ``.`` free (dedicated pool),
``~`` shared pool, ``#`` reserved for the host, ``?`` pinned by no guest of the fleet.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from numa_migrate.core.drain.apply import state_after
from numa_migrate.core.drain.occupancy import CpuSlot, CpuState, HostOccupancy, fleet_occupancy
from numa_migrate.core.drain.plan import Plan
from numa_migrate.core.drain.state import FleetState
from numa_migrate.matrix.report import guest_colours

__all__ = ["GLYPHS", "MORE", "DrainPicture", "HostPicture", "bar", "drain_picture",
           "fleet_picture", "glyph"]

KEYS = string.ascii_uppercase + string.ascii_lowercase + string.digits
MORE = "+"
"""The key of every guest past the 62nd on one host."""
GLYPHS: Mapping[CpuState, str] = {
    CpuState.FREE: ".", CpuState.SHARED: "~", CpuState.RESERVED: "#", CpuState.OTHER: "?",
}
STATE_TEXT: Mapping[CpuState, str] = {
    CpuState.FREE: "free (dedicated pool)", CpuState.SHARED: "shared pool",
    CpuState.RESERVED: "reserved for the host", CpuState.OTHER: "pinned by no guest of the fleet",
}
FREE_KEY = "."
RESERVED_KEY = "#"
OTHER_KEY = "?"


@dataclass(frozen=True)
class HostPicture:
    name: str
    role: str
    """``drained``, ``destination`` or ``""`` (a host the plan does not touch)."""
    before: HostOccupancy
    after: HostOccupancy | None
    """None: the same as before (no plan, or a host the plan does not touch)."""
    keys: Mapping[str, str]
    """Guest -> its key letter on this host."""
    colours: Mapping[str, str]
    """Guest -> ``#rrggbb``."""
    arrivals: Mapping[str, tuple[int, str]]
    """Guest -> (wave, source) for the guests that move here."""
    departures: Mapping[str, tuple[int, str]]
    """Guest -> (wave, destination) for the guests that leave."""

    @property
    def guests(self) -> tuple[str, ...]:
        return tuple(self.keys)


@dataclass(frozen=True)
class DrainPicture:
    drained: tuple[str, ...]
    touched: tuple[HostPicture, ...]
    """The hosts the plan touches (every host for a fleet picture)."""
    others: tuple[HostPicture, ...]
    plan: Plan | None


def glyph(slot: CpuSlot, keys: Mapping[str, str]) -> str:
    if slot.owner is not None:
        return keys.get(slot.owner, MORE)
    return GLYPHS[slot.state]


def _keys(names: Iterable[str]) -> dict[str, str]:
    unique = list(dict.fromkeys(names))
    return {n: KEYS[i] if i < len(KEYS) else MORE for i, n in enumerate(unique)}


def _picture(name: str, role: str, before: HostOccupancy, after: HostOccupancy | None, *,
             arrivals: Mapping[str, tuple[int, str]] | None = None,
             departures: Mapping[str, tuple[int, str]] | None = None) -> HostPicture:
    names = list(before.guests) + (list(after.guests) if after is not None else [])
    keys = _keys(names)
    return HostPicture(name, role, before, after, keys, guest_colours(keys), arrivals or {},
                       departures or {})


def drain_picture(state: FleetState, plan: Plan, drained: Sequence[str],
                  others: bool = False) -> DrainPicture:
    """The hosts ``plan`` touches before and after it (and, with ``others``, every other
    host once)."""
    after = state_after(state, plan)
    dests = {m.destination for m in plan.moves}
    drained_set = set(drained)
    touched = [h.name for h in state.hosts if h.name in drained_set] + \
        [h.name for h in state.hosts if h.name in dests and h.name not in drained_set]
    arrivals: dict[str, dict[str, tuple[int, str]]] = {}
    departures: dict[str, dict[str, tuple[int, str]]] = {}
    for i, wave in enumerate(plan.waves, 1):
        for m in wave.moves:
            arrivals.setdefault(m.destination, {})[m.guest] = (i, m.source)
            departures.setdefault(m.source, {})[m.guest] = (i, m.destination)
    before_occ = fleet_occupancy(state, touched)
    after_occ = fleet_occupancy(after, touched)
    pictures = tuple(
        _picture(b.name, "drained" if b.name in drained_set else "destination", b, a,
                 arrivals=arrivals.get(b.name), departures=departures.get(b.name))
        for b, a in zip(before_occ, after_occ, strict=True))
    rest: tuple[HostPicture, ...] = ()
    if others:
        names = [h.name for h in state.hosts if h.name not in set(touched)]
        rest = tuple(_picture(o.name, "", o, None)
                     for o in fleet_occupancy(state, names))
    return DrainPicture(tuple(drained), pictures, rest, plan)


def fleet_picture(state: FleetState) -> DrainPicture:
    """Every host of the fleet as it is now."""
    return DrainPicture((), tuple(_picture(o.name, "", o, None)
                                  for o in fleet_occupancy(state)), (), None)


def bar(parts: Sequence[tuple[str, int]], total: int, width: int) -> list[tuple[str, int]]:
    """``parts`` (key, amount) of ``total`` as runs of a ``width``-character bar, in order,
    then ``("", n)`` for the free rest. The used share is rounded, but a part that is not 0
    always gets a character (while the bar has room) and a total not all used keeps one free
    character; within the used share, runs by largest remainders."""
    parts = [(k, n) for k, n in parts if n > 0]
    if width <= 0:
        return []
    whole = sum(n for _, n in parts)
    if total <= 0 or whole == 0:
        return [("", width)]
    target = round(min(whole, total) * width / total)
    if whole < total and width > len(parts):
        target = min(target, width - 1)
    target = max(target, min(len(parts), width))
    shares = [n * target / whole for _, n in parts]
    cells = [int(x) for x in shares]
    short = target - sum(cells)
    for i in sorted(range(len(parts)), key=lambda i: (cells[i] - shares[i], i))[:short]:
        cells[i] += 1
    for i in range(len(cells)):
        if cells[i] == 0:
            big = max(range(len(cells)), key=lambda j: cells[j])
            if cells[big] > 1:
                cells[big] -= 1
                cells[i] = 1
    out = [(k, c) for (k, _), c in zip(parts, cells, strict=True) if c > 0]
    if width > sum(cells):
        out.append(("", width - sum(cells)))
    return out

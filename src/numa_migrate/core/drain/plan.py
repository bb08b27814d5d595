"""A drain plan: waves of moves that run in parallel, and the guests that cannot move."""

from __future__ import annotations

from dataclasses import dataclass

from numa_migrate.core.model.placement import Placement

__all__ = ["DRAIN", "RELOCATE", "Move", "Plan", "Suggestion", "Unplaceable", "Wave"]

DRAIN = "drain"
"""A move of a drained host's guest off it."""
RELOCATE = "relocate"
"""A move between two staying hosts that frees room on its source for a drained guest."""


@dataclass(frozen=True)
class Move:
    """Live-migrate ``guest`` from ``source`` to ``destination`` with ``placement``,
    giving it the destination's PCI devices at ``pci_devices`` (addresses).

    ``kind``: :data:`DRAIN` (the guest leaves a drained host) or :data:`RELOCATE` (a guest of
    a staying host moves to another staying host to make room for a drained guest)."""

    guest: str
    source: str
    destination: str
    placement: Placement
    pci_devices: tuple[str, ...] = ()
    kind: str = DRAIN


@dataclass(frozen=True)
class Wave:
    """Moves that run at the same time. Each takes capacity on its destination when the
    wave starts and frees its source only when the whole wave has ended."""

    moves: tuple[Move, ...]

    def hosts_touched(self) -> dict[str, int]:
        """Moves per host, as source or destination."""
        out: dict[str, int] = {}
        for m in self.moves:
            out[m.source] = out.get(m.source, 0) + 1
            out[m.destination] = out.get(m.destination, 0) + 1
        return out


@dataclass(frozen=True)
class Unplaceable:
    """A guest of a drained host that no other host can take, and the binding reason."""

    guest: str
    source: str
    reason: str
    host: str | None = None
    """The host the reason is about (the one that came closest), when there is one."""


@dataclass(frozen=True)
class Suggestion:
    """The smallest change found that lets the drain complete: ``kind`` is ``"add-host"``
    (one more empty host shaped like the existing ``host``) or ``"free-guest"`` (stop
    ``guest`` on ``host`` or move it off the fleet)."""

    kind: str
    text: str
    host: str
    guest: str | None = None


@dataclass(frozen=True)
class Plan:
    waves: tuple[Wave, ...]
    unplaceable: tuple[Unplaceable, ...]
    solver: str
    """Which planner made the plan: ``"heuristic"``, ``"cp-sat"``, ``"cp-sat (optimal)"`` or,
    when CP-SAT saw only some destinations per guest, ``"cp-sat (optimal among its
    candidates)"``."""
    stats: tuple[tuple[str, int], ...] = ()
    """Counters of the search (fit calls, ...), for benchmarks and reports."""
    suggestions: tuple[Suggestion, ...] = ()
    """When guests remain unplaceable: the smallest changes found that make it complete."""
    suggestion_note: str = ""
    """How far the search for suggestions went (its bounds), when it ran."""
    gap: float | None = None
    """Relative optimality gap, 0 (proven optimal) to 1; None when nothing bounds it. With
    CP-SAT: the plan's objective against the model's best bound; without: the waves against
    :attr:`lower_bound_waves`."""
    lower_bound_waves: int | None = None
    """No plan moving the same guests from the same hosts needs fewer waves."""
    notes: tuple[str, ...] = ()
    """What the solver decided and why (solver chosen, limits hit, fallbacks), in order."""

    @property
    def moves(self) -> tuple[Move, ...]:
        return tuple(m for w in self.waves for m in w.moves)

    def stat(self, name: str) -> int:
        return dict(self.stats).get(name, 0)

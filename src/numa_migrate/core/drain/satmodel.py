"""What the drain's exact planner needs from a CP-SAT solver, as a protocol.

:mod:`numa_migrate.core.drain.cpsat` builds its model through :class:`SatModel` (variables
are ints: their index; constraints are lists of (coefficient, variable) terms), so the core
stays free of third-party imports; the OR-Tools implementation is
:class:`numa_migrate.adapters.ortools_sat.OrToolsModel`, handed in by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["NewModel", "Outcome", "SatModel", "Term"]

Term = tuple[int, int]
"""(coefficient, variable)."""


@dataclass(frozen=True)
class Outcome:
    status: str
    """``"optimal"``, ``"feasible"``, ``"infeasible"`` or ``"unknown"`` (no solution in time)."""
    values: tuple[int, ...]
    """Every variable's value (empty without a solution)."""
    objective: int | None
    bound: int | None
    """The best proven lower bound on the objective."""
    wall_s: float


class SatModel(Protocol):
    def __len__(self) -> int: ...

    def new_int(self, lo: int, hi: int) -> int: ...

    def new_bool(self) -> int: ...

    def add_le(self, terms: Sequence[Term], rhs: int) -> None:
        """sum(terms) <= rhs."""

    def add_ge(self, terms: Sequence[Term], rhs: int) -> None:
        """sum(terms) >= rhs."""

    def add_eq(self, terms: Sequence[Term], rhs: int) -> None: ...

    def add_implication(self, a: int, b: int) -> None:
        """Boolean a implies boolean b."""

    def minimize(self, terms: Sequence[Term]) -> None: ...

    def hint(self, var: int, value: int) -> None: ...

    def solve(self, time_limit_s: float, workers: int, seed: int = 0) -> Outcome:
        """Minimise within ``time_limit_s`` on ``workers`` threads, seeded."""


NewModel = Callable[[], SatModel]
"""Makes an empty model (e.g. the OR-Tools class itself)."""

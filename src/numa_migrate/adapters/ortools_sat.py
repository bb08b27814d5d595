"""OR-Tools CP-SAT behind the core's :class:`~numa_migrate.core.drain.satmodel.SatModel`.

The only module that imports OR-Tools (the core imports the standard library alone): integer
variables, linear constraints, one objective to minimise, hints, and a solve with a
wall-clock limit. OR-Tools' own types stay here (mypy sees them as ``Any`` through the
override in ``pyproject.toml``). Solves are seeded and use a fixed number of workers; with a
time limit that cuts the search, the answer can still differ between runs (the workers race).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from numa_migrate.core.drain.satmodel import Outcome, Term

__all__ = ["OrToolsModel"]


class OrToolsModel:
    """A CP-SAT model (one per solve)."""

    def __init__(self) -> None:
        from ortools.sat.python import cp_model

        self._cp: Any = cp_model
        self._model: Any = cp_model.CpModel()
        self._vars: list[Any] = []

    def __len__(self) -> int:
        return len(self._vars)

    def new_int(self, lo: int, hi: int) -> int:
        self._vars.append(self._model.new_int_var(lo, hi, ""))
        return len(self._vars) - 1

    def new_bool(self) -> int:
        self._vars.append(self._model.new_bool_var(""))
        return len(self._vars) - 1

    def _expr(self, terms: Sequence[Term]) -> Any:
        return sum((c * self._vars[v] for c, v in terms), 0)

    def add_le(self, terms: Sequence[Term], rhs: int) -> None:
        """sum(terms) <= rhs."""
        self._model.add(self._expr(terms) <= rhs)

    def add_ge(self, terms: Sequence[Term], rhs: int) -> None:
        """sum(terms) >= rhs."""
        self._model.add(self._expr(terms) >= rhs)

    def add_eq(self, terms: Sequence[Term], rhs: int) -> None:
        self._model.add(self._expr(terms) == rhs)

    def add_implication(self, a: int, b: int) -> None:
        """Boolean a implies boolean b."""
        self._model.add_implication(self._vars[a], self._vars[b])

    def minimize(self, terms: Sequence[Term]) -> None:
        self._model.minimize(self._expr(terms))

    def hint(self, var: int, value: int) -> None:
        self._model.add_hint(self._vars[var], value)

    def solve(self, time_limit_s: float, workers: int, seed: int = 0) -> Outcome:
        solver = self._cp.CpSolver()
        solver.parameters.max_time_in_seconds = max(time_limit_s, 0.01)
        solver.parameters.num_workers = workers
        solver.parameters.random_seed = seed
        code = solver.solve(self._model)
        cp = self._cp
        status = {cp.OPTIMAL: "optimal", cp.FEASIBLE: "feasible",
                  cp.INFEASIBLE: "infeasible"}.get(code, "unknown")
        wall = float(solver.wall_time)
        if status not in ("optimal", "feasible"):
            return Outcome(status, (), None, None, wall)
        values = tuple(int(solver.value(v)) for v in self._vars)
        return Outcome(status, values, round(solver.objective_value),
                       int(-(-solver.best_objective_bound // 1)), wall)

"""Drain planning (issue 12): move every guest off some hosts, in waves, onto the others.

``state.py`` (the fleet as the planner sees it), ``plan.py`` (moves, waves, the plan),
``heuristic.py`` (the fast greedy planner, :func:`plan_drain`), ``hosts.py`` (a host's
usage with one guest added or released: NUMA usage and VFs), ``blocking.py`` (why no host can
take a guest, in one fleet-wide sentence), ``apply.py`` (the fleet once every move has run),
``occupancy.py`` (who holds each CPU, page and MiB of each host cell, for the pictures),
``relocate.py`` (moves between staying hosts that make room for a guest no host can take),
``suggest.py`` (the smallest change that lets an incomplete drain complete: one more host of
an existing shape, or one guest freed), ``schedule.py`` (waves for moves whose placements are
fixed, at the counting bound), ``cpsat.py`` (the exact planner: a CP-SAT model realized by the
fitter), ``satmodel.py`` (what it needs from a CP-SAT solver, a protocol; OR-Tools is
``adapters/ortools_sat.py``), ``solve.py`` (:func:`solve_drain`: heuristic, CP-SAT when it can
help, the better plan with its solver, wave bound and gap).
"""

from numa_migrate.core.drain.heuristic import KeepFree, plan_drain
from numa_migrate.core.drain.plan import Move, Plan, Suggestion, Unplaceable, Wave
from numa_migrate.core.drain.relocate import relocate
from numa_migrate.core.drain.solve import solve_drain
from numa_migrate.core.drain.state import FleetGuest, FleetState
from numa_migrate.core.drain.suggest import suggest

__all__ = [
    "FleetGuest",
    "FleetState",
    "KeepFree",
    "Move",
    "Plan",
    "Suggestion",
    "Unplaceable",
    "Wave",
    "plan_drain",
    "relocate",
    "solve_drain",
    "suggest",
]

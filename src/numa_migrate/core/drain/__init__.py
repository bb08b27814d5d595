"""Drain planning (issue 12): move every guest off some hosts, in waves, onto the others.

``state.py`` (the fleet as the planner sees it), ``plan.py`` (moves, waves, the plan),
``heuristic.py`` (the fast greedy planner, :func:`plan_drain`), ``hosts.py`` (a host's
usage with one guest added or released: NUMA usage and VFs), ``blocking.py`` (why no host can
take a guest, in one fleet-wide sentence), ``apply.py`` (the fleet once every move has run),
``occupancy.py`` (who holds each CPU, page and MiB of each host cell, for the pictures).
"""

from numa_migrate.core.drain.heuristic import KeepFree, plan_drain
from numa_migrate.core.drain.plan import Move, Plan, Unplaceable, Wave
from numa_migrate.core.drain.state import FleetGuest, FleetState

__all__ = [
    "FleetGuest",
    "FleetState",
    "KeepFree",
    "Move",
    "Plan",
    "Unplaceable",
    "Wave",
    "plan_drain",
]

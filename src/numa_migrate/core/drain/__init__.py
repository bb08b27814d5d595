"""Drain planning (issue 12): move every guest off some hosts, in waves, onto the others.

``state.py`` (the fleet as the planner sees it), ``plan.py`` (moves, waves, the plan),
``heuristic.py`` (the fast greedy planner, :func:`plan_drain`), ``hosts.py`` (a host's
usage with one guest added or released: NUMA usage and VFs).
"""

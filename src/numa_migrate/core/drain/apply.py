"""The fleet after a drain plan: every move applied, as if all its waves had run.

Each moved guest leaves its source (its NUMA usage and VFs released) and lands on its
destination with the plan's placement and VFs; unplaceable guests stay where they are. Moves
are applied in the plan's order, wave by wave, each releasing its source before the next:
a relocation frees room on a staying host for a later move onto it. A plan that does not
fit the state (a guest not on its move's source, a destination that is not in the fleet, a
guest moved twice) is refused with ``ValueError``; CPUs a move pins that are already pinned raise
:class:`~numa_migrate.core.usage.UsageConflictError`.
"""

from __future__ import annotations

from dataclasses import replace

from numa_migrate.core.drain.hosts import add_guest, remove_guest
from numa_migrate.core.drain.plan import Plan
from numa_migrate.core.drain.state import FleetGuest, FleetState

__all__ = ["state_after"]


def state_after(state: FleetState, plan: Plan) -> FleetState:
    """``state`` with every move of ``plan`` applied (``state`` itself is not changed)."""
    guests = {g.name: g for g in state.guests}
    hosts = dict(state.by_name)
    moved: dict[str, FleetGuest] = {}
    for m in plan.moves:
        g = guests.get(m.guest)
        if g is None:
            raise ValueError(f"plan moves {m.guest!r}, which is not in the fleet")
        if m.guest in moved:
            raise ValueError(f"plan moves {m.guest!r} twice")
        if g.host != m.source:
            raise ValueError(f"plan moves {m.guest!r} from {m.source!r} but it runs on "
                             f"{g.host!r}")
        if m.destination not in hosts:
            raise ValueError(f"plan moves {m.guest!r} to {m.destination!r}, which is not in "
                             "the fleet")
        hosts[g.host] = remove_guest(hosts[g.host], g.guest, g.placement, g.pci_devices)
        hosts[m.destination] = add_guest(hosts[m.destination], g.guest, m.placement,
                                         m.pci_devices)
        moved[m.guest] = replace(g, host=m.destination, placement=m.placement,
                                 pci_devices=tuple(m.pci_devices))
    return FleetState(tuple(hosts[h.name] for h in state.hosts),
                      tuple(moved.get(g.name, g) for g in state.guests))

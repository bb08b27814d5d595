"""A fleet file's hosts and guests as the drain planner's state (translation only)."""

from __future__ import annotations

from numa_migrate.adapters.fleet import Fleet
from numa_migrate.core.drain.state import FleetGuest, FleetState

__all__ = ["fleet_state"]


def fleet_state(fleet: Fleet) -> FleetState:
    """The fleet's hosts (with their usage) and placed guests, with the devices they hold."""
    return FleetState(
        fleet.hosts,
        tuple(FleetGuest(g.name, g.host, g.guest, g.placement, g.pci_devices)
              for g in fleet.guests),
    )

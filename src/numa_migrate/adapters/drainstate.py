"""A fleet file's hosts and guests as the drain planner's state (translation only)."""

from __future__ import annotations

from numa_migrate.adapters.fleet import Fleet
from numa_migrate.core.drain.state import FleetGuest, FleetState
from numa_migrate.core.errors import NumaMigrateError

__all__ = ["DuplicateGuestError", "fleet_state"]


class DuplicateGuestError(NumaMigrateError):
    """Two guests of the fleet have one name (a plan and a picture name guests)."""


def fleet_state(fleet: Fleet) -> FleetState:
    """The fleet's hosts (with their usage) and placed guests, with the devices they hold.

    Guest names must be distinct (a fleet file's unnamed guests are ``guest-0``,
    ``guest-1``, ... on every host): a name used twice is refused naming its hosts."""
    hosts: dict[str, list[str]] = {}
    for g in fleet.guests:
        hosts.setdefault(g.name, []).append(g.host)
    twice = [(name, on) for name, on in hosts.items() if len(on) > 1]
    if twice:
        name, on = twice[0]
        more = f" (and {len(twice) - 1} more name(s))" if len(twice) > 1 else ""
        raise DuplicateGuestError(
            f"guest name {name!r} is used by {len(on)} guests of {fleet.source} (on "
            f"{', '.join(on)}){more}: a drain plan and a picture need distinct guest names; "
            "give every guest its own 'name'")
    return FleetState(
        fleet.hosts,
        tuple(FleetGuest(g.name, g.host, g.guest, g.placement, g.pci_devices)
              for g in fleet.guests),
    )

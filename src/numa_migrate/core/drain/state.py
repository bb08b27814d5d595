"""The fleet as the drain planner sees it: hosts with their usage, guests placed on them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from numa_migrate.core.model.guest import Guest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.where import running_pagesize_kib

__all__ = ["FleetGuest", "FleetState"]


@dataclass(frozen=True)
class FleetGuest:
    """A guest running on ``host`` with ``placement``, holding the VFs at ``pci_devices``."""

    name: str
    host: str
    guest: Guest
    placement: Placement
    pci_devices: tuple[str, ...] = ()

    @property
    def pagesize_kib(self) -> int | None:
        """The page size the guest runs with (None: no cell placement or no page size); the
        same rule as ``where`` (:func:`numa_migrate.core.where.running_pagesize_kib`)."""
        return running_pagesize_kib(self.guest, self.placement)[0]


@dataclass(frozen=True)
class FleetState:
    """Hosts (their usage includes the guests' usage) and the guests on them.

    Host and guest names are unique; every guest's host is one of ``hosts``.
    """

    hosts: tuple[HostTopology, ...]
    guests: tuple[FleetGuest, ...]

    def __post_init__(self) -> None:
        names = [h.name for h in self.hosts]
        if len(set(names)) != len(names):
            raise ValueError("fleet state: host names must be unique")
        guests = [g.name for g in self.guests]
        if len(set(guests)) != len(guests):
            raise ValueError("fleet state: guest names must be unique")
        unknown = sorted({g.host for g in self.guests} - set(names))
        if unknown:
            raise ValueError(f"fleet state: guests on unknown hosts {unknown}")

    @cached_property
    def by_name(self) -> dict[str, HostTopology]:
        return {h.name: h for h in self.hosts}

    def host(self, name: str) -> HostTopology:
        return self.by_name[name]

    def guests_on(self, name: str) -> tuple[FleetGuest, ...]:
        return tuple(g for g in self.guests if g.host == name)

"""A host's usage with one guest added (a move's destination) or released (its source)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from numa_migrate.core.model.guest import Guest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.pcidev import PciDevice
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.pcidevices import take_devices
from numa_migrate.core.usage import apply_placement

__all__ = ["add_guest", "release_devices", "remove_guest"]


def release_devices(
    devices: Iterable[PciDevice], addresses: Iterable[str]
) -> tuple[PciDevice, ...]:
    """``devices`` with those at ``addresses`` free again (their guest left)."""
    held = frozenset(addresses)
    return tuple(replace(d, allocated=False) if d.address in held else d for d in devices)


def add_guest(
    host: HostTopology, guest: Guest, placement: Placement, pci: Iterable[str]
) -> HostTopology:
    """``host`` with the guest's NUMA usage (when it has a NUMA request) and VFs taken."""
    if guest.numa is not None:
        host = apply_placement(host, guest.numa, placement)
    addresses = tuple(pci)
    if addresses:
        host = replace(host, pci_devices=take_devices(host.pci_devices, addresses))
    return host


def remove_guest(
    host: HostTopology, guest: Guest, placement: Placement, pci: Iterable[str]
) -> HostTopology:
    """``host`` with the guest's NUMA usage released and its VFs free again."""
    if guest.numa is not None:
        host = apply_placement(host, guest.numa, placement, release=True)
    addresses = tuple(pci)
    if addresses:
        host = replace(host, pci_devices=release_devices(host.pci_devices, addresses))
    return host

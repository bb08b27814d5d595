"""A host's PCI functions as the fit sees them (pure).

Node-device XML gives PCI functions (:class:`~numa_migrate.core.model.pci.PciFunction`): PFs
with their VFs, NUMA nodes and interface names. The fit needs
:class:`~numa_migrate.core.model.pcidev.PciDevice` values: each VF with its PF's physical
network (from an inventory's ``physical_networks``: PF interface names or PF PCI addresses)
and whether a guest or a claim already holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from numa_migrate.core.model.pci import PciFunction
from numa_migrate.core.model.pcidev import DevType, PciDevice

__all__ = ["PhysNets", "fit_devices", "take_devices"]


@dataclass(frozen=True)
class PhysNets:
    """A host's physical networks: physnet name -> PF interface names or PF PCI addresses."""

    networks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def of_pf(self, pf: PciFunction | None) -> str | None:
        if pf is None:
            return None
        for name, members in sorted(self.networks.items()):
            if pf.address in members or any(i in members for i in pf.net_interfaces):
                return name
        return None



def fit_devices(
    functions: Iterable[PciFunction], *, nets: PhysNets, busy: Mapping[str, str]
) -> tuple[PciDevice, ...]:
    """A host's PCI functions as the fit sees them: VFs with their PF's physnet, PFs, whole
    devices; allocated when ``busy`` (address -> holder) names them."""
    by_address = {f.address: f for f in functions}
    out: list[PciDevice] = []
    for f in by_address.values():
        dev_type = DevType.VF if f.is_vf else DevType.PF if f.is_pf else DevType.PCI
        pf = by_address.get(f.pf_address or "") if f.is_vf else f if f.is_pf else None
        out.append(PciDevice(
            address=f.address, vendor_id=f.vendor_id, product_id=f.product_id,
            numa_node=f.numa_node, dev_type=dev_type, physical_network=nets.of_pf(pf),
            parent_addr=f.pf_address, allocated=f.address in busy))
    return tuple(out)


def take_devices(devices: Iterable[PciDevice], addresses: Iterable[str]) -> tuple[PciDevice, ...]:
    """``devices`` with those at ``addresses`` allocated (a guest now holds them)."""
    held = frozenset(addresses)
    return tuple(
        PciDevice(d.address, d.vendor_id, d.product_id, d.numa_node, d.dev_type,
                  d.physical_network, d.parent_addr, True)
        if d.address in held else d
        for d in devices
    )

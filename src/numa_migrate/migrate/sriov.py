"""A guest's SR-IOV ports as PCI requests of the fit, and the VFs the fit chose (pure, no I/O).

QEMU cannot migrate a VF: numa-migrate detaches it on the source, migrates, and attaches a
VF of the destination. Which VF is decided by the fitter, together with the guest's NUMA
cells (:mod:`numa_migrate.core.fit.pcifit`), so a destination is never chosen whose cells have
no suitable VF while another placement would have had one. Each port is one request for one
VF:

- on the same **physical network**: the physnet of the VF's PF, from the inventory's
  ``physical_networks`` (PF interface names or PF PCI addresses); when neither host names
  any, VFs match by the VF's vendor:product (and the plan says so);
- free: a VF given to a running domain or held by another operator's claim is allocated;
- near the guest per its PCI NUMA affinity policy (Nova's ``hw:pci_numa_affinity_policy``):
  ``required``, ``legacy`` (Nova's default), ``preferred`` or ``socket``.

A PCI device that is not a VF (a whole NIC, a GPU) cannot be handed over this way: the
migration is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.fit.pcifit import PciServed
from numa_migrate.core.model.domain import PciHostdev
from numa_migrate.core.model.pci import PciFunction
from numa_migrate.core.model.pcidev import DevType, PciDevice, PciNumaPolicy, PciRequest, Spec
from numa_migrate.core.pcidevices import PhysNets, fit_devices

__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "PhysNets",
    "PortNeeds",
    "SriovRefused",
    "VfMove",
    "busy_note",
    "check_policy",
    "fit_devices",
    "port_requests",
    "vf_moves",
]

POLICIES = tuple(p.value for p in (PciNumaPolicy.LEGACY, PciNumaPolicy.REQUIRED,
                                   PciNumaPolicy.PREFERRED, PciNumaPolicy.SOCKET))
DEFAULT_POLICY = PciNumaPolicy.LEGACY.value
NO_NETS = PhysNets()


class SriovRefused(NumaMigrateError):
    """The guest holds a PCI device that cannot follow it (not a VF, unknown policy)."""


@dataclass(frozen=True)
class VfMove:
    """One port: the source VF, the destination VF, and why that one."""

    source: str
    destination: str
    network: str
    """The physnet, or ``vendor:product of the VF`` when no host names physnets."""
    numa_node: int | None
    alias: str | None = None


@dataclass(frozen=True)
class PortNeeds:
    """The guest's ports as PCI requests (one VF each, in hostdev order)."""

    requests: tuple[PciRequest, ...]
    networks: tuple[str, ...]
    refusals: tuple[str, ...] = ()
    """Ports that cannot be asked for (their source VF is in no physical network)."""
    notes: tuple[str, ...] = ()


def check_policy(policy: str) -> PciNumaPolicy:
    if policy not in POLICIES:
        raise SriovRefused(f"PCI NUMA affinity policy {policy!r}: use one of "
                           f"{', '.join(POLICIES)}")
    return PciNumaPolicy(policy)


def port_requests(
    hostdevs: Iterable[PciHostdev],
    *,
    source_pci: Iterable[PciFunction],
    policy: str = DEFAULT_POLICY,
    source_nets: PhysNets = NO_NETS,
    dest_nets: PhysNets = NO_NETS,
) -> PortNeeds:
    """One PCI request per port of the guest. Raises :class:`SriovRefused` for a device
    that is not a VF."""
    numa_policy = check_policy(policy)
    src = {f.address: f for f in source_pci}
    named = bool(source_nets.networks or dest_nets.networks)
    notes = () if named else (
        "no physical_networks in the inventory: destination VFs are matched by the VF's "
        "vendor:product",)
    requests: list[PciRequest] = []
    networks: list[str] = []
    refusals: list[str] = []
    for dev in hostdevs:
        vf = src.get(dev.address)
        if vf is None or not vf.is_vf:
            what = "not among the source's PCI devices" if vf is None else "not an SR-IOV VF"
            raise SriovRefused(
                f"PCI device {dev.address} of the guest is {what}: QEMU cannot live-migrate "
                "a passed-through device, and numa-migrate hands over only VFs (detach, "
                "migrate, attach another VF)")
        spec: Spec
        if named:
            network = source_nets.of_pf(src.get(vf.pf_address or ""))
            if network is None:
                refusals.append(f"VF {dev.address}: its PF {vf.pf_address} is in no physical "
                                "network of the source's physical_networks")
                continue
            spec = (("dev_type", DevType.VF.value), ("physical_network", network))
        else:
            network = f"{vf.vendor_id}:{vf.product_id}"
            spec = (("dev_type", DevType.VF.value), ("product_id", vf.product_id),
                    ("vendor_id", vf.vendor_id))
        requests.append(PciRequest(1, (spec,), numa_policy, name=f"port {dev.address}"))
        networks.append(network)
    return PortNeeds(tuple(requests), tuple(networks), tuple(refusals), notes)


def vf_moves(
    hostdevs: Sequence[PciHostdev], needs: PortNeeds, served: PciServed,
    dest_pci: Iterable[PciFunction],
) -> tuple[VfMove, ...]:
    """The moves the fit's chosen devices make: port i gets the VF request i was served."""
    nodes = {f.address: f.numa_node for f in dest_pci}
    moves: list[VfMove] = []
    for dev, network, taken in zip(hostdevs, needs.networks, served.taken, strict=True):
        (address,) = taken
        moves.append(VfMove(dev.address, address, network, nodes.get(address), dev.alias))
    return tuple(moves)


def busy_note(busy: Mapping[str, str], devices: Iterable[PciDevice]) -> str | None:
    """The destination's VFs that are held, and by whom (for a refusal)."""
    held = [f"{d.address} ({busy[d.address]})" for d in devices
            if d.dev_type is DevType.VF and d.address in busy]
    return f"VFs held on the destination: {', '.join(held)}" if held else None

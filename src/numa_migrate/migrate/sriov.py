"""Choose the destination VFs of a guest's SR-IOV ports (pure, no I/O).

QEMU cannot migrate a VF: numa-migrate detaches it on the source, migrates, and attaches a
VF of the destination chosen here:

- on the same **physical network**: the physnet of the VF's PF, from the inventory's
  ``physical_networks`` (PF interface names or PF PCI addresses); when neither host names
  any, VFs match by their PF's vendor:product (and the plan says so);
- free: not given to a running domain and not held by another operator's claim;
- on the right **NUMA node** per the guest's PCI NUMA affinity policy (Nova's
  ``hw:pci_numa_affinity_policy``): ``required`` — on a host node of the guest's cells;
  ``legacy`` (Nova's default) — the same, unless the VF reports no NUMA node; ``preferred``
  — such a VF when there is one, else any.

A PCI device that is not a VF (a whole NIC, a GPU) cannot be handed over this way: the
migration is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.domain import PciHostdev
from numa_migrate.core.model.pci import PciFunction

POLICIES = ("legacy", "required", "preferred")
DEFAULT_POLICY = "legacy"


class SriovRefused(NumaMigrateError):
    """The guest holds a PCI device that cannot follow it (not a VF, unknown policy)."""


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


@dataclass(frozen=True)
class VfMove:
    """One port: the source VF, the destination VF, and why that one."""

    source: str
    destination: str
    network: str
    """The physnet, or ``vendor:product of the PF`` when no host names physnets."""
    numa_node: int | None
    alias: str | None = None


@dataclass(frozen=True)
class VfChoice:
    moves: tuple[VfMove, ...]
    refusals: tuple[str, ...]
    """Why a port has no destination VF (empty: every port has one)."""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.refusals


def check_policy(policy: str) -> str:
    if policy == "socket":
        raise SriovRefused(
            "PCI NUMA affinity policy 'socket' is not supported by numa-migrate (it needs the "
            f"host's socket layout per NUMA node); use one of {', '.join(POLICIES)}")
    if policy not in POLICIES:
        raise SriovRefused(f"PCI NUMA affinity policy {policy!r}: use one of "
                           f"{', '.join(POLICIES)}")
    return policy


def choose_vfs(
    hostdevs: Iterable[PciHostdev],
    *,
    source_pci: Iterable[PciFunction],
    dest_pci: Iterable[PciFunction],
    dest_busy: Mapping[str, str],
    guest_nodes: frozenset[int],
    policy: str = DEFAULT_POLICY,
    source_nets: PhysNets = PhysNets(),
    dest_nets: PhysNets = PhysNets(),
) -> VfChoice:
    """A destination VF for each of ``hostdevs`` (the guest's PCI devices on the source).

    ``dest_busy``: VF address -> who holds it (a running domain, another operator's claim);
    ``guest_nodes``: the destination host nodes of the guest's cells in its placement.
    Raises :class:`SriovRefused` for a device that is not a VF.
    """
    check_policy(policy)
    src = {f.address: f for f in source_pci}
    dst = {f.address: f for f in dest_pci}
    named = bool(source_nets.networks or dest_nets.networks)
    notes = [] if named else [
        "no physical_networks in the inventory: destination VFs are matched by their PF's "
        "vendor:product"]
    taken: set[str] = set()
    moves: list[VfMove] = []
    refusals: list[str] = []
    for dev in hostdevs:
        vf = src.get(dev.address)
        if vf is None or not vf.is_vf:
            what = "not among the source's PCI devices" if vf is None else "not an SR-IOV VF"
            raise SriovRefused(
                f"PCI device {dev.address} of the guest is {what}: QEMU cannot live-migrate "
                "a passed-through device, and numa-migrate hands over only VFs (detach, "
                "migrate, attach another VF)")
        network = _network(vf, src, source_nets, named)
        if network is None:
            refusals.append(f"VF {dev.address}: its PF {vf.pf_address} is in no physical "
                            "network of the source's physical_networks")
            continue
        choice, why = _pick(network, dst, dest_nets, named=named, busy=dest_busy, taken=taken,
                            guest_nodes=guest_nodes, policy=policy)
        if choice is None:
            refusals.append(f"VF {dev.address} ({network}): {why}")
            continue
        taken.add(choice.address)
        moves.append(VfMove(dev.address, choice.address, network, choice.numa_node, dev.alias))
    return VfChoice(tuple(moves), tuple(refusals), tuple(notes))


def _network(vf: PciFunction, functions: Mapping[str, PciFunction], nets: PhysNets,
             named: bool) -> str | None:
    pf = functions.get(vf.pf_address or "")
    if named:
        return nets.of_pf(pf)
    ids = pf if pf is not None else vf
    return f"{ids.vendor_id}:{ids.product_id}"


def _pick(network: str, dst: Mapping[str, PciFunction], nets: PhysNets, *, named: bool,
          busy: Mapping[str, str], taken: set[str], guest_nodes: frozenset[int],
          policy: str) -> tuple[PciFunction | None, str]:
    near: list[PciFunction] = []
    far: list[PciFunction] = []
    rejected: dict[str, list[str]] = {}
    for f in sorted(dst.values(), key=lambda f: f.address):
        if not f.is_vf:
            continue
        if _network(f, dst, nets, named) != network:
            rejected.setdefault("on another physical network", []).append(f.address)
        elif f.address in busy or f.address in taken:
            holder = busy.get(f.address, "this guest's other port")
            rejected.setdefault("in use", []).append(f"{f.address} ({holder})")
        elif (f.numa_node in guest_nodes if f.numa_node is not None
              else policy == "legacy"):
            near.append(f)
        else:
            far.append(f)
    if near:
        return near[0], ""
    if far and policy == "preferred":
        return far[0], ""
    if far:
        nodes = ",".join(str(n) for n in sorted(guest_nodes)) or "none"
        rejected[f"not on the guest's host node(s) {nodes} (policy {policy})"] = [
            f"{f.address} (node {f.numa_node if f.numa_node is not None else 'unknown'})"
            for f in far]
    if not rejected:
        return None, "the destination has no VF at all"
    return None, "no free VF: " + "; ".join(
        f"{why}: {', '.join(items)}" for why, items in rejected.items())

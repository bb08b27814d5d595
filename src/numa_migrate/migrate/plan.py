"""Plan one live migration (pure, no I/O, no XML): where a running domain goes.

Input: the domain's values (:class:`DomainInfo`, read from its live XML by the caller) and the
destination's live topology with its usage *minus what claims of other operators hold*.
Output of :func:`plan_destination`: a :class:`Destination` (request inferred from the domain,
placement, destination plan, VF moves) or :class:`NoRoom` with the fitter's reasons.
:func:`numa_migrate.migrate.planxml.plan_migration` reads the XML, calls it and rewrites
both XML documents into a :class:`MigrationPlan`.

The destination keeps the guest's current page size (a live migration cannot change the
page size under a running guest), as Nova's move claim insists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.destination import DestinationPlan, plan_from_placement
from numa_migrate.core.domainrequest import guest_request_from_domain
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.fit.fitter import FitOptions, fit_request
from numa_migrate.core.model.domain import DomainInfo
from numa_migrate.core.model.guest import GuestRequest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.pci import PciFunction
from numa_migrate.core.model.placement import Placement
from numa_migrate.migrate.sriov import (
    DEFAULT_POLICY,
    PhysNets,
    VfMove,
    busy_note,
    fit_devices,
    port_requests,
    vf_moves,
)


class MigrationRefused(NumaMigrateError):
    """The migration must not start; the message says why and what to do instead."""


@dataclass(frozen=True)
class NoRoom:
    """The destination cannot take the guest; ``summary`` and ``reasons`` say why."""

    domain: str
    destination: str
    summary: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SriovInputs:
    """What choosing destination VFs needs (see :mod:`numa_migrate.migrate.sriov`)."""

    source_pci: tuple[PciFunction, ...]
    dest_pci: tuple[PciFunction, ...]
    dest_busy: Mapping[str, str] = field(default_factory=dict)
    policy: str = DEFAULT_POLICY
    source_nets: PhysNets = field(default_factory=PhysNets)
    dest_nets: PhysNets = field(default_factory=PhysNets)


@dataclass(frozen=True)
class MigrationPlan:
    domain: str
    uuid: str
    source: str
    destination: str
    request: GuestRequest | None
    """The NUMA request inferred from the domain; None: the guest has no NUMA need."""
    inference: str
    placement: Placement
    dest_plan: DestinationPlan | None
    """None when the guest has no NUMA need: its XML moves unchanged."""
    source_info: DomainInfo
    live_xml: str
    persistent_xml: str | None
    current_pagesize_kib: int | None
    source_live_xml: str = ""
    vf_moves: tuple[VfMove, ...] = ()
    """SR-IOV ports: detached on the source, migrated without, attached to these VFs."""
    notes: tuple[str, ...] = ()
    live_diff: str = ""
    """Unified diff of the live XML, source -> destination (empty: unchanged)."""

    def diff(self) -> str:
        """Unified diff of the live XML, source -> destination (empty: unchanged)."""
        return self.live_diff

    def summary(self) -> str:
        if self.dest_plan is None:
            return f"{self.domain}: no NUMA need, XML moves unchanged"
        if self.request is None:
            return (f"{self.domain}: no NUMA need; floats on {self.destination}'s shared CPUs "
                    f"{_cpus(self.dest_plan.shared_cpuset or frozenset())}")
        pins = ", ".join(
            f"{v}->{_cpus(c)}" for v, c in sorted(self.dest_plan.vcpu_pins.items())
        )
        cells = ", ".join(f"{g}->{n}" for g, n in sorted(self.dest_plan.cell_nodes.items()))
        vfs = "".join(f"; VF {m.source} -> {m.destination} ({m.network}, node "
                      f"{m.numa_node if m.numa_node is not None else '?'})"
                      for m in self.vf_moves)
        return (f"{self.domain}: {self.source} -> {self.destination}; vCPU pins {pins}; "
                f"guest cell -> host node {cells}{vfs}")


def _cpus(cpus: frozenset[int]) -> str:
    return CpuSet.of(cpus).format()


def current_pagesize_kib(info: DomainInfo, default_huge_kib: int = 2048) -> int | None:
    """The huge page size the guest runs with; None when it runs on ordinary pages (its
    request then names no page size, and the destination keeps ordinary pages too).
    ``<hugepages/>`` without a size means the host's default huge page size
    (``default_huge_kib``: 2 MiB on x86-64)."""
    sizes = {default_huge_kib if p.size_kib is None else p.size_kib for p in info.hugepages}
    if len(sizes) == 1:
        return sizes.pop()
    if len(sizes) > 1:
        raise MigrationRefused(
            f"{info.name} mixes huge page sizes across guest cells "
            f"({', '.join(str(s) for s in sorted(sizes))} KiB); numa-migrate keeps one size "
            "per guest and cannot plan this domain"
        )
    return None


def refuse_nova_managed(info: DomainInfo) -> None:
    if info.nova_managed:
        instance = info.nova.instance_name if info.nova is not None else None
        raise MigrationRefused(
            f"{info.name} is managed by OpenStack Nova"
            + (f" (instance {instance})" if instance else "")
            + ": migrating it behind Nova's back would leave Nova's database and placement "
            "allocations wrong. Use `openstack server migrate --live-migration` (with "
            "numa-migrate's fit/explain to choose the host), or the OpenStack mode of "
            "numa-migrate when it is configured for this cloud."
        )


@dataclass(frozen=True)
class Destination:
    """Where the domain goes, before any XML is written.

    ``dest_plan`` None: the guest has no NUMA need and names no host CPU, so its XML moves
    unchanged.
    """

    info: DomainInfo
    request: GuestRequest | None
    inference: str
    placement: Placement
    dest_plan: DestinationPlan | None
    current_pagesize_kib: int | None
    vf_moves: tuple[VfMove, ...] = ()
    notes: tuple[str, ...] = ()


def _plan_floating(info: DomainInfo, inference: str, *, destination: HostTopology,
                   realtime_priority: int | None) -> Destination | NoRoom:
    """A guest with no NUMA need. Its XML moves unchanged unless it names host CPUs
    (``<vcpu cpuset>``, ``<emulatorpin>``): those become the destination's shared CPUs, so
    that it never floats onto CPUs the destination dedicates to pinned guests."""
    unchanged = Destination(info=info, request=None, inference=inference,
                            placement=Placement(()), dest_plan=None, current_pagesize_kib=None)
    if info.vcpu_cpuset is None and info.emulatorpin is None:
        return unchanged
    shared = destination.shared_cpus
    if not shared:
        return NoRoom(info.name, destination.name,
                      "no shared CPUs for a floating guest",
                      (f"{info.name} floats on host CPUs (<vcpu cpuset>) and {destination.name} "
                       "has no shared CPUs (every CPU is in cpu_dedicated_set)",))
    plan = plan_from_placement(info, Placement(()), destination, shared_cpus=shared,
                               realtime_priority=realtime_priority)
    plan = replace(plan, emulator_pins=shared if info.emulatorpin is not None else frozenset())
    return replace(unchanged, dest_plan=plan)


def plan_destination(
    info: DomainInfo,
    *,
    destination: HostTopology,
    shared_cpus: frozenset[int] | None = None,
    hostdev_map: dict[str, str] | None = None,
    sriov: SriovInputs | None = None,
    realtime_priority: int | None = None,
) -> Destination | NoRoom:
    """Plan the move of the domain ``info`` onto ``destination``.

    ``destination`` must already be the live topology minus other claims' holdings.
    ``realtime_priority`` is the destination's ``realtime_scheduler_priority`` (None: not
    known, a real-time guest keeps its own priority).
    """
    refuse_nova_managed(info)
    request, inference = guest_request_from_domain(info)
    if request is None:
        if info.hostdevs:
            raise MigrationRefused(
                f"{info.name} has PCI devices but no NUMA placement to choose their "
                "destination VFs by; give it a guest NUMA topology (or detach the devices)")
        return _plan_floating(info, inference, destination=destination,
                              realtime_priority=realtime_priority)
    page = current_pagesize_kib(info)
    needs = None
    if info.hostdevs and hostdev_map is None:
        if sriov is None:
            raise MigrationRefused(
                f"{info.name} has PCI devices ({', '.join(d.address for d in info.hostdevs)}) "
                "and the hosts' PCI inventory was not read: cannot choose destination VFs")
        needs = port_requests(info.hostdevs, source_pci=sriov.source_pci, policy=sriov.policy,
                              source_nets=sriov.source_nets, dest_nets=sriov.dest_nets)
        if needs.refusals:
            return NoRoom(info.name, destination.name,
                          "a port of the guest is on no known physical network",
                          needs.refusals)
        destination = replace(destination, pci_devices=fit_devices(
            sriov.dest_pci, nets=sriov.dest_nets, busy=sriov.dest_busy))
    result = fit_request(destination, request, FitOptions(current_pagesize_kib=page),
                         needs.requests if needs is not None else ())
    if result.placement is None:
        held = busy_note(sriov.dest_busy, destination.pci_devices) if sriov else None
        return NoRoom(info.name, destination.name, result.summary,
                      result.messages + ((held,) if held else ()))
    moves: tuple[VfMove, ...] = ()
    notes: tuple[str, ...] = ()
    if needs is not None:
        assert sriov is not None and result.pci is not None
        moves = vf_moves(info.hostdevs, needs, result.pci, sriov.dest_pci)
        notes = needs.notes
        hostdev_map = {m.source: m.destination for m in moves}
    plan = plan_from_placement(info, result.placement, destination, shared_cpus=shared_cpus,
                               hostdev_map=hostdev_map, realtime_priority=realtime_priority)
    return Destination(info=info, request=request, inference=inference,
                       placement=result.placement, dest_plan=plan, current_pagesize_kib=page,
                       vf_moves=moves, notes=notes)

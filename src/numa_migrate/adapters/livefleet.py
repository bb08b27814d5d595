"""The fleet read live from a hosts inventory: every host through libvirt, every running
domain as a placed guest.

Each inventory host is read with :func:`~numa_migrate.adapters.inventory_live.read_live_host`
(capabilities, the inventory's CPU sets and reserved pages, every domain's live XML, free
huge pages per the kernel, PCI node devices). Its topology carries the real usage (running
domains, pages the kernel says are used) plus what other operators' claims hold
(``store.held_by_others``). Each running domain becomes a :class:`PlacedGuest`:

- its request from its XML or its numa-migrate metadata
  (:func:`~numa_migrate.core.domainrequest.guest_request_from_domain`), with one PCI request
  per SR-IOV VF it holds (same physical network, its PCI NUMA affinity policy);
- its actual placement (guest cell -> host cell, vCPU pins, memory, page size, isolated
  emulator CPUs: :func:`~numa_migrate.core.domainplacement.domain_placement`);
- the VFs it holds.

A domain that cannot be read or modelled (XML not understood, a guest cell over several host
cells, a passed-through device that is not a VF, ...) is kept out of the guests with a note
in ``Fleet.notes``; its usage still counts on its host. A host that cannot be read is kept
out with a note too, unless no host at all can be read (:class:`LiveHostError`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from numa_migrate.adapters.fleet import Fleet, HostInputs, LeftOut, PlacedGuest
from numa_migrate.adapters.inventory import HostConfig, InventoryError
from numa_migrate.adapters.inventory_live import (
    LiveDomain,
    LiveHost,
    LiveHostError,
    open_connection,
    read_live_host,
)
from numa_migrate.core.domainplacement import UnplaceableDomain, domain_placement
from numa_migrate.core.domainrequest import guest_request_from_domain
from numa_migrate.core.domainusage import DomainUsage
from numa_migrate.core.drain.hosts import remove_guest
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.guest import EmulatorPolicy, Guest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.pcidev import PciRequest
from numa_migrate.core.pcidevices import PhysNets, fit_devices
from numa_migrate.core.placementcheck import placement_problems
from numa_migrate.core.usage import UsageConflictError
from numa_migrate.hypervisor.base import Hypervisor

if TYPE_CHECKING:
    from numa_migrate.claims import ClaimStore
    from numa_migrate.migrate.hosts import Hosts

__all__ = ["live_fleet", "live_host_guests"]

Connect = Callable[[HostConfig], AbstractContextManager[Hypervisor]]
PCI_POLICY_SPEC = "hw:pci_numa_affinity_policy"


def live_fleet(
    inventory: Hosts,
    *,
    store: ClaimStore | None = None,
    hosts: Iterable[str] | None = None,
    connections: Mapping[str, Hypervisor] | None = None,
) -> Fleet:
    """The fleet as the inventory's hosts run it now.

    ``hosts``: only these inventory hosts (default: all, in inventory order); ``store``: the
    claims store whose other operators' claims are subtracted (None: no claims);
    ``connections``: open connections by host name to use instead of connecting.
    """
    configs = _configs(inventory, hosts)
    given = dict(connections or {})

    def connect(config: HostConfig) -> AbstractContextManager[Hypervisor]:
        conn = given.get(config.name)
        return _borrowed(conn) if conn is not None else open_connection(config)

    return read_fleet(configs, source=f"hosts inventory {inventory.inventory.path}",
                      connect=connect, store=store)


def read_fleet(configs: Iterable[HostConfig], *, source: str, connect: Connect,
               store: ClaimStore | None = None) -> Fleet:
    """Read each host (``connect`` opens its connection); see :func:`live_fleet`."""
    topologies: list[HostTopology] = []
    guests: list[PlacedGuest] = []
    notes: list[str] = []
    inputs: list[HostInputs] = []
    failures: list[str] = []
    left_out: list[LeftOut] = []
    for config in configs:
        try:
            with connect(config) as conn:
                live = read_live_host(config, conn=conn)
            topology, placed, host_notes = live_host_guests(live, store=store,
                                                            left_out=left_out)
        except (LiveHostError, InventoryError) as exc:
            failures.append(str(exc))
            notes.append(f"{config.name}: not read, left out of the fleet: {exc}")
            continue
        topologies.append(topology)
        guests.extend(placed)
        notes.extend(host_notes)
        inputs.append(_inputs(live))
    if failures and not topologies:
        raise LiveHostError(f"no host of the {source} could be read: {'; '.join(failures)}")
    return Fleet(source, tuple(topologies), tuple(guests), tuple(notes), tuple(inputs),
                 tuple(left_out))


def live_host_guests(
    live: LiveHost, *, store: ClaimStore | None = None, left_out: list[LeftOut] | None = None
) -> tuple[HostTopology, list[PlacedGuest], list[str]]:
    """One host read live: its topology (real usage, other claims subtracted, PCI devices
    with those in use allocated), its running domains as placed guests, and notes; the
    domains that cannot be modelled are appended to ``left_out``."""
    name = live.name
    notes = [f"{name}: {n}" for n in live.notes]
    if left_out is not None:
        left_out.extend(LeftOut(name, d, "its XML is not understood: " + " ".join(r.split()))
                        for d, r in live.unreadable)
    topology = live.topology
    claimed: frozenset[str] = frozenset()
    if store is not None:
        from numa_migrate.claims import ClaimError, subtract_holdings

        holdings = store.held_by_others(name)
        try:
            topology = subtract_holdings(topology, holdings)
        except ClaimError as exc:
            raise LiveHostError(str(exc)) from None
        claimed = holdings.vfs
        if holdings.claims:
            ids = ", ".join(str(i) for i in holdings.claim_ids)
            notes.append(f"{name}: other operators' claims {ids} are counted as used")
    nets = PhysNets(dict(live.config.physical_networks))
    busy = {a: ", ".join(n) for a, n in live.devices_in_use.items()}
    busy |= {vf: "another operator's claim" for vf in claimed if vf not in busy}
    topology = replace(topology, pci_devices=fit_devices(live.pci_functions, nets=nets,
                                                         busy=busy))
    usages = {u.uuid or u.name: u for u in live.usage.domains}
    placed: list[PlacedGuest] = []
    for dom in live.active_domains:
        usage = usages.get(dom.info.uuid or dom.info.name)
        try:
            if usage is None:
                raise UnplaceableDomain(f"{dom.name}: no usage was computed for it")
            guest = _placed(live, topology, dom, usage, nets)
        except (NumaMigrateError, UsageConflictError) as exc:
            notes.append(f"{name}: domain {dom.name} left out of the guests (its usage is "
                         f"still counted): {_one_line(exc)}")
            if left_out is not None:
                left_out.append(LeftOut(name, dom.name, _one_line(exc)))
            continue
        placed.append(guest)
    return topology, placed, notes


def _placed(live: LiveHost, topology: HostTopology, dom: LiveDomain, usage: DomainUsage,
            nets: PhysNets) -> PlacedGuest:
    info = dom.info
    request, _how = guest_request_from_domain(info)
    if request is not None and request.emulator_isolated and not usage.emulator_isolated:
        # its emulator CPUs are in the host's cpu_shared_set: Nova's "share" policy
        request = replace(request, emulator_policy=EmulatorPolicy.SHARE)
    requests: tuple[PciRequest, ...] = ()
    if info.hostdevs:
        if request is None:
            raise UnplaceableDomain(
                "has PCI devices but no NUMA placement to choose their VFs' nodes by")
        from numa_migrate.migrate.sriov import DEFAULT_POLICY, port_requests

        policy = dict(info.declared_specs or ()).get(PCI_POLICY_SPEC) or DEFAULT_POLICY
        needs = port_requests(info.hostdevs, source_pci=live.pci_functions, policy=policy,
                              source_nets=nets, dest_nets=nets)
        if needs.refusals:
            raise UnplaceableDomain("; ".join(needs.refusals))
        requests = needs.requests
    guest = Guest(info.vcpus, info.memory_mib, request, dom.name, requests)
    placement = domain_placement(topology, info, request, usage)
    held = tuple(d.address for d in info.hostdevs)
    # the host must show the guest as running (releasing it finds its pins pinned), and
    # the placement must be one the host could take again (what a snapshot load checks)
    problems = placement_problems(remove_guest(topology, guest, placement, held), request,
                                  placement)
    if problems:
        raise UnplaceableDomain("; ".join(problems))
    return PlacedGuest(dom.name, live.name, guest, placement, held, dom.uuid)


def _inputs(live: LiveHost) -> HostInputs:
    config = live.config
    return HostInputs(
        name=live.name,
        capabilities_xml=live.capabilities_xml,
        cpu_dedicated_set=config.cpu_dedicated_set,
        cpu_shared_set=config.cpu_shared_set,
        reserved_huge_pages=tuple(sorted((r.node, r.size_kib, r.count)
                                         for r in config.reserved_huge_pages)),
        uri=config.uri,
    )


def _configs(inventory: Hosts, names: Iterable[str] | None) -> list[HostConfig]:
    if names is None:
        return list(inventory.inventory.hosts)
    return [inventory.inventory.host(n) for n in dict.fromkeys(names)]


@contextmanager
def _borrowed(conn: Hypervisor) -> Iterator[Hypervisor]:
    """A connection the caller owns: used, not closed."""
    yield conn


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())

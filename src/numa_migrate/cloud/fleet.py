"""A cloud's fleet read live: every nova-compute through its libvirt, every server on it as
a placed guest (what ``drain --cloud`` and ``where --cloud`` plan on).

- Each compute (Nova's nova-compute services) is read through its libvirt as ``explain
  --cloud`` reads it (:class:`~numa_migrate.cloud.computes.ComputeMap`): capabilities, its
  CPU sets, every domain's live XML, free huge pages, PCI devices. Its topology carries the
  real usage. A compute whose libvirt cannot be read is left out, with a note.
- Each server on a compute (Nova's list, all projects) is a guest:

  * its request is its flavor's extra specs and its image's properties, as Nova reads them
    (:func:`~numa_migrate.core.request.guest_from_flavor`), plus one PCI request per SR-IOV
    VF its domain holds;
  * its placement is read from its libvirt domain (matched by the instance UUID: guest cell
    -> host cell, pins, pages; :func:`~numa_migrate.core.domainplacement.domain_placement`),
    or, where the domain cannot be read or modelled, from Nova's server topology API (a note
    says so);
  * a server without NUMA topology is a guest with no NUMA request: a drain still moves it.

Guests are named by the server name, or ``NAME (ID)`` when servers share a name; each
guest's ``uuid`` is the server id. Servers that are not ACTIVE or PAUSED are left out with a
note (Nova live-migrates only those).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from numa_migrate.adapters.fleet import Fleet, LeftOut, PlacedGuest
from numa_migrate.adapters.inventory_live import LiveDomain, LiveHost
from numa_migrate.cloud import nova
from numa_migrate.cloud.api import CloudApi, CloudError
from numa_migrate.cloud.computes import ComputeMap
from numa_migrate.core.domainplacement import domain_placement
from numa_migrate.core.drain.hosts import add_guest, remove_guest
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.guest import Guest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.pcidev import PciRequest
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.novaview import placement_from_nova
from numa_migrate.core.pcidevices import PhysNets, fit_devices
from numa_migrate.core.request import Flavor, guest_from_flavor

__all__ = ["MOVABLE", "ServerNotModelled", "cloud_fleet"]

Progress = Callable[[str], None]
MOVABLE = ("ACTIVE", "PAUSED")
PCI_POLICY_SPEC = "hw:pci_numa_affinity_policy"


class ServerNotModelled(NumaMigrateError):
    """A server that cannot be a placed guest (the reason says why); it is left out."""


def _quiet(_msg: str) -> None:
    return None


def cloud_fleet(api: CloudApi, computes: ComputeMap, *, progress: Progress = _quiet) -> Fleet:
    """Every nova-compute of the cloud and the servers on it, as they run now."""
    services = sorted(nova.compute_services(api), key=lambda s: s.host)
    if not services:
        raise CloudError(f"cloud {api.name}: Nova lists no nova-compute service")
    images: dict[str, dict[str, str]] = {}
    hosts: list[HostTopology] = []
    found: list[tuple[nova.Server, PlacedGuest]] = []
    notes: list[str] = []
    failures: list[str] = []
    left_out: list[LeftOut] = []
    for service in services:
        if not service.usable:
            notes.append(f"{service.host}: nova-compute is {service.state} and "
                         f"{service.status}: Nova's scheduler will not choose it")
        progress(f"reading {service.host} through libvirt")
        try:
            live = computes.read(computes.config(service.host))
        except CloudError:
            raise
        except NumaMigrateError as exc:  # one compute's libvirt must not stop the rest
            message = " ".join(str(exc).split())
            failures.append(message)
            notes.append(f"{service.host}: not read through libvirt, left out of the fleet: "
                         f"{message}")
            continue
        topology = _with_devices(live)
        notes.extend(f"{live.name}: {n}" for n in live.notes)
        for server in nova.servers_on(api, service.host):
            if server.status not in MOVABLE:
                notes.append(f"{live.name}: server {server.name} ({server.id}) is "
                             f"{server.status}: Nova live-migrates only ACTIVE or PAUSED "
                             "servers; left out of the guests")
                left_out.append(LeftOut(live.name, server.name,
                                        f"it is {server.status}: Nova live-migrates only "
                                        "ACTIVE or PAUSED servers"))
                continue
            try:
                placed, how, topology = _placed(api, live, topology, server, images)
            except CloudError:
                raise
            except NumaMigrateError as exc:
                notes.append(f"{live.name}: server {server.name} ({server.id}) left out of "
                             f"the guests: {' '.join(str(exc).split())}")
                left_out.append(LeftOut(live.name, server.name, " ".join(str(exc).split())))
                continue
            if how:
                notes.append(f"{live.name}: server {server.name}: {how}")
            found.append((server, placed))
        hosts.append(topology)
    if not hosts:
        raise CloudError(f"cloud {api.name}: no compute's libvirt could be read: "
                         f"{'; '.join(failures)}")
    counts = Counter(s.name for s, _ in found)
    guests = tuple(p if counts[s.name] == 1 else replace(p, name=f"{s.name} ({s.id})")
                   for s, p in found)
    return Fleet(f"cloud {api.name}", tuple(hosts), guests, tuple(notes),
                 left_out=tuple(left_out))


def _with_devices(live: LiveHost) -> HostTopology:
    """The compute's topology with its PCI devices, those its domains hold allocated."""
    nets = PhysNets(dict(live.config.physical_networks))
    busy = {a: ", ".join(n) for a, n in live.devices_in_use.items()}
    return replace(live.topology, pci_devices=fit_devices(live.pci_functions, nets=nets,
                                                          busy=busy))


def _request(api: CloudApi, server: nova.Server, images: dict[str, dict[str, str]]) -> Guest:
    """The guest Nova's flavor and image describe (as ``explain --cloud`` reads it)."""
    props: dict[str, str] = {}
    if server.image_id:
        if server.image_id not in images:
            images[server.image_id] = nova.image_properties(api, server.image_id)
        props = images[server.image_id]
    flavor = Flavor(server.flavor.vcpus, server.flavor.ram_mib, server.flavor.extra_specs,
                    server.flavor.name or "flavor")
    return guest_from_flavor(flavor, dict(props))


def _pci_requests(live: LiveHost, dom: LiveDomain, server: nova.Server
                  ) -> tuple[PciRequest, ...]:
    if not dom.info.hostdevs:
        return ()
    from numa_migrate.migrate.sriov import DEFAULT_POLICY, port_requests

    nets = PhysNets(dict(live.config.physical_networks))
    policy = server.flavor.extra_specs.get(PCI_POLICY_SPEC) or DEFAULT_POLICY
    needs = port_requests(dom.info.hostdevs, source_pci=live.pci_functions, policy=policy,
                          source_nets=nets, dest_nets=nets)
    if needs.refusals:
        raise ServerNotModelled("; ".join(needs.refusals))
    return needs.requests


def _placed(api: CloudApi, live: LiveHost, topology: HostTopology, server: nova.Server,
            images: dict[str, dict[str, str]]
            ) -> tuple[PlacedGuest, str, HostTopology]:
    """The server as a placed guest, where its placement came from when not libvirt, and
    the compute's topology with the server's usage (added from Nova's view when libvirt
    does not show its domain running: Nova's claim holds those resources)."""
    request = _request(api, server, images)
    dom = live.domain(server.id)
    usage = next((u for u in live.usage.domains if u.uuid == server.id), None)
    how = ""
    requests: tuple[PciRequest, ...] = ()
    held: tuple[str, ...] = ()
    placement: Placement | None = None
    if dom is None or not dom.active or usage is None:
        state = "not found" if dom is None else "not running" if not dom.active else \
            "not understood"
        how = f"its libvirt domain is {state} on {live.name}"
    else:
        requests = _pci_requests(live, dom, server)
        held = tuple(d.address for d in dom.info.hostdevs)
        try:
            placement = domain_placement(topology, dom.info, request.numa, usage)
        except NumaMigrateError as exc:
            how = f"its domain's placement cannot be modelled ({' '.join(str(exc).split())})"
    if placement is None:
        placement = _nova_placement(api, server, request)
        how += "; the placement is Nova's server topology"
    guest = Guest(request.vcpus, request.memory_mib, request.numa, server.name, requests)
    if usage is None:
        topology = add_guest(topology, guest, placement, held)
    # the compute must show the server as running: releasing it must find its pins pinned
    remove_guest(topology, guest, placement, held)
    return PlacedGuest(server.name, live.name, guest, placement, held, server.id), how, topology


def _nova_placement(api: CloudApi, server: nova.Server, request: Guest) -> Placement:
    if request.numa is None:
        return Placement(())
    topology = nova.server_topology(api, server.id)
    if topology is None:
        raise ServerNotModelled("Nova reports no NUMA topology for it, though its flavor asks for "
                         "one")
    return placement_from_nova(topology)

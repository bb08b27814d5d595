"""``explain --cloud``: for a Nova server, every compute: fits or exactly why not, per NUMA
cell, as Nova decides a live migration (the page size the server runs with is kept).

The server's needs come from Nova (the flavor embedded in the server with its extra specs,
and the image's properties), each compute's NUMA state from libvirt on it
(:mod:`numa_migrate.cloud.computes`), its allocation ratios and free PCPU/memory from
Placement. The server's own compute is listed but never a destination (Nova never
live-migrates to the same host); a compute whose service is down or disabled is explained
but marked as one Nova's scheduler will not choose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from numa_migrate.adapters.inventory_live import LiveHost
from numa_migrate.cloud import nova
from numa_migrate.cloud.api import CloudApi, CloudError
from numa_migrate.cloud.computes import ComputeMap, placement_disagreements
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.explain import Explanation, HostExplanation, explain_guest, summary_line
from numa_migrate.core.fit.cellfit import Limits
from numa_migrate.core.fit.fitter import FitOptions
from numa_migrate.core.fit.novasearch import NovaSearch, nova_search
from numa_migrate.core.model.guest import Guest
from numa_migrate.core.novaview import ServerTopology
from numa_migrate.core.request import Flavor, guest_from_flavor

Progress = Callable[[str], None]


class NotNumaError(CloudError):
    """The server has no NUMA topology: Placement alone decides where it goes."""


def _quiet(_msg: str) -> None:
    return None


@dataclass(frozen=True)
class ServerContext:
    """A server, what Nova says of it and the guest it implies."""

    server: nova.Server
    topology: ServerTopology | None
    image_properties: dict[str, str]
    guest: Guest


def load_server(api: CloudApi, server_ref: str, *, need_numa: bool = True) -> ServerContext:
    server = nova.find_server(api, server_ref)
    props = nova.image_properties(api, server.image_id) if server.image_id else {}
    flavor = Flavor(server.flavor.vcpus, server.flavor.ram_mib, server.flavor.extra_specs,
                    server.flavor.name or "flavor")
    guest = guest_from_flavor(flavor, props)
    guest = Guest(guest.vcpus, guest.memory_mib, guest.numa, server.name)
    topology = nova.server_topology(api, server.id)
    if need_numa and guest.numa is None:
        raise NotNumaError(
            f"server {server.name} ({server.id}) has no NUMA topology (flavor "
            f"{server.flavor.name or '?'}: no hw:numa_nodes, hw:cpu_policy=dedicated or "
            "hw:mem_page_size): Nova places it by Placement alone, there is nothing NUMA to "
            "explain, drive or validate")
    return ServerContext(server, topology, props, guest)


@dataclass(frozen=True)
class ComputeView:
    host: str
    service: nova.Service
    provider: nova.Provider | None
    live: LiveHost | None
    error: str | None  # libvirt could not be read
    notes: tuple[str, ...]
    nova: NovaSearch | None = None
    """Nova's own search replayed on this compute (its fit-cache and page-size defects)."""

    @property
    def nova_refuses_fit(self) -> bool:
        """We fit, Nova's search would refuse: a defect of Nova's, said as such."""
        return self.nova is not None and self.nova.decided and not self.nova.fits


@dataclass(frozen=True)
class CloudExplanation:
    context: ServerContext
    explanation: Explanation
    computes: tuple[ComputeView, ...]
    source: str | None
    notes: tuple[str, ...]

    def nova_eligible(self, host: str) -> bool:
        """Fits by our rules, not the source, service up and enabled, in Placement."""
        view = next((c for c in self.computes if c.host == host), None)
        return (view is not None and host != self.source and view.service.usable
                and view.provider is not None and host in self.explanation.fitting_hosts
                and not view.nova_refuses_fit)

    def ranked(self) -> list[str]:
        """Destinations Nova would accept, best first: most free PCPU, then most free memory
        in Placement (Nova's default weighers spread), then name."""
        views = {c.host: c for c in self.computes}
        eligible = [h for h in self.explanation.fitting_hosts if self.nova_eligible(h)]

        def key(host: str) -> tuple[int, int, str]:
            provider = views[host].provider
            assert provider is not None
            return (-provider.free("PCPU"), -provider.free("MEMORY_MB"), host)

        return sorted(eligible, key=key)


def explain_server(api: CloudApi, server_ref: str, computes: ComputeMap, *,
                   packing: bool = False, progress: Progress = _quiet) -> CloudExplanation:
    context = load_server(api, server_ref)
    services = sorted(nova.compute_services(api), key=lambda s: s.host)
    providers = {p.name: p for p in nova.providers(api, traits=False)}
    source = context.server.host
    pagesize = context.topology.pagesize_kib if context.topology else None
    views: list[ComputeView] = []
    explained: list[HostExplanation] = []
    notes: list[str] = []
    for service in services:
        if service.host == source:
            views.append(ComputeView(service.host, service, providers.get(service.host), None,
                                     None, ("the server's own compute: not a destination",)))
            continue
        progress(f"reading {service.host} through libvirt")
        host_notes: list[str] = []
        if not service.usable:
            host_notes.append(f"nova-compute is {service.state} and {service.status}"
                              + (f" ({service.disabled_reason})" if service.disabled_reason
                                 else "") + ": Nova's scheduler will not choose it")
        try:
            config = computes.config(service.host)
            live = computes.read(config)
        except CloudError:
            raise
        except NumaMigrateError as exc:  # one compute's libvirt must not stop the rest
            message = " ".join(str(exc).split())
            views.append(ComputeView(service.host, service, providers.get(service.host), None,
                                     message, (*host_notes, f"libvirt not read: {message}")))
            continue
        provider = providers.get(service.host)
        host_notes += placement_disagreements(config, provider, len(live.capacity.cpus))
        limits = None
        if provider is not None:
            limits = Limits(provider.ratios.get("VCPU", 1.0), provider.ratios.get("MEMORY_MB",
                                                                                  1.0))
        options = FitOptions(limits=limits, packing=packing, current_pagesize_kib=pagesize)
        topology = live.topology
        host_exp = explain_guest([topology], context.guest, options).hosts[0]
        explained.append(host_exp)
        search = None
        if context.guest.numa is not None:
            search = nova_search(topology, context.guest.numa, options)
            if search.defect:
                host_notes.append(search.defect)
            elif not search.decided:
                host_notes.append(f"Nova's own search: {search.summary}")
        views.append(ComputeView(service.host, service, provider, live, None, tuple(host_notes),
                                 search))
    if source is None:
        notes.append(f"server {context.server.name} has no compute host (status "
                     f"{context.server.status})")
    exp = Explanation(context.guest, tuple(explained), summary_line(context.guest, explained))
    return CloudExplanation(context, exp, tuple(views), source, tuple(notes))

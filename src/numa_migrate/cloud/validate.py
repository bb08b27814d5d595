"""``validate SERVER --cloud``: Nova's view of a server against what runs.

Nova's view is the server topology API (per guest cell: host node, pins; one page size).
It is checked on its own first (cells on nodes that exist, pins on the node's dedicated
CPUs, no pin shared with another server on the compute in Nova's records), then turned into
the plan Nova should have written (:func:`numa_migrate.core.destination.plan_from_placement`,
Nova's emulator-thread and shared-CPU rules) and checked against libvirt's live and
persistent XML and, for a QEMU on this machine, the real thread affinity from /proc: the
same checks as ``validate DOMAIN --plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from numa_migrate.adapters.inventory_live import LiveDomain, LiveHost
from numa_migrate.adapters.validate_live import LiveValidation, validate_on_host
from numa_migrate.cloud import nova
from numa_migrate.cloud.api import CloudApi, CloudError
from numa_migrate.cloud.computes import ComputeMap
from numa_migrate.cloud.explain import ServerContext, load_server
from numa_migrate.core.destination import DestinationPlan, plan_from_placement
from numa_migrate.core.novaview import ServerTopology, nova_view_checks, placement_from_nova
from numa_migrate.core.validation import Check, Status


@dataclass(frozen=True)
class CloudValidation:
    context: ServerContext
    host: str
    checked: LiveValidation
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.checked.report.passed


def validate_server(api: CloudApi, server_ref: str, computes: ComputeMap, *,
                    host: str | None = None,
                    context: ServerContext | None = None) -> CloudValidation:
    ctx = context or load_server(api, server_ref)
    server = ctx.server
    if server.host is None or server.instance_name is None:
        raise CloudError(f"server {server.name} has no compute host or instance name in Nova "
                         f"(status {server.status}); is the API user an admin?")
    if host is not None and host != server.host:
        raise CloudError(f"server {server.name} is on {server.host} in Nova, not on {host}")
    topology = ctx.topology
    if topology is None:
        raise CloudError(f"Nova reports no NUMA topology for server {server.name}, though its "
                         "flavor asks for one: Nova's record of it is incomplete")
    placement = placement_from_nova(topology)
    others: dict[str, ServerTopology] = {}
    for other in nova.servers_on(api, server.host):
        if other.id == server.id:
            continue
        other_top = nova.server_topology(api, other.id)
        if other_top is not None:
            others[f"{other.name} ({other.id})"] = other_top
    config = computes.config(server.host)
    notes: list[str] = []
    if ctx.guest.numa is not None and ctx.guest.numa.emulator_isolated:
        notes.append("hw:emulator_threads_policy=isolate: Nova's API does not report the "
                     "emulator thread's CPU, so the domain's own is taken (checked for overlap "
                     "with the vCPUs only)")

    def plan_for(dom: LiveDomain, live: LiveHost) -> DestinationPlan:
        used = placement
        if ctx.guest.numa is not None and ctx.guest.numa.emulator_isolated:
            used = replace(placement, emulator_pins=dom.info.emulatorpin or frozenset())
        return plan_from_placement(dom.info, used, live.capacity,
                                   realtime_priority=config.realtime_scheduler_priority)

    checked = validate_on_host(config, server.instance_name, plan_for=plan_for,
                               declared_specs=server.flavor.extra_specs)
    nova_checks = nova_view_checks(server.name, topology, checked.live.capacity, others)
    report = replace(checked.report, checks=(*nova_checks, *checked.report.checks))
    checked = replace(checked, report=report)
    return CloudValidation(ctx, server.host, checked, tuple(notes))


def summary(result: CloudValidation) -> tuple[int, int, int]:
    checks: tuple[Check, ...] = result.checked.report.checks
    return (sum(c.status is Status.PASSED for c in checks),
            sum(c.status is Status.FAILED for c in checks),
            sum(c.status is Status.SKIPPED for c in checks))

"""Validate a running domain on an inventory host, read live (the adapter behind ``validate``).

Reads the host through libvirt (:mod:`numa_migrate.adapters.inventory_live`), finds the
domain, reads the real thread affinities where it can, and runs the pure checks of
:mod:`numa_migrate.core.validation`. Used by the ``validate`` command, the migration demo, the
validation matrix and the lab benchmark.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from numa_migrate.adapters.inventory import HostConfig, InventoryError
from numa_migrate.adapters.inventory_live import (
    LiveDomain,
    LiveHost,
    open_connection,
    read_live_host,
)
from numa_migrate.core.destination import DestinationPlan
from numa_migrate.core.planjson import PlanDocument
from numa_migrate.core.validation import ThreadAffinities, ValidationReport, validate
from numa_migrate.hypervisor.base import Hypervisor, HypervisorError


@dataclass(frozen=True)
class LiveValidation:
    """A validation report with the host it was read from and where affinities came from."""

    report: ValidationReport
    live: LiveHost
    affinity_source: str


def find_domain(live: LiveHost, name: str) -> LiveDomain:
    """The running domain ``name`` (or UUID) on ``live``; InventoryError saying why not."""
    dom = live.domain(name)
    if dom is not None:
        if not dom.active:
            raise InventoryError(
                f"domain {dom.name} is defined on host {live.name} but not running: there is "
                "no placement to validate"
            )
        return dom
    for unreadable, reason in live.unreadable:
        if unreadable == name:
            raise InventoryError(f"domain {name} on host {live.name}: {reason}")
    known = ", ".join(d.name for d in live.domains) or "none"
    raise InventoryError(f"host {live.name} ({live.uri}) has no domain {name!r} "
                         f"(domains: {known})")


def check_plan_names(doc: PlanDocument, dom: LiveDomain, host: str, path: Path) -> None:
    """A plan file that names another domain or host is refused (wrong file given)."""
    if doc.domain is not None and doc.domain not in (dom.name, dom.uuid):
        raise InventoryError(f"{path}: the plan is for domain {doc.domain}, not {dom.name}")
    if doc.host is not None and doc.host != host:
        raise InventoryError(f"{path}: the plan is for host {doc.host}, not {host}")


def read_affinities(
    conn: Hypervisor, live: LiveHost, dom: LiveDomain
) -> tuple[ThreadAffinities | None, str]:
    """The real thread affinities of ``dom``, or None and why they cannot be had (see
    :meth:`numa_migrate.hypervisor.base.Hypervisor.thread_affinity`)."""
    try:
        handle = conn.lookup(dom.uuid)
        if handle is None:
            return None, f"domain {dom.name} is no longer on {live.name}"
        return conn.thread_affinity(handle)
    except HypervisorError as exc:
        return None, str(exc)


def validate_on_host(
    config: HostConfig,
    domain: str,
    plan: DestinationPlan | None = None,
    *,
    plan_doc: PlanDocument | None = None,
    plan_path: Path | None = None,
    plan_for: Callable[[LiveDomain, LiveHost], DestinationPlan] | None = None,
    declared_specs: Mapping[str, str] | None = None,
) -> LiveValidation:
    """Read ``config``'s host, find ``domain`` and check it against ``plan`` (or the plan
    of ``plan_doc``, whose domain and host names must match, or the plan ``plan_for`` makes
    from the domain and the host as read: Nova's placement turned into a plan).

    ``declared_specs``: the extra specs the domain was made from, when they are known
    elsewhere (Nova's flavor): they say which vCPUs are dedicated, as numa-migrate's own
    domain metadata does (a floating vCPU on a one-CPU shared set is pinned to one CPU too).
    """
    with open_connection(config) as conn:
        live = read_live_host(config, conn=conn)
        dom = find_domain(live, domain)
        if plan_doc is not None:
            check_plan_names(plan_doc, dom, config.name, plan_path or Path("plan"))
            plan = plan_doc.plan
        if plan_for is not None:
            plan = plan_for(dom, live)
        affinity, reason = read_affinities(conn, live, dom)
    info, persistent = dom.info, dom.persistent
    if declared_specs is not None:
        specs = tuple(sorted(declared_specs.items()))
        info = replace(info, declared_specs=specs)
        persistent = None if persistent is None else replace(persistent, declared_specs=specs)
    report = validate(
        info,
        persistent,
        plan=plan,
        host=live.capacity,
        others=[d.info for d in live.active_domains if d.uuid != dom.uuid],
        pci_functions=live.pci_functions if live.pci_functions else None,
        affinity=affinity,
        affinity_skip_reason=reason,
        host_name=config.name,
    )
    return LiveValidation(report, live, affinity.source if affinity else f"none: {reason}")

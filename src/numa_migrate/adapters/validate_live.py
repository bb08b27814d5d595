"""Validate a running domain on an inventory host, read live (the adapter behind ``validate``).

Reads the host through libvirt (:mod:`numa_migrate.adapters.inventory_live`), finds the
domain, reads the real thread affinities where it can, and runs the pure checks of
:mod:`numa_migrate.core.validation`. Used by the ``validate`` command, the migration demo, the
validation matrix and the lab benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numa_migrate.adapters.inventory import HostConfig, InventoryError
from numa_migrate.adapters.inventory_live import (
    LiveDomain,
    LiveHost,
    LiveHostError,
    open_connection,
    read_live_host,
    vcpu_affinity,
)
from numa_migrate.adapters.procaffinity import (
    AffinityError,
    find_qemu_pid,
    is_local_qemu,
    local_run_dir,
    process_affinity,
)
from numa_migrate.core.destination import DestinationPlan
from numa_migrate.core.planjson import PlanDocument
from numa_migrate.core.validation import ThreadAffinities, ValidationReport, validate


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
    conn: Any, live: LiveHost, dom: LiveDomain
) -> tuple[ThreadAffinities | None, str]:
    """The real thread affinities of ``dom``, or None and why they cannot be had.

    A local QEMU daemon: /proc of the QEMU process (pid file in the daemon's run dir). A
    remote QEMU daemon (or a local one without a usable pid file): virDomainGetVcpus, whose
    QEMU implementation reads each vCPU thread's kernel affinity (vCPUs only).
    """
    if live.driver.upper() != "QEMU":
        return None, (f"{live.uri} is libvirt's {live.driver} driver: there is no QEMU "
                      "process whose threads could be read")
    reasons: list[str] = []
    if is_local_qemu(live.uri):
        run_dir = local_run_dir(live.uri)
        if run_dir is None:
            reasons.append(f"no known run directory for {live.uri}")
        else:
            try:
                pid = find_qemu_pid(run_dir, dom.name)
                proc = process_affinity(pid)
            except AffinityError as exc:
                reasons.append(str(exc))
            else:
                return ThreadAffinities(
                    source=f"/proc/{pid}/task (QEMU of {dom.name})",
                    vcpus=proc.vcpus,
                    emulator=tuple((f"{t.name} ({t.tid})", t.cpus)
                                   for t in proc.emulator_threads),
                    iothreads=proc.iothreads,
                ), ""
    else:
        reasons.append(f"{live.uri} is remote: /proc cannot be read")
    try:
        vcpus = vcpu_affinity(conn, dom.uuid)
    except LiveHostError as exc:
        reasons.append(str(exc))
        return None, "; ".join(reasons)
    return ThreadAffinities(
        source=f"virDomainGetVcpus on {live.uri} ({'; '.join(reasons)})", vcpus=vcpus
    ), ""


def validate_on_host(
    config: HostConfig,
    domain: str,
    plan: DestinationPlan | None = None,
    *,
    plan_doc: PlanDocument | None = None,
    plan_path: Path | None = None,
) -> LiveValidation:
    """Read ``config``'s host, find ``domain`` and check it against ``plan`` (or the plan
    of ``plan_doc``, whose domain and host names must match)."""
    with open_connection(config) as conn:
        live = read_live_host(config, conn=conn)
        dom = find_domain(live, domain)
        if plan_doc is not None:
            check_plan_names(plan_doc, dom, config.name, plan_path or Path("plan"))
            plan = plan_doc.plan
        affinity, reason = read_affinities(conn, live, dom)
    report = validate(
        dom.info,
        dom.persistent,
        plan=plan,
        host=live.capacity,
        others=[d.info for d in live.active_domains if d.uuid != dom.uuid],
        pci_functions=live.pci_functions if live.pci_functions else None,
        affinity=affinity,
        affinity_skip_reason=reason,
        host_name=config.name,
    )
    return LiveValidation(report, live, affinity.source if affinity else f"none: {reason}")

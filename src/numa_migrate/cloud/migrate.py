"""``migrate SERVER --cloud``: check first, then Nova's live migration to that host, then
validate Nova's result.

1. The server must be ACTIVE or PAUSED with no task running (Nova refuses otherwise).
2. Checks before anything is asked of Nova: the destination is a nova-compute other than the
   source, up and enabled; its hypervisor is of the source's type and not older (Nova's
   conductor refuses a migration to an older libvirt/QEMU); our fit, as Nova decides the
   live migration, puts the server there. Without ``--to`` the best ranked destination of
   ``explain`` is taken.
3. Nova's live-migration API with that host (microversion 2.79: never forced, Nova's
   scheduler and the destination's claim still decide; block migration "auto").
4. Nova's migration record is polled for progress and its outcome; the outcome is reported
   as Nova gives it: completed, error (Nova rolled the server back to its source when it
   runs there again), or still running when the time allowed is over (Nova is not asked to
   abort it).
5. On completion, ``validate`` on the destination (Nova's view against libvirt and /proc).

Nothing is claimed in numa-migrate's claims store: Nova's own claim protects the
destination, and nothing is left to undo when Nova refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from numa_migrate.cloud import nova
from numa_migrate.cloud.api import CloudApi, CloudError
from numa_migrate.cloud.computes import ComputeMap
from numa_migrate.cloud.explain import CloudExplanation, explain_server
from numa_migrate.cloud.validate import CloudValidation, validate_server
from numa_migrate.hypervisor.base import JobProgress
from numa_migrate.preflight.cloudfacts import parse_microversion

Phase = Callable[[str, str], None]
Progress = Callable[[JobProgress], None]
FINAL = ("completed", "done", "error", "failed", "cancelled")
MOVABLE = ("ACTIVE", "PAUSED")


class DestinationError(CloudError):
    """The destination is not a compute Nova could migrate to (bad input)."""


class CheckRefused(CloudError):
    """Our checks refuse the destination; nothing was asked of Nova."""

    def __init__(self, message: str, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = reasons


def _quiet_phase(_name: str, _message: str) -> None:
    return None


def _quiet_progress(_p: JobProgress) -> None:
    return None


@dataclass(frozen=True)
class CloudMigration:
    server_id: str
    server: str
    source: str
    destination: str
    outcome: str  # planned | completed | refused | rolled back | error | running
    detail: str
    migration: nova.MigrationRecord | None
    seconds: float
    explanation: CloudExplanation
    validation: CloudValidation | None
    checks: tuple[str, ...]


TRAIN_MICROVERSION = (2, 79)


def _check_release(version: nova.ApiVersion) -> str:
    """NUMA-aware live migration needs Train (compute API 2.79) on the controller; that every
    compute runs Train too is not in Nova's API (`preflight --release` checks it)."""
    if parse_microversion(version.max) < TRAIN_MICROVERSION:
        raise CheckRefused(f"Nova's API goes up to microversion {version.max}, older than "
                           "Train (2.79): live migration is not NUMA-aware there (pins are "
                           "not re-computed); run `numa-migrate preflight` for the rule")
    return (f"Nova's API {version.max} is Train or later: NUMA-aware live migration, once "
            "every compute runs Train or later too (preflight --release)")


def _check_destination(exp: CloudExplanation, hypervisors: list[nova.Hypervisor],
                       dest: str) -> list[str]:
    """The checks made before Nova is asked; raises on a refusal, returns what passed."""
    names = [c.host for c in exp.computes]
    view = next((c for c in exp.computes if c.host == dest), None)
    if view is None:
        raise DestinationError(f"{dest} is not a nova-compute host of this cloud (computes: "
                               f"{', '.join(names) or 'none'})")
    if dest == exp.source:
        raise DestinationError(f"server {exp.context.server.name} already runs on {dest}")
    if not view.service.usable:
        raise CheckRefused(f"{dest}: nova-compute is {view.service.state} and "
                           f"{view.service.status}: Nova's scheduler would refuse it")
    passed = [f"{dest}: nova-compute up and enabled"]
    by_host = {h.host or h.hostname: h for h in hypervisors}
    src_hyp, dst_hyp = by_host.get(exp.source or ""), by_host.get(dest)
    if src_hyp is not None and dst_hyp is not None:
        if src_hyp.type != dst_hyp.type:
            raise CheckRefused(f"{dest} runs hypervisor {dst_hyp.type}, the source "
                               f"{src_hyp.type}: Nova refuses a live migration between them")
        if (src_hyp.version or 0) > (dst_hyp.version or 0):
            raise CheckRefused(f"{dest}'s hypervisor version {dst_hyp.version} is older than "
                               f"the source's {src_hyp.version}: Nova's conductor refuses "
                               "a live migration to an older hypervisor")
        passed.append(f"hypervisor {dst_hyp.type} {dst_hyp.version} on {dest} is not older "
                      f"than the source's {src_hyp.version}")
    if view.error is not None:
        raise CheckRefused(f"{dest}: its libvirt could not be read, so the fit cannot be "
                           f"checked: {view.error}")
    host_exp = next((h for h in exp.explanation.hosts if h.result.host == dest), None)
    if host_exp is None or not host_exp.result.fits:
        reasons = () if host_exp is None else host_exp.result.messages
        raise CheckRefused(f"{exp.context.server.name} does not fit on {dest} as Nova decides "
                           "a live migration: Nova would answer NoValidHost", tuple(reasons))
    if view.nova_refuses_fit:
        raise CheckRefused(f"{exp.context.server.name} fits on {dest}, but Nova's own search "
                           f"would refuse it: {view.nova.defect if view.nova else ''}",
                           tuple(host_exp.result.messages))
    passed.append(f"fits on {dest}: {host_exp.result.summary}")
    passed += list(view.notes)
    return passed


def migrate_server(api: CloudApi, server_ref: str, computes: ComputeMap, *,
                   to: str | None = None, dry_run: bool = False, timeout_s: float = 900.0,
                   poll_s: float = 1.0, on_phase: Phase = _quiet_phase,
                   on_progress: Progress = _quiet_progress) -> CloudMigration:
    start = time.monotonic()
    on_phase("check", f"reading server {server_ref}, the computes and their NUMA state")
    exp = explain_server(api, server_ref, computes)
    server = exp.context.server
    if server.status not in MOVABLE or server.task_state:
        raise DestinationError(f"server {server.name} is {server.status}"
                               + (f" (task {server.task_state})" if server.task_state else "")
                               + ": Nova live-migrates only ACTIVE or PAUSED servers with no "
                               "task running")
    source = exp.source or "?"
    if to is None:
        ranked = exp.ranked()
        if not ranked:
            raise CheckRefused(f"no compute can take {server.name}: {exp.explanation.summary}")
        to = ranked[0]
        on_phase("check", f"best destination: {to} (of {', '.join(ranked)})")
    checks = [_check_release(nova.api_version(api)),
              *_check_destination(exp, nova.hypervisors(api), to)]
    for line in checks:
        on_phase("check", line)
    if dry_run:
        return CloudMigration(server.id, server.name, source, to, "planned",
                              "checks passed; nothing was asked of Nova", None,
                              time.monotonic() - start, exp, None, tuple(checks))
    before = {m.id for m in nova.migrations(api, server.id)}
    on_phase("nova", f"asking Nova to live-migrate {server.name} from {source} to {to}")
    nova.live_migrate(api, server.id, to)
    record: nova.MigrationRecord | None = None
    current = server
    deadline = time.monotonic() + timeout_s
    seen_status = ""
    while True:
        time.sleep(poll_s)
        fresh = [m for m in nova.migrations(api, server.id) if m.id not in before]
        record = fresh[0] if fresh else record
        current = nova.get_server(api, server.id)
        if record is not None:
            if record.status != seen_status:
                on_phase("nova", f"migration {record.id}: {record.status}")
                seen_status = record.status
            if record.memory_total:
                on_progress(JobProgress(time.monotonic() - start, record.memory_total,
                                        record.memory_processed, record.memory_remaining, None))
        finished = record is not None and record.status in FINAL and not current.task_state
        if finished or time.monotonic() >= deadline:
            break
    seconds = time.monotonic() - start
    if record is None or record.status not in FINAL or current.task_state:
        state = record.status if record else "no migration record"
        return CloudMigration(server.id, server.name, source, to, "running",
                              f"Nova's migration is still {state} after {timeout_s:.0f} s "
                              f"(server {current.status}, task {current.task_state}); it was "
                              "not aborted: watch `openstack server migration list --server "
                              f"{server.id}`", record, seconds, exp, None, tuple(checks))
    if record.status in ("completed", "done") and current.host == to:
        on_phase("validate", f"validating {server.name} on {to}")
        validation = validate_server(api, server.id, computes, host=to)
        return CloudMigration(server.id, server.name, source, to, "completed",
                              f"Nova moved it to {to} in {seconds:.1f} s", record, seconds,
                              exp, validation, tuple(checks))
    where = current.host or "?"
    fault = f"; Nova's fault: {current.fault}" if current.fault else ""
    failure = nova.last_live_migration_failure(api, server.id)
    if failure is not None:
        fault += f"; {failure.event}: {failure.message}"
    if failure is not None and failure.refused_before_moving and where == source:
        return CloudMigration(server.id, server.name, source, to, "refused",
                              f"Nova refused it before moving anything (migration "
                              f"{record.id} {record.status}){fault}", record, seconds, exp,
                              None, tuple(checks))
    if where == source and current.status in MOVABLE:
        return CloudMigration(server.id, server.name, source, to, "rolled back",
                              f"Nova's migration {record.id} ended {record.status}; the server "
                              f"runs on {source} again ({current.status}){fault}; see "
                              f"nova-compute's log on {source} and {to}", record, seconds, exp,
                              None, tuple(checks))
    return CloudMigration(server.id, server.name, source, to, "error",
                          f"Nova's migration {record.id} ended {record.status}; the server is "
                          f"{current.status} on {where}{fault}", record, seconds, exp, None,
                          tuple(checks))

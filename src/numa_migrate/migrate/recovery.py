"""Recover from interrupted migrations: make claims and domains consistent again.

A migration is *interrupted* when its journal has no final phase and its owner is gone: a
local owner process that no longer exists, or any owner whose claim has expired. What to do
with one is decided by :func:`numa_migrate.core.migration.recovery.decide` (pure, table
tested: completed, rolled back, needs attention, post-copy resume, skipped); this module
reads the journal and the claims, inspects both hosts (through the hypervisor seam) and
carries the decided steps out, then journals the result. Nothing here runs for a migration
whose owner is still alive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.claims import ClaimStore
from numa_migrate.claims.journal import Journal
from numa_migrate.claims.model import Claim, ClaimState
from numa_migrate.core.migration.journal import (
    AttentionEntry,
    JournalError,
    JournalRecord,
    PlannedEntry,
    RecoveredEntry,
    VfDetachingEntry,
    first,
)
from numa_migrate.core.migration.phases import Phase
from numa_migrate.core.migration.recovery import (
    ClaimView,
    Decision,
    DomainView,
    Observed,
    Outcome,
    Owner,
    Presence,
    Step,
    decide,
    in_progress,
    needs_hosts,
)
from numa_migrate.hypervisor.base import Domain, DomainState, Hypervisor, HypervisorError, attach
from numa_migrate.migrate.run import Connector, HostRef, connect_libvirt, owner_alive


@dataclass(frozen=True)
class Recovery:
    migration_id: str
    domain: str
    outcome: Outcome
    actions: tuple[str, ...]
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"migration_id": self.migration_id, "domain": self.domain,
                "outcome": self.outcome.label, "actions": list(self.actions),
                "detail": self.detail}


def _owner(owner: str) -> Owner:
    alive = owner_alive(owner)
    return Owner.UNKNOWN if alive is None else Owner.ALIVE if alive else Owner.DEAD


def recover(store: ClaimStore, *, only: str | None = None,
            connect: Connector = connect_libvirt) -> list[Recovery]:
    """Recover every interrupted migration (or only migration ``only``)."""
    expired = {c.id for c in store.expired()}
    by_migration: dict[str, list[Claim]] = {}
    for claim in store.list_claims():
        if claim.migration_id and claim.state.live:
            by_migration.setdefault(claim.migration_id, []).append(claim)
    journal = Journal(store)
    out = []
    for mid, claims in sorted(by_migration.items()):
        if only is not None and mid != only:
            continue
        views = [ClaimView(c.id, _owner(c.owner), c.id in expired) for c in claims]
        if in_progress(views):
            continue
        out.append(_recover_one(store, journal, mid, claims, views, connect=connect))
    return out


def _recover_one(store: ClaimStore, journal: Journal, mid: str, claims: list[Claim],
                 views: list[ClaimView], *, connect: Connector) -> Recovery:
    domain = claims[0].domain
    try:
        records = journal.entries(mid)
    except JournalError as exc:
        return Recovery(mid, domain, Outcome.NEEDS_ATTENTION, (),
                        f"left as is: its journal cannot be read: {exc}")
    ctx = _Context(store, journal, mid, domain, records, claims)
    planned = first(records, PlannedEntry)
    if planned is None or not needs_hosts(records):
        return ctx.carry_out(decide(records, views, None))
    try:
        ctx.hosts = _Hosts.open(planned, connect)
    except HypervisorError as exc:
        return ctx.carry_out(decide(records, views, None, unreachable=str(exc)))
    seen = Observed(_Hosts.view(ctx.hosts.src_dom), _Hosts.view(ctx.hosts.dst_dom))
    return ctx.carry_out(decide(records, views, seen))


@dataclass
class _Hosts:
    """Both hosts of a planned migration and the guest on each (None: absent)."""

    planned: PlannedEntry
    src: Hypervisor
    dst: Hypervisor
    src_dom: Domain | None
    dst_dom: Domain | None

    @classmethod
    def open(cls, planned: PlannedEntry, connect: Connector) -> _Hosts:
        src = connect(HostRef(planned.source.name, planned.source.uri))
        dst = connect(HostRef(planned.destination.name, planned.destination.uri))
        return cls(planned, src, dst, src.lookup(planned.uuid), dst.lookup(planned.uuid))

    @staticmethod
    def view(dom: Domain | None) -> DomainView:
        if dom is None:
            return DomainView(Presence.ABSENT)
        status = dom.status()
        if not dom.is_active():
            presence = Presence.SHUT_OFF
        elif status.state is DomainState.PAUSED:
            presence = Presence.PAUSED
        else:
            presence = Presence.RUNNING
        return DomainView(presence, dom.is_persistent(), str(status))


@dataclass
class _Context:
    """One migration being recovered: what the steps act on."""

    store: ClaimStore
    journal: Journal
    mid: str
    domain: str
    records: Sequence[JournalRecord]
    claims: list[Claim]
    hosts: _Hosts | None = None

    @property
    def inspected(self) -> _Hosts:
        if self.hosts is None:  # pragma: no cover - decide() asks for host steps after looking
            raise AssertionError("a host step without inspected hosts")
        return self.hosts

    def carry_out(self, decision: Decision) -> Recovery:
        """Run the decided steps in order, then journal the result."""
        actions: list[str] = []
        for step in decision.steps:
            actions += _STEPS[step](self)
        if decision.record is Phase.ATTENTION:
            self.journal.append(self.mid, AttentionEntry(
                decision.found, post_copy=decision.outcome is Outcome.POST_COPY_RESUME))
            return Recovery(self.mid, self.domain, decision.outcome, (), decision.detail)
        if decision.record is Phase.RECOVERED:
            self.journal.append(self.mid, RecoveredEntry(
                decision.outcome.label, tuple(actions), found=decision.found or None,
                why=None if decision.found else "no plan journalled"))
        return Recovery(self.mid, self.domain, decision.outcome, tuple(actions),
                        decision.detail)


# --------------------------------------------------------------------------- the steps

_Do = Callable[[_Context], list[str]]


def _present(dom: Domain | None) -> Domain:
    if dom is None:  # pragma: no cover - decide() asks only for steps on a domain it saw
        raise AssertionError("a step on a domain that is not there")
    return dom


def _attempt(call: Callable[[], object], done: str, failed: str) -> list[str]:
    """Run one hypervisor call of a step: what was done, or why it could not be."""
    try:
        call()
    except HypervisorError as exc:
        return [f"{failed}: {exc.detail}"]
    return [done]


def _resume(on_destination: bool) -> _Do:
    def do(ctx: _Context) -> list[str]:
        h = ctx.inspected
        dom = _present(h.dst_dom if on_destination else h.src_dom)
        name = (h.planned.destination if on_destination else h.planned.source).name
        return _attempt(dom.resume,
                        f"resumed the guest on {name}" if on_destination
                        else f"resumed the paused guest on {name}",
                        f"could not resume the guest on {name}")

    return do


def _undefine_source(ctx: _Context) -> list[str]:
    h = ctx.inspected
    name = h.planned.source.name
    return _attempt(_present(h.src_dom).undefine, f"removed the stale definition on {name}",
                    f"could not remove the stale definition on {name}")


def _define_destination(ctx: _Context) -> list[str]:
    h = ctx.inspected
    name = h.planned.destination.name
    xml = h.planned.persistent_xml
    if xml is None:  # pragma: no cover - decide() checks it
        return []
    return _attempt(lambda: h.dst.define(xml), f"made the guest persistent on {name}",
                    f"could not define the guest on {name}")


def _destroy_destination(ctx: _Context) -> list[str]:
    name = ctx.inspected.planned.destination.name
    return _attempt(_present(ctx.inspected.dst_dom).destroy,
                    f"destroyed the half-migrated copy on {name}", f"could not clean {name}")


def _undefine_destination(ctx: _Context) -> list[str]:
    name = ctx.inspected.planned.destination.name
    return _attempt(_present(ctx.inspected.dst_dom).undefine,
                    f"removed the stale definition on {name}", f"could not clean {name}")


def _attach_vfs(on_destination: bool) -> _Do:
    """SR-IOV ports detached by the interrupted run and never attached again: attach them
    where the guest now runs (the chosen VFs on the destination, the old ones on the
    source)."""

    def do(ctx: _Context) -> list[str]:
        h = ctx.inspected
        ports = first(ctx.records, VfDetachingEntry)
        dom = h.dst_dom if on_destination else h.src_dom
        if ports is None or dom is None:
            return []
        host = (h.planned.destination if on_destination else h.planned.source).name
        xmls, index = (ports.dest_xml, 1) if on_destination else (ports.source_xml, 0)
        live_now = {d.address for d in domain_from_xml(dom.xml()).hostdevs}
        actions = []
        for pair, xml in zip(ports.moves, xmls, strict=False):
            address = pair[index]
            if address in live_now:
                continue
            try:
                attach(dom, xml, address, persistent=on_destination)
                actions.append(f"attached VF {address} on {host}")
            except HypervisorError as exc:
                actions.append(f"could NOT attach VF {address} on {host}: {exc}")
        return actions

    return do


def _free(completed: bool) -> _Do:
    """Release (migration completed) or roll back (it did not) every claim still live."""

    def do(ctx: _Context) -> list[str]:
        store = ctx.store
        for claim in ctx.claims:
            current = store.get(claim.id)
            if completed and current.state is ClaimState.MIGRATING:
                current = store.set_state(claim.id, ClaimState.ACTIVE)
            if current.state is ClaimState.ACTIVE or (
                completed and current.state is ClaimState.RESERVED
            ):
                store.release(claim.id)
            elif current.state.live:
                store.rollback(claim.id)
        if completed:
            return ["released the claim (the destination's live usage shows the guest)"]
        return ["rolled back the claim"] if ctx.hosts is not None else ["freed the claim"]

    return do


_STEPS: dict[Step, _Do] = {
    Step.RESUME_DESTINATION: _resume(on_destination=True),
    Step.UNDEFINE_SOURCE: _undefine_source,
    Step.DEFINE_DESTINATION: _define_destination,
    Step.ATTACH_VFS_DESTINATION: _attach_vfs(on_destination=True),
    Step.RELEASE_CLAIMS: _free(completed=True),
    Step.RESUME_SOURCE: _resume(on_destination=False),
    Step.DESTROY_DESTINATION: _destroy_destination,
    Step.UNDEFINE_DESTINATION: _undefine_destination,
    Step.ATTACH_VFS_SOURCE: _attach_vfs(on_destination=False),
    Step.ROLL_BACK_CLAIMS: _free(completed=False),
}
"""Every step the decision can ask for, carried out through the hypervisor seam and the
store."""

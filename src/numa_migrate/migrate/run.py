"""Run one live migration: plan, claim, migrate, confirm — every step journalled first.

Phases (:class:`~numa_migrate.core.migration.phases.Phase`), each written to the journal
(:class:`~numa_migrate.claims.journal.Journal`, in the claims database) *before* it happens,
as a typed entry (:mod:`numa_migrate.core.migration.journal`):

``planned`` (domain, both hosts and URIs, the plan and the rewritten persistent XML) →
``claimed`` (the destination claim's id) → ``migrating`` → [``vf_detaching`` →
``vf_detached``] → [``post_copy``] → ``migrated`` (job statistics) → [``vf_attached``] →
``done``; or ``rolled_back`` with the error, or ``post_copy_failed``. The journal refuses a
phase that may not follow the last one. A process killed between two phases leaves a live
claim owned by a dead process: ``numa-migrate recover`` (and the start of the next command)
finds it and makes claims and domains consistent again
(:mod:`numa_migrate.migrate.recovery`).

On any failure before the guest runs on the destination: the guest stays (or is resumed)
on the source, anything the migration left on the destination is removed, the claim is
rolled back, and :class:`MigrationFailed` says what happened and what to do.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.hostdevxml import device_elements, without_devices
from numa_migrate.claims import ClaimConflict, ClaimStore, subtract_holdings
from numa_migrate.claims.journal import Journal
from numa_migrate.claims.model import ClaimState
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.migration.journal import (
    ClaimedEntry,
    DoneEntry,
    Entry,
    HostEndpoint,
    MigratedEntry,
    MigratingEntry,
    PlannedEntry,
    PostCopyEntry,
    PostCopyFailedEntry,
    RolledBackEntry,
    VfAttachedEntry,
    VfDetachedEntry,
    VfDetachingEntry,
)
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.pci import PciFunction
from numa_migrate.hypervisor.base import (
    Domain,
    DomainState,
    Hypervisor,
    HypervisorError,
    JobProgress,
    JobResult,
    MigrateOptions,
    attach,
    detach_and_wait,
)
from numa_migrate.migrate.plan import MigrationPlan, NoRoom, SriovInputs
from numa_migrate.migrate.planxml import plan_migration
from numa_migrate.migrate.sriov import DEFAULT_POLICY, PhysNets, VfMove


class MigrationFailed(NumaMigrateError):
    """The migration did not happen; the guest still runs on the source."""


class ClaimLost(MigrationFailed):
    """Another claim took the planned resources between the plan and the claim: nothing
    was changed, and planning again (against the destination as it is now) may fit."""


@dataclass(frozen=True)
class HostRef:
    name: str
    uri: str
    realtime_priority: int | None = None
    """The host's ``realtime_scheduler_priority`` (None: not given)."""


@dataclass(frozen=True)
class Outcome:
    migration_id: str
    plan: MigrationPlan
    claim_id: int | None
    seconds: float
    downtime_ms: int | None
    data_transferred: int | None
    source_pins: dict[int, list[int]]
    dest_pins: dict[int, list[int]]
    dest_persistent_pins: dict[int, list[int]]
    timings: dict[str, float] = field(default_factory=dict)
    post_copy: bool = False


HostReader = Callable[[Hypervisor, HostRef], HostTopology]
"""Reads a host's live topology with current usage from an open connection."""


@dataclass(frozen=True)
class HostDevices:
    """A host's PCI functions, the VFs its running domains hold (address -> who) and its
    physical networks: what choosing destination VFs needs."""

    functions: tuple[PciFunction, ...]
    busy: Mapping[str, str]
    networks: PhysNets = field(default_factory=PhysNets)


DeviceReader = Callable[[Hypervisor, HostRef], HostDevices]
Transfer = Callable[..., tuple[Domain, JobResult]]
"""The migration itself (:meth:`Hypervisor.migrate`'s signature without the source)."""
Connector = Callable[[HostRef], Hypervisor]
"""Opens a connection to a host."""


def connect_libvirt(ref: HostRef) -> Hypervisor:
    """The default :data:`Connector`: libvirt at the host's URI."""
    from numa_migrate.hypervisor.libvirt import connect

    return connect(ref.uri, ref.name)


def owner_id() -> str:
    """``user@hostname/pid``: lets recovery tell a crashed local owner from a live one."""
    return f"{getpass.getuser()}@{socket.gethostname()}/{os.getpid()}"


def owner_alive(owner: str) -> bool | None:
    """True/False for an owner on this machine; None when it is elsewhere (unknown)."""
    try:
        who, pid = owner.rsplit("/", 1)
        hostname = who.split("@", 1)[1]
    except (ValueError, IndexError):
        return None
    if hostname != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pins(xml: str | None) -> dict[int, list[int]]:
    if xml is None:
        return {}
    info = domain_from_xml(xml)
    return {v: sorted(c) for v, c in info.vcpupin}


@dataclass
class Migration:
    """One migration of ``domain`` from ``source`` to ``destination`` (see module doc)."""

    store: ClaimStore
    source: HostRef
    destination: HostRef
    domain: str
    read_host: HostReader
    options: MigrateOptions = field(default_factory=MigrateOptions)
    owner: str = field(default_factory=owner_id)
    ttl_s: float = 600.0
    on_progress: Callable[[JobProgress], None] | None = None
    on_phase: Callable[[str, str], None] | None = None
    migration_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    read_devices: DeviceReader | None = None
    """Needed for guests with SR-IOV VFs (None: such guests are refused)."""
    pci_numa_policy: str = DEFAULT_POLICY
    transfer: Transfer | None = None
    """None: the source host's :meth:`Hypervisor.migrate`."""
    connect: Connector = connect_libvirt
    _timings: dict[str, float] = field(default_factory=dict)

    def _record(self, entry: Entry) -> None:
        """Journal ``entry`` (refused when its phase may not follow the last one)."""
        Journal(self.store).append(self.migration_id, entry)

    def _say(self, phase: str, message: str) -> None:
        if self.on_phase is not None:
            self.on_phase(phase, message)

    # ----------------------------------------------------------------- planning

    def plan(self) -> tuple[Hypervisor, Hypervisor, Domain, MigrationPlan | NoRoom,
                            HostTopology]:
        """Connect, read the destination live, subtract other claims, plan (no changes)."""
        t0 = time.monotonic()
        src = self.connect(self.source)
        dst = self.connect(self.destination)
        dom = src.lookup(self.domain)
        if dom is None or dom.status().state is not DomainState.RUNNING:
            where = "not there" if dom is None else str(dom.status())
            raise MigrationFailed(
                f"domain {self.domain} is not running on {self.source.name} ({where}); "
                "nothing was changed"
            )
        other = dst.lookup(dom.uuid())
        if other is not None:
            raise MigrationFailed(
                f"{self.destination.name} already has a domain with the UUID of "
                f"{self.domain} ({other.status()}); remove that stale definition "
                "first (`numa-migrate recover` does it for an interrupted migration)"
            )
        live_host = self.read_host(dst, self.destination)
        holdings = self.store.held_by_others(self.destination.name)
        view = subtract_holdings(live_host, holdings)
        live_xml = dom.migratable_xml()
        plan = plan_migration(
            live_xml=live_xml,
            persistent_xml=dom.persistent_xml(),
            source=self.source.name,
            destination=view,
            sriov=self._sriov_inputs(src, dst, live_xml, holdings.vfs),
            realtime_priority=self.destination.realtime_priority,
        )
        self._timings["plan_s"] = time.monotonic() - t0
        return src, dst, dom, plan, live_host

    def _sriov_inputs(self, src: Hypervisor, dst: Hypervisor, live_xml: str,
                      claimed: frozenset[str]) -> SriovInputs | None:
        if not domain_from_xml(live_xml).hostdevs or self.read_devices is None:
            return None
        here = self.read_devices(src, self.source)
        there = self.read_devices(dst, self.destination)
        busy = dict(there.busy) | {vf: "another operator's claim" for vf in claimed}
        return SriovInputs(source_pci=here.functions, dest_pci=there.functions,
                           dest_busy=busy, policy=self.pci_numa_policy,
                           source_nets=here.networks, dest_nets=there.networks)

    # ------------------------------------------------------------------ running

    def run(self) -> Outcome | NoRoom:
        src, dst, dom, plan, live_host = self.plan()
        if isinstance(plan, NoRoom):
            return plan
        mid = self.migration_id
        self._record(PlannedEntry(
            domain=plan.domain, uuid=plan.uuid,
            source=HostEndpoint(self.source.name, self.source.uri),
            destination=HostEndpoint(self.destination.name, self.destination.uri),
            owner=self.owner, summary=plan.summary(), persistent_xml=plan.persistent_xml))
        self._say("planned", plan.summary())
        claim_id: int | None = None
        if plan.request is not None:
            t0 = time.monotonic()
            try:
                claim = self.store.claim(
                    live_host, plan.request, plan.placement, domain=plan.domain,
                    owner=self.owner, ttl_s=self.ttl_s, migration_id=mid,
                    vfs=[m.destination for m in plan.vf_moves],
                )
            except ClaimConflict as exc:
                self._record(RolledBackEntry(str(exc)))
                raise ClaimLost(
                    f"another operator claimed the same resources on {self.destination.name} "
                    f"first: {exc}. Nothing was changed; run the command again to re-plan."
                ) from None
            claim_id = claim.id
            self._timings["claim_s"] = time.monotonic() - t0
            self._record(ClaimedEntry(claim_id))
            self._say("claimed", f"claim {claim_id} on {self.destination.name}")
            self.store.set_state(claim_id, ClaimState.MIGRATING)
        self._record(MigratingEntry(claim_id))
        self._say("migrating", f"{plan.domain}: {self.source.name} -> {self.destination.name}")
        source_pins = {v: sorted(c) for v, c in plan.source_info.vcpupin}
        renewed = time.monotonic()

        def progress(p: JobProgress) -> None:
            nonlocal renewed
            if self.on_progress is not None:
                self.on_progress(p)
            if claim_id is not None and time.monotonic() - renewed > self.ttl_s / 4:
                renewed = time.monotonic()
                self.store.renew(claim_id, self.ttl_s)

        ports = self._detach_vfs(src, dst, dom, plan, claim_id)
        transfer: Transfer = self.transfer or src.migrate
        try:
            new_dom, result = transfer(
                dom, dst, live_xml=ports.strip(plan.live_xml),
                persistent_xml=None if plan.persistent_xml is None
                else ports.strip(plan.persistent_xml),
                options=self.options, on_progress=progress,
                on_post_copy=lambda: self._say_post_copy(claim_id),
            )
        except HypervisorError as exc:
            if exc.post_copy_started:
                self._post_copy_failed(dst, plan, claim_id, str(exc))
            notes = ports.reattach_on_source(dom)
            self._roll_back(src, dst, plan, claim_id, str(exc), earlier=notes)
        self._record(MigratedEntry(result.seconds, result.downtime_ms, result.data_transferred,
                                   result.post_copy))
        self._say("migrated", f"{result.seconds:.2f} s, downtime {result.downtime_ms} ms")
        vf_error = ports.attach_on_destination(new_dom, self._record)
        if claim_id is not None:
            self.store.set_state(claim_id, ClaimState.ACTIVE)
            # the destination's live usage now shows the guest: the claim's job is done
            self.store.release(claim_id)
        self._record(DoneEntry(claim_id))
        if vf_error:
            raise MigrationFailed(
                f"{plan.domain} was migrated to {self.destination.name} and runs there, but "
                f"{vf_error}. Attach a VF by hand (`virsh attach-device`), or migrate it "
                "back; its claim was released.")
        dest_live = new_dom.xml()
        dest_persistent = new_dom.persistent_xml()
        return Outcome(
            migration_id=mid, plan=plan, claim_id=claim_id, seconds=result.seconds,
            downtime_ms=result.downtime_ms, data_transferred=result.data_transferred,
            source_pins=source_pins, dest_pins=_pins(dest_live),
            dest_persistent_pins=_pins(dest_persistent), timings=dict(self._timings),
            post_copy=result.post_copy,
        )

    def _say_post_copy(self, claim_id: int | None) -> None:
        self._record(PostCopyEntry(claim_id))
        self._say("post_copy", "switched to post-copy: the guest runs on "
                  f"{self.destination.name}, its memory follows")

    def _post_copy_failed(self, dst: Hypervisor, plan: MigrationPlan, claim_id: int | None,
                          error: str) -> NoReturn:
        """After the switch to post-copy the source no longer has the guest's newest memory:
        rolling back to it would lose data. Keep the destination (paused) and the claim."""
        self._record(PostCopyFailedEntry(error))
        raise MigrationFailed(
            f"{plan.domain}: {error}. The guest had already switched to post-copy: its "
            f"memory is split between {self.source.name} and {self.destination.name}, so "
            "numa-migrate did NOT roll back (the source copy is stale). Resume it once the "
            f"link works: `virsh -c '{self.source.uri}' migrate --live --postcopy "
            f"--postcopy-resume {plan.domain} '{self.destination.uri}'`; the claim "
            f"{claim_id} on {self.destination.name} is kept (state migrating)."
        )

    def _detach_vfs(self, src: Hypervisor, dst: Hypervisor, dom: Domain, plan: MigrationPlan,
                    claim_id: int | None) -> Ports:
        ports = Ports.of(plan, self.source.name, self.destination.name)
        if not ports.moves:
            return ports
        self._record(ports.entry())
        try:
            ports.detach_from_source(dom)
        except HypervisorError as exc:
            notes = ports.reattach_on_source(dom)
            self._roll_back(src, dst, plan, claim_id, str(exc), earlier=notes)
        self._record(VfDetachedEntry())
        self._say("vf_detached", ", ".join(m.source for m in ports.moves))
        return ports

    def _roll_back(self, src: Hypervisor, dst: Hypervisor, plan: MigrationPlan,
                   claim_id: int | None, error: str, *,
                   earlier: list[str] | None = None) -> NoReturn:
        """The guest must run on the source, nothing left on the destination, claim freed."""
        notes = list(earlier or []) + cleanup_after_failed_migration(
            src, dst, plan.uuid, self.source.name, self.destination.name)
        if claim_id is not None:
            claim = self.store.get(claim_id)
            if claim.state.live:
                self.store.rollback(claim_id)
        self._record(RolledBackEntry(error, tuple(notes)))
        src_dom = src.lookup(plan.uuid)
        state = "gone" if src_dom is None else str(src_dom.status())
        raise MigrationFailed(
            f"{plan.domain} was not migrated to {self.destination.name}: {error}. "
            f"The guest on {self.source.name} is {state}; the claim was rolled back"
            + (f"; {'; '.join(notes)}" if notes else "")
            + ". Check the destination's libvirtd log, then retry or choose another host "
            "(`numa-migrate explain`)."
        )


def cleanup_after_failed_migration(src: Hypervisor, dst: Hypervisor, dom_uuid: str,
                                   src_name: str, dst_name: str) -> list[str]:
    """After a failed migration: resume a paused source, remove destination leftovers.

    Only when the guest is alive on the source; returns what was done, as sentences.
    """
    notes: list[str] = []
    src_dom = src.lookup(dom_uuid)
    if src_dom is None or not src_dom.is_active():
        return notes
    if src_dom.status().state is DomainState.PAUSED:
        try:
            src_dom.resume()
            notes.append(f"resumed the paused guest on {src_name}")
        except HypervisorError as exc:
            notes.append(f"could not resume the guest on {src_name}: {exc.detail}")
    left = dst.lookup(dom_uuid)
    if left is not None:
        try:
            if left.is_active():
                left.destroy()
                notes.append(f"destroyed the half-migrated copy on {dst_name}")
            if left.is_persistent():
                left.undefine()
                notes.append(f"removed the stale definition on {dst_name}")
        except HypervisorError as exc:
            notes.append(f"could not clean {dst_name}: {exc.detail}")
    return notes


@dataclass
class Ports:
    """The guest's SR-IOV ports around the migration: detached on the source before it,
    attached to the chosen destination VFs after it (or re-attached on a failure)."""

    moves: tuple[VfMove, ...]
    source_xml: list[str]
    dest_xml: list[str]
    source_host: str
    dest_host: str
    detached: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, plan: MigrationPlan, source_host: str, dest_host: str) -> Ports:
        moves = plan.vf_moves
        if not moves:
            return cls((), [], [], source_host, dest_host)
        return cls(
            moves,
            device_elements(plan.source_live_xml, [m.source for m in moves],
                            source=f"{plan.domain} on {source_host}"),
            device_elements(plan.live_xml, [m.destination for m in moves],
                            source=f"{plan.domain} for {dest_host}"),
            source_host, dest_host)

    def entry(self) -> VfDetachingEntry:
        """The journal entry written before the ports are detached."""
        return VfDetachingEntry(tuple((m.source, m.destination) for m in self.moves),
                                tuple(self.source_xml), tuple(self.dest_xml))

    def strip(self, xml: str) -> str:
        return without_devices(xml, [m.destination for m in self.moves], source="plan")

    def detach_from_source(self, dom: Domain) -> None:
        for i, (move, xml) in enumerate(zip(self.moves, self.source_xml, strict=True)):
            detach_and_wait(dom, xml, move.source)
            self.detached.append(i)

    def reattach_on_source(self, dom: Domain) -> list[str]:
        notes = []
        for i in list(self.detached):
            move = self.moves[i]
            try:
                attach(dom, self.source_xml[i], move.source, persistent=False)
                notes.append(f"re-attached VF {move.source} on {self.source_host}")
            except HypervisorError as exc:
                notes.append(f"could NOT re-attach VF {move.source}: {exc}")
            self.detached.remove(i)
        return notes

    def attach_on_destination(self, dom: Domain,
                              record: Callable[[VfAttachedEntry], object]) -> str:
        """Attach every chosen VF; '' when all are attached, else what went wrong
        (journalled through ``record``)."""
        failed = []
        for move, xml in zip(self.moves, self.dest_xml, strict=True):
            try:
                attach(dom, xml, move.destination, persistent=True)
            except HypervisorError as exc:
                failed.append(str(exc))
        if self.moves:
            record(VfAttachedEntry(tuple(failed)))
        return "; ".join(failed)

"""What to do about an interrupted migration: a pure decision, table-tested.

Input: the migration's journal, what its claims say (whose owner, expired or not), and the
guest as found on the source and on the destination (absent, running, paused or shut off;
persistent or not). Output: a :class:`Decision` — the :class:`Outcome`, the ordered
:class:`Step` s that bring claims and domains to one consistent state, the phase to journal
and the detail a person reads. :mod:`numa_migrate.migrate.recovery` inspects the hosts and
carries the steps out.

The rules:

- a migration whose owner is still alive (or, owner on another machine, whose claim has
  not expired) is **in progress**: nothing is done;
- a migration that never journalled its plan never touched a domain: its claims are
  **rolled back**;
- the guest is active (running or paused) on the destination only: the migration is
  **completed** — the guest is resumed there, a leftover definition on the source is
  removed, a transient destination domain is made persistent from the planned XML, SR-IOV
  ports detached and never attached are attached there, the claims are released;
- the migration had switched to post-copy (and did not finish on the destination): the
  source's copy is stale, so nothing is touched and the report says how to **resume** the
  post-copy migration;
- the guest is active on the source and not running on the destination: the migration is
  **rolled back** — the guest is resumed on the source, any copy on the destination is
  destroyed and undefined, detached ports are attached again on the source, claims rolled
  back;
- anything else (running on both hosts, on neither, a journal already final) **needs
  attention**: a person decides which copy is the guest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from numa_migrate.core.migration.journal import (
    JournalRecord,
    PlannedEntry,
    VfAttachedEntry,
    VfDetachingEntry,
    first,
)
from numa_migrate.core.migration.phases import Phase


class Outcome(Enum):
    """What recovery did with a migration. ``label`` is the string reports and the journal
    use (``recover --json``'s ``outcome``)."""

    IN_PROGRESS = "in progress"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled back"
    NEEDS_ATTENTION = "needs attention"
    POST_COPY_RESUME = "post-copy resume"
    SKIPPED = "skipped"

    @property
    def label(self) -> str:
        """The reported string: a post-copy migration to resume is, to the operator, one
        more thing that needs attention (the detail gives the command)."""
        return "needs attention" if self is Outcome.POST_COPY_RESUME else self.value

    @property
    def needs_person(self) -> bool:
        return self in (Outcome.NEEDS_ATTENTION, Outcome.POST_COPY_RESUME, Outcome.SKIPPED)


class Owner(Enum):
    """The owner of a claim, as far as this machine can tell."""

    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"
    """On another machine (or not a ``user@host/pid`` owner): only expiry says it is gone."""


@dataclass(frozen=True)
class ClaimView:
    """One live claim of the migration, as recovery needs it."""

    id: int
    owner: Owner
    expired: bool

    @property
    def abandoned(self) -> bool:
        return self.owner is Owner.DEAD or (self.owner is Owner.UNKNOWN and self.expired)


class Presence(Enum):
    ABSENT = "absent"
    RUNNING = "running"
    PAUSED = "paused"
    SHUT_OFF = "shut off"


@dataclass(frozen=True)
class DomainView:
    """The guest on one host. ``state`` is what a report shows (libvirt's words)."""

    presence: Presence
    persistent: bool = False
    state: str = ""

    @property
    def active(self) -> bool:
        return self.presence in (Presence.RUNNING, Presence.PAUSED)

    def describe(self) -> str:
        return self.state or self.presence.value


ABSENT = DomainView(Presence.ABSENT)


@dataclass(frozen=True)
class Observed:
    """The guest on both hosts (None: the hosts could not be inspected, and why)."""

    source: DomainView
    destination: DomainView


class Step(Enum):
    """One thing recovery does, in the order of :attr:`Decision.steps`."""

    RESUME_DESTINATION = "resume the paused guest on the destination"
    UNDEFINE_SOURCE = "remove the stale definition on the source"
    DEFINE_DESTINATION = "make the guest persistent on the destination (planned XML)"
    ATTACH_VFS_DESTINATION = "attach the chosen VFs on the destination"
    RELEASE_CLAIMS = "release the claims"
    RESUME_SOURCE = "resume the paused guest on the source"
    DESTROY_DESTINATION = "destroy the half-migrated copy on the destination"
    UNDEFINE_DESTINATION = "remove the stale definition on the destination"
    ATTACH_VFS_SOURCE = "attach the detached VFs again on the source"
    ROLL_BACK_CLAIMS = "roll back the claims"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    steps: tuple[Step, ...] = ()
    record: Phase | None = None
    """The phase to journal once the steps ran (``recovered`` or ``attention``)."""
    detail: str = ""
    found: str = ""
    """The guest on both hosts, in words (empty when the hosts were not inspected)."""


def in_progress(claims: Sequence[ClaimView]) -> bool:
    """Is some claim's owner possibly still working on the migration?"""
    return not claims or not all(c.abandoned for c in claims)


def needs_hosts(records: Sequence[JournalRecord]) -> bool:
    """Must the hosts be inspected to decide (a plan was journalled, nothing final)?"""
    return first(records, PlannedEntry) is not None and not any(r.phase.final for r in records)


def _ports_out(records: Sequence[JournalRecord]) -> bool:
    """SR-IOV ports were detached on the source and never attached anywhere."""
    return (first(records, VfDetachingEntry) is not None
            and first(records, VfAttachedEntry) is None)


def decide(records: Sequence[JournalRecord], claims: Sequence[ClaimView],
           observed: Observed | None, *, unreachable: str = "") -> Decision:
    """The decision for one migration with live ``claims`` (see the module doc).

    ``observed`` is None when the hosts were not inspected: not needed
    (:func:`needs_hosts` is false) or not reachable (``unreachable`` says why).
    """
    if in_progress(claims):
        return Decision(Outcome.IN_PROGRESS, detail="its owner may still be running it")
    final = [r.phase for r in records if r.phase.final]
    if final:
        ids = ", ".join(str(c.id) for c in claims)
        return Decision(Outcome.NEEDS_ATTENTION, detail=(
            f"the journal says the migration ended ({final[-1].value}) but claim(s) {ids} "
            "are still live: check both hosts and free the claims by hand"))
    planned = first(records, PlannedEntry)
    if planned is None:
        return Decision(Outcome.ROLLED_BACK, (Step.ROLL_BACK_CLAIMS,), Phase.RECOVERED,
                        "the migration never got past planning")
    if observed is None:
        return Decision(Outcome.SKIPPED,
                        detail=f"cannot inspect the hosts yet: {unreachable or 'unknown'}")
    src, dst = observed.source, observed.destination
    found = (f"on {planned.source.name}: {src.describe()}; "
             f"on {planned.destination.name}: {dst.describe()}")
    ports_out = _ports_out(records)
    if dst.active and not src.active:
        steps: list[Step] = []
        if dst.presence is Presence.PAUSED:
            steps.append(Step.RESUME_DESTINATION)
        if src.presence is not Presence.ABSENT and src.persistent:
            steps.append(Step.UNDEFINE_SOURCE)
        if not dst.persistent and planned.persistent_xml:
            steps.append(Step.DEFINE_DESTINATION)
        if ports_out:
            steps.append(Step.ATTACH_VFS_DESTINATION)
        steps.append(Step.RELEASE_CLAIMS)
        return Decision(Outcome.COMPLETED, tuple(steps), Phase.RECOVERED,
                        f"guest was {found}", found)
    if any(r.phase.post_copy for r in records):
        return Decision(Outcome.POST_COPY_RESUME, (), Phase.ATTENTION, (
            f"left as is: guest {found}. It had switched to post-copy, so the copy on "
            f"{planned.source.name} is stale and must not be resumed; resume the migration "
            f"with `virsh -c '{planned.source.uri}' migrate --live --postcopy "
            f"--postcopy-resume {planned.domain} '{planned.destination.uri}'`, then run "
            "`numa-migrate recover` again"), found)
    if src.active and dst.presence is not Presence.RUNNING:
        steps = []
        if src.presence is Presence.PAUSED:
            steps.append(Step.RESUME_SOURCE)
        if dst.active:
            steps.append(Step.DESTROY_DESTINATION)
        if dst.presence is not Presence.ABSENT and dst.persistent:
            steps.append(Step.UNDEFINE_DESTINATION)
        if ports_out:
            steps.append(Step.ATTACH_VFS_SOURCE)
        steps.append(Step.ROLL_BACK_CLAIMS)
        return Decision(Outcome.ROLLED_BACK, tuple(steps), Phase.RECOVERED,
                        f"guest was {found}", found)
    return Decision(Outcome.NEEDS_ATTENTION, (), Phase.ATTENTION, (
        f"left as is: guest {found}. Decide which copy is the guest, then run "
        "`numa-migrate recover` again"), found)

"""The recovery decision (core/migration/recovery.py) as a table: for every last phase of an
interrupted migration x the guest on the source x the guest on the destination (absent,
running, paused, shut off; persistent or transient) x the owner, the outcome, the ordered
steps and the phase journalled afterwards."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product

import pytest

from numa_migrate.core.migration.journal import (
    ENTRY_TYPES,
    AttentionEntry,
    ClaimedEntry,
    DoneEntry,
    Entry,
    HostEndpoint,
    JournalRecord,
    MigratedEntry,
    MigratingEntry,
    PlannedEntry,
    PostCopyEntry,
    PostCopyFailedEntry,
    RecoveredEntry,
    RolledBackEntry,
    VfAttachedEntry,
    VfDetachedEntry,
    VfDetachingEntry,
)
from numa_migrate.core.migration.phases import Phase, check_transition
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

P = Phase
S = Step
PLANNED = PlannedEntry(
    domain="vnf", uuid="6f1c8d52-2f7e-4d5e-9a43-0c6a3b6c1f20",
    source=HostEndpoint("lab-src", "qemu:///src"),
    destination=HostEndpoint("lab-dst", "qemu:///dst"), owner="op@here/4242",
    summary="vnf -> lab-dst", persistent_xml="<domain/>")
ENTRIES: dict[Phase, Entry] = {
    P.PLANNED: PLANNED, P.CLAIMED: ClaimedEntry(1), P.MIGRATING: MigratingEntry(1),
    P.VF_DETACHING: VfDetachingEntry((("a", "b"),), ("<a/>",), ("<b/>",)),
    P.VF_DETACHED: VfDetachedEntry(), P.POST_COPY: PostCopyEntry(1),
    P.POST_COPY_FAILED: PostCopyFailedEntry("link down"),
    P.MIGRATED: MigratedEntry(1.0, 10, 100, False), P.VF_ATTACHED: VfAttachedEntry(()),
    P.DONE: DoneEntry(1), P.ROLLED_BACK: RolledBackEntry("no"),
    P.ATTENTION: AttentionEntry("on lab-src: running; on lab-dst: running"),
    P.RECOVERED: RecoveredEntry("completed"),
}
AT = datetime(2026, 12, 3, tzinfo=UTC)


def journal(*phases: Phase) -> tuple[JournalRecord, ...]:
    return tuple(JournalRecord(i, "m-1", AT, ENTRIES[p]) for i, p in enumerate(phases, 1))


# journals cut after each phase the engine writes (the kill -9 points), with and without
# SR-IOV ports and post-copy
BASE = (P.PLANNED, P.CLAIMED, P.MIGRATING)
JOURNALS = {
    "planned": journal(P.PLANNED),
    "claimed": journal(P.PLANNED, P.CLAIMED),
    "migrating": journal(*BASE),
    "vf_detaching": journal(*BASE, P.VF_DETACHING),
    "vf_detached": journal(*BASE, P.VF_DETACHING, P.VF_DETACHED),
    "post_copy": journal(*BASE, P.POST_COPY),
    "post_copy_failed": journal(*BASE, P.POST_COPY, P.POST_COPY_FAILED),
    "vf_post_copy": journal(*BASE, P.VF_DETACHING, P.VF_DETACHED, P.POST_COPY),
    "migrated": journal(*BASE, P.MIGRATED),
    "vf_migrated": journal(*BASE, P.VF_DETACHING, P.VF_DETACHED, P.MIGRATED),
    "post_copy_migrated": journal(*BASE, P.POST_COPY, P.MIGRATED),
    "vf_attached": journal(*BASE, P.VF_DETACHING, P.VF_DETACHED, P.MIGRATED, P.VF_ATTACHED),
    "attention": journal(*BASE, P.ATTENTION),
    "post_copy_attention": journal(*BASE, P.POST_COPY, P.ATTENTION),
}
PORTS_OUT = {"vf_detaching", "vf_detached", "vf_post_copy", "vf_migrated"}
POST_COPY = {"post_copy", "post_copy_failed", "vf_post_copy", "post_copy_migrated",
             "post_copy_attention"}

STATES = {
    "absent": DomainView(Presence.ABSENT),
    "run-p": DomainView(Presence.RUNNING, persistent=True),
    "run-t": DomainView(Presence.RUNNING, persistent=False),
    "pau-p": DomainView(Presence.PAUSED, persistent=True),
    "pau-t": DomainView(Presence.PAUSED, persistent=False),
    "off-p": DomainView(Presence.SHUT_OFF, persistent=True),
}
C, RB, NA, PC = (Outcome.COMPLETED, Outcome.ROLLED_BACK, Outcome.NEEDS_ATTENTION,
                 Outcome.POST_COPY_RESUME)
COLUMNS = ("absent", "run-p", "run-t", "pau-p", "pau-t", "off-p")
# rows: the guest on the source; columns: on the destination
NORMAL = {
    "absent": (NA, C, C, C, C, NA),
    "run-p": (RB, NA, NA, RB, RB, RB),
    "run-t": (RB, NA, NA, RB, RB, RB),
    "pau-p": (RB, NA, NA, RB, RB, RB),
    "pau-t": (RB, NA, NA, RB, RB, RB),
    "off-p": (NA, C, C, C, C, NA),
}
AFTER_POST_COPY = {  # the source's copy is stale: never rolled back
    "absent": (PC, C, C, C, C, PC),
    "run-p": (PC, PC, PC, PC, PC, PC),
    "run-t": (PC, PC, PC, PC, PC, PC),
    "pau-p": (PC, PC, PC, PC, PC, PC),
    "pau-t": (PC, PC, PC, PC, PC, PC),
    "off-p": (PC, C, C, C, C, PC),
}
# the steps, without the SR-IOV one (added below for journals with ports out)
COMPLETED_STEPS = {
    ("absent", "run-p"): [S.RELEASE_CLAIMS],
    ("absent", "run-t"): [S.DEFINE_DESTINATION, S.RELEASE_CLAIMS],
    ("absent", "pau-p"): [S.RESUME_DESTINATION, S.RELEASE_CLAIMS],
    ("absent", "pau-t"): [S.RESUME_DESTINATION, S.DEFINE_DESTINATION, S.RELEASE_CLAIMS],
    ("off-p", "run-p"): [S.UNDEFINE_SOURCE, S.RELEASE_CLAIMS],
    ("off-p", "run-t"): [S.UNDEFINE_SOURCE, S.DEFINE_DESTINATION, S.RELEASE_CLAIMS],
    ("off-p", "pau-p"): [S.RESUME_DESTINATION, S.UNDEFINE_SOURCE, S.RELEASE_CLAIMS],
    ("off-p", "pau-t"): [S.RESUME_DESTINATION, S.UNDEFINE_SOURCE, S.DEFINE_DESTINATION,
                         S.RELEASE_CLAIMS],
}
ROLLED_BACK_STEPS = {
    "absent": [S.ROLL_BACK_CLAIMS],
    "pau-p": [S.DESTROY_DESTINATION, S.UNDEFINE_DESTINATION, S.ROLL_BACK_CLAIMS],
    "pau-t": [S.DESTROY_DESTINATION, S.ROLL_BACK_CLAIMS],
    "off-p": [S.UNDEFINE_DESTINATION, S.ROLL_BACK_CLAIMS],
}  # by the destination's state; a paused source is resumed first
DEAD = (ClaimView(1, Owner.DEAD, expired=False),)


def expected(name: str, src: str, dst: str) -> tuple[Outcome, list[Step]]:
    table = AFTER_POST_COPY if name in POST_COPY else NORMAL
    outcome = table[src][COLUMNS.index(dst)]
    steps: list[Step] = []
    if outcome is C:
        steps = list(COMPLETED_STEPS[(src, dst)])
        if name in PORTS_OUT:
            steps.insert(-1, S.ATTACH_VFS_DESTINATION)
    elif outcome is RB:
        steps = ([S.RESUME_SOURCE] if src.startswith("pau") else []) + ROLLED_BACK_STEPS[dst]
        if name in PORTS_OUT:
            steps.insert(-1, S.ATTACH_VFS_SOURCE)
    return outcome, steps


@pytest.mark.parametrize(("name", "src", "dst"), list(product(JOURNALS, STATES, STATES)))
def test_the_decision_table(name: str, src: str, dst: str) -> None:
    records = JOURNALS[name]
    decision = decide(records, DEAD, Observed(STATES[src], STATES[dst]))
    outcome, steps = expected(name, src, dst)
    assert (decision.outcome, list(decision.steps)) == (outcome, steps)
    assert decision.record is (P.RECOVERED if outcome in (C, RB) else P.ATTENTION)
    check_transition(records[-1].phase, decision.record)  # the journal will accept it
    assert decision.found == (f"on lab-src: {STATES[src].presence.value}; "
                              f"on lab-dst: {STATES[dst].presence.value}")
    assert decision.found in decision.detail


@pytest.mark.parametrize(("owners", "interrupted"), [
    ((ClaimView(1, Owner.DEAD, expired=False),), True),
    ((ClaimView(1, Owner.DEAD, expired=True),), True),
    ((ClaimView(1, Owner.UNKNOWN, expired=True),), True),
    ((ClaimView(1, Owner.UNKNOWN, expired=False),), False),
    ((ClaimView(1, Owner.ALIVE, expired=False),), False),
    ((ClaimView(1, Owner.ALIVE, expired=True),), False),  # alive: it renews its claim
    ((ClaimView(1, Owner.DEAD, expired=False), ClaimView(2, Owner.ALIVE, expired=False)),
     False),
    ((ClaimView(1, Owner.DEAD, expired=False), ClaimView(2, Owner.UNKNOWN, expired=True)),
     True),
    ((), False),
])
@pytest.mark.parametrize("name", ["planned", "migrating", "post_copy", "migrated"])
@pytest.mark.parametrize(("src", "dst"), [("run-p", "absent"), ("absent", "run-t"),
                                          ("run-p", "run-p"), ("absent", "absent")])
def test_a_migration_whose_owner_may_be_alive_is_left_alone(
        owners: tuple[ClaimView, ...], interrupted: bool, name: str, src: str,
        dst: str) -> None:
    assert in_progress(owners) is not interrupted
    decision = decide(JOURNALS[name], owners, Observed(STATES[src], STATES[dst]))
    if interrupted:
        assert (decision.outcome, list(decision.steps)) == expected(name, src, dst)
    else:
        assert decision == Decision(Outcome.IN_PROGRESS,
                                    detail="its owner may still be running it")


@pytest.mark.parametrize("observed", [None, Observed(STATES["run-p"], STATES["run-p"])])
def test_no_plan_journalled_frees_the_claims_without_looking(observed: Observed | None) -> None:
    for records in ((), journal(P.ATTENTION)):
        assert not needs_hosts(records)
        decision = decide(records, DEAD, observed)
        assert decision.outcome is RB and decision.steps == (S.ROLL_BACK_CLAIMS,)
        assert decision.record is P.RECOVERED and decision.found == ""
        assert decision.detail == "the migration never got past planning"


@pytest.mark.parametrize("final", [P.DONE, P.ROLLED_BACK, P.RECOVERED])
def test_a_journal_already_final_with_a_live_claim_needs_a_person(final: Phase) -> None:
    records = journal(P.PLANNED, final) if final is not P.DONE else journal(
        *BASE, P.MIGRATED, P.DONE)
    assert not needs_hosts(records)
    decision = decide(records, DEAD, None)
    assert decision.outcome is NA and decision.steps == () and decision.record is None
    assert f"the migration ended ({final.value}) but claim(s) 1 are still live" in (
        decision.detail)


def test_hosts_that_cannot_be_inspected_skip_the_migration() -> None:
    assert needs_hosts(JOURNALS["migrating"])
    decision = decide(JOURNALS["migrating"], DEAD, None,
                      unreachable="host lab-dst: cannot connect to qemu:///dst")
    assert decision == Decision(
        Outcome.SKIPPED, detail="cannot inspect the hosts yet: host lab-dst: cannot connect "
                                "to qemu:///dst")
    assert decision.outcome.needs_person and decision.outcome.label == "skipped"


def test_details_say_what_a_person_does() -> None:
    seen = Observed(STATES["pau-p"], STATES["pau-t"])
    resume = decide(JOURNALS["post_copy_failed"], DEAD, seen)
    assert resume.outcome is PC and resume.outcome.label == "needs attention"
    assert resume.detail == (
        "left as is: guest on lab-src: paused; on lab-dst: paused. It had switched to "
        "post-copy, so the copy on lab-src is stale and must not be resumed; resume the "
        "migration with `virsh -c 'qemu:///src' migrate --live --postcopy --postcopy-resume "
        "vnf 'qemu:///dst'`, then run `numa-migrate recover` again")
    both = decide(JOURNALS["migrating"], DEAD, Observed(STATES["run-p"], STATES["run-t"]))
    assert both.detail == ("left as is: guest on lab-src: running; on lab-dst: running. "
                           "Decide which copy is the guest, then run `numa-migrate recover` "
                           "again")
    done = decide(JOURNALS["migrated"], DEAD, Observed(STATES["absent"], STATES["run-p"]))
    assert done.detail == "guest was on lab-src: absent; on lab-dst: running"
    shown = DomainView(Presence.RUNNING, True, state="running (reason 1)")
    assert decide(JOURNALS["migrated"], DEAD, Observed(STATES["absent"], shown)).found == (
        "on lab-src: absent; on lab-dst: running (reason 1)")


def test_a_transient_destination_without_planned_xml_is_not_defined() -> None:
    no_xml = PlannedEntry(**{**PLANNED.__dict__, "persistent_xml": None})
    records = (JournalRecord(1, "m-1", AT, no_xml), *JOURNALS["migrated"][1:])
    decision = decide(records, DEAD, Observed(STATES["absent"], STATES["run-t"]))
    assert decision.steps == (S.RELEASE_CLAIMS,)


def test_outcome_labels_are_the_reported_strings() -> None:
    assert {o.label for o in Outcome} == {"in progress", "completed", "rolled back",
                                          "needs attention", "skipped"}
    assert [o for o in Outcome if o.needs_person] == [NA, PC, Outcome.SKIPPED]


def test_the_table_covers_every_open_phase() -> None:
    last = {records[-1].phase for records in JOURNALS.values()}
    assert last == {p for p in Phase if not p.final}
    assert set(ENTRIES) == set(ENTRY_TYPES)

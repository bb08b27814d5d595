"""The migration phase graph (core/migration/phases.py): every sequence the engine and
recovery write is allowed, a sample of illegal ones is refused with a clear message."""

from __future__ import annotations

import pytest

from numa_migrate.core.migration.journal import ENTRY_TYPES
from numa_migrate.core.migration.phases import (
    TRANSITIONS,
    IllegalTransitionError,
    Phase,
    UnknownPhaseError,
    allowed,
    check_sequence,
    check_transition,
)

P = Phase
CLAIM_AND_MOVE = (P.PLANNED, P.CLAIMED, P.MIGRATING)
PORTS_OUT = (P.VF_DETACHING, P.VF_DETACHED)

RUNS = [
    # what Migration.run writes, start to end
    (*CLAIM_AND_MOVE, P.MIGRATED, P.DONE),
    (P.PLANNED, P.MIGRATING, P.MIGRATED, P.DONE),  # a guest that needs no claim
    (P.PLANNED, P.ROLLED_BACK),  # another operator claimed first
    (*CLAIM_AND_MOVE, P.ROLLED_BACK),  # libvirt refused the migration
    (*CLAIM_AND_MOVE, P.VF_DETACHING, P.ROLLED_BACK),  # a VF would not detach
    (*CLAIM_AND_MOVE, *PORTS_OUT, P.ROLLED_BACK),
    (*CLAIM_AND_MOVE, *PORTS_OUT, P.MIGRATED, P.VF_ATTACHED, P.DONE),
    (*CLAIM_AND_MOVE, P.POST_COPY, P.MIGRATED, P.DONE),
    (*CLAIM_AND_MOVE, P.POST_COPY, P.POST_COPY_FAILED),
    (*CLAIM_AND_MOVE, *PORTS_OUT, P.POST_COPY, P.MIGRATED, P.VF_ATTACHED, P.DONE),
    (*CLAIM_AND_MOVE, *PORTS_OUT, P.POST_COPY, P.POST_COPY_FAILED),
]


def _killed_then_recovered() -> list[tuple[Phase, ...]]:
    """Every run cut after any phase that is not final, then recovered (at once, or after
    recovery left it for a person once or twice)."""
    out = []
    for run in RUNS:
        for cut in range(1, len(run) + 1):
            head = run[:cut]
            if head[-1].final:
                continue
            out += [(*head, P.RECOVERED), (*head, P.ATTENTION),
                    (*head, P.ATTENTION, P.ATTENTION, P.RECOVERED)]
    return out


@pytest.mark.parametrize("phases", RUNS + _killed_then_recovered() + [
    (P.RECOVERED,),  # a claim whose migration never journalled its plan
    (P.ATTENTION, P.RECOVERED),
])
def test_every_sequence_the_engine_and_recovery_write_is_allowed(
        phases: tuple[Phase, ...]) -> None:
    check_sequence(phases, migration_id="m-1")


@pytest.mark.parametrize(("phases", "message"), [
    ((P.DONE,), "a journal cannot start with done: it starts with attention or planned or "
                "recovered"),
    ((P.CLAIMED,), "cannot start with claimed"),
    ((P.PLANNED, P.PLANNED), "planned cannot follow planned"),
    ((P.PLANNED, P.MIGRATED), "migrated cannot follow planned: allowed next: attention, "
                              "claimed, migrating, recovered, rolled_back"),
    ((P.PLANNED, P.DONE), "done cannot follow planned"),
    ((*CLAIM_AND_MOVE, P.CLAIMED), "claimed cannot follow migrating"),
    ((*CLAIM_AND_MOVE, P.VF_ATTACHED), "vf_attached cannot follow migrating"),
    ((*CLAIM_AND_MOVE, P.VF_DETACHED), "vf_detached cannot follow migrating"),
    ((*CLAIM_AND_MOVE, P.POST_COPY, P.ROLLED_BACK),
     "rolled_back cannot follow post_copy"),  # never roll back after the switch
    ((*CLAIM_AND_MOVE, P.POST_COPY_FAILED), "post_copy_failed cannot follow migrating"),
    ((*CLAIM_AND_MOVE, P.MIGRATED, P.ROLLED_BACK), "rolled_back cannot follow migrated"),
    ((*CLAIM_AND_MOVE, P.MIGRATED, P.DONE, P.RECOVERED), "done is final, nothing may follow"),
    ((P.PLANNED, P.ROLLED_BACK, P.PLANNED), "rolled_back is final"),
    ((P.PLANNED, P.RECOVERED, P.ATTENTION), "recovered is final"),
    ((*CLAIM_AND_MOVE, P.ATTENTION, P.MIGRATED), "migrated cannot follow attention"),
])
def test_illegal_sequences_are_refused_naming_the_step(phases: tuple[Phase, ...],
                                                       message: str) -> None:
    with pytest.raises(IllegalTransitionError, match=r"^migration m-9: ") as info:
        check_sequence(phases, migration_id="m-9")
    assert message in str(info.value)


def test_the_graph_covers_every_phase_and_only_finals_end_it() -> None:
    assert set(TRANSITIONS) == set(Phase)
    assert set(ENTRY_TYPES) == set(Phase)
    for phase, nxt in TRANSITIONS.items():
        assert (not nxt) == phase.final, phase
        if not phase.final:
            assert {P.ATTENTION, P.RECOVERED} <= nxt, "recovery may follow any open phase"
    assert {p for p in Phase if p.final} == {P.DONE, P.ROLLED_BACK, P.RECOVERED}
    assert {p for p in Phase if p.post_copy} == {P.POST_COPY, P.POST_COPY_FAILED}
    assert P.MIGRATING.successors == TRANSITIONS[P.MIGRATING]


def test_phase_names_are_what_the_journal_stores() -> None:
    assert [p.value for p in Phase] == [
        "planned", "claimed", "migrating", "vf_detaching", "vf_detached", "post_copy",
        "post_copy_failed", "migrated", "vf_attached", "done", "rolled_back", "attention",
        "recovered"]
    assert Phase.parse("post_copy") is P.POST_COPY
    assert P.DONE == "done"
    with pytest.raises(UnknownPhaseError, match="unknown migration phase 'plan': one of "
                                                "planned, claimed"):
        Phase.parse("plan")


def test_check_transition_alone() -> None:
    assert allowed(None, P.PLANNED) and not allowed(None, P.MIGRATING)
    check_transition(P.VF_DETACHED, P.POST_COPY)
    with pytest.raises(IllegalTransitionError, match=r"^done cannot follow vf_detached"):
        check_transition(P.VF_DETACHED, P.DONE)

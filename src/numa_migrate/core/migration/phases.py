"""The phases a migration goes through, and which phase may follow which (pure).

Every step of a migration is journalled *before* it happens; the journal's last phase
therefore says how far an interrupted migration got. The engine
(:mod:`numa_migrate.migrate.run`) writes::

    planned → claimed → migrating → [vf_detaching → vf_detached] → [post_copy] → migrated
            → [vf_attached] → done

(``claimed`` only when the guest needs a claim, the ``vf_*`` phases only for guests with
SR-IOV ports, ``post_copy`` when the migration switched to post-copy), or ends early in
``rolled_back`` (the guest still runs on the source) or ``post_copy_failed`` (the memory is
split between the hosts). ``numa-migrate recover`` (:mod:`numa_migrate.migrate.recovery`)
writes ``attention`` (left for a person) or ``recovered`` after any phase that is not final.

:data:`TRANSITIONS` is that graph as data; :func:`check_transition` refuses any other
sequence (the journal calls it before it writes an entry).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from numa_migrate.core.errors import NumaMigrateError


class Phase(StrEnum):
    """One journalled step of a migration (the value is what the journal stores)."""

    PLANNED = "planned"
    CLAIMED = "claimed"
    MIGRATING = "migrating"
    VF_DETACHING = "vf_detaching"
    VF_DETACHED = "vf_detached"
    POST_COPY = "post_copy"
    POST_COPY_FAILED = "post_copy_failed"
    MIGRATED = "migrated"
    VF_ATTACHED = "vf_attached"
    DONE = "done"
    ROLLED_BACK = "rolled_back"
    ATTENTION = "attention"
    RECOVERED = "recovered"

    @property
    def final(self) -> bool:
        """Nothing follows: the migration ended (done, rolled back or recovered)."""
        return self in _FINAL

    @property
    def post_copy(self) -> bool:
        """The migration had switched to post-copy: from then on the source's copy is
        stale, so rolling back to it would lose data."""
        return self in _POST_COPY

    @property
    def successors(self) -> frozenset[Phase]:
        """The phases that may be journalled right after this one."""
        return TRANSITIONS[self]

    @classmethod
    def parse(cls, value: str) -> Phase:
        """The phase named ``value``; :class:`UnknownPhaseError` for any other name."""
        try:
            return cls(value)
        except ValueError:
            raise UnknownPhaseError(
                f"unknown migration phase {value[:40]!r}: one of "
                f"{', '.join(p.value for p in cls)}") from None


_FINAL = frozenset({Phase.DONE, Phase.ROLLED_BACK, Phase.RECOVERED})
_POST_COPY = frozenset({Phase.POST_COPY, Phase.POST_COPY_FAILED})

START = frozenset({Phase.PLANNED, Phase.ATTENTION, Phase.RECOVERED})
"""What may open a journal: the engine's ``planned``; recovery's entries for a claim whose
migration never journalled its plan."""

_RECOVERY = frozenset({Phase.ATTENTION, Phase.RECOVERED})
"""Recovery may write these after any phase that is not final."""

_ENGINE: Mapping[Phase, frozenset[Phase]] = {
    Phase.PLANNED: frozenset({Phase.CLAIMED, Phase.MIGRATING, Phase.ROLLED_BACK}),
    Phase.CLAIMED: frozenset({Phase.MIGRATING}),
    Phase.MIGRATING: frozenset({Phase.VF_DETACHING, Phase.POST_COPY, Phase.MIGRATED,
                                Phase.ROLLED_BACK}),
    Phase.VF_DETACHING: frozenset({Phase.VF_DETACHED, Phase.ROLLED_BACK}),
    Phase.VF_DETACHED: frozenset({Phase.POST_COPY, Phase.MIGRATED, Phase.ROLLED_BACK}),
    Phase.POST_COPY: frozenset({Phase.MIGRATED, Phase.POST_COPY_FAILED}),
    Phase.POST_COPY_FAILED: frozenset(),
    Phase.MIGRATED: frozenset({Phase.VF_ATTACHED, Phase.DONE}),
    Phase.VF_ATTACHED: frozenset({Phase.DONE}),
    Phase.ATTENTION: frozenset(),
    Phase.DONE: frozenset(),
    Phase.ROLLED_BACK: frozenset(),
    Phase.RECOVERED: frozenset(),
}

TRANSITIONS: Mapping[Phase, frozenset[Phase]] = {
    phase: nxt | (frozenset() if phase.final else _RECOVERY)
    for phase, nxt in _ENGINE.items()
}
"""phase -> the phases allowed to follow it."""


class UnknownPhaseError(NumaMigrateError):
    """A phase name that is not a :class:`Phase`."""


class IllegalTransitionError(NumaMigrateError):
    """A phase journalled where it may not follow the previous one."""


def allowed(previous: Phase | None, nxt: Phase) -> bool:
    """May ``nxt`` follow ``previous`` (None: the journal is empty)?"""
    return nxt in (START if previous is None else TRANSITIONS[previous])


def check_transition(previous: Phase | None, nxt: Phase, *, migration_id: str = "") -> None:
    """Refuse (:class:`IllegalTransitionError`) a phase that may not follow ``previous``."""
    if allowed(previous, nxt):
        return
    which = f"migration {migration_id}: " if migration_id else ""
    if previous is None:
        raise IllegalTransitionError(
            f"{which}a journal cannot start with {nxt.value}: it starts with "
            f"{' or '.join(sorted(p.value for p in START))}")
    after = sorted(p.value for p in TRANSITIONS[previous])
    raise IllegalTransitionError(
        f"{which}{nxt.value} cannot follow {previous.value}: "
        + (f"allowed next: {', '.join(after)}" if after
           else f"{previous.value} is final, nothing may follow it"))


def check_sequence(phases: Iterable[Phase], *, migration_id: str = "") -> None:
    """Refuse a whole sequence with an illegal step (the first one is named)."""
    previous: Phase | None = None
    for phase in phases:
        check_transition(previous, phase, migration_id=migration_id)
        previous = phase

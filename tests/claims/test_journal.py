"""The migration journal (claims/journal.py) on real databases: typed entries in order, the
transition check, unreadable stored entries named, the claims store's schema unchanged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from numa_migrate.claims import ClaimError, ClaimStore, head_revision
from numa_migrate.claims.journal import Journal
from numa_migrate.claims.schema import journal as journal_table
from numa_migrate.core.migration.journal import (
    ClaimedEntry,
    DoneEntry,
    HostEndpoint,
    JournalError,
    MigratedEntry,
    MigratingEntry,
    PlannedEntry,
    RecoveredEntry,
)
from numa_migrate.core.migration.phases import IllegalTransitionError, Phase
from tests.claims.conftest import FakeClock

PLANNED = PlannedEntry(
    domain="web-7", uuid="6f1c8d52-2f7e-4d5e-9a43-0c6a3b6c1f20",
    source=HostEndpoint("lab-src", "qemu:///src"),
    destination=HostEndpoint("lab-dst", "qemu:///dst"), owner="alice@host1/42",
    summary="web-7 -> lab-dst cell 0", persistent_xml="<domain/>")


def test_journal_keeps_each_migrations_steps_in_order(store: ClaimStore, clock: FakeClock) -> None:
    journal = Journal(store)
    journal.append("m-1", PLANNED)
    clock.advance(1)
    journal.append("m-2", PLANNED)
    journal.append("m-1", ClaimedEntry(7))
    entries = journal.entries("m-1")
    assert [(e.phase, e.entry) for e in entries] == [
        (Phase.PLANNED, PLANNED), (Phase.CLAIMED, ClaimedEntry(7))]
    assert entries[1].at - entries[0].at == timedelta(seconds=1)
    assert [e.phase for e in journal.entries("m-2")] == ["planned"]
    assert journal.entries("nope") == []
    assert journal.last_phase("m-1") is Phase.CLAIMED
    assert journal.last_phase("nope") is None
    with pytest.raises(ClaimError, match="is not JSON"):
        journal.append("m-1", MigratingEntry(claim_id={1, 2}))  # type: ignore[arg-type]
    with pytest.raises(ClaimError, match="is not JSON"):
        journal.append("m-1", MigratingEntry(claim_id=float("nan")))  # type: ignore[arg-type]
    assert journal.last_phase("m-1") is Phase.CLAIMED  # nothing was written


def test_the_journal_refuses_a_phase_that_may_not_follow(store: ClaimStore) -> None:
    journal = Journal(store)
    with pytest.raises(IllegalTransitionError, match="cannot start with done"):
        journal.append("m-1", DoneEntry(None))
    journal.append("m-1", PLANNED)
    with pytest.raises(IllegalTransitionError, match="migrated cannot follow planned"):
        journal.append("m-1", MigratedEntry(1.0, 10, 100, False))
    journal.append("m-1", MigratingEntry(None))
    journal.append("m-1", MigratedEntry(1.0, 10, 100, False))
    journal.append("m-1", DoneEntry(None))
    with pytest.raises(IllegalTransitionError, match="done is final"):
        journal.append("m-1", RecoveredEntry("completed"))
    assert [e.phase for e in journal.entries("m-1")] == [
        "planned", "migrating", "migrated", "done"]


def test_a_stored_entry_this_version_cannot_read_is_named(store: ClaimStore) -> None:
    journal = Journal(store)
    journal.append("m-1", PLANNED)
    bad = PLANNED.to_json() | {"source": {"name": "lab-src", "uri": 42}}
    with store._engine.begin() as conn:
        conn.execute(insert(journal_table).values(
            migration_id="m-2", phase="planned", at=store._now().replace(tzinfo=None),
            payload=bad))
        conn.execute(insert(journal_table).values(
            migration_id="m-3", phase="plan", at=store._now().replace(tzinfo=None),
            payload={}))
    with pytest.raises(JournalError, match=r"migration m-2 \(planned\): field 'source.uri' "
                                           r"is 42: expected a string"):
        journal.entries("m-2")
    with pytest.raises(JournalError, match=r"migration m-3: unknown migration phase 'plan'"):
        journal.entries("m-3")
    with pytest.raises(JournalError, match="unknown migration phase 'plan'"):
        journal.append("m-3", PLANNED)  # the last phase must be readable too
    assert [e.phase for e in journal.entries("m-1")] == ["planned"]


def test_the_journal_needs_no_schema_change(store: ClaimStore) -> None:
    assert store.schema_revision() == head_revision()

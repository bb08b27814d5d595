"""The migration journal: typed entries in the claims database's ``journal`` table.

Same database and table as the claims (one store, one backup, one schema revision); its
own class so that the claims store stays about claims. Every entry is committed before the
step it announces happens; :meth:`Journal.append` refuses an entry whose phase may not
follow the migration's last one (:func:`~numa_migrate.core.migration.phases.check_transition`),
checked and written in one transaction (on PostgreSQL under an advisory lock per
migration, on SQLite under the database write lock).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select

from numa_migrate.claims.model import ClaimError
from numa_migrate.claims.schema import journal
from numa_migrate.claims.store import ClaimStore, _from_db, _to_db
from numa_migrate.core.migration.journal import (
    Entry,
    JournalError,
    JournalRecord,
    entry_from_json,
)
from numa_migrate.core.migration.phases import Phase, UnknownPhaseError, check_transition


class Journal:
    """The journal of every migration recorded in ``store``'s database."""

    def __init__(self, store: ClaimStore) -> None:
        self.store = store

    def append(self, migration_id: str, entry: Entry) -> JournalRecord:
        """Record (and commit) ``entry``, after checking that its phase may follow the
        migration's last one."""
        if not migration_id.strip():
            raise ClaimError("a journal entry needs a migration id")
        phase = entry.PHASE
        try:
            data: Any = json.loads(json.dumps(entry.to_json(), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ClaimError(
                f"journal payload for {migration_id}/{phase.value} is not JSON: {exc}"
            ) from None
        store = self.store

        def run() -> JournalRecord:
            with store._write(f"journal of migration {migration_id}") as conn:
                last = conn.execute(
                    select(journal.c.phase)
                    .where(journal.c.migration_id == migration_id)
                    .order_by(journal.c.id.desc())
                    .limit(1)
                ).scalar()
                try:
                    previous = None if last is None else Phase.parse(str(last))
                except UnknownPhaseError as exc:
                    raise JournalError(str(exc), source=f"journal of migration {migration_id}"
                                       ) from None
                check_transition(previous, phase, migration_id=migration_id)
                at = _to_db(store._now())
                result = conn.execute(
                    insert(journal).values(
                        migration_id=migration_id, phase=phase.value, at=at, payload=data
                    )
                )
                pk = result.inserted_primary_key
                assert pk is not None
                return JournalRecord(int(pk[0]), migration_id, _from_db(at), entry)

        return store._retry(run)

    def entries(self, migration_id: str) -> list[JournalRecord]:
        """A migration's journal, in the order it was written; a stored entry this version
        cannot read is a :class:`~numa_migrate.core.migration.journal.JournalError`
        naming the entry and the field."""
        store = self.store

        def run() -> list[Any]:
            with store._read() as conn:
                return list(conn.execute(
                    select(journal)
                    .where(journal.c.migration_id == migration_id)
                    .order_by(journal.c.id)
                ).all())

        return [
            JournalRecord(
                int(r.id), str(r.migration_id), _from_db(r.at),
                entry_from_json(str(r.phase), r.payload,
                                source=f"journal entry {r.id} of migration {migration_id}"),
            )
            for r in store._retry(run)
        ]

    def last_phase(self, migration_id: str) -> Phase | None:
        """The phase of the migration's newest entry (None: nothing journalled)."""
        entries = self.entries(migration_id)
        return entries[-1].phase if entries else None


__all__ = ["Journal"]

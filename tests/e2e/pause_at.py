"""Test-only launcher: the real numa-migrate command line, paused at one migration phase so
that a test can kill -9 it exactly there (the product has no such hook).

    python -m tests.e2e.pause_at PHASE MARKER -- migrate GUEST --to lab-dst

``PHASE`` is a journal phase (``planned``, ``claimed``, ``migrating``, ``migrated``, ...):
the command pauses right after that entry is committed; or ``transferring``: the migration
job is running and has moved data. At that moment the marker file gets ``<pid> <phase>``
and the process sleeps until it is killed. Run from the repository root.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

TRANSFERRING = "transferring"


def _pause(phase: str, marker: Path) -> None:
    marker.write_text(f"{os.getpid()} {phase}\n")
    while True:  # the test kills us here
        time.sleep(1)


def _pause_after_journal_entry(phase: str, marker: Path) -> None:
    from numa_migrate.claims.journal import Journal
    from numa_migrate.core.migration.journal import Entry, JournalRecord
    from numa_migrate.core.migration.phases import Phase

    wanted = Phase.parse(phase)
    real_append = Journal.append

    def append(self: Journal, migration_id: str, entry: Entry) -> JournalRecord:
        record = real_append(self, migration_id, entry)
        if entry.PHASE is wanted:
            _pause(phase, marker)
        return record

    Journal.append = append  # type: ignore[method-assign]


def _pause_while_transferring(marker: Path) -> None:
    from numa_migrate.migrate.run import Migration

    real_init = Migration.__init__

    def init(self: Migration, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        shown = self.on_progress

        def progress(p: Any) -> None:
            if shown is not None:
                shown(p)
            if (p.data_processed or 0) > 0:
                _pause(TRANSFERRING, marker)

        self.on_progress = progress

    Migration.__init__ = init


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[2] != "--":
        sys.exit("usage: python -m tests.e2e.pause_at PHASE MARKER -- NUMA-MIGRATE-ARGS...")
    phase, marker = argv[0], Path(argv[1])
    if phase == TRANSFERRING:
        _pause_while_transferring(marker)
    else:
        _pause_after_journal_entry(phase, marker)
    from numa_migrate.cli.main import main as numa_migrate

    sys.argv = ["numa-migrate", *argv[3:]]
    numa_migrate()


if __name__ == "__main__":
    main(sys.argv[1:])

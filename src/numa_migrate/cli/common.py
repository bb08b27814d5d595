"""What several commands share: the ``--db`` option, opening the claims store, the pin table.

SQLAlchemy and rich are imported where they are used, so that ``--help`` stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from numa_migrate.core.cpuset import CpuSet

if TYPE_CHECKING:
    from rich.table import Table

    from numa_migrate.claims import ClaimStore
    from numa_migrate.migrate.run import Outcome

__all__ = ["db_option", "open_store", "pin_table", "pins_text"]

db_option = click.option(
    "--db", "db_url", metavar="URL", envvar="NUMA_MIGRATE_DB",
    help="Claims store: an SQLAlchemy URL, e.g. postgresql+psycopg://user@db/numa for several "
    "operators at once. Default: SQLite in $XDG_STATE_HOME/numa-migrate/claims.db "
    "(env NUMA_MIGRATE_DB).",
)


def open_store(db_url: str | None) -> ClaimStore:
    """The claims store at ``db_url``, else the default one.

    A malformed URL is refused before the store itself (alembic, the schema) is loaded."""
    from numa_migrate.claims.engine import default_url, parse_url

    url = db_url or default_url()
    parse_url(url)
    from numa_migrate.claims import ClaimStore

    return ClaimStore.open(url)


def pins_text(pins: dict[int, list[int]]) -> dict[int, str]:
    return {v: CpuSet.of(c).format() for v, c in pins.items()}


def pin_table(title: str, out: Outcome) -> Table:
    """vCPU pins before the migration, and after it in the live and persistent XML."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("vCPU", f"before ({out.plan.source})", f"after, live ({out.plan.destination})",
                "after, persistent"):
        table.add_column(col)
    before, live, pers = (pins_text(p) for p in (out.source_pins, out.dest_pins,
                                                 out.dest_persistent_pins))
    for vcpu in sorted(set(before) | set(live)):
        table.add_row(str(vcpu), before.get(vcpu, "-"), live.get(vcpu, "-"), pers.get(vcpu, "-"))
    return table

"""Alembic environment for the claims store.

Normally run by :meth:`numa_migrate.claims.store.ClaimStore.migrate`, which passes an open
connection (inside its own locked transaction) as ``config.attributes["connection"]``.
For offline SQL generation (``alembic upgrade head --sql``), ``sqlalchemy.url`` is read
from the configuration instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from numa_migrate.claims.schema import VERSION_TABLE, metadata


def run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        run_offline()
        return
    conn = context.config.attributes.get("connection")
    if not isinstance(conn, Connection):
        raise RuntimeError(
            "the claims store's migrations run through ClaimStore.migrate() (or offline with --sql)"
        )
    run_online(conn)


# Alembic executes this file inside its environment context; a plain import (a tool that
# walks every module of the package, say) must not fail, so run only when alembic does.
if getattr(context, "_proxy", None) is not None:
    main()

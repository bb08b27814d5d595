"""Database URLs and engines for the claims store (SQLite by default, PostgreSQL by URL).

SQLite connections get, on connect: WAL journalling (readers never block the writer),
``foreign_keys=ON`` (off by default in SQLite) and a busy timeout, and the ``sqlite3``
driver's own transaction handling is switched off so that SQLAlchemy's ``begin`` emits
``BEGIN IMMEDIATE`` for writes (the write lock is taken at the start of the transaction,
so two writers never both read and then fail to upgrade) and a plain deferred ``BEGIN``
for reads (a consistent WAL snapshot without blocking anybody).

PostgreSQL URLs use psycopg 3; ``postgresql://`` is read as ``postgresql+psycopg://``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from numa_migrate.claims.model import ClaimError

BUSY_TIMEOUT_MS = 30_000
READ_ONLY_OPTION = "numa_migrate_read_only"
"""Execution option that makes the SQLite begin hook open a deferred (read) transaction."""


def state_dir(env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/numa-migrate`` (when set and absolute), else
    ``~/.local/state/numa-migrate``."""
    environ = os.environ if env is None else env
    base = environ.get("XDG_STATE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "numa-migrate"


def default_url(env: os._Environ[str] | dict[str, str] | None = None) -> str:
    """``sqlite:///<state dir>/claims.db`` — the store when no ``--db`` is given."""
    return f"sqlite:///{state_dir(env) / 'claims.db'}"


def parse_url(url: str) -> URL:
    """The URL to connect to, or ClaimError naming the accepted forms."""
    shown = url if len(url) <= 80 else url[:77] + "..."
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError) as exc:
        detail = "" if isinstance(exc, ArgumentError) else f" ({_reason(exc)})"
        raise ClaimError(
            f"claims database URL {shown!r} is not a URL{detail}; use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST:PORT/DB"
        ) from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ClaimError(f"claims database URL {shown!r}: port {parsed.port} is not in 1-65535")
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    if backend == "sqlite":
        return parsed
    raise ClaimError(
        f"claims database URL {parsed.render_as_string(hide_password=True)!r}: unsupported "
        f"database {backend!r}; use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
    )


def _is_dir(folder: Path) -> bool:
    try:
        return folder.is_dir()
    except OSError as exc:
        raise ClaimError(f"claims database folder {str(folder)[:80]!r}: "
                         f"{exc.strerror or exc}") from None


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "invalid literal for int()" in text:
        return "the port is not a number"
    return text if len(text) <= 60 else text[:57] + "..."


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Let SQLAlchemy's begin hook emit BEGIN; sqlite3 still emits COMMIT/ROLLBACK.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the connect and begin hooks described above."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database
    if not database or database == ":memory:":
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        path = Path(database).expanduser()
        if path.parent == state_dir():
            # the default store: its folder is ours to create
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise ClaimError(
                    f"cannot create the claims database folder {path.parent}: {exc}"
                ) from None
        elif not _is_dir(path.parent):
            # a URL given by hand: a missing folder is more likely a typo than a wish
            raise ClaimError(
                f"claims database {path}: the folder {path.parent} does not exist; create "
                "it first or fix the path in --db / $NUMA_MIGRATE_DB"
            )
        engine = create_engine(
            parsed.set(database=str(path)),
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
        )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


__all__ = ["default_url", "is_postgresql", "make_engine", "parse_url", "state_dir"]

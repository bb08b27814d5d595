"""Fixtures: a real SQLite file and a real PostgreSQL server (session-scoped), a fake clock.

The PostgreSQL server is started once per session (see ``tests/claims/postgres.py``). When
it cannot be started, PostgreSQL tests are skipped with the reason, or fail when
``NUMA_MIGRATE_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from numa_migrate.claims import ClaimStore
from tests.claims.postgres import PostgresServer, PostgresUnavailable, postgres_server

BACKENDS = ("sqlite", "postgresql")
_db_names = itertools.count()


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer | str]:
    """The session's PostgreSQL server, or the reason there is none."""
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as exc:
        yield f"PostgreSQL is not available: {exc}"


def _require(server: PostgresServer | str) -> PostgresServer:
    if isinstance(server, str):
        if os.environ.get("NUMA_MIGRATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{server} (NUMA_MIGRATE_REQUIRE_POSTGRES=1)")
        pytest.skip(server)
    return server


def new_database_url(backend: str, tmp_path: Path, server: PostgresServer | str) -> str:
    """A fresh, empty database of ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'claims-{next(_db_names)}.db'}"
    return _require(server).create_database(f"claims_{os.getpid()}_{next(_db_names)}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_url(backend: str, tmp_path: Path, pg_server: PostgresServer | str) -> str:
    return new_database_url(backend, tmp_path, pg_server)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(empty_url: str, clock: FakeClock) -> Iterator[ClaimStore]:
    with ClaimStore.open(empty_url, clock=clock) as s:
        yield s

"""The claims store: reservations of host resources that outlive a process.

The migration journal lives in the same database: :mod:`numa_migrate.claims.journal`.

Why claims are safe across processes
------------------------------------
The database itself refuses double-booking; no Python lock is involved.

* Exclusive resources are rows with a primary key: ``claim_cpus (host, cpu)`` and
  ``claim_vfs (host, pci_address)``. A second live claim on the same CPU or VF is an
  ``IntegrityError`` however the two transactions interleave, on either backend.
* Counted resources (pages per size, memory, the shared-CPU share, per host cell) are one
  counter row each in ``pool_usage``. A claim adds to it with a *conditional update*,
  ``UPDATE pool_usage SET used = used + :n WHERE <key> AND used + :n <= :limit``, where
  ``limit`` is what the live host offers (``accounting.admission_limits``); resources the
  fitter over-commits have no limit and are only counted. Zero rows updated means "not
  enough". The check and the increment are one statement on one row: PostgreSQL holds the
  row lock and, under READ COMMITTED,
  re-evaluates the WHERE clause against the newest committed row when it had to wait (so two
  claims can never both pass against the same old value); SQLite runs one writer at a time.
  ``CHECK (used >= 0)`` guards releases. The counter rows are created with
  ``INSERT ... ON CONFLICT DO NOTHING`` first, which is race-free on both backends.
* A claim's rows, counter increments and the claim row itself are written in one
  transaction; releasing or rolling back deletes the rows and decrements the counters in one
  transaction, guarded by a compare-and-set on the claim's state (a claim is freed once).

Why transactions are also serialised per host
---------------------------------------------
Every write transaction that touches a host's claims first takes a per-host lock: on
PostgreSQL ``pg_advisory_xact_lock(hashtextextended('numa-migrate claims host <name>', 0))``
(released at commit/rollback, so a crashed operator never leaves it held); on SQLite the
database write lock, by starting every write transaction with ``BEGIN IMMEDIATE`` (see
:mod:`numa_migrate.claims.engine`). This is not what prevents double-booking (the
constraints above do, and would still do so for a writer that skipped the lock); it buys
two things: (1) no deadlocks (two PostgreSQL claims inserting overlapping CPUs in different
orders could otherwise deadlock), and (2) exact refusal messages: when a constraint or a
conditional update refuses a claim, the write is rolled back to a savepoint and, still
inside the locked transaction, the store reads exactly who holds what, so
:class:`ClaimConflict` names every contested CPU, VF or counter and every holder. Lock
waits are short: a claim transaction is a few statements. ``SELECT ... FOR UPDATE`` was not
used because it cannot lock rows that do not exist yet (the first claim of a CPU).

Reads (holdings, listings) use a consistent snapshot: REPEATABLE READ on
PostgreSQL, a deferred transaction (one WAL snapshot) on SQLite; they never wait for writers.
Deadlock, serialisation and "database is locked" errors are retried a few times; other
database errors become :class:`ClaimError` naming the database (password hidden).
PostgreSQL 11 or newer is needed (``hashtextextended``).

What counts as held
-------------------
Claims in ``reserved``, ``migrating`` and ``active`` hold their resources, expired or not,
until they are released, rolled back or reaped. An ``active`` destination claim (the guest
runs there) is counted on top of the live usage that now also shows the guest: conservative
until its owner releases it.
"""

from __future__ import annotations

import functools
import math
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DBAPIError, IntegrityError

from numa_migrate.claims.accounting import (
    admission_limits,
    live_pin_conflicts,
    normalise_vf,
    placement_usage,
    source_view,
)
from numa_migrate.claims.engine import (
    READ_ONLY_OPTION,
    default_url,
    is_postgresql,
    make_engine,
    parse_url,
)
from numa_migrate.claims.model import (
    LIVE_STATES,
    TRANSITIONS,
    Claim,
    ClaimConflict,
    ClaimError,
    ClaimKind,
    ClaimState,
    Conflict,
    Holdings,
    InvalidTransitionError,
    PoolKey,
    PoolResource,
    Resources,
    SchemaError,
    UnknownClaimError,
    describe_pool,
)
from numa_migrate.claims.schema import (
    VERSION_TABLE,
    claim_cpus,
    claim_pools,
    claim_vfs,
    claims,
    pool_usage,
)
from numa_migrate.core.fit.cellfit import Limits
from numa_migrate.core.model.guest import GuestRequest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import Placement

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_T = TypeVar("_T")
_RETRIES = 6
_LIVE = tuple(sorted(s.value for s in LIVE_STATES))


def utcnow() -> datetime:
    return datetime.now(UTC)


def _to_db(dt: datetime) -> datetime:
    """Stored times are naive UTC (the same on SQLite and PostgreSQL)."""
    if dt.tzinfo is None:
        raise ClaimError(f"time {dt.isoformat()} has no time zone")
    return dt.astimezone(UTC).replace(tzinfo=None)


def _from_db(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC)


def _holders(conn: Connection, item: Any, claim_id: Any, where: Any,
             wanted: list[Any]) -> dict[int, list[Any]]:
    """claim id -> the ``wanted`` exclusive items (CPUs, VF addresses) it holds."""
    found: dict[int, list[Any]] = {}
    if not wanted:
        return found
    for value, cid in conn.execute(select(item, claim_id).where(where, item.in_(wanted))):
        found.setdefault(int(cid), []).append(value)
    return found


def _pool_order(key: PoolKey) -> tuple[int, str, int]:
    return (key[0], key[1].value, key[2])


def _alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@functools.cache
def head_revision() -> str:
    """The schema revision this version of numa-migrate needs."""
    head = ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


class ClaimStore:
    """Claims in SQLite (default) or PostgreSQL; the journal in the same database is
    :class:`~numa_migrate.claims.journal.Journal`.

    ``url`` defaults to :func:`~numa_migrate.claims.engine.default_url`. ``clock`` returns
    the current time (timezone-aware); tests pass a fake one. Creating a store does not
    touch the database: call :meth:`migrate` (or use :meth:`open`).
    """

    def __init__(
        self, url: str | None = None, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.url = url or default_url()
        self._engine: Engine = make_engine(self.url)
        self._pg = is_postgresql(self._engine)
        if self._pg:
            self._read_engine = self._engine.execution_options(isolation_level="REPEATABLE READ")
        else:
            self._read_engine = self._engine.execution_options(**{READ_ONLY_OPTION: True})
        self._clock = clock or utcnow

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        migrate: bool = True,
        clock: Callable[[], datetime] | None = None,
    ) -> ClaimStore:
        """A store at ``url``, upgraded to the current schema (or checked, with
        ``migrate=False``: :class:`SchemaError` if it is not current)."""
        store = cls(url, clock=clock)
        try:
            if migrate:
                store.migrate()
            else:
                store.check_schema()
        except BaseException:
            store.close()
            raise
        return store

    @property
    def safe_url(self) -> str:
        return parse_url(self.url).render_as_string(hide_password=True)

    @property
    def backend(self) -> str:
        return self._engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ schema

    def migrate(self) -> str:
        """Upgrade the database to the newest schema (alembic ``upgrade head``).

        Safe to run from several processes at once: the upgrade runs in one transaction
        under the database write lock (SQLite) or an advisory lock (PostgreSQL).
        """

        def run() -> str:
            cfg = _alembic_config(self.url)
            with self._engine.begin() as conn:
                if self._pg:
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                        {"k": "numa-migrate claims schema"},
                    )
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            return head_revision()

        return self._retry(run)

    def schema_revision(self) -> str | None:
        """The database's schema revision, None for an empty database."""

        def run() -> str | None:
            with self._read_engine.connect() as conn:
                ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
                return ctx.get_current_revision()

        return self._retry(run)

    def check_schema(self) -> None:
        current, head = self.schema_revision(), head_revision()
        if current != head:
            raise SchemaError(
                f"claims database {self.safe_url} is at schema {current or '(empty)'}, this "
                f"numa-migrate needs {head}: run the store's migrate step first"
            )

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _write(self, host: str | None) -> Iterator[Connection]:
        with self._engine.begin() as conn:
            if self._pg and host is not None:
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                    {"k": f"numa-migrate claims host {host}"},
                )
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._read_engine.begin() as conn:
            yield conn

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ClaimError("the store's clock must return timezone-aware times")
        return now

    @staticmethod
    def _transient(exc: DBAPIError) -> bool:
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if code in ("40001", "40P01"):
            return True
        message = str(orig).lower()
        return isinstance(orig, sqlite3.OperationalError) and (
            "locked" in message or "busy" in message
        )

    def _retry(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` (one whole transaction), retrying deadlocks and busy databases;
        other database errors become :class:`ClaimError` naming the database."""
        for attempt in range(_RETRIES):
            try:
                return fn()
            except DBAPIError as exc:
                if self._transient(exc) and attempt < _RETRIES - 1:
                    time.sleep(random.uniform(0.005, 0.02) * 2**attempt)
                    continue
                code = getattr(exc.orig, "sqlstate", None)
                message = str(exc.orig).strip()
                if code == "42P01" or "no such table" in message:
                    raise SchemaError(
                        f"claims database {self.safe_url} has no claims schema ({message}): "
                        "run the store's migrate step first"
                    ) from exc
                raise ClaimError(f"claims database {self.safe_url}: {message}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _claim_from_row(row: Row[Any]) -> Claim:
        m = row._mapping
        return Claim(
            id=int(m["id"]),
            host=str(m["host"]),
            kind=ClaimKind(m["kind"]),
            domain=str(m["domain"]),
            owner=str(m["owner"]),
            state=ClaimState(m["state"]),
            created=_from_db(m["created"]),
            updated=_from_db(m["updated"]),
            expires=_from_db(m["expires"]),
            resources=Resources.from_json(m["resources"]),
            migration_id=m["migration_id"],
        )

    def _load(self, conn: Connection, ids: Iterable[int]) -> dict[int, Claim]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = conn.execute(select(claims).where(claims.c.id.in_(wanted))).all()
        return {int(r.id): self._claim_from_row(r) for r in rows}

    def _get(self, conn: Connection, claim_id: int) -> Claim:
        row = conn.execute(select(claims).where(claims.c.id == claim_id)).one_or_none()
        if row is None:
            raise UnknownClaimError(claim_id)
        return self._claim_from_row(row)

    # ------------------------------------------------------------------ claims

    def claim(
        self,
        host: HostTopology,
        request: GuestRequest,
        placement: Placement,
        *,
        domain: str,
        owner: str,
        ttl_s: float,
        vfs: Iterable[str] = (),
        kind: ClaimKind | str = ClaimKind.DESTINATION,
        migration_id: str | None = None,
        limits: Limits | None = None,
    ) -> Claim:
        """Reserve on ``host`` what ``placement`` of ``request`` takes, plus ``vfs``.

        ``host`` is the live topology (its usage is what running guests hold). For a
        ``destination`` claim the pins must be free on the live host and the counted
        resources must fit in what the live host has free less what other claims hold; a
        ``source`` claim keeps what the guest uses on its current host (checked against the
        host without the guest). ``limits`` are the fitter's allocation ratios, if any.

        Raises :class:`ClaimConflict` naming everything already held and by whom, or
        :class:`ClaimError` for input that does not describe this host.
        """
        if not domain.strip() or not owner.strip():
            raise ClaimError("a claim needs a domain (guest name) and an owner")
        if not (ttl_s > 0 and math.isfinite(ttl_s)):
            raise ClaimError(f"ttl_s must be a positive number of seconds, not {ttl_s!r}")
        try:
            kind = ClaimKind(kind)
        except ValueError:
            raise ClaimError(
                f"claim kind {kind!r} is not one of: {', '.join(k.value for k in ClaimKind)}"
            ) from None
        usage = placement_usage(host, request, placement)
        resources = Resources(usage, frozenset(normalise_vf(v) for v in vfs))
        if kind is ClaimKind.DESTINATION:
            view = host
            live = live_pin_conflicts(host, usage)
            if live:
                raise ClaimConflict(host.name, live)
        else:
            view = source_view(host, request, placement)
        caps = admission_limits(view, request, usage, limits)
        return self._retry(
            lambda: self._claim_txn(
                host.name,
                kind=kind,
                domain=domain,
                owner=owner,
                migration_id=migration_id,
                ttl_s=ttl_s,
                resources=resources,
                caps=caps,
            )
        )

    def _claim_txn(
        self,
        host: str,
        *,
        kind: ClaimKind,
        domain: str,
        owner: str,
        migration_id: str | None,
        ttl_s: float,
        resources: Resources,
        caps: Mapping[PoolKey, int | None],
    ) -> Claim:
        amounts = resources.pool_amounts()
        with self._write(host) as conn:
            now = self._now()
            expires = now + timedelta(seconds=ttl_s)
            result = conn.execute(
                insert(claims).values(
                    host=host,
                    kind=kind.value,
                    domain=domain,
                    owner=owner,
                    migration_id=migration_id,
                    state=ClaimState.RESERVED.value,
                    created=_to_db(now),
                    updated=_to_db(now),
                    expires=_to_db(expires),
                    resources=resources.to_json(),
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            claim_id = int(pk[0])
            nested = conn.begin_nested()
            try:
                taken = self._take(
                    conn, host, claim_id=claim_id, resources=resources, amounts=amounts, caps=caps
                )
            except IntegrityError:
                nested.rollback()
                taken = False
            else:
                if taken:
                    nested.commit()
                else:
                    nested.rollback()
            if not taken:
                conflicts = self._diagnose(
                    conn, host, resources=resources, amounts=amounts, caps=caps, now=now
                )
                raise ClaimConflict(host, conflicts)
            return Claim(
                id=claim_id,
                host=host,
                kind=kind,
                domain=domain,
                owner=owner,
                state=ClaimState.RESERVED,
                created=_from_db(_to_db(now)),
                updated=_from_db(_to_db(now)),
                expires=_from_db(_to_db(expires)),
                resources=resources,
                migration_id=migration_id,
            )

    def _ensure_pool(self, conn: Connection, host: str, key: PoolKey) -> None:
        cell, resource, size_kib = key
        values = {
            "host": host,
            "cell": cell,
            "resource": resource.value,
            "size_kib": size_kib,
            "used": 0,
        }
        if self._pg:
            conn.execute(pg_insert(pool_usage).values(values).on_conflict_do_nothing())
        else:
            conn.execute(sqlite_insert(pool_usage).values(values).on_conflict_do_nothing())

    @staticmethod
    def _pool_where(host: str, key: PoolKey) -> tuple[Any, ...]:
        cell, resource, size_kib = key
        return (
            pool_usage.c.host == host,
            pool_usage.c.cell == cell,
            pool_usage.c.resource == resource.value,
            pool_usage.c.size_kib == size_kib,
        )

    def _take(
        self,
        conn: Connection,
        host: str,
        *,
        claim_id: int,
        resources: Resources,
        amounts: Mapping[PoolKey, int],
        caps: Mapping[PoolKey, int | None],
    ) -> bool:
        """Write the claim's holdings; False when a counter refuses (IntegrityError when an
        exclusive resource is taken). Counters first, then CPUs, then VFs, each sorted."""
        for key in sorted(amounts, key=_pool_order):
            n = amounts[key]
            self._ensure_pool(conn, host, key)
            stmt = (
                update(pool_usage)
                .where(*self._pool_where(host, key))
                .values(used=pool_usage.c.used + n)
            )
            limit = caps.get(key)
            if limit is not None:
                stmt = stmt.where(pool_usage.c.used + n <= limit)
            if conn.execute(stmt).rowcount != 1:
                return False
        if amounts:
            conn.execute(
                insert(claim_pools),
                [
                    {
                        "claim_id": claim_id,
                        "host": host,
                        "cell": key[0],
                        "resource": key[1].value,
                        "size_kib": key[2],
                        "amount": amounts[key],
                    }
                    for key in sorted(amounts, key=_pool_order)
                ],
            )
        cpu_rows = sorted((cpu, cu.cell) for cu in resources.cells for cpu in cu.pinned_cpus)
        if cpu_rows:
            conn.execute(
                insert(claim_cpus),
                [
                    {"host": host, "cpu": cpu, "cell": cell, "claim_id": claim_id}
                    for cpu, cell in cpu_rows
                ],
            )
        if resources.vfs:
            conn.execute(
                insert(claim_vfs),
                [
                    {"host": host, "pci_address": vf, "claim_id": claim_id}
                    for vf in sorted(resources.vfs)
                ],
            )
        return True

    def _diagnose(
        self,
        conn: Connection,
        host: str,
        *,
        resources: Resources,
        amounts: Mapping[PoolKey, int],
        caps: Mapping[PoolKey, int | None],
        now: datetime,
    ) -> list[Conflict]:
        """Who holds what this claim asked for (read inside the claim's locked transaction)."""
        cpu_holders = _holders(conn, claim_cpus.c.cpu, claim_cpus.c.claim_id,
                               claim_cpus.c.host == host, sorted(resources.pinned_cpus))
        vf_holders = _holders(conn, claim_vfs.c.pci_address, claim_vfs.c.claim_id,
                              claim_vfs.c.host == host, sorted(resources.vfs))
        short: list[tuple[PoolKey, int, int, int, list[tuple[int, int]]]] = []
        for key in sorted(amounts, key=_pool_order):
            limit = caps.get(key)
            if limit is None:
                continue
            n = amounts[key]
            used = conn.execute(
                select(pool_usage.c.used).where(*self._pool_where(host, key))
            ).scalar_one_or_none()
            held = int(used or 0)
            if held + n <= limit:
                continue
            held_rows = conn.execute(
                select(claim_pools.c.claim_id, claim_pools.c.amount)
                .where(
                    claim_pools.c.host == host,
                    claim_pools.c.cell == key[0],
                    claim_pools.c.resource == key[1].value,
                    claim_pools.c.size_kib == key[2],
                )
                .order_by(claim_pools.c.claim_id)
            ).all()
            short.append((key, n, limit, held, [(int(c), int(a)) for c, a in held_rows]))

        ids = [*cpu_holders, *vf_holders, *(c for s in short for c, _ in s[4])]
        known = self._load(conn, ids)

        def who(cid: int) -> str:
            claim = known.get(cid)
            return claim.describe(now) if claim is not None else f"claim {cid}"

        conflicts: list[Conflict] = []
        for resource, holders_of, (one, many) in (
            ("cpus", cpu_holders, ("CPU", "CPUs")), ("vfs", vf_holders, ("VF", "VFs")),
        ):
            for cid in sorted(holders_of):
                items = sorted(holders_of[cid])
                listed = (",", ", ")[resource == "vfs"].join(str(i) for i in items)
                phrase = f"{one} {listed} is" if len(items) == 1 else f"{many} {listed} are"
                conflicts.append(
                    Conflict(
                        host=host,
                        resource=resource,
                        items=tuple(items),
                        holders=(cid,),
                        message=f"host {host}: {phrase} held by {who(cid)}",
                    )
                )
        for (cell, resource, size_kib), n, limit, held, holders in short:
            what = (
                "allowed on the cell by the CPU allocation ratio"
                if resource is PoolResource.SHARED_VCPUS
                else "free on the host"
            )
            have = describe_pool(resource, size_kib, max(limit, 0))
            if holders:
                by = ", ".join(
                    f"{who(cid)} holds {describe_pool(resource, size_kib, amount)}"
                    for cid, amount in holders
                )
                detail = f"{have} {what}, of which claims hold {held}: {by}"
            else:
                detail = f"only {have} {what} (no claim holds any)"
            conflicts.append(
                Conflict(
                    host=host,
                    resource=resource.value,
                    cell=cell,
                    size_kib=size_kib or None,
                    need=n,
                    have=limit,
                    held=held,
                    holders=tuple(cid for cid, _ in holders),
                    message=(
                        f"host {host} cell {cell}: needs "
                        f"{describe_pool(resource, size_kib, n)}; {detail}"
                    ),
                )
            )
        if not conflicts:  # pragma: no cover - the per-host lock makes this unreachable
            conflicts.append(
                Conflict(
                    host=host,
                    resource="unknown",
                    message=(
                        f"host {host}: a concurrent claim took part of the request and has "
                        "since been released; try again"
                    ),
                )
            )
        return conflicts

    # ------------------------------------------------------------------ life cycle

    def get(self, claim_id: int) -> Claim:
        def run() -> Claim:
            with self._read() as conn:
                return self._get(conn, claim_id)

        return self._retry(run)

    def list_claims(
        self, host: str | None = None, states: Iterable[ClaimState | str] | None = None
    ) -> list[Claim]:
        """Claims (all hosts, or one), live ones by default, oldest first."""
        wanted = sorted(ClaimState(s).value for s in states) if states is not None else _LIVE

        def run() -> list[Claim]:
            stmt = select(claims).where(claims.c.state.in_(wanted)).order_by(claims.c.id)
            if host is not None:
                stmt = stmt.where(claims.c.host == host)
            with self._read() as conn:
                return [self._claim_from_row(r) for r in conn.execute(stmt).all()]

        return self._retry(run)

    def _host_of(self, claim_id: int) -> str:
        with self._read() as conn:
            host = conn.execute(
                select(claims.c.host).where(claims.c.id == claim_id)
            ).scalar_one_or_none()
        if host is None:
            raise UnknownClaimError(claim_id)
        return str(host)

    def _free(self, conn: Connection, claim_id: int) -> None:
        rows = conn.execute(
            select(
                claim_pools.c.host,
                claim_pools.c.cell,
                claim_pools.c.resource,
                claim_pools.c.size_kib,
                claim_pools.c.amount,
            ).where(claim_pools.c.claim_id == claim_id)
        ).all()
        for host, cell, resource, size_kib, amount in sorted(
            rows, key=lambda r: (r[1], r[2], r[3])
        ):
            key: PoolKey = (int(cell), PoolResource(resource), int(size_kib))
            conn.execute(
                update(pool_usage)
                .where(*self._pool_where(str(host), key))
                .values(used=pool_usage.c.used - int(amount))
            )
        conn.execute(delete(claim_pools).where(claim_pools.c.claim_id == claim_id))
        conn.execute(delete(claim_cpus).where(claim_cpus.c.claim_id == claim_id))
        conn.execute(delete(claim_vfs).where(claim_vfs.c.claim_id == claim_id))

    def _transition(
        self, claim_id: int, new: ClaimState, *, expired_at: datetime | None = None
    ) -> Claim | None:
        host = self._host_of(claim_id)
        with self._write(host) as conn:
            claim = self._get(conn, claim_id)
            if expired_at is not None and not (claim.state.live and claim.expired_at(expired_at)):
                return None  # renewed or finished since it was listed
            if new not in TRANSITIONS[claim.state]:
                raise InvalidTransitionError(claim, new)
            now = self._now()
            if not new.live:
                self._free(conn, claim_id)
            done = conn.execute(
                update(claims)
                .where(claims.c.id == claim_id, claims.c.state == claim.state.value)
                .values(state=new.value, updated=_to_db(now))
            )
            if done.rowcount != 1:  # pragma: no cover - serialised by the host lock
                raise ClaimError(f"claim {claim_id} changed state concurrently; try again")
            return replace(claim, state=new, updated=_from_db(_to_db(now)))

    def set_state(self, claim_id: int, new_state: ClaimState | str) -> Claim:
        """Move a claim along its life cycle (:data:`TRANSITIONS`); entering ``released`` or
        ``rolled_back`` frees everything it holds in the same transaction."""
        try:
            new = ClaimState(new_state)
        except ValueError:
            raise ClaimError(
                f"claim state {new_state!r} is not one of: {', '.join(s.value for s in ClaimState)}"
            ) from None
        claim = self._retry(lambda: self._transition(claim_id, new))
        assert claim is not None
        return claim

    def release(self, claim_id: int) -> Claim:
        return self.set_state(claim_id, ClaimState.RELEASED)

    def rollback(self, claim_id: int) -> Claim:
        return self.set_state(claim_id, ClaimState.ROLLED_BACK)

    def renew(self, claim_id: int, ttl_s: float) -> Claim:
        """Push a live claim's expiry to now + ``ttl_s`` (an operator's heartbeat)."""
        if not (ttl_s > 0 and math.isfinite(ttl_s)):
            raise ClaimError(f"ttl_s must be a positive number of seconds, not {ttl_s!r}")

        def run() -> Claim:
            host = self._host_of(claim_id)
            with self._write(host) as conn:
                claim = self._get(conn, claim_id)
                if not claim.state.live:
                    raise ClaimError(
                        f"claim {claim_id} is {claim.state}; only live claims "
                        f"({', '.join(_LIVE)}) can be renewed"
                    )
                now = self._now()
                expires = _to_db(now + timedelta(seconds=ttl_s))
                conn.execute(
                    update(claims)
                    .where(claims.c.id == claim_id)
                    .values(expires=expires, updated=_to_db(now))
                )
                return replace(claim, expires=_from_db(expires), updated=_from_db(_to_db(now)))

        return self._retry(run)

    def expired(self, now: datetime | None = None) -> list[Claim]:
        """Live claims whose expiry has passed (a crashed operator's), soonest first."""
        at = _to_db(now or self._now())

        def run() -> list[Claim]:
            stmt = (
                select(claims)
                .where(claims.c.state.in_(_LIVE), claims.c.expires <= at)
                .order_by(claims.c.expires, claims.c.id)
            )
            with self._read() as conn:
                return [self._claim_from_row(r) for r in conn.execute(stmt).all()]

        return self._retry(run)

    def reap(self, now: datetime | None = None) -> list[Claim]:
        """Free every expired claim: ``active`` ones are released, the others rolled back.

        Each claim is re-checked in its own transaction (one renewed meanwhile is kept).
        Crash recovery should read the journal first; this is the blunt tool.
        """
        at = now or self._now()
        out: list[Claim] = []
        for claim in self.expired(at):
            target = (
                ClaimState.RELEASED if claim.state is ClaimState.ACTIVE else ClaimState.ROLLED_BACK
            )
            try:
                done = self._reap_one(claim.id, target, at)
            except (InvalidTransitionError, UnknownClaimError):
                continue
            if done is not None:
                out.append(done)
        return out

    def _reap_one(self, claim_id: int, target: ClaimState, at: datetime) -> Claim | None:
        return self._retry(lambda: self._transition(claim_id, target, expired_at=at))

    def held_by_others(self, host_name: str, except_claim: int | None = None) -> Holdings:
        """The live claims on ``host_name`` (expired but unreaped ones included), all but
        ``except_claim``: what a new placement must avoid on top of live usage."""

        def run() -> Holdings:
            stmt = (
                select(claims)
                .where(claims.c.host == host_name, claims.c.state.in_(_LIVE))
                .order_by(claims.c.id)
            )
            if except_claim is not None:
                stmt = stmt.where(claims.c.id != except_claim)
            with self._read() as conn:
                rows = conn.execute(stmt).all()
            return Holdings(host_name, tuple(self._claim_from_row(r) for r in rows))

        return self._retry(run)

    # ------------------------------------------------------------------ checks

    def verify(self) -> list[str]:
        """Cross-check the store: counters equal the sum of live holdings, every held row
        belongs to a live claim, each live claim's rows match its recorded resources.
        Returns the problems found (empty when consistent)."""

        def run() -> list[str]:
            problems: list[str] = []
            with self._read() as conn:
                live = {
                    int(r.id): self._claim_from_row(r)
                    for r in conn.execute(select(claims).where(claims.c.state.in_(_LIVE)))
                }
                sums = {
                    (str(h), int(c), str(r), int(s)): int(total)
                    for h, c, r, s, total in conn.execute(
                        select(
                            claim_pools.c.host,
                            claim_pools.c.cell,
                            claim_pools.c.resource,
                            claim_pools.c.size_kib,
                            func.sum(claim_pools.c.amount),
                        ).group_by(
                            claim_pools.c.host,
                            claim_pools.c.cell,
                            claim_pools.c.resource,
                            claim_pools.c.size_kib,
                        )
                    )
                }
                for h, c, r, s, used in conn.execute(select(pool_usage)):
                    want = sums.get((str(h), int(c), str(r), int(s)), 0)
                    if int(used) != want:
                        problems.append(
                            f"host {h} cell {c} {r} {s}: counter says {used}, "
                            f"live claims hold {want}"
                        )
                cpus: dict[int, set[int]] = {}
                for host, cpu, cid in conn.execute(
                    select(claim_cpus.c.host, claim_cpus.c.cpu, claim_cpus.c.claim_id)
                ):
                    cpus.setdefault(int(cid), set()).add(int(cpu))
                    if int(cid) not in live:
                        problems.append(f"host {host} CPU {cpu} held by non-live claim {cid}")
                vfs: dict[int, set[str]] = {}
                for host, vf, cid in conn.execute(
                    select(claim_vfs.c.host, claim_vfs.c.pci_address, claim_vfs.c.claim_id)
                ):
                    vfs.setdefault(int(cid), set()).add(str(vf))
                    if int(cid) not in live:
                        problems.append(f"host {host} VF {vf} held by non-live claim {cid}")
                pools: dict[int, dict[PoolKey, int]] = {}
                for cid, cell, resource, size_kib, amount in conn.execute(
                    select(
                        claim_pools.c.claim_id,
                        claim_pools.c.cell,
                        claim_pools.c.resource,
                        claim_pools.c.size_kib,
                        claim_pools.c.amount,
                    )
                ):
                    key: PoolKey = (int(cell), PoolResource(resource), int(size_kib))
                    pools.setdefault(int(cid), {})[key] = int(amount)
                    if int(cid) not in live:
                        problems.append(f"claim {cid} is not live but holds {resource}")
            for cid, claim in sorted(live.items()):
                res = claim.resources
                if cpus.get(cid, set()) != set(res.pinned_cpus):
                    problems.append(f"claim {cid}: CPU rows differ from its recorded resources")
                if vfs.get(cid, set()) != set(res.vfs):
                    problems.append(f"claim {cid}: VF rows differ from its recorded resources")
                if pools.get(cid, {}) != res.pool_amounts():
                    problems.append(f"claim {cid}: pool rows differ from its recorded resources")
            return problems

        return self._retry(run)


__all__ = ["MIGRATIONS_DIR", "ClaimStore", "head_revision", "utcnow"]

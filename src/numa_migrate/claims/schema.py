"""The claims store's tables (SQLAlchemy Core). Migrations live in ``claims/migrations``.

``claims``
    One row per claim, kept after release as history. ``resources`` (JSON) records what the
    claim holds; the rows below are what the database enforces while the claim is live.
``claim_cpus``
    PRIMARY KEY (host, cpu): a host CPU can be held by one live claim only.
``claim_vfs``
    PRIMARY KEY (host, pci_address): a VF can be held by one live claim only.
``pool_usage``
    One counter per (host, cell, resource, page size): the sum of what live claims hold of
    pages, memory or the shared-CPU share. ``CHECK (used >= 0)``; increments are conditional
    updates (see :mod:`numa_migrate.claims.store`).
``claim_pools``
    What each live claim holds of each counter (so a release subtracts exactly that).
``journal``
    Migration steps, written before each step happens: migration id, phase, time, payload.

Rows of ``claim_cpus``, ``claim_vfs`` and ``claim_pools`` reference their claim by
(id, host), so a row can never point at a claim on another host.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

VERSION_TABLE = "numa_migrate_schema_version"
"""Alembic's version table (named for this tool, so a shared PostgreSQL database is fine)."""

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

HOST = 255
STATES = ("reserved", "migrating", "active", "released", "rolled_back")
KINDS = ("destination", "source")
RESOURCES = ("pages", "memory_mib", "shared_vcpus")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


claims = Table(
    "claims",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host", String(HOST), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("owner", String(255), nullable=False),
    Column("migration_id", String(255), nullable=True),
    Column("state", String(16), nullable=False),
    Column("created", DateTime(), nullable=False),
    Column("updated", DateTime(), nullable=False),
    Column("expires", DateTime(), nullable=False),
    Column("resources", JSON(), nullable=False),
    CheckConstraint(_in("kind", KINDS), name="kind"),
    CheckConstraint(_in("state", STATES), name="state"),
    UniqueConstraint("id", "host"),
    Index(None, "host", "state"),
    Index(None, "state", "expires"),
    sqlite_autoincrement=True,
)

claim_cpus = Table(
    "claim_cpus",
    metadata,
    Column("host", String(HOST), nullable=False),
    Column("cpu", Integer, nullable=False),
    Column("cell", Integer, nullable=False),
    Column("claim_id", Integer, nullable=False),
    PrimaryKeyConstraint("host", "cpu"),
    ForeignKeyConstraint(["claim_id", "host"], ["claims.id", "claims.host"], ondelete="CASCADE"),
    CheckConstraint("cpu >= 0", name="cpu"),
    Index(None, "claim_id"),
)

claim_vfs = Table(
    "claim_vfs",
    metadata,
    Column("host", String(HOST), nullable=False),
    Column("pci_address", String(32), nullable=False),
    Column("claim_id", Integer, nullable=False),
    PrimaryKeyConstraint("host", "pci_address"),
    ForeignKeyConstraint(["claim_id", "host"], ["claims.id", "claims.host"], ondelete="CASCADE"),
    Index(None, "claim_id"),
)

pool_usage = Table(
    "pool_usage",
    metadata,
    Column("host", String(HOST), nullable=False),
    Column("cell", Integer, nullable=False),
    Column("resource", String(16), nullable=False),
    Column("size_kib", BigInteger, nullable=False),
    Column("used", BigInteger, nullable=False),
    PrimaryKeyConstraint("host", "cell", "resource", "size_kib"),
    CheckConstraint("used >= 0", name="used"),
    CheckConstraint(_in("resource", RESOURCES), name="resource"),
)

claim_pools = Table(
    "claim_pools",
    metadata,
    Column("claim_id", Integer, nullable=False),
    Column("host", String(HOST), nullable=False),
    Column("cell", Integer, nullable=False),
    Column("resource", String(16), nullable=False),
    Column("size_kib", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    PrimaryKeyConstraint("claim_id", "cell", "resource", "size_kib"),
    ForeignKeyConstraint(["claim_id", "host"], ["claims.id", "claims.host"], ondelete="CASCADE"),
    ForeignKeyConstraint(
        ["host", "cell", "resource", "size_kib"],
        ["pool_usage.host", "pool_usage.cell", "pool_usage.resource", "pool_usage.size_kib"],
    ),
    CheckConstraint("amount > 0", name="amount"),
    Index(None, "host", "cell", "resource", "size_kib"),
)

journal = Table(
    "journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("migration_id", String(255), nullable=False),
    Column("phase", String(64), nullable=False),
    Column("at", DateTime(), nullable=False),
    Column("payload", JSON(), nullable=False),
    Index(None, "migration_id", "id"),
    sqlite_autoincrement=True,
)

__all__ = [
    "VERSION_TABLE",
    "claim_cpus",
    "claim_pools",
    "claim_vfs",
    "claims",
    "journal",
    "metadata",
    "pool_usage",
]

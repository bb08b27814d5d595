"""Claims store, first schema: claims, exclusive CPUs and VFs, pool counters, journal.

Revision ID: 0001
Revises:
Create Date: 2026-11-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

HOST = 255


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("host", sa.String(HOST), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("migration_id", sa.String(255), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        sa.CheckConstraint("kind IN ('destination', 'source')", name=op.f("ck_claims_kind")),
        sa.CheckConstraint(
            "state IN ('reserved', 'migrating', 'active', 'released', 'rolled_back')",
            name=op.f("ck_claims_state"),
        ),
        sa.UniqueConstraint("id", "host", name=op.f("uq_claims_id_host")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_claims_host_state"), "claims", ["host", "state"])
    op.create_index(op.f("ix_claims_state_expires"), "claims", ["state", "expires"])

    op.create_table(
        "pool_usage",
        sa.Column("host", sa.String(HOST), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("resource", sa.String(16), nullable=False),
        sa.Column("size_kib", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("host", "cell", "resource", "size_kib", name=op.f("pk_pool_usage")),
        sa.CheckConstraint("used >= 0", name=op.f("ck_pool_usage_used")),
        sa.CheckConstraint(
            "resource IN ('pages', 'memory_mib', 'shared_vcpus')",
            name=op.f("ck_pool_usage_resource"),
        ),
    )

    op.create_table(
        "claim_cpus",
        sa.Column("host", sa.String(HOST), nullable=False),
        sa.Column("cpu", sa.Integer(), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("host", "cpu", name=op.f("pk_claim_cpus")),
        sa.ForeignKeyConstraint(
            ["claim_id", "host"],
            ["claims.id", "claims.host"],
            name=op.f("fk_claim_cpus_claim_id_claims"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("cpu >= 0", name=op.f("ck_claim_cpus_cpu")),
    )
    op.create_index(op.f("ix_claim_cpus_claim_id"), "claim_cpus", ["claim_id"])

    op.create_table(
        "claim_vfs",
        sa.Column("host", sa.String(HOST), nullable=False),
        sa.Column("pci_address", sa.String(32), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("host", "pci_address", name=op.f("pk_claim_vfs")),
        sa.ForeignKeyConstraint(
            ["claim_id", "host"],
            ["claims.id", "claims.host"],
            name=op.f("fk_claim_vfs_claim_id_claims"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_claim_vfs_claim_id"), "claim_vfs", ["claim_id"])

    op.create_table(
        "claim_pools",
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(HOST), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("resource", sa.String(16), nullable=False),
        sa.Column("size_kib", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "claim_id", "cell", "resource", "size_kib", name=op.f("pk_claim_pools")
        ),
        sa.ForeignKeyConstraint(
            ["claim_id", "host"],
            ["claims.id", "claims.host"],
            name=op.f("fk_claim_pools_claim_id_claims"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["host", "cell", "resource", "size_kib"],
            ["pool_usage.host", "pool_usage.cell", "pool_usage.resource", "pool_usage.size_kib"],
            name=op.f("fk_claim_pools_host_pool_usage"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_claim_pools_amount")),
    )
    op.create_index(
        op.f("ix_claim_pools_host_cell_resource_size_kib"),
        "claim_pools",
        ["host", "cell", "resource", "size_kib"],
    )

    op.create_table(
        "journal",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("migration_id", sa.String(255), nullable=False),
        sa.Column("phase", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_journal_migration_id_id"), "journal", ["migration_id", "id"])


def downgrade() -> None:
    op.drop_table("journal")
    op.drop_table("claim_pools")
    op.drop_table("claim_vfs")
    op.drop_table("claim_cpus")
    op.drop_table("pool_usage")
    op.drop_table("claims")

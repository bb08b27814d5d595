"""Claims store: persisted reservations of host resources, shared by several operators.

A claim reserves, on one host, what a guest's placement takes (dedicated CPUs, the
shared-CPU share, memory and pages per cell and page size) plus SR-IOV VFs, with an owner,
a state (reserved -> migrating -> active -> released / rolled back) and an expiry. The
database (SQLite in WAL mode by default, PostgreSQL for several operators) enforces that no
CPU, VF or page is booked twice, across processes and machines; see
:mod:`numa_migrate.claims.store` for the locking design.

"Live usage minus claims held by others" is
``fit_guest(subtract_holdings(live_host, store.held_by_others(live_host.name)), guest)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from numa_migrate.claims.accounting import (
    admission_limits,
    holdings_problems,
    placement_usage,
    subtract_holdings,
)
from numa_migrate.claims.engine import default_url, state_dir
from numa_migrate.claims.model import (
    LIVE_STATES,
    TRANSITIONS,
    CellUsage,
    Claim,
    ClaimConflict,
    ClaimError,
    ClaimKind,
    ClaimState,
    Conflict,
    Holdings,
    HoldingsMismatchError,
    InvalidTransitionError,
    PoolResource,
    Resources,
    SchemaError,
    UnknownClaimError,
)

if TYPE_CHECKING:
    from numa_migrate.claims.store import ClaimStore, head_revision


def __getattr__(name: str) -> Any:
    """The store (and with it alembic) loads on first use, so that a command can check a
    database URL (:func:`numa_migrate.claims.engine.parse_url`) before paying for it."""
    if name not in ("ClaimStore", "head_revision"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from numa_migrate.claims import store

    value = getattr(store, name)
    globals()[name] = value
    return value

__all__ = [
    "LIVE_STATES",
    "TRANSITIONS",
    "CellUsage",
    "Claim",
    "ClaimConflict",
    "ClaimError",
    "ClaimKind",
    "ClaimState",
    "ClaimStore",
    "Conflict",
    "Holdings",
    "HoldingsMismatchError",
    "InvalidTransitionError",
    "PoolResource",
    "Resources",
    "SchemaError",
    "UnknownClaimError",
    "admission_limits",
    "default_url",
    "head_revision",
    "holdings_problems",
    "placement_usage",
    "state_dir",
    "subtract_holdings",
]

"""Value types of the claims store: states, kinds, what a claim holds, and typed errors.

Everything here is frozen and free of I/O; the store (:mod:`numa_migrate.claims.store`)
reads and writes these, the accounting (:mod:`numa_migrate.claims.accounting`) computes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.guest import describe_page_size


class ClaimState(StrEnum):
    """A claim's life: reserved -> migrating -> active -> released, or rolled back.

    ``reserved``, ``migrating`` and ``active`` are *live*: the claim's resources are held.
    ``released`` and ``rolled_back`` are final: the resources are free again and the claim
    row stays as history.
    """

    RESERVED = "reserved"
    MIGRATING = "migrating"
    ACTIVE = "active"
    RELEASED = "released"
    ROLLED_BACK = "rolled_back"

    @property
    def live(self) -> bool:
        return self in LIVE_STATES


LIVE_STATES: frozenset[ClaimState] = frozenset(
    {ClaimState.RESERVED, ClaimState.MIGRATING, ClaimState.ACTIVE}
)

TRANSITIONS: Mapping[ClaimState, frozenset[ClaimState]] = {
    ClaimState.RESERVED: frozenset(
        {ClaimState.MIGRATING, ClaimState.RELEASED, ClaimState.ROLLED_BACK}
    ),
    ClaimState.MIGRATING: frozenset({ClaimState.ACTIVE, ClaimState.ROLLED_BACK}),
    ClaimState.ACTIVE: frozenset({ClaimState.RELEASED}),
    ClaimState.RELEASED: frozenset(),
    ClaimState.ROLLED_BACK: frozenset(),
}
"""Allowed state changes. ``reserved -> released`` abandons a plan that never started."""


class ClaimKind(StrEnum):
    """``destination``: where the guest goes; ``source``: what it leaves, kept for rollback."""

    DESTINATION = "destination"
    SOURCE = "source"


class PoolResource(StrEnum):
    """Counted (not exclusive) resources of a host cell."""

    PAGES = "pages"
    MEMORY_MIB = "memory_mib"
    SHARED_VCPUS = "shared_vcpus"


PoolKey = tuple[int, PoolResource, int]
"""(host cell, resource, page size in KiB or 0) — one counter row in the store."""


@dataclass(frozen=True, slots=True)
class CellUsage:
    """What a guest (or a set of claims) takes from one host cell.

    ``pages`` holds (page size KiB, page count) pairs sorted by size; ``shared_vcpus`` is the
    shared-CPU share (the cell's ``cpu_usage``); ``memory_mib`` its ``memory_usage_mib``.
    """

    cell: int
    pinned_cpus: frozenset[int] = frozenset()
    shared_vcpus: int = 0
    memory_mib: int = 0
    pages: tuple[tuple[int, int], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.pinned_cpus or self.shared_vcpus or self.memory_mib or self.pages)

    def pool_amounts(self) -> dict[PoolKey, int]:
        out: dict[PoolKey, int] = {}
        if self.shared_vcpus:
            out[(self.cell, PoolResource.SHARED_VCPUS, 0)] = self.shared_vcpus
        if self.memory_mib:
            out[(self.cell, PoolResource.MEMORY_MIB, 0)] = self.memory_mib
        for size_kib, count in self.pages:
            if count:
                out[(self.cell, PoolResource.PAGES, size_kib)] = count
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "pinned_cpus": sorted(self.pinned_cpus),
            "shared_vcpus": self.shared_vcpus,
            "memory_mib": self.memory_mib,
            "pages": [[size, count] for size, count in self.pages],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CellUsage:
        return cls(
            cell=int(data["cell"]),
            pinned_cpus=frozenset(int(c) for c in data.get("pinned_cpus", ())),
            shared_vcpus=int(data.get("shared_vcpus", 0)),
            memory_mib=int(data.get("memory_mib", 0)),
            pages=tuple((int(s), int(n)) for s, n in data.get("pages", ())),
        )


def merge_cells(cells: Iterable[CellUsage]) -> tuple[CellUsage, ...]:
    """Sum usages per host cell (CPU sets united), sorted by cell id."""
    acc: dict[int, tuple[set[int], int, int, dict[int, int]]] = {}
    for cu in cells:
        cpus, shared, mem, pages = acc.get(cu.cell, (set(), 0, 0, {}))
        cpus |= cu.pinned_cpus
        for size, n in cu.pages:
            pages[size] = pages.get(size, 0) + n
        acc[cu.cell] = (cpus, shared + cu.shared_vcpus, mem + cu.memory_mib, pages)
    return tuple(
        CellUsage(cell, frozenset(cpus), shared, mem, tuple(sorted(pages.items())))
        for cell, (cpus, shared, mem, pages) in sorted(acc.items())
    )


@dataclass(frozen=True, slots=True)
class Resources:
    """Everything one claim holds on its host: per-cell usage and SR-IOV VFs."""

    cells: tuple[CellUsage, ...] = ()
    vfs: frozenset[str] = frozenset()

    @property
    def pinned_cpus(self) -> frozenset[int]:
        return frozenset().union(*(c.pinned_cpus for c in self.cells))

    def pool_amounts(self) -> dict[PoolKey, int]:
        out: dict[PoolKey, int] = {}
        for cu in self.cells:
            out.update(cu.pool_amounts())
        return out

    def to_json(self) -> dict[str, Any]:
        return {"cells": [c.to_json() for c in self.cells], "vfs": sorted(self.vfs)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resources:
        return cls(
            cells=tuple(CellUsage.from_json(c) for c in data.get("cells", ())),
            vfs=frozenset(str(v) for v in data.get("vfs", ())),
        )


def _ago(seconds: float) -> str:
    s = round(seconds)
    return f"expires in {s} s" if s >= 0 else f"expired {-s} s ago"


@dataclass(frozen=True, slots=True)
class Claim:
    """A stored claim. Times are timezone-aware (UTC)."""

    id: int
    host: str
    kind: ClaimKind
    domain: str
    owner: str
    state: ClaimState
    created: datetime
    updated: datetime
    expires: datetime
    resources: Resources
    migration_id: str | None = None

    def expired_at(self, now: datetime) -> bool:
        return self.expires <= now

    def describe(self, now: datetime) -> str:
        """``claim 17 (owner alice@host1, migrating web-7, expires in 540 s)``."""
        when = _ago((self.expires - now).total_seconds())
        return f"claim {self.id} (owner {self.owner}, {self.state} {self.domain}, {when})"


@dataclass(frozen=True)
class Holdings:
    """The live claims on one host (all, or all but one), and what they hold together.

    ``claims`` includes expired claims that nobody reaped yet: they still hold resources.
    """

    host: str
    claims: tuple[Claim, ...] = ()

    @property
    def cells(self) -> tuple[CellUsage, ...]:
        return merge_cells(cu for c in self.claims for cu in c.resources.cells)

    @property
    def vfs(self) -> frozenset[str]:
        return frozenset().union(*(c.resources.vfs for c in self.claims))

    @property
    def claim_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.claims)


# --------------------------------------------------------------------------- errors


class ClaimError(NumaMigrateError):
    """Base class for claims-store errors (bad input, unknown claim, bad transition)."""


class UnknownClaimError(ClaimError):
    def __init__(self, claim_id: int) -> None:
        super().__init__(f"no claim {claim_id} in the claims store")
        self.claim_id = claim_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.claim_id,))


class InvalidTransitionError(ClaimError):
    """A state change that the claim life cycle does not allow."""

    def __init__(self, claim: Claim, new_state: ClaimState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[claim.state])) or "none (final state)"
        super().__init__(
            f"claim {claim.id} ({claim.kind} claim for {claim.domain} on {claim.host}) is "
            f"{claim.state}; it cannot become {new_state} (allowed from {claim.state}: "
            f"{allowed})"
        )
        self.claim_id = claim.id
        self.state = claim.state
        self.new_state = new_state


@dataclass(frozen=True, slots=True)
class Conflict:
    """One reason a claim was refused, with the claims that hold what it asked for.

    ``items`` are the contested CPUs or VF addresses (exclusive resources); for counted
    resources ``need`` is the request, ``have`` what the live host offers (before claims),
    ``held`` what claims hold of it. ``holders`` are claim ids; ``()`` with ``live=True``
    means running guests (live usage) hold it.
    """

    host: str
    resource: str
    message: str
    cell: int | None = None
    items: tuple[int | str, ...] = ()
    size_kib: int | None = None
    need: int | None = None
    have: int | None = None
    held: int | None = None
    holders: tuple[int, ...] = ()
    live: bool = False


class ClaimConflict(ClaimError):
    """A claim refused because others (claims or running guests) hold what it needs.

    ``conflicts`` lists every contested resource; the message names each holder.
    """

    def __init__(self, host: str, conflicts: Sequence[Conflict]) -> None:
        self.host = host
        self.conflicts = tuple(conflicts)
        super().__init__("; ".join(c.message for c in self.conflicts))

    @property
    def holders(self) -> frozenset[int]:
        return frozenset(h for c in self.conflicts for h in c.holders)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.host, self.conflicts))


class HoldingsMismatchError(ClaimError):
    """Stored claims that do not match the live host topology (cells, CPUs, page sizes)."""

    def __init__(self, host: str, problems: Sequence[str]) -> None:
        self.host = host
        self.problems = tuple(problems)
        super().__init__(
            f"host {host}: the claims store does not match the live topology: "
            + "; ".join(self.problems)
            + " (release or roll back those claims, or refresh the host's topology)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.host, self.problems))


class SchemaError(ClaimError):
    """The database is not at the schema this version of numa-migrate needs."""


def describe_pool(resource: PoolResource, size_kib: int, count: int) -> str:
    """``512 2 MiB pages``, ``2048 MiB``, ``4 shared vCPUs``."""
    if resource is PoolResource.PAGES:
        return f"{count} {describe_page_size(size_kib)} page{'s' if count != 1 else ''}"
    if resource is PoolResource.MEMORY_MIB:
        return f"{count} MiB"
    return f"{count} shared vCPU{'s' if count != 1 else ''}"


__all__ = [
    "LIVE_STATES",
    "TRANSITIONS",
    "CellUsage",
    "Claim",
    "ClaimConflict",
    "ClaimError",
    "ClaimKind",
    "ClaimState",
    "Conflict",
    "Holdings",
    "HoldingsMismatchError",
    "InvalidTransitionError",
    "PoolKey",
    "PoolResource",
    "Resources",
    "SchemaError",
    "UnknownClaimError",
    "describe_pool",
    "merge_cells",
]

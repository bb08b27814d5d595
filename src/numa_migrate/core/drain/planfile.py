"""A drain plan as a file: what ``drain --save`` writes and ``plan run`` executes (pure).

The document is the drain plan JSON (``drain --json``) plus::

    "format": "numa-migrate drain plan", "version": 1,
    "planned_from": {"kind": "fleet" | "inventory", "source": "<path or name>"},
    "planned_at": "<UTC time>",
    "plan_id": "drain-<16 hex digits>"

The plan id is a hash of everything else in the document (so the time of planning and the
fleet it came from are part of it): two plannings never share one, and an edited file is
refused. Running the plan names each migration after it (``<plan_id>.m<move>.a<attempt>``),
which is how a resumed run finds its own migrations in the journal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["FORMAT", "VERSION", "DrainPlanFile", "PlannedMove", "migration_id", "plan_id"]

FORMAT = "numa-migrate drain plan"
VERSION = 1


@dataclass(frozen=True)
class PlannedMove:
    """One move of a plan file: ``index`` counts the plan's moves from 1, in wave order."""

    index: int
    wave: int
    guest: str
    source: str
    destination: str
    pins: tuple[tuple[int, int], ...] = ()
    """(guest vCPU, host CPU) as planned; () for a guest without dedicated CPUs."""
    host_cells: tuple[int, ...] = ()
    """The destination's NUMA cells the guest's cells were planned on."""
    kind: str = "drain"
    """``drain`` (off a drained host) or ``relocate`` (between staying hosts, to make room)."""


@dataclass(frozen=True)
class DrainPlanFile:
    plan_id: str
    drained: tuple[str, ...]
    waves: tuple[tuple[PlannedMove, ...], ...]
    unplaceable: tuple[tuple[str, str], ...]
    """(guest, reason) of the guests the plan could not move."""
    planned_from: str
    planned_at: str
    source: str = ""
    """Where the plan was read from (a file name), for messages."""

    @property
    def moves(self) -> tuple[PlannedMove, ...]:
        return tuple(m for wave in self.waves for m in wave)

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host a move touches, in the order first named."""
        names = [h for m in self.moves for h in (m.source, m.destination)]
        return tuple(dict.fromkeys(names))


def plan_id(document: dict[str, Any]) -> str:
    """The id of a plan document: a hash of its canonical JSON without ``plan_id``."""
    body = {k: v for k, v in document.items() if k != "plan_id"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "drain-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_document(plan_doc: dict[str, Any], *, kind: str, source: str,
                  planned_at: str) -> dict[str, Any]:
    """The plan file for a drain plan's JSON (``cli.drain.plan_json``), with its id."""
    doc: dict[str, Any] = {
        "format": FORMAT, "version": VERSION,
        "planned_from": {"kind": kind, "source": source},
        "planned_at": planned_at,
        **plan_doc,
    }
    return {"plan_id": plan_id(doc), **doc}


def migration_id(plan: str, move: int, attempt: int) -> str:
    """The journal's name for attempt ``attempt`` of move ``move`` of plan ``plan``."""
    return f"{plan}.m{move}.a{attempt}"

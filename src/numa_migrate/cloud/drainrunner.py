"""The wave runner's moves on an OpenStack cloud: each move is Nova's live migration of the
server to the planned compute host, then numa-migrate's validation of the result
(:func:`numa_migrate.cloud.drainmoves.run_cloud_move`).

:class:`NovaMoves` is a :data:`~numa_migrate.migrate.drainrun.MoveRunner`: it maps the
plan's guest to its Nova server id (the plan file's ``servers``) and the move's outcome to
the runner's report: done, skipped (the server already runs on its planned host) or failed
with the reason; a failure after which the server still runs on its source (our checks or
Nova refused, Nova rolled the migration back) is ``rolled_back``, the runner's "a migration
failed and was rolled back" (exit 3).

No journal: Nova keeps the record of its migrations and of where each server runs, so a
run of the same plan after an interruption asks Nova again, and every server already on its
planned host is skipped. A migration Nova was still running when the run was interrupted
is not waited for: its move reports where Nova has the server when it is run again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from numa_migrate.cloud.api import CloudApi
from numa_migrate.cloud.computes import ComputeMap
from numa_migrate.cloud.drainmoves import CloudMoveOutcome, run_cloud_move
from numa_migrate.core.drain.planfile import PlannedMove
from numa_migrate.migrate.drainrun import MoveReport, MoveState

__all__ = ["NovaMoves", "move_report"]

PhaseWatch = Callable[[PlannedMove, str, str], None]


def move_report(move: PlannedMove, outcome: CloudMoveOutcome) -> MoveReport:
    """The wave runner's report of one cloud move's outcome."""
    state = {"done": MoveState.DONE, "skipped": MoveState.SKIPPED}.get(
        outcome.state, MoveState.FAILED)
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in outcome.timings.items())
    placed = [n for n in outcome.notes if n.startswith("Nova pinned CPUs")]
    notes = tuple(n for n in outcome.notes if n and n not in placed)
    if timings:
        notes += (f"server {outcome.server_id}: {timings}",)
    return MoveReport(move, state, outcome.reason, seconds=outcome.seconds,
                      rolled_back=state is MoveState.FAILED and outcome.rolled_back,
                      pins=tuple((v, (c,)) for v, c in outcome.pins),
                      placement_note=placed[0] if placed else "", notes=notes)

@dataclass
class NovaMoves:
    """Runs each move through Nova (safe from the wave's threads: each call makes its own
    requests and libvirt connections)."""

    api: CloudApi
    computes: ComputeMap
    servers: Mapping[str, str]
    """Guest name (as in the plan) -> Nova server id."""
    timeout_s: float = 900.0
    poll_s: float = 1.0
    on_phase: PhaseWatch | None = None
    outcomes: dict[int, CloudMoveOutcome] = field(default_factory=dict)
    """Each move's outcome, by move index (for a report with Nova's side)."""

    def __call__(self, move: PlannedMove, migration_id: str) -> MoveReport:
        del migration_id  # Nova keeps the record: nothing is journalled
        server_id = self.servers.get(move.guest)
        if server_id is None:
            return MoveReport(move, MoveState.FAILED,
                              f"the plan has no Nova server id for {move.guest}; nothing was "
                              "asked of Nova")
        watch = self.on_phase

        def phase(name: str, message: str) -> None:
            if watch is not None:
                watch(move, name, message)

        outcome = run_cloud_move(self.api, self.computes, server_id, move.source,
                                 move.destination, planned_pins=move.pins,
                                 timeout_s=self.timeout_s, poll_s=self.poll_s, on_phase=phase)
        self.outcomes[move.index] = outcome
        return move_report(move, outcome)

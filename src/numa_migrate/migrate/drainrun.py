"""Run a drain plan: its waves one after the other, the moves of a wave in parallel.

Each move is one live migration through the engine (:mod:`numa_migrate.migrate.run`): the
wave runner here only orders them, so it takes the move itself as a function
(:data:`MoveRunner`; :mod:`numa_migrate.migrate.drainmove` is the libvirt one).

* The moves of a wave run at the same time, one thread each (at most the wave's size);
  the next wave starts only after every move of the wave ended.
* A failed move stops the run after its wave (the other moves of that wave finish); the
  later waves are reported as not run. ``keep_going`` runs them anyway.
* Resuming: each attempt of a move journals under the name
  ``<plan_id>.m<move>.a<attempt>`` (:func:`numa_migrate.core.drain.planfile.migration_id`)
  in the claims store's journal, so a run of the same plan after an interruption reads
  how far each move got: a move whose last attempt is ``done`` (or was completed by
  recovery) is skipped as done; an attempt that was interrupted is recovered first
  (:func:`numa_migrate.migrate.recovery.recover`) and, when recovery rolled it back,
  the move runs again as the next attempt. This uses the journal as it is: no new table,
  no schema change.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from numa_migrate.core.drain.planfile import DrainPlanFile, PlannedMove, migration_id
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.migration.journal import (
    JournalRecord,
    PlannedEntry,
    RecoveredEntry,
    first,
)
from numa_migrate.core.migration.phases import Phase

if TYPE_CHECKING:
    from numa_migrate.claims import ClaimStore
    from numa_migrate.migrate.recovery import Recovery

__all__ = ["MAX_ATTEMPTS", "MoveReport", "MoveRunner", "MoveState", "RunReport",
           "Watch", "resume_point", "run_plan"]

MAX_ATTEMPTS = 50
"""Attempts of one move the journal is searched for."""
MAX_RETRIES = 5
"""Attempts of one move in one run when each lost its claim to a parallel one."""


class MoveState(StrEnum):
    DONE = "done"
    """Migrated by this run."""
    SKIPPED = "skipped"
    """Nothing to do: done by an earlier run of the plan, or the guest already runs on its
    destination."""
    FAILED = "failed"
    NOT_RUN = "not run"
    """A later wave after a failure (without keep_going)."""


@dataclass(frozen=True)
class MoveReport:
    move: PlannedMove
    state: MoveState
    reason: str = ""
    seconds: float = 0.0
    migration_id: str | None = None
    rolled_back: bool = False
    """Failed and rolled back by the engine: the guest still runs on its source."""
    pins: tuple[tuple[int, tuple[int, ...]], ...] = ()
    """Where the vCPUs were pinned on the destination (done moves)."""
    placement_note: str = ""
    """How the engine's placement differs from the planned one ('' when it does not)."""
    notes: tuple[str, ...] = ()
    retry: bool = False
    """Failed before anything changed, because another claim took the resources first:
    the runner plans and runs it again (as the next attempt), a few times."""

    def as_dict(self) -> dict[str, object]:
        m = self.move
        return {
            "move": m.index, "wave": m.wave, "guest": m.guest, "kind": m.kind,
            "source": m.source,
            "destination": m.destination, "outcome": self.state.value, "reason": self.reason,
            "seconds": round(self.seconds, 3), "migration_id": self.migration_id,
            "rolled_back": self.rolled_back,
            "planned_pins": {str(v): c for v, c in m.pins},
            "pins": {str(v): list(c) for v, c in self.pins},
            "placement_differs": bool(self.placement_note),
            "placement_note": self.placement_note, "notes": list(self.notes),
        }


@dataclass(frozen=True)
class RunReport:
    plan: DrainPlanFile
    moves: tuple[MoveReport, ...]
    seconds: float
    wave_seconds: tuple[float, ...] = ()
    stopped_after_wave: int | None = None
    recovered: tuple[str, ...] = ()

    def count(self, state: MoveState) -> int:
        return sum(1 for r in self.moves if r.state is state)

    @property
    def all_moved(self) -> bool:
        return all(r.state in (MoveState.DONE, MoveState.SKIPPED) for r in self.moves) \
            and not self.plan.unplaceable

    @property
    def exit_code(self) -> int:
        """0 every guest moved, 3 a migration failed (rolled back), 1 something not moved."""
        if self.all_moved:
            return 0
        if any(r.state is MoveState.FAILED and r.rolled_back for r in self.moves):
            return 3
        return 1

    def as_dict(self) -> dict[str, object]:
        return {
            "plan_id": self.plan.plan_id, "drain": list(self.plan.drained),
            "complete": self.all_moved, "seconds": round(self.seconds, 3),
            "wave_seconds": [round(s, 3) for s in self.wave_seconds],
            "stopped_after_wave": self.stopped_after_wave,
            "counts": {s.value: self.count(s) for s in MoveState},
            "moves": [r.as_dict() for r in self.moves],
            "unplaceable": [{"guest": g, "reason": r} for g, r in self.plan.unplaceable],
            "recovered": list(self.recovered),
        }


class Watch(Protocol):
    """What a run tells its watcher (the progress display), from the moves' threads."""

    def started(self, move: PlannedMove) -> None: ...

    def ended(self, report: MoveReport) -> None: ...


MoveRunner = Callable[[PlannedMove, str], MoveReport]
"""Runs one move under the given migration id and reports it (never raises for a failed
migration: that is a FAILED report). A runner with a ``wave_starts(moves)`` method is told
the moves of each wave before they start (the engine's orders their planning)."""


@dataclass(frozen=True)
class Resume:
    """Where a move stands in the journal: done already, or the attempt to run next."""

    done: bool
    attempt: int
    blocked: str = ""
    """Why the move must not run now (an attempt that needs a person, or still running)."""
    recovered: tuple[str, ...] = ()


Recover = Callable[["ClaimStore", str], "list[Recovery]"]


def _recover_one(store: ClaimStore, mid: str) -> list[Recovery]:
    from numa_migrate.migrate.recovery import recover

    return recover(store, only=mid)


def resume_point(store: ClaimStore, plan_id: str, move: int, *,
                 recover: Recover = _recover_one) -> Resume:
    """Read the journal of the move's attempts: skip it (done), block it, or the next id."""
    from numa_migrate.claims.journal import Journal

    journal = Journal(store)
    notes: list[str] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        mid = migration_id(plan_id, move, attempt)
        records = journal.entries(mid)
        if not records:
            return Resume(False, attempt, recovered=tuple(notes))
        last = records[-1].phase
        if not last.final and last is not Phase.ATTENTION:
            for r in recover(store, mid):
                notes.append(f"{mid} ({r.domain}): {r.outcome.label}; {r.detail}")
            records = journal.entries(mid)
            last = records[-1].phase
            if last is Phase.PLANNED and not _claimed_or_running(store, mid, records):
                # killed before its claim: nothing was changed on either host
                journal.append(mid, RecoveredEntry(
                    "rolled back", (), why="interrupted before its claim; nothing changed"))
                notes.append(f"{mid}: interrupted before its claim; nothing was changed")
                continue
        entry = records[-1].entry
        if last is Phase.DONE or (isinstance(entry, RecoveredEntry)
                                  and entry.outcome == "completed"):
            return Resume(True, attempt, recovered=tuple(notes))
        if last in (Phase.ROLLED_BACK, Phase.RECOVERED):
            continue
        why = ("needs attention (see `numa-migrate recover`)" if last in (
            Phase.ATTENTION, Phase.POST_COPY_FAILED) else
            "is still running in another process, or was interrupted without a claim "
            "recovery can act on (run `numa-migrate recover`)")
        return Resume(False, attempt, blocked=f"migration {mid} {why}",
                      recovered=tuple(notes))
    return Resume(False, MAX_ATTEMPTS,
                  blocked=f"{MAX_ATTEMPTS} attempts already journalled; plan the drain again",
                  recovered=tuple(notes))


def _claimed_or_running(store: ClaimStore, mid: str, records: Sequence[JournalRecord]) -> bool:
    """Does the attempt hold a live claim, or does the process that planned it still run?"""
    from numa_migrate.migrate.run import owner_alive

    planned = first(records, PlannedEntry)
    if planned is not None and owner_alive(planned.owner) is not False:
        return True
    return any(c.migration_id == mid and c.state.live for c in store.list_claims())


@dataclass
class _Run:
    plan: DrainPlanFile
    run_move: MoveRunner
    keep_going: bool
    watch: Watch | None
    store: ClaimStore | None
    recover: Recover
    max_parallel: int | None
    reports: dict[int, MoveReport] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def one(self, move: PlannedMove, attempt: int) -> MoveReport:
        if self.watch is not None:
            self.watch.started(move)
        started = time.monotonic()
        lost: list[str] = []
        while True:
            mid = migration_id(self.plan.plan_id, move.index, attempt)
            try:
                report = self.run_move(move, mid)
            except NumaMigrateError as exc:
                report = MoveReport(move, MoveState.FAILED, str(exc), migration_id=mid)
            if not report.retry or len(lost) + 1 >= MAX_RETRIES or attempt >= MAX_ATTEMPTS:
                break
            lost.append(f"attempt {attempt} lost its claim to a parallel move; planned again")
            attempt += 1
            time.sleep(random.uniform(0.1, 0.5))
        report = replace(report, seconds=time.monotonic() - started,
                         notes=tuple(lost) + report.notes)
        if self.watch is not None:
            self.watch.ended(report)
        return report

    def wave(self, moves: Sequence[PlannedMove]) -> None:
        todo: list[tuple[PlannedMove, int]] = []
        for move in moves:
            if self.store is None:
                todo.append((move, 1))
                continue
            point = resume_point(self.store, self.plan.plan_id, move.index,
                                 recover=self.recover)
            self.recovered += point.recovered
            mid = migration_id(self.plan.plan_id, move.index, point.attempt)
            if point.done:
                self._end(MoveReport(move, MoveState.SKIPPED,
                                     "done by an earlier run of this plan", migration_id=mid))
            elif point.blocked:
                self._end(MoveReport(move, MoveState.FAILED, point.blocked, migration_id=mid))
            else:
                todo.append((move, point.attempt))
        if not todo:
            return
        starts = getattr(self.run_move, "wave_starts", None)
        if starts is not None:
            starts([m for m, _ in todo])
        workers = min(len(todo), self.max_parallel or len(todo))
        with ThreadPoolExecutor(max_workers=workers,
                                thread_name_prefix=f"wave{moves[0].wave}") as pool:
            for report in pool.map(lambda job: self.one(*job), todo):
                with self.lock:
                    self.reports[report.move.index] = report

    def _end(self, report: MoveReport) -> None:
        self.reports[report.move.index] = report
        if self.watch is not None:
            self.watch.ended(report)


def run_plan(plan: DrainPlanFile, run_move: MoveRunner, *, keep_going: bool = False,
             store: ClaimStore | None = None, watch: Watch | None = None,
             recover: Recover = _recover_one, max_parallel: int | None = None) -> RunReport:
    """Run the plan's waves in order (see the module doc); ``store``: resume from its
    journal (None: every move is attempt 1, nothing is looked up)."""
    run = _Run(plan, run_move, keep_going, watch, store, recover, max_parallel)
    started = time.monotonic()
    stopped: int | None = None
    wave_seconds: list[float] = []
    for number, moves in enumerate(plan.waves, 1):
        if stopped is not None:
            for move in moves:
                run.reports[move.index] = MoveReport(
                    move, MoveState.NOT_RUN, f"a move of wave {stopped} failed")
            continue
        t0 = time.monotonic()
        run.wave(moves)
        wave_seconds.append(time.monotonic() - t0)
        failed = any(run.reports[m.index].state is MoveState.FAILED for m in moves)
        if failed and not keep_going:
            stopped = number
    return RunReport(plan, tuple(run.reports[m.index] for m in plan.moves),
                     time.monotonic() - started, tuple(wave_seconds), stopped,
                     tuple(run.recovered))

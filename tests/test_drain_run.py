"""The drain plan runner (migrate/drainrun.py) with an injected move runner: wave order,
stop on failure, --keep-going, parallelism, and resuming from a real SQLite journal."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from numa_migrate.claims import ClaimStore
from numa_migrate.claims.journal import Journal
from numa_migrate.core.drain.planfile import DrainPlanFile, PlannedMove, migration_id
from numa_migrate.core.migration.journal import (
    DoneEntry,
    HostEndpoint,
    MigratedEntry,
    MigratingEntry,
    PlannedEntry,
    RecoveredEntry,
    RolledBackEntry,
)
from numa_migrate.migrate.drainrun import MoveReport, MoveState, RunReport, run_plan


def _dead_owner() -> str:
    """An owner on this machine whose process has ended."""
    import getpass
    import socket
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    return f"{getpass.getuser()}@{socket.gethostname()}/{child.pid}"


DEAD_OWNER = _dead_owner()


def plan(*wave_sizes: int, unplaceable: tuple[tuple[str, str], ...] = ()) -> DrainPlanFile:
    waves = []
    index = 0
    for number, size in enumerate(wave_sizes, 1):
        moves = []
        for _ in range(size):
            index += 1
            moves.append(PlannedMove(index, number, f"g{index}", "src", "dst", ((0, index),)))
        waves.append(tuple(moves))
    return DrainPlanFile("drain-0123456789abcdef", ("src",), tuple(waves), unplaceable,
                         "test", "now")


class Recorder:
    """A move runner that records the order and the overlap of the moves it runs."""

    def __init__(self, fail: set[str] = frozenset(), seconds: float = 0.05) -> None:
        self.fail = fail
        self.seconds = seconds
        self.lock = threading.Lock()
        self.running: set[int] = set()
        self.max_running = 0
        self.events: list[tuple[str, int]] = []
        self.ids: dict[int, str] = {}

    def __call__(self, move: PlannedMove, mid: str) -> MoveReport:
        with self.lock:
            self.running.add(move.index)
            self.max_running = max(self.max_running, len(self.running))
            self.events.append(("start", move.index))
            self.ids[move.index] = mid
        time.sleep(self.seconds)
        with self.lock:
            self.running.discard(move.index)
            self.events.append(("end", move.index))
        if move.guest in self.fail:
            return MoveReport(move, MoveState.FAILED, "boom", migration_id=mid,
                              rolled_back=True)
        return MoveReport(move, MoveState.DONE, migration_id=mid)


def states(report: RunReport) -> list[str]:
    return [r.state.value for r in report.moves]


def test_waves_run_in_order_and_moves_of_a_wave_together() -> None:
    runner = Recorder(seconds=0.2)
    report = run_plan(plan(3, 2), runner)
    assert states(report) == ["done"] * 5
    assert report.exit_code == 0 and report.all_moved
    # every move of wave 1 ended before the first move of wave 2 started
    first_wave2 = runner.events.index(("start", 4))
    assert {("end", i) for i in (1, 2, 3)} <= set(runner.events[:first_wave2])
    # the three moves of wave 1 overlapped: all three ran at once
    assert runner.max_running == 3
    assert len(report.wave_seconds) == 2


def test_max_parallel_limits_a_wave() -> None:
    runner = Recorder(seconds=0.1)
    report = run_plan(plan(4), runner, max_parallel=2)
    assert states(report) == ["done"] * 4
    assert runner.max_running == 2


def test_a_failure_stops_after_its_wave() -> None:
    runner = Recorder(fail={"g1"}, seconds=0.1)
    report = run_plan(plan(2, 1, 1), runner)
    # the other move of the failed wave finished; later waves were not run
    assert states(report) == ["failed", "done", "not run", "not run"]
    assert report.stopped_after_wave == 1
    assert ("start", 3) not in runner.events
    assert report.moves[2].reason == "a move of wave 1 failed"
    assert report.exit_code == 3


def test_keep_going_runs_the_later_waves() -> None:
    runner = Recorder(fail={"g1"})
    report = run_plan(plan(2, 1, 1), runner, keep_going=True)
    assert states(report) == ["failed", "done", "done", "done"]
    assert report.stopped_after_wave is None
    assert report.exit_code == 3


def test_exit_code_one_when_not_rolled_back_or_unplaceable() -> None:
    def no_room(move: PlannedMove, mid: str) -> MoveReport:
        return MoveReport(move, MoveState.FAILED, "no room now", migration_id=mid)

    assert run_plan(plan(1), no_room).exit_code == 1
    assert run_plan(plan(1, unplaceable=(("big", "needs 8 CPUs"),)),
                    Recorder()).exit_code == 1


def test_an_error_of_the_runner_is_a_failed_move() -> None:
    from numa_migrate.hypervisor.base import HypervisorError

    def broken(move: PlannedMove, mid: str) -> MoveReport:
        raise HypervisorError("cannot connect to dst")

    report = run_plan(plan(1, 1), broken)
    assert states(report) == ["failed", "not run"]
    assert "cannot connect" in report.moves[0].reason


# --------------------------------------------------------------------------- resuming


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ClaimStore]:
    with ClaimStore.open(f"sqlite:///{tmp_path / 'claims.db'}") as s:
        yield s


def _planned(guest: str, owner: str = DEAD_OWNER) -> PlannedEntry:
    return PlannedEntry(domain=guest, uuid="00000000-0000-0000-0000-000000000001",
                        source=HostEndpoint("src", "qemu:///src"),
                        destination=HostEndpoint("dst", "qemu:///dst"), owner=owner,
                        summary="test", persistent_xml=None)


class Journalling(Recorder):
    """Journals each move as the engine would (planned ... done, or rolled back)."""

    def __init__(self, store: ClaimStore, fail: set[str] = frozenset()) -> None:
        super().__init__(fail=fail, seconds=0.01)
        self.journal = Journal(store)

    def __call__(self, move: PlannedMove, mid: str) -> MoveReport:
        self.journal.append(mid, _planned(move.guest))
        self.journal.append(mid, MigratingEntry(None))
        report = super().__call__(move, mid)
        if report.state is MoveState.FAILED:
            self.journal.append(mid, RolledBackEntry("boom"))
        else:
            self.journal.append(mid, MigratedEntry(0.1, 5, 1000, False))
            self.journal.append(mid, DoneEntry(None))
        return report


def test_resume_skips_done_moves_and_retries_failed_ones(store: ClaimStore) -> None:
    the_plan = plan(2, 1)
    first = run_plan(the_plan, Journalling(store, fail={"g2"}), store=store)
    assert states(first) == ["done", "failed", "not run"]
    again = Journalling(store)
    second = run_plan(the_plan, again, store=store)
    assert states(second) == ["skipped", "done", "done"]
    assert second.moves[0].reason == "done by an earlier run of this plan"
    # the failed move runs again as its second attempt; the others as their first
    assert again.ids == {2: migration_id(the_plan.plan_id, 2, 2),
                         3: migration_id(the_plan.plan_id, 3, 1)}
    third = run_plan(the_plan, Journalling(store), store=store)
    assert states(third) == ["skipped"] * 3
    assert third.exit_code == 0


def test_resume_after_a_kill_before_the_claim(store: ClaimStore) -> None:
    the_plan = plan(1)
    mid = migration_id(the_plan.plan_id, 1, 1)
    Journal(store).append(mid, _planned("g1"))  # the process died right after this
    runner = Journalling(store)
    report = run_plan(the_plan, runner, store=store)
    assert states(report) == ["done"]
    assert runner.ids == {1: migration_id(the_plan.plan_id, 1, 2)}
    assert Journal(store).last_phase(mid).value == "recovered"
    assert any("interrupted before its claim" in n for n in report.recovered)


def test_a_planned_attempt_of_a_live_process_is_not_touched(store: ClaimStore) -> None:
    from numa_migrate.migrate.run import owner_id

    the_plan = plan(1)
    mid = migration_id(the_plan.plan_id, 1, 1)
    Journal(store).append(mid, _planned("g1", owner=owner_id()))  # this process: alive
    runner = Journalling(store)
    report = run_plan(the_plan, runner, store=store)
    assert states(report) == ["failed"] and runner.ids == {}
    assert "still running" in report.moves[0].reason
    assert Journal(store).last_phase(mid).value == "planned"


def test_an_interrupted_attempt_is_recovered_first(store: ClaimStore) -> None:
    the_plan = plan(1, 1)
    journal = Journal(store)
    for move in (1, 2):
        mid = migration_id(the_plan.plan_id, move, 1)
        journal.append(mid, _planned(f"g{move}"))
        journal.append(mid, MigratingEntry(None))
    asked: list[str] = []

    def recover(s: ClaimStore, mid: str) -> list[object]:
        asked.append(mid)
        outcome = "completed" if mid.endswith(".m1.a1") else "rolled back"
        Journal(s).append(mid, RecoveredEntry(outcome, ("test",), found="seen"))
        return []

    runner = Journalling(store)
    report = run_plan(the_plan, runner, store=store, recover=recover)  # type: ignore[arg-type]
    assert asked == [migration_id(the_plan.plan_id, 1, 1), migration_id(the_plan.plan_id, 2, 1)]
    # recovery completed move 1: skipped as done; it rolled move 2 back: run again
    assert states(report) == ["skipped", "done"]
    assert runner.ids == {2: migration_id(the_plan.plan_id, 2, 2)}


def test_a_lost_claim_is_planned_and_run_again() -> None:
    from numa_migrate.migrate.drainrun import MAX_RETRIES

    seen: list[str] = []

    def racing(move: PlannedMove, mid: str) -> MoveReport:
        seen.append(mid)
        if move.guest == "g1" and len(seen) < 3:
            return MoveReport(move, MoveState.FAILED, "claimed first", migration_id=mid,
                              rolled_back=True, retry=True)
        return MoveReport(move, MoveState.DONE, migration_id=mid)

    report = run_plan(plan(1), racing)
    assert states(report) == ["done"]
    assert seen == [migration_id("drain-0123456789abcdef", 1, a) for a in (1, 2, 3)]
    assert len(report.moves[0].notes) == 2 and "lost its claim" in report.moves[0].notes[0]

    def always(move: PlannedMove, mid: str) -> MoveReport:
        seen.append(mid)
        return MoveReport(move, MoveState.FAILED, "claimed first", migration_id=mid,
                          rolled_back=True, retry=True)

    seen.clear()
    report = run_plan(plan(1), always)
    assert states(report) == ["failed"] and len(seen) == MAX_RETRIES

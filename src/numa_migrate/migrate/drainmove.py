"""One move of a drain plan on real hosts: a :class:`~numa_migrate.migrate.run.Migration`.

The planned destination is kept; the cells and pins are not taken from the plan: the engine
fits the guest again against the destination as it is now (live usage, other claims
subtracted), which is the truth when the move runs. The moves of one run to one destination
plan and claim one after the other, in the plan's order (a turn held from the plan until
the claim is taken), then migrate at the same time: so the engine usually lands each guest
where the plan put it, and two moves never choose the same CPUs. When that placement differs from
the planned one the report says so. A guest that already runs on its destination is
skipped as done; one that runs on neither host is a failure that changed nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.drain.planfile import PlannedMove
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.migrate.drainrun import MoveReport, MoveState

if TYPE_CHECKING:
    from numa_migrate.claims import ClaimStore
    from numa_migrate.hypervisor.base import JobProgress, MigrateOptions
    from numa_migrate.migrate.hosts import Hosts
    from numa_migrate.migrate.run import Connector, HostRef, Outcome

__all__ = ["EngineMoves", "Turns", "placement_note"]


class Turns:
    """One destination's moves taking turns to plan and claim: one at a time, the expected
    ones in the order given (a move not expected, e.g. a retry, waits only for the turn)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[int] = []
        self._busy = False

    def expect(self, index: int) -> None:
        with self._cond:
            self._queue.append(index)

    def take(self, index: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._busy and (
                index not in self._queue or self._queue[0] == index))
            self._busy = True
            if index in self._queue:
                self._queue.remove(index)

    def give(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def drop(self, index: int) -> None:
        """The move ended (or never planned): it no longer holds up the ones after it."""
        with self._cond:
            if index in self._queue:
                self._queue.remove(index)
            self._cond.notify_all()


def placement_note(move: PlannedMove, pins: dict[int, list[int]]) -> str:
    """'' when the live pins are the planned ones, else what differs."""
    planned = {v: [c] for v, c in move.pins}
    if not planned or planned == pins:
        return ""
    was = CpuSet.of(c for cs in planned.values() for c in cs).format()
    now = CpuSet.of(c for cs in pins.values() for c in cs).format() or "floating"
    return (f"pinned on CPUs {now} of {move.destination} instead of the planned {was}: "
            "the engine placed it on the destination as it was when the move ran")


@dataclass
class EngineMoves:
    """The :data:`~numa_migrate.migrate.drainrun.MoveRunner` of real hosts: each call runs
    one Migration with its own libvirt connections (safe from the wave's threads)."""

    store: ClaimStore
    hosts: Hosts
    options: MigrateOptions
    ttl_s: float = 600.0
    on_progress: Callable[[PlannedMove, JobProgress], None] | None = None
    on_phase: Callable[[PlannedMove, str, str], None] | None = None
    connect: Connector | None = None
    _refs: dict[str, HostRef] = field(default_factory=dict)
    _turns: dict[str, Turns] = field(default_factory=dict)
    _turns_lock: threading.Lock = field(default_factory=threading.Lock)

    def check_hosts(self, names: tuple[str, ...]) -> None:
        """Every host the plan names is in the inventory (else an InventoryError)."""
        for name in names:
            self._refs[name] = self.hosts.ref(name)

    def _turn(self, destination: str) -> Turns:
        with self._turns_lock:
            return self._turns.setdefault(destination, Turns())

    def wave_starts(self, moves: Sequence[PlannedMove]) -> None:
        """The moves about to run together: each destination's take their turns to plan
        and claim in this order."""
        for move in moves:
            self._turn(move.destination).expect(move.index)

    def _ref(self, name: str) -> HostRef:
        if name not in self._refs:
            self._refs[name] = self.hosts.ref(name)
        return self._refs[name]

    def _where(self, move: PlannedMove) -> dict[str, bool]:
        """Whether the guest runs on the move's source and on its destination."""
        from numa_migrate.migrate.run import connect_libvirt

        connect = self.connect or connect_libvirt
        found = {}
        for name in (move.source, move.destination):
            conn = connect(self._ref(name))
            try:
                dom = conn.lookup(move.guest)
                found[name] = dom is not None and dom.is_active()
            finally:
                conn.close()
        return found

    def __call__(self, move: PlannedMove, migration_id: str) -> MoveReport:
        turn = self._turn(move.destination)
        try:
            return self._run(move, migration_id, turn)
        finally:
            turn.drop(move.index)

    def _run(self, move: PlannedMove, migration_id: str, turn: Turns) -> MoveReport:
        from numa_migrate.migrate.plan import NoRoom
        from numa_migrate.migrate.run import (
            ClaimLost,
            Migration,
            MigrationFailed,
            connect_libvirt,
        )

        started = time.monotonic()
        where = self._where(move)
        if where[move.destination]:
            return MoveReport(move, MoveState.SKIPPED,
                              f"{move.guest} already runs on {move.destination}",
                              seconds=time.monotonic() - started)
        if not where[move.source]:
            return MoveReport(move, MoveState.FAILED,
                              f"{move.guest} runs neither on {move.source} nor on "
                              f"{move.destination}; nothing was changed",
                              seconds=time.monotonic() - started)
        progress, shown = self.on_progress, self.on_phase
        turn.take(move.index)
        held = [True]

        def let_go() -> None:
            if held[0]:
                held[0] = False
                turn.give()

        def phase(name: str, message: str) -> None:
            # the claim is taken (or the guest needs none): the next move may plan
            if name in ("claimed", "migrating"):
                let_go()
            if shown is not None:
                shown(move, name, message)

        job = Migration(
            store=self.store, source=self._ref(move.source),
            destination=self._ref(move.destination), domain=move.guest,
            read_host=self.hosts.read_host, read_devices=self.hosts.read_devices,
            options=self.options, ttl_s=self.ttl_s, migration_id=migration_id,
            on_progress=None if progress is None else (lambda p: progress(move, p)),
            on_phase=phase,
            connect=self.connect or connect_libvirt,
        )
        try:
            result = job.run()
        except ClaimLost as exc:
            # another operator's claim (the moves of this run plan one after the other)
            return MoveReport(move, MoveState.FAILED, str(exc), migration_id=migration_id,
                              rolled_back=True, retry=True,
                              seconds=time.monotonic() - started)
        except MigrationFailed as exc:
            return MoveReport(move, MoveState.FAILED, str(exc), migration_id=migration_id,
                              rolled_back=True, seconds=time.monotonic() - started)
        except NumaMigrateError as exc:
            return MoveReport(move, MoveState.FAILED, str(exc), migration_id=migration_id,
                              seconds=time.monotonic() - started)
        finally:
            let_go()
        if isinstance(result, NoRoom):
            return MoveReport(move, MoveState.FAILED,
                              f"{move.destination} has no room for {move.guest} now: "
                              f"{result.summary}; nothing was moved",
                              migration_id=migration_id, seconds=time.monotonic() - started)
        return _done(move, migration_id, result, time.monotonic() - started)


def _done(move: PlannedMove, mid: str, out: Outcome, seconds: float) -> MoveReport:
    notes = [f"libvirt {out.seconds:.2f} s, downtime "
             f"{out.downtime_ms if out.downtime_ms is not None else '?'} ms"]
    if out.post_copy:
        notes.append("switched to post-copy")
    return MoveReport(move, MoveState.DONE, migration_id=mid, seconds=seconds,
                      pins=tuple((v, tuple(c)) for v, c in sorted(out.dest_pins.items())),
                      placement_note=placement_note(move, out.dest_pins), notes=tuple(notes))

"""One move of a drain plan on an OpenStack cloud: Nova live-migrates the server to the
planned compute, then numa-migrate validates Nova's result.

:func:`run_cloud_move` is what a wave runner calls for each move (from its threads: every
call makes its own requests and libvirt connections). It never raises for a move that did
not happen: the :class:`CloudMoveOutcome` says ``done``, ``skipped`` (the server already runs
on the destination) or ``failed``, with the reason, whether the server still runs on its
source, and the time each phase took:

1. where the server is now (Nova): on the destination already -> skipped; on neither host
   -> failed, nothing asked of Nova;
2. ``migrate --cloud``'s checks and Nova's live migration to the planned host, never forced
   (:func:`numa_migrate.cloud.migrate.migrate_server`: Nova's scheduler and the
   destination's claim still decide; Nova chooses the pins);
3. on completion, the validation of Nova's result on the destination: Nova's cells on the
   destination's nodes, its pins in the destination's dedicated set and exclusive, and the
   domain's live and persistent XML (pins, NUMA memory, huge pages) as Nova's topology says.
   A completed migration whose validation fails is a failed move (the server stays where
   Nova put it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from numa_migrate.cloud import nova
from numa_migrate.cloud.api import CloudApi
from numa_migrate.cloud.computes import ComputeMap
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.validation import Status

__all__ = ["CloudMoveOutcome", "run_cloud_move"]

Phase = Callable[[str, str], None]
DONE, SKIPPED, FAILED = "done", "skipped", "failed"


def _quiet(_phase: str, _message: str) -> None:
    return None


@dataclass(frozen=True)
class CloudMoveOutcome:
    server_id: str
    server: str
    source: str
    destination: str
    state: str  # done | skipped | failed
    reason: str = ""
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict, hash=False)
    """Seconds per phase: check (our checks before Nova), nova (Nova's migration),
    validate (our validation of the result)."""
    rolled_back: bool = False
    """Failed, and the server runs on its source (Nova refused or rolled it back)."""
    nova_outcome: str = ""
    """migrate --cloud's outcome: completed, refused, rolled back, error, running, or ''
    when Nova was not asked."""
    pins: tuple[tuple[int, int], ...] = ()
    """(vCPU, host CPU) Nova pinned on the destination (done moves)."""
    failed_checks: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.state in (DONE, SKIPPED)

    def as_dict(self) -> dict[str, object]:
        return {"server_id": self.server_id, "server": self.server, "source": self.source,
                "destination": self.destination, "outcome": self.state, "reason": self.reason,
                "seconds": round(self.seconds, 3),
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "rolled_back": self.rolled_back, "nova_outcome": self.nova_outcome,
                "pins": {str(v): c for v, c in self.pins},
                "failed_checks": list(self.failed_checks), "notes": list(self.notes)}


class _Clock:
    """Seconds per phase, from the phase messages of ``migrate_server``."""

    def __init__(self, forward: Phase) -> None:
        self._forward = forward
        self._current: str | None = None
        self._since = time.monotonic()
        self.timings: dict[str, float] = {}

    def __call__(self, phase: str, message: str) -> None:
        self.switch(phase)
        self._forward(phase, message)

    def switch(self, phase: str | None) -> None:
        now = time.monotonic()
        if phase == self._current:
            return
        if self._current is not None:
            self.timings[self._current] = self.timings.get(self._current, 0.0) + \
                now - self._since
        self._current, self._since = phase, now


def run_cloud_move(api: CloudApi, computes: ComputeMap, server_id: str, source: str,
                   destination: str, *, planned_pins: tuple[tuple[int, int], ...] = (),
                   timeout_s: float = 900.0, poll_s: float = 1.0,
                   on_phase: Phase = _quiet) -> CloudMoveOutcome:
    """Move the server ``server_id`` from compute ``source`` to ``destination`` through Nova,
    then validate; never raises for a move that did not happen (see the module)."""
    from numa_migrate.cloud.migrate import CheckRefused, DestinationError, migrate_server

    started = time.monotonic()
    name = server_id

    def outcome(state: str, reason: str, *, rolled_back: bool = False, nova_outcome: str = "",
                pins: tuple[tuple[int, int], ...] = (), failed_checks: tuple[str, ...] = (),
                notes: tuple[str, ...] = ()) -> CloudMoveOutcome:
        return CloudMoveOutcome(server_id, name, source, destination, state, reason,
                                time.monotonic() - started, dict(clock.timings), rolled_back,
                                nova_outcome, pins, failed_checks, notes)

    clock = _Clock(on_phase)
    try:
        server = nova.get_server(api, server_id)
    except NumaMigrateError as exc:
        return outcome(FAILED, _line(exc))
    name = server.name
    if server.host == destination:
        return outcome(SKIPPED, f"{name} already runs on {destination}")
    if server.host != source:
        return outcome(FAILED, f"{name} runs on {server.host or 'no compute'} "
                       f"({server.status}), not on {source}: nothing was asked of Nova")
    try:
        result = migrate_server(api, server_id, computes, to=destination, timeout_s=timeout_s,
                                poll_s=poll_s, on_phase=clock)
    except (CheckRefused, DestinationError, nova.NovaRefusedError) as exc:
        clock.switch(None)  # our checks refused, or Nova refused: the server did not move
        return outcome(FAILED, _line(exc), rolled_back=True,
                       nova_outcome="refused" if isinstance(exc, nova.NovaRefusedError) else "")
    except NumaMigrateError as exc:
        clock.switch(None)
        return outcome(FAILED, f"{_line(exc)} (where the server is now: see `openstack server "
                       f"show {server_id}`)")
    clock.switch(None)
    if result.outcome != "completed" or result.validation is None:
        on_source = result.outcome in ("refused", "rolled back")
        return outcome(FAILED, result.detail, rolled_back=on_source,
                       nova_outcome=result.outcome)
    topology = result.validation.context.topology
    pins = tuple(sorted((v, c) for cell in (topology.cells if topology else ())
                        for v, c in cell.pinning.items()))
    notes = [result.detail]
    if planned_pins and pins != tuple(sorted(planned_pins)):
        notes.append(f"Nova pinned CPUs {CpuSet.of(c for _, c in pins).format() or '-'}, the "
                     f"plan CPUs {CpuSet.of(c for _, c in planned_pins).format()}: Nova "
                     "chooses the pins on the destination as it is when the move runs")
    report = result.validation.checked.report
    failed = tuple(f"{c.name}: {c.detail or c.actual}" for c in report.checks
                   if c.status is Status.FAILED)
    if failed:
        return outcome(FAILED, f"Nova moved {name} to {destination}, but the validation "
                       f"failed: {failed[0]}", pins=pins, failed_checks=failed,
                       notes=tuple(notes), nova_outcome=result.outcome)
    return outcome(DONE, "", pins=pins, notes=tuple(notes), nova_outcome=result.outcome)


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())

"""isolate + isolated emulator threads on a legacy SMT host: the emulator CPU goes on a whole
free core when there is one, so the placement can be claimed (isolate takes whole cores)."""

from __future__ import annotations

from numa_migrate.core.fit.fitter import fit_request
from numa_migrate.core.model.guest import (
    CPUPolicy,
    EmulatorPolicy,
    GuestCell,
    GuestRequest,
    ThreadPolicy,
)
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.usage import apply_placement


def test_the_emulator_cpu_takes_a_whole_free_core_before_a_half_used_one() -> None:
    cpus = frozenset(range(8))
    # cores (0,4) (1,5) (2,6) (3,7); another guest pins 4: core (0,4) is half used
    cell = HostCell(0, cpus, cpus, 4096, siblings=(frozenset({0, 4}), frozenset({1, 5}),
                                                    frozenset({2, 6}), frozenset({3, 7})),
                    pinned_cpus=frozenset({4}))
    host = HostTopology("h", (cell,))
    request = GuestRequest((GuestCell(0, frozenset(), frozenset({0, 1}), 256),),
                           cpu_policy=CPUPolicy.DEDICATED, thread_policy=ThreadPolicy.ISOLATE,
                           emulator_policy=EmulatorPolicy.ISOLATE)
    result = fit_request(host, request)
    assert result.placement is not None
    (emulator,) = result.placement.emulator_pins or ()
    assert emulator not in {0, 4}
    after = apply_placement(host, request, result.placement)  # no UsageConflictError
    assert after.cells[0].pinned_cpus == cpus - {0}  # 2 isolated cores + the emulator core

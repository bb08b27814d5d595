"""The command's whole planner (`cli/drain.py` ``plan_for``: solver, relocations, smallest
change) on generated fleets: every plan passes the independent checker, the caller's state
is left as it was, and the same input gives the same plan."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numa_migrate.cli.drain import plan_for
from numa_migrate.core.drain import KeepFree
from numa_migrate.core.drain.apply import state_after
from numa_migrate.core.drain.state import FleetState
from tests.drainvalidity import violations
from tests.fleetgen import generate

TINY = (("tiny1", 2), ("tiny2", 2), ("small", 1))
Case = tuple[FleetState, tuple[str, ...], int, int, KeepFree | None, str]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    hosts = draw(st.integers(2, 5))
    state = generate(draw(st.integers(0, 2**32 - 1)), hosts, draw(st.integers(0, 4 * hosts)),
                     load=draw(st.sampled_from((0.5, 0.8, 1.0))), shapes=TINY)
    names = [h.name for h in state.hosts]
    drained = tuple(draw(st.lists(st.sampled_from(names), min_size=1,
                                  max_size=len(names) - 1, unique=True)))
    keep = draw(st.none() | st.builds(KeepFree, st.integers(0, 4), st.integers(0, 4096)))
    return (state, drained, draw(st.integers(1, 4)), draw(st.integers(1, 3)), keep,
            draw(st.sampled_from(("heuristic", "cp-sat", "auto"))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_every_plan_of_the_command_is_valid_and_leaves_its_input_alone(
        case: Case) -> None:
    state, drained, max_parallel, per_host, keep, solver = case
    before = copy.deepcopy(state)
    plan = plan_for(state, drained, max_parallel, per_host, keep,
                    solver=solver, time_limit_s=2.0)
    assert state == before
    problems = violations(state, drained, plan, max_parallel, per_host)
    assert not problems, problems
    if keep is not None:  # every host that received a move keeps the headroom at the end
        after = state_after(state, plan)
        for name in {m.destination for m in plan.moves}:
            cells = after.host(name).cells
            assert sum(len(c.free_pcpus) for c in cells) >= keep.dedicated_cpus, name
            assert sum(c.avail_memory_mib for c in cells) >= keep.memory_mib, name
    if solver == "heuristic":
        again = plan_for(state, drained, max_parallel, per_host, keep,
                         solver=solver, time_limit_s=2.0)
        assert again == plan

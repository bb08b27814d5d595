"""When numa-migrate asks the hypervisor to switch a running migration to post-copy (the
policy in hypervisor/base.py; the switch itself runs on the real lab in
tests/e2e/test_migrate.py)."""

from __future__ import annotations

import time
from typing import Any

from numa_migrate.hypervisor.base import JobStats, MigrateOptions, maybe_post_copy


class Job:
    """Stands in for the domain: records start_post_copy calls."""

    def __init__(self) -> None:
        self.calls = 0

    def start_post_copy(self) -> None:
        self.calls += 1


def run(options: MigrateOptions, polls: list[dict[str, Any]],
        pause: float = 0.0) -> tuple[int, int]:
    job = Job()
    moving: list[float] = []
    switched: list[float] = []
    for stats in polls:
        if switched:
            break
        maybe_post_copy(job, JobStats(True, stats), options, moving,  # type: ignore[arg-type]
                        switched)
        time.sleep(pause)
    return job.calls, len(switched)


def test_default_switches_only_after_the_first_full_pass() -> None:
    options = MigrateOptions(post_copy=True)
    polls = [{"data_processed": 0}, {"data_processed": 10, "memory_iteration": 1},
             {"data_processed": 20, "memory_iteration": 1}]
    assert run(options, polls) == (0, 0)
    assert run(options, [*polls, {"data_processed": 30, "memory_iteration": 2}]) == (1, 1)


def test_never_before_ram_moves_even_when_due() -> None:
    options = MigrateOptions(post_copy=True, post_copy_after_s=0)
    assert run(options, [{"data_processed": 0}, {}]) == (0, 0)
    assert run(options, [{"data_processed": 0}, {"data_processed": 1}]) == (1, 1)


def test_after_seconds_counts_from_the_first_running_poll() -> None:
    options = MigrateOptions(post_copy=True, post_copy_after_s=0.15)
    polls = [{"data_processed": 1, "memory_iteration": 5}] * 3
    assert run(options, polls) == (0, 0)  # iteration does not matter, time does
    assert run(options, polls * 4, pause=0.05) == (1, 1)

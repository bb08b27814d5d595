"""The multi-node lab, brought up once per session in a state directory of its own.

The VM is built (once per machine: the image is cached) and booted by the session, and
stopped at its end; the image cache stays. Without root or QEMU the tests skip with the
reason -- or fail when ``NUMA_MIGRATE_REQUIRE_MULTINODE=1`` (CI). A VM that does not come
up is an error of the tests, never a skip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from numa_migrate.lab import LabUnavailableError, processes
from numa_migrate.lab.packages import require_root
from numa_migrate.lab.vm import machine
from numa_migrate.lab.vm.multinode import DIR_ENV, MultiNodeLab, MultiNodeStatus

REQUIRE_ENV = "NUMA_MIGRATE_REQUIRE_MULTINODE"
PARENT = Path("/var/lib/numa-migrate")
PREFIX = "lab-multi-node-e2e-"


@dataclass(frozen=True)
class MultiNodeSession:
    lab: MultiNodeLab
    status: MultiNodeStatus
    up_seconds: float


def _down_orphans() -> None:
    for path in sorted(PARENT.glob(f"{PREFIX}*")) if PARENT.is_dir() else []:
        owner = path.name.removeprefix(PREFIX)
        if owner.isdigit() and int(owner) != os.getpid() and not processes.is_alive(int(owner)):
            MultiNodeLab(path).down()


@pytest.fixture(scope="session")
def multinode_session() -> Iterator[MultiNodeSession | str]:
    try:
        require_root()
        machine.qemu_programs()
    except LabUnavailableError as exc:
        yield f"the multi-node lab cannot run here: {exc}"
        return
    _down_orphans()
    lab = MultiNodeLab(PARENT / f"{PREFIX}{os.getpid()}")
    started = time.monotonic()
    try:
        status = lab.up(progress=lambda m: print(f"multi-node lab: {m}", flush=True))
        yield MultiNodeSession(lab, status, time.monotonic() - started)
    finally:
        lab.down()


@pytest.fixture
def mn(multinode_session: MultiNodeSession | str,
       monkeypatch: pytest.MonkeyPatch) -> MultiNodeSession:
    """The session's multi-node lab, up; commands run in the test see it as the default."""
    if isinstance(multinode_session, str):
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{multinode_session} ({REQUIRE_ENV}=1)")
        pytest.skip(multinode_session)
    monkeypatch.setenv(DIR_ENV, str(multinode_session.lab.state_dir))
    return multinode_session

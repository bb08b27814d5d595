"""The real lab, brought up once per session (root needed) and taken down at the end.

The tests use a lab directory of their own, ``/var/lib/numa-migrate/lab-e2e-<pid>`` (or
``$NUMA_MIGRATE_LAB_DIR`` when set), so that a lab someone brought up by hand, or another
test session running at the same time, keeps running; labs of test sessions that died
without their ``down`` are taken down first.
When the machine cannot run the lab (not root, packages missing and not installable,
no libvirt-python) the lab tests are skipped with the reason -- or fail when
``NUMA_MIGRATE_REQUIRE_LAB=1``. Any other problem (a daemon that does not come up) is an
error of the tests, never a skip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from numa_migrate.lab import Lab, LabStatus, LabUnavailableError, processes
from numa_migrate.lab import hugepages as pool
from numa_migrate.lab.packages import ensure_all

REQUIRE_ENV = "NUMA_MIGRATE_REQUIRE_LAB"
TEST_LAB_PARENT = Path("/var/lib/numa-migrate")
TEST_LAB_PREFIX = "lab-e2e-"
# a 64 MiB huge-page guest holds 32 pages on each side while it migrates
LAB_HUGEPAGES = 80


@dataclass(frozen=True)
class LabSession:
    """The session's lab, what it looked like right after ``up``, and the pool before it."""

    lab: Lab
    first_status: LabStatus
    pool_before: int | None
    up_seconds: float


def _lab_dir() -> Path:
    raw = os.environ.get("NUMA_MIGRATE_LAB_DIR", "").strip()
    return Path(raw) if raw else TEST_LAB_PARENT / f"{TEST_LAB_PREFIX}{os.getpid()}"


def _down_orphaned_test_labs() -> None:
    """Take down the labs of earlier test sessions whose process is gone."""
    if not TEST_LAB_PARENT.is_dir():
        return
    for path in sorted(TEST_LAB_PARENT.glob(f"{TEST_LAB_PREFIX}*")):
        owner = path.name.removeprefix(TEST_LAB_PREFIX)
        if owner.isdigit() and int(owner) != os.getpid() and not processes.is_alive(int(owner)):
            Lab.at(path).down()


@pytest.fixture(scope="session")
def lab_session() -> Iterator[LabSession | str]:
    """The lab, up with a few huge pages; or the reason the machine cannot run it."""
    try:
        ensure_all()
    except LabUnavailableError as exc:
        yield f"the libvirt lab cannot run here: {exc}"
        return
    _down_orphaned_test_labs()
    lab = Lab.at(_lab_dir())
    if lab.lab_dir.exists():
        lab.down()  # leftovers of an interrupted run: start clean
    pool_before = pool.read_pool()
    started = time.monotonic()
    status = lab.up(hugepages=LAB_HUGEPAGES)
    try:
        yield LabSession(lab, status, pool_before, time.monotonic() - started)
    finally:
        lab.down()


def require_lab(lab_session: LabSession | str) -> LabSession:
    """The session's lab, up (brought back up if a test took it down); skips without one,
    or fails with NUMA_MIGRATE_REQUIRE_LAB=1."""
    if isinstance(lab_session, str):
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{lab_session} ({REQUIRE_ENV}=1)")
        pytest.skip(lab_session)
    if not lab_session.lab.status().up:
        lab_session.lab.up(hugepages=LAB_HUGEPAGES)
    return lab_session


@pytest.fixture
def lab_env(lab_session: LabSession | str) -> LabSession:
    """The session's lab, up (see :func:`require_lab`)."""
    return require_lab(lab_session)


@pytest.fixture
def lab(lab_env: LabSession) -> Lab:
    """The running lab."""
    return lab_env.lab


DOWN_TEST = "tests/e2e/test_lab.py::test_down_cleans_everything"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the test that takes the lab down after every other test of the session (the lab
    is brought up once; taking it down in the middle would cost another ``up``)."""
    last = [item for item in items if item.nodeid.endswith(DOWN_TEST)]
    if last:
        items[:] = [item for item in items if item not in last] + last

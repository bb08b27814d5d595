"""The real OpenStack lab (``numa-migrate lab openstack up``), once per session.

It runs in the lab's default directory (``$NUMA_MIGRATE_LAB_DIR`` or
/var/lib/numa-migrate/lab): its ports are fixed, so there is one per machine. A lab that is
already up is reused and left up; one these tests brought up (the OpenStack, and the libvirt
lab under it) is taken down at the end.
Without root or the packages the tests are skipped with the reason -- or fail when
``NUMA_MIGRATE_REQUIRE_OPENSTACK=1`` (scripts/test.sh sets it: CI cannot skip them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.lab import Lab, LabUnavailableError
from numa_migrate.lab.openstack import CLOUD_NAME, OpenStackLab

REQUIRE_ENV = "NUMA_MIGRATE_REQUIRE_OPENSTACK"
PINNED_HUGE = {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "large",
               "hw:numa_nodes": "1"}


@dataclass
class Stack:
    lab: OpenStackLab
    env: dict[str, str]
    up_seconds: float
    brought_up: bool
    made: list[tuple[str, str]] = field(default_factory=list)  # (kind, id) to delete

    @property
    def api(self) -> Any:
        from numa_migrate.cloud.api import connect_cloud

        os.environ.update(self.env)
        return connect_cloud(CLOUD_NAME)


@pytest.fixture(scope="session")
def stack_session() -> Iterator[Stack | str]:
    if os.geteuid() != 0:
        yield "the OpenStack lab needs root"
        return
    lab = OpenStackLab(Lab.at())
    was_up = lab.status().up
    libvirt_was_up = lab.lab.status().up
    started = time.monotonic()
    try:
        lab.up()
    except LabUnavailableError as exc:
        yield f"the OpenStack lab cannot run here: {exc}"
        return
    env = {"OS_CLIENT_CONFIG_FILE": str(lab.paths.clouds_yaml), "OS_CLOUD": CLOUD_NAME}
    try:
        yield Stack(lab, env, time.monotonic() - started, not was_up)
    finally:
        if not was_up:
            lab.down()
        if not libvirt_was_up:
            lab.lab.down()  # the libvirt lab under it, when the session brought it up too


@pytest.fixture
def stack(stack_session: Stack | str) -> Iterator[Stack]:
    """The OpenStack lab, up; what a test makes (servers, flavors) is deleted after it."""
    if isinstance(stack_session, str):
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{stack_session} ({REQUIRE_ENV}=1)")
        pytest.skip(stack_session)
    yield stack_session
    from numa_migrate.cloud import nova

    errors = nova.delete_made(stack_session.api, stack_session.made)
    stack_session.made.clear()
    assert not errors, errors


def boot(stack: Stack, host: str, specs: dict[str, str], *, vcpus: int = 1,
         ram: int = 64, prefix: str = "nm-e2e") -> Any:
    """A server booted on ``host`` with a flavor of ``specs``; deleted after the test.

    Nova's compute may still count a deleted server that was live-migrated to it until its
    periodic resource update: a boot refused for resources is retried for up to 90 s."""
    from numa_migrate.cloud import nova

    api = stack.api
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    flavor = nova.create_flavor(api, name, vcpus=vcpus, ram_mib=ram, extra_specs=specs)
    stack.made.append(("flavor", flavor))
    image = nova.find_image(api, "numa-migrate-counter")
    assert image is not None, "lab openstack up uploads the counter image"
    deadline = time.monotonic() + 90
    while True:
        server_id = nova.boot_server(api, name, flavor, image, host)
        stack.made.append(("server", server_id))
        server = nova.wait_server(api, server_id)
        stale = "Insufficient compute resources" in (server.fault or "")
        if server.status == "ACTIVE" or not stale or time.monotonic() > deadline:
            break
        nova.delete_server(api, server_id)
        time.sleep(5)
    assert server.status == "ACTIVE", f"boot on {host}: {server.fault}"
    assert server.host == host
    return server


def cli(stack: Stack, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``numa-migrate ARGS`` as an operator runs it, with the lab's credentials."""
    env = {**os.environ, **stack.env}
    return subprocess.run([sys.executable, "-m", "numa_migrate", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)


def cli_json(stack: Stack, *args: str) -> tuple[int, Any, str]:
    done = cli(stack, *args, "--json")
    try:
        doc = json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        pytest.fail(f"not JSON: {done.stdout[:500]} / {done.stderr[-500:]}")
    return done.returncode, doc, done.stderr


RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"

"""Record the OpenStack lab's real answers for the cloud drain's replay tests.

Run as root with the OpenStack lab up (``numa-migrate lab openstack up``)::

    .venv/bin/python -m tests.openstack.record_drain tests/fixtures/openstack-drain

With a pinned server on lab-src and a blocker holding lab-dst's one dedicated CPU, it records
``drain lab-src --cloud`` (nowhere to go) and a move our checks refuse; then, the blocker
gone, ``drain lab-src --cloud`` again (a move to lab-dst), the move through Nova with its
validation, and the same move once more (already done). The libvirt state of both lab hosts
is saved beside each drain. Everything it made is deleted. Nothing is written by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from numa_migrate.cli.cloud import CloudTarget
from numa_migrate.cloud import nova
from numa_migrate.cloud.api import connect_cloud
from numa_migrate.cloud.drainmoves import run_cloud_move
from numa_migrate.cloud.record import RecordingApi
from numa_migrate.lab import Lab
from numa_migrate.lab.openstack import CLOUD_NAME, OpenStackLab
from tests.openstack.record import SPECS, libvirt_state


def main(out: Path) -> None:
    stack = OpenStackLab(Lab.at())
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(stack.paths.clouds_yaml)
    api = connect_cloud(CLOUD_NAME)
    computes = CloudTarget(CLOUD_NAME, None, None, ()).computes()
    out.mkdir(parents=True, exist_ok=True)
    for old in (*out.glob("*.jsonl"), *out.glob("*.libvirt.json")):
        old.unlink()
    made: list[tuple[str, str]] = []
    image = nova.find_image(api, "numa-migrate-counter")
    assert image is not None

    def boot(name: str, specs: dict[str, str], host: str) -> nova.Server:
        flavor = nova.create_flavor(api, name, vcpus=1, ram_mib=64, extra_specs=specs)
        made.append(("flavor", flavor))
        for _ in range(20):
            server_id = nova.boot_server(api, name, flavor, image, host)
            made.append(("server", server_id))
            server = nova.wait_server(api, server_id)
            if server.status == "ACTIVE":
                return server
            nova.delete_server(api, server_id)
            time.sleep(5)
        raise SystemExit(f"cannot boot {name} on {host}")

    def run(name: str, *args: str) -> None:
        env = {**os.environ, "NUMA_MIGRATE_RECORD": str(out / f"{name}.jsonl")}
        done = subprocess.run([sys.executable, "-m", "numa_migrate", *args, "--json"],
                              env=env, capture_output=True, text=True, check=False)
        print(f"{name}: exit {done.returncode} {done.stderr.strip()[-300:]}", file=sys.stderr)
        libvirt_state(stack, out / f"{name}.libvirt.json")

    def move(name: str, server: nova.Server) -> None:
        outcome = run_cloud_move(RecordingApi(api, out / f"{name}.jsonl"), computes,
                                 server.id, "lab-src", "lab-dst")
        print(f"{name}: {json.dumps(outcome.as_dict())}", file=sys.stderr)

    try:
        blocker = boot("rec-drain-blocker", {"hw:cpu_policy": "dedicated"}, "lab-dst")
        server = boot("rec-drain", SPECS, "lab-src")
        run("drain-blocked", "drain", "lab-src", "--cloud", CLOUD_NAME)
        move("move-refused", server)
        nova.delete_server(api, blocker.id)
        time.sleep(15)  # the lab's computes free a deleted server's pins within 10 s
        run("drain", "drain", "lab-src", "--cloud", CLOUD_NAME)
        move("move-done", server)
        move("move-again", server)
    finally:
        nova.delete_made(api, made)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/fixtures/openstack-drain"))

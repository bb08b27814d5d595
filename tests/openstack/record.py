"""Record the OpenStack lab's real answers for the adapter's replay tests.

Run as root with the OpenStack lab up (``numa-migrate lab openstack up``)::

    .venv/bin/python -m tests.openstack.record tests/fixtures/openstack

It boots servers, runs the real commands with ``NUMA_MIGRATE_RECORD`` set (every request
and Nova's answer to it go to a JSON Lines file), asks Nova for a live migration it must
refuse, and deletes everything it made. Nothing in the fixtures is written by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from numa_migrate.cloud import nova
from numa_migrate.cloud.api import connect_cloud
from numa_migrate.cloud.record import RecordingApi
from numa_migrate.hypervisor.libvirt import connection
from numa_migrate.lab import HOST_NAMES, Lab
from numa_migrate.lab.openstack import CLOUD_NAME, OpenStackLab

SPECS = {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "large", "hw:numa_nodes": "1"}


def main(out: Path) -> None:
    stack = OpenStackLab(Lab.at())
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(stack.paths.clouds_yaml)
    api = connect_cloud(CLOUD_NAME)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jsonl"):
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
        print(f"{name}: exit {done.returncode}", file=sys.stderr)

    try:
        blocker = boot("rec-blocker", {"hw:cpu_policy": "dedicated"}, "lab-dst")
        server = boot("rec-pinned", SPECS, "lab-src")
        run("explain-no-room", "explain", "--cloud", CLOUD_NAME, "--server", server.name)
        libvirt_state(stack, out / "explain-no-room.libvirt.json")
        recording = RecordingApi(api, out / "live-migrate-refused.jsonl")
        try:
            nova.live_migrate(recording, server.id, "lab-dst")
        except nova.NovaRefusedError as exc:
            print(f"Nova refused: {exc.fault}", file=sys.stderr)
        nova.wait_server(recording, server.id)
        nova.migrations(recording, server.id)
        nova.last_live_migration_failure(recording, server.id)
        nova.delete_server(api, blocker.id)
        time.sleep(15)  # the lab's computes free a deleted server's pins within 10 s
        run("migrate-completed", "migrate", server.id, "--cloud", CLOUD_NAME, "--to",
            "lab-dst")
        run("validate", "validate", server.id, "--cloud", CLOUD_NAME)
        run("preflight", "preflight", "--cloud", CLOUD_NAME)
        run("server-not-found", "validate", "no-such-server", "--cloud", CLOUD_NAME)
    finally:
        nova.delete_made(api, made)


def libvirt_state(stack: OpenStackLab, path: Path) -> None:
    """Both lab hosts as libvirt shows them: capabilities and every domain's XML."""
    state = {}
    for host in HOST_NAMES:
        with connection(stack.lab.uri(host), host) as conn:
            state[host] = {"capabilities": conn.capabilities(), "domains": [
                {"xml": d.xml, "persistent_xml": d.persistent_xml, "active": d.active}
                for d in conn.domains()]}
    path.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/fixtures/openstack"))

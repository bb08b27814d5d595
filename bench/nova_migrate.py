"""`migrate --cloud` against a plain `openstack server migrate --live-migration --host`, in one run.

On the OpenStack lab (``numa-migrate lab openstack up``, root), one pinned huge-page server
(1 dedicated vCPU, 64 MiB, ``hw:mem_page_size=large``, ``hw:numa_nodes=1``) is moved between
lab-src and lab-dst, alternately by each tool (ABBA order, each tool in both directions):

- **numa-migrate**: ``numa-migrate migrate SERVER --cloud numa-migrate-lab --to HOST --json``
  as an operator runs it: read the server, the computes, Placement and both hosts' libvirt,
  our fit and Nova's replayed search, Nova's live-migration API with the host, polling of
  Nova's migration record every second, then ``validate`` (Nova's view, live and persistent
  XML, /proc);
- **openstack**: ``openstack --os-compute-api-version 2.79 server migrate --live-migration
  --host HOST --wait SERVER`` (openstackclient polls the server until it is ACTIVE again).

Printed: the medians of the whole command's wall time per tool and their ratio. Nova's own
migration time is inside both.

    python bench/nova_migrate.py --rounds 4        # writes bench/results/nova-migrate.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from numa_migrate.cloud import nova
from numa_migrate.cloud.api import connect_cloud
from numa_migrate.lab import Lab
from numa_migrate.lab.openstack import CLOUD_NAME, OpenStackLab

SPECS = {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "large", "hw:numa_nodes": "1"}
RESULTS = Path(__file__).parent / "results" / "nova-migrate.json"


def _ours(server: str, to: str) -> float:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "numa_migrate", "migrate", server, "--cloud",
                           CLOUD_NAME, "--to", to, "--json"], capture_output=True, text=True,
                          check=False)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"numa-migrate failed ({done.returncode}): {done.stderr[-500:]}")
    return took


def _openstack(server: str, to: str) -> float:
    started = time.monotonic()
    done = subprocess.run(["openstack", "--os-compute-api-version", "2.79", "server", "migrate",
                           "--live-migration", "--host", to, "--wait", server],
                          capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"openstack failed ({done.returncode}): {done.stderr[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    stack = OpenStackLab(Lab.at())
    if not stack.status().up:
        raise SystemExit("the OpenStack lab is not up: numa-migrate lab openstack up")
    os.environ.update({"OS_CLIENT_CONFIG_FILE": str(stack.paths.clouds_yaml),
                       "OS_CLOUD": CLOUD_NAME})
    api = connect_cloud(CLOUD_NAME)
    image = nova.find_image(api, "numa-migrate-counter")
    assert image is not None
    flavor = nova.create_flavor(api, "nm-bench", vcpus=1, ram_mib=64, extra_specs=SPECS)
    server_id = None
    times: dict[str, list[float]] = {"numa-migrate": [], "openstack": []}
    try:
        for _ in range(20):
            server_id = nova.boot_server(api, "nm-bench", flavor, image, "lab-src")
            if nova.wait_server(api, server_id).status == "ACTIVE":
                break
            nova.delete_server(api, server_id)
            server_id = None
            time.sleep(5)
        assert server_id is not None, "cannot boot the benchmark server"
        where = "lab-src"
        order = ["numa-migrate", "openstack", "openstack", "numa-migrate"]
        for round_ in range(args.rounds):
            for tool in order:
                to = "lab-dst" if where == "lab-src" else "lab-src"
                took = (_ours if tool == "numa-migrate" else _openstack)(server_id, to)
                times[tool].append(took)
                where = to
                print(f"round {round_ + 1}: {tool:<12} → {to}: {took:.2f} s", file=sys.stderr)
    finally:
        if server_id is not None:
            nova.delete_server(api, server_id)
        nova.delete_flavor(api, flavor)
    medians = {tool: statistics.median(t) for tool, t in times.items()}
    ratio = medians["numa-migrate"] / medians["openstack"]
    doc = {"rounds": args.rounds, "legs_per_tool": len(times["openstack"]),
           "median_s": {k: round(v, 2) for k, v in medians.items()},
           "min_s": {k: round(min(v), 2) for k, v in times.items()},
           "max_s": {k: round(max(v), 2) for k, v in times.items()},
           "ratio_numa_migrate_over_openstack": round(ratio, 2)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()

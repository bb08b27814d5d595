"""OpenStack mode on the real OpenStack lab: Nova moves the guest, numa-migrate explains,
drives and validates (issue 10). Nothing here is mocked: Keystone, Nova, Placement, Glance,
Neutron and two nova-computes on the two lab libvirtd daemons."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.cloud import nova
from numa_migrate.hypervisor.libvirt import connection
from tests.openstack.conftest import PINNED_HUGE, RESULTS, Stack, boot, cli, cli_json

pytestmark = pytest.mark.openstack


def _pins(stack: Stack, host: str, domain: str) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    """vCPU pins of ``domain`` on lab host ``host``: live and persistent, read from libvirt
    directly (not through numa-migrate's validation)."""
    with connection(stack.lab.lab.uri(host), host) as conn:
        dom = conn.lookup(domain)
        assert dom is not None, f"{domain} not on {host}"
        live = domain_from_xml(dom.xml())
        persistent_xml = dom.persistent_xml(migratable=False)
        assert persistent_xml is not None
        persistent = domain_from_xml(persistent_xml)
    return ({v: set(c) for v, c in live.vcpupin}, {v: set(c) for v, c in persistent.vcpupin})


def test_round_trip_nova_repins_and_validate_passes(stack: Stack) -> None:
    server = boot(stack, "lab-src", PINNED_HUGE)
    src_live, src_persistent = _pins(stack, "lab-src", server.instance_name)
    assert src_live == src_persistent == {0: {1}}  # lab-src dedicates CPU 1

    started = time.monotonic()
    rc, doc, err = cli_json(stack, "migrate", server.id, "--cloud", "numa-migrate-lab",
                            "--to", "lab-dst")
    there_s = time.monotonic() - started
    assert rc == 0, err
    assert doc["outcome"] == "completed" and doc["destination"] == "lab-dst"
    assert doc["nova_migration"]["status"] == "completed"
    assert doc["validation"]["passed"] is True
    assert doc["validation"]["nova_topology"]["cells"][0]["pins"] == {"0": 0}
    dst_live, dst_persistent = _pins(stack, "lab-dst", server.instance_name)
    assert dst_live == dst_persistent == {0: {0}}  # re-pinned, live and persistent

    rc, doc, err = cli_json(stack, "validate", server.id, "--cloud", "numa-migrate-lab")
    assert rc == 0, err
    names = {c["name"]: c["status"] for c in doc["checks"]}
    assert names["nova-pins-exclusive"] == "passed"
    assert names["vcpu_pins_planned"] == "passed"
    assert names["vcpu_affinity"] == "passed", doc

    # back, without --to: the best ranked compute (the only other one)
    rc, doc, err = cli_json(stack, "migrate", server.name, "--cloud", "numa-migrate-lab")
    assert rc == 0, err
    assert doc["destination"] == "lab-src" and doc["validation"]["passed"] is True
    assert _pins(stack, "lab-src", server.instance_name) == ({0: {1}}, {0: {1}})
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openstack-roundtrip.json").write_text(json.dumps(
        {"there_s": round(there_s, 2), "back_s": doc["seconds"], "up_s": stack.up_seconds},
        indent=2))


def test_no_room_explain_agrees_with_nova(stack: Stack) -> None:
    boot(stack, "lab-dst", {"hw:cpu_policy": "dedicated"}, prefix="nm-e2e-blocker")
    server = boot(stack, "lab-src", PINNED_HUGE)

    rc, doc, err = cli_json(stack, "explain", "--cloud", "numa-migrate-lab", "--server",
                            server.name)
    assert rc == 1, err
    assert doc["ranked_destinations"] == []
    (dst,) = [h for h in doc["hosts"] if h["host"] == "lab-dst"]
    assert dst["fits"] is False
    reasons = [r["message"] for c in dst["cells"] for r in c["reasons"]]
    assert any("dedicated" in r for r in reasons), reasons  # per cell: why not

    before = {m.id for m in nova.migrations(stack.api, server.id)}
    done = cli(stack, "migrate", server.id, "--cloud", "numa-migrate-lab", "--to", "lab-dst")
    assert done.returncode == 1, done.stderr
    assert "NoValidHost" in done.stderr
    assert {m.id for m in nova.migrations(stack.api, server.id)} == before  # Nova not asked

    # Nova, asked anyway, refuses too
    refused = ""
    try:
        nova.live_migrate(stack.api, server.id, "lab-dst")
    except nova.NovaRefusedError as exc:
        refused = exc.fault
    after = nova.wait_server(stack.api, server.id)
    if not refused:
        fresh = [m for m in nova.migrations(stack.api, server.id) if m.id not in before]
        refused = fresh[0].status if fresh else ""
        assert refused in ("error", "failed"), fresh
    assert after.host == "lab-src" and after.status == "ACTIVE"


def test_matrix_through_nova(stack: Stack, tmp_path: Path) -> None:
    report = tmp_path / "nova-matrix.html"
    started = time.monotonic()
    done = cli(stack, "validate-matrix", "--cloud", "numa-migrate-lab", "--source", "lab-src",
               "--destination", "lab-dst", "--only", "numa-1", "--only", "pin-mixed",
               "--only", "pages-large", "--only", "refuse-no-room", "--only", "numa-2",
               "--report", str(report), "--json", timeout=1200)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    status = {s["id"]: s["status"] for s in doc["scenarios"]}
    assert status == {"numa-1": "passed", "pin-mixed": "passed", "pages-large": "passed",
                      "refuse-no-room": "passed", "numa-2": "skipped"}, doc
    html = report.read_text()
    assert "Zed" in html and "through Nova" in html
    api = stack.api
    listed = api.request("compute", "GET", "/servers/detail?all_tenants=1",
                         microversion="2.79").body["servers"]
    assert not [s["name"] for s in listed if s["name"].startswith("nm-matrix-")]
    flavors = api.request("compute", "GET", "/flavors?is_public=None",
                          microversion="2.79").body["flavors"]
    assert not [f["name"] for f in flavors if f["name"].startswith("nm-matrix-")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openstack-matrix.json").write_text(json.dumps(
        {"seconds": round(seconds, 1), "scenarios": status}, indent=2))


def test_preflight_reads_the_cloud(stack: Stack) -> None:
    rc, doc, err = cli_json(stack, "preflight", "--cloud", "numa-migrate-lab")
    assert rc == 0, err
    assert any("zed" in f["message"].lower() for f in doc["findings"]), doc


# ------------------------------------------------------------------------- bad input


def test_unknown_cloud_is_one_line_exit_4(stack: Stack) -> None:
    done = cli(stack, "explain", "--cloud", "no-such-cloud", "--server", "x")
    assert done.returncode == 4
    assert done.stderr.count("\n") == 1 and "no-such-cloud" in done.stderr


def test_refused_credentials_exit_4(stack: Stack, tmp_path: Path) -> None:
    clouds = tmp_path / "clouds.yaml"
    text = stack.lab.paths.clouds_yaml.read_text()
    password = next(line.split(":", 1)[1].strip() for line in text.splitlines()
                    if line.strip().startswith("password:"))
    clouds.write_text(text.replace(password, "wrong-" + password))
    env_done = cli_with(stack, {"OS_CLIENT_CONFIG_FILE": str(clouds)}, "validate", "x",
                        "--cloud", "numa-migrate-lab")
    assert env_done.returncode == 4, env_done.stderr
    assert "credentials were refused" in env_done.stderr


def cli_with(stack: Stack, extra: dict[str, str], *args: str) -> object:
    import os
    import subprocess
    import sys

    env = {**os.environ, **stack.env, **extra}
    return subprocess.run([sys.executable, "-m", "numa_migrate", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_unreachable_api_exit_4(stack: Stack, tmp_path: Path) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(stack.lab.paths.clouds_yaml.read_text().replace(":5000/", ":5999/"))
    done = cli_with(stack, {"OS_CLIENT_CONFIG_FILE": str(clouds)}, "explain", "--cloud",
                    "numa-migrate-lab", "--server", "x")
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_unknown_server_and_not_a_compute_exit_2(stack: Stack) -> None:
    done = cli(stack, "validate", "no-such-server", "--cloud", "numa-migrate-lab")
    assert done.returncode == 2 and "no server named" in done.stderr
    server = boot(stack, "lab-src", PINNED_HUGE)
    done = cli(stack, "migrate", server.id, "--cloud", "numa-migrate-lab", "--to", "lab-zzz")
    assert done.returncode == 2 and "not a nova-compute host" in done.stderr
    done = cli(stack, "migrate", server.id, "--cloud", "numa-migrate-lab", "--to", "lab-src")
    assert done.returncode == 2 and "already runs on lab-src" in done.stderr


def test_server_without_numa_exit_2(stack: Stack) -> None:
    server = boot(stack, "lab-src", {})
    done = cli(stack, "explain", "--cloud", "numa-migrate-lab", "--server", server.id)
    assert done.returncode == 2
    assert "has no NUMA topology" in done.stderr


def test_lab_openstack_status_json(stack: Stack) -> None:
    done = cli(stack, "lab", "openstack", "status", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["up"] is True and doc["computes"] == {"lab-src": "up", "lab-dst": "up"}
    assert {s["name"] for s in doc["services"] if s["running"]} >= {
        "mariadb", "rabbitmq", "keystone", "nova-api", "nova-compute-lab-src",
        "nova-compute-lab-dst"}


def test_demo_openstack_part(stack: Stack) -> None:
    done = cli(stack, "demo", "--openstack", timeout=900)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    assert "5. OpenStack" in out and "Nova can live-migrate it to: lab-dst" in out
    assert "migration" in out and "completed" in out
    assert "placed as checked" in out
    api = stack.api
    listed = api.request("compute", "GET", "/servers/detail?all_tenants=1",
                         microversion="2.79").body["servers"]
    assert not [s["name"] for s in listed if s["name"].startswith("nm-demo-")]


def test_matrix_interrupted_leaves_nothing(stack: Stack) -> None:
    """Ctrl-C while the matrix's server runs: its server and flavor are deleted anyway."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, **stack.env}
    proc = subprocess.Popen([sys.executable, "-m", "numa_migrate", "validate-matrix", "--cloud",
                             "numa-migrate-lab", "--source", "lab-src", "--destination",
                             "lab-dst", "--only", "numa-1"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    api = stack.api

    def matrix_servers() -> list[str]:
        listed = api.request("compute", "GET", "/servers/detail?all_tenants=1",
                             microversion="2.79").body["servers"]
        return [s["name"] for s in listed if s["name"].startswith("nm-matrix-")]

    deadline = time.monotonic() + 120
    while not matrix_servers() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert matrix_servers(), "the matrix never booted its server"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0, err
    assert matrix_servers() == []
    flavors = api.request("compute", "GET", "/flavors?is_public=None",
                          microversion="2.79").body["flavors"]
    assert not [f["name"] for f in flavors if f["name"].startswith("nm-matrix-")]

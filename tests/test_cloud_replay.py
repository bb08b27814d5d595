"""The OpenStack adapter on answers recorded from the lab's real OpenStack (Zed).

Every fixture in tests/fixtures/openstack was written by ``python -m tests.openstack.record``
against ``numa-migrate lab openstack up``: Nova's, Placement's and Glance's answers as they
came, and the two lab hosts' libvirt capabilities and domains at the time. The tests below
replay them; the end-to-end tests in tests/openstack run the same paths on the live cloud.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.adapters.inventory import HostConfig, Inventory
from numa_migrate.adapters.inventory_live import read_live_host
from numa_migrate.cloud import nova
from numa_migrate.cloud.api import CloudError, CloudResponseError
from numa_migrate.cloud.computes import ComputeMap, placement_disagreements
from numa_migrate.cloud.explain import explain_server
from numa_migrate.cloud.record import ReplayApi
from numa_migrate.core.novaview import nova_view_checks, placement_from_nova
from numa_migrate.core.validation import Status
from numa_migrate.hypervisor.base import DomainState
from numa_migrate.hypervisor.memory import MemoryHost
from numa_migrate.preflight.cloudfacts import check_cloud

FIXTURES = Path(__file__).parent / "fixtures" / "openstack"
SPECS = {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "large", "hw:numa_nodes": "1"}
# the lab's CPU sets, as `lab openstack up` writes them into each compute's nova.conf
LAB_SETS = {"lab-src": (frozenset({1}), frozenset({0})),
            "lab-dst": (frozenset({0}), frozenset({1}))}


def replay(name: str) -> ReplayApi:
    return ReplayApi.load(FIXTURES / f"{name}.jsonl", name="numa-migrate-lab")


def first_path(name: str) -> str:
    return str(json.loads((FIXTURES / f"{name}.jsonl").read_text().splitlines()[0])["path"])


def server_id(name: str) -> str:
    return first_path(name).split("/")[2]


def lab_inventory() -> Inventory:
    return Inventory(Path("lab-inventory.toml"), tuple(
        HostConfig(host, f"memory:///{host}", "lab-inventory.toml", dedicated, shared)
        for host, (dedicated, shared) in LAB_SETS.items()))


def recorded_hosts(name: str) -> dict[str, MemoryHost]:
    state: dict[str, Any] = json.loads((FIXTURES / f"{name}.libvirt.json").read_text())
    hosts = {}
    for host, seen in state.items():
        memory = MemoryHost(host, seen["capabilities"])
        for dom in seen["domains"]:
            memory.add(dom["xml"], persistent=dom["persistent_xml"] is not None,
                       state=DomainState.RUNNING if dom["active"] else DomainState.SHUTOFF)
        hosts[host] = memory
    return hosts


def test_server_by_name_with_flavor_and_topology() -> None:
    api = replay("explain-no-room")
    server = nova.find_server(api, "rec-pinned")  # 404 by id, then the exact name
    assert server.flavor.extra_specs == SPECS
    assert (server.flavor.vcpus, server.flavor.ram_mib) == (1, 64)
    assert server.host == "lab-src" and server.instance_name
    assert server.status == "ACTIVE" and server.task_state is None
    assert server.image_id is not None
    assert nova.image_properties(api, server.image_id) == {}
    topology = nova.server_topology(api, server.id)
    assert topology is not None and topology.pagesize_kib == 2048
    (cell,) = topology.cells
    assert cell.host_node == 0 and cell.vcpus == {0} and dict(cell.pinning) == {0: 1}
    placement = placement_from_nova(topology)
    assert placement.cells[0].pinning == ((0, 1),)
    assert placement.cells[0].pagesize_kib == 2048


def test_computes_and_placement_agree_with_the_lab_cpu_sets() -> None:
    api = replay("explain-no-room")
    nova.find_server(api, "rec-pinned")
    services = nova.compute_services(api)
    assert {(s.host, s.state, s.status) for s in services} == {
        ("lab-src", "up", "enabled"), ("lab-dst", "up", "enabled")}
    providers = {p.name: p for p in nova.providers(api)}
    assert providers["lab-src"].inventories["PCPU"] == 1
    assert providers["lab-dst"].usages["PCPU"] == 1  # the blocker holds lab-dst's one PCPU
    assert providers["lab-dst"].free("PCPU") == 0
    for host, config in ((h, lab_inventory().host(h)) for h in LAB_SETS):
        assert placement_disagreements(config, providers[host], host_cpus=2) == []
    wrong = HostConfig("lab-src", "memory:///lab-src", "inv", frozenset({0, 1}), None)
    (said,) = placement_disagreements(wrong, providers["lab-src"], host_cpus=2)
    assert "Placement has PCPU 1 / VCPU 1" in said and "PCPU 2 / VCPU 0" in said


def test_explain_on_recorded_cloud_and_libvirt_says_why_not_per_cell() -> None:
    api = replay("explain-no-room")
    hosts = recorded_hosts("explain-no-room")
    computes = ComputeMap(lab_inventory(),
                          reader=lambda cfg: read_live_host(cfg, conn=hosts[cfg.name]))
    result = explain_server(api, "rec-pinned", computes)
    assert result.source == "lab-src"
    assert result.ranked() == []
    (dst,) = result.explanation.hosts
    assert dst.result.host == "lab-dst" and not dst.result.fits
    reasons = [r.message for v in dst.cells for r in v.reasons]
    assert any("dedicated" in r for r in reasons), reasons
    source_view = next(c for c in result.computes if c.host == "lab-src")
    assert "not a destination" in source_view.notes[0]


def test_nova_view_checks_on_recorded_topology() -> None:
    api = replay("explain-no-room")
    hosts = recorded_hosts("explain-no-room")
    server = nova.find_server(api, "rec-pinned")
    topology = nova.server_topology(api, server.id)
    assert topology is not None
    live = read_live_host(lab_inventory().host("lab-src"), conn=hosts["lab-src"])
    checks = {c.name: c for c in nova_view_checks(server.name, topology, live.capacity, {})}
    assert all(c.status is Status.PASSED for c in checks.values()), checks
    # the same pins seen from lab-dst, whose dedicated CPU is 0: Nova's record would be wrong
    dst = read_live_host(lab_inventory().host("lab-dst"), conn=hosts["lab-dst"])
    wrong = {c.name: c for c in nova_view_checks(server.name, topology, dst.capacity,
                                                 {"other": topology})}
    assert wrong["nova-pins-dedicated"].status is Status.FAILED
    assert wrong["nova-pins-exclusive"].status is Status.FAILED


def test_nova_refusal_is_read_from_the_instance_action() -> None:
    api = replay("live-migrate-refused")
    sid = server_id("live-migrate-refused")
    nova.live_migrate(api, sid, "lab-dst")  # Nova accepts the request (HTTP 202) ...
    assert nova.wait_server(api, sid).host == "lab-src"
    (record,) = nova.migrations(api, sid)
    assert record.status == "error" and record.dest_compute is None
    failure = nova.last_live_migration_failure(api, sid)  # ... and its conductor refuses
    assert failure is not None and failure.refused_before_moving
    assert failure.event == "conductor_live_migrate_instance"
    assert "No valid host" in failure.message


def test_completed_migration_record_and_sent_request() -> None:
    api = replay("migrate-completed")
    sid = server_id("migrate-completed")
    nova.live_migrate(api, sid, "lab-dst")
    ((_key, body),) = [(k, b) for k, b in api.sent if k[1] == "POST"]
    assert body == {"os-migrateLive": {"host": "lab-dst", "block_migration": "auto"}}
    assert "force" not in body["os-migrateLive"]  # never forced: Nova's checks still run
    recorded = [json.loads(line) for line in
                (FIXTURES / "migrate-completed.jsonl").read_text().splitlines()]
    assert [e["request"] for e in recorded if e["method"] == "POST"] == [body]
    statuses = [nova.migrations(api, sid)[0].status for _ in range(12)]
    assert "running" in statuses and statuses[-1] == "completed"
    hosts = [nova.get_server(api, sid).host for _ in range(12)]
    assert hosts[0] == "lab-src" and hosts[-1] == "lab-dst"


def test_server_not_found() -> None:
    with pytest.raises(nova.ServerNotFoundError, match="no-such-server"):
        nova.find_server(replay("server-not-found"), "no-such-server")


def test_preflight_facts_from_the_recorded_cloud() -> None:
    facts = nova.cloud_facts(replay("preflight"))
    assert facts.api_max_microversion == "2.93"
    assert {c.host for c in facts.computes} == {"lab-src", "lab-dst"}
    assert all(c.pcpu_total == 1 and c.vcpu_total == 1 for c in facts.computes)
    assert {s[0] for s in facts.other_services} >= {"nova-conductor", "nova-scheduler"}
    messages = " ".join(f.message for f in check_cloud(facts))
    assert "zed" in messages.lower()


def test_unrecorded_request_is_named() -> None:
    with pytest.raises(CloudError, match=r"no recorded answer to compute GET /os-aggregates"):
        replay("preflight").request("compute", "GET", "/os-aggregates", microversion="2.79")


def test_hostile_answer_names_the_field() -> None:
    """A recorded server answer with one field made hostile (a string for the vCPUs, a huge
    vCPU count): the error names the field, never a traceback or a silent default."""
    lines = (FIXTURES / "explain-no-room.jsonl").read_text().splitlines()
    exchanges = [json.loads(line) for line in lines]
    listing = next(e for e in exchanges if "/servers/detail" in e["path"])
    for bad, match in (("x", "flavor.vcpus: expected an integer"),
                       (10**9, "flavor.vcpus: 1000000000 is more than 4096")):
        listing["body"]["servers"][0]["flavor"]["vcpus"] = bad
        api = ReplayApi(exchanges, name="hostile")
        with pytest.raises(CloudResponseError, match=match):
            nova.find_server(api, "rec-pinned")

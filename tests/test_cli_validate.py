"""``numa-migrate validate`` against real domains of libvirt's test driver (test:///default)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from numa_migrate.cli.main import cli
from numa_migrate.core.destination import DestinationPlan
from numa_migrate.core.planjson import plan_to_json

libvirt = pytest.importorskip("libvirt")

URI = "test:///default"
UUID = "5a0e8c1d-3b2f-4e6a-9c7d-1f2e3d4c5b6a"


def domain_xml(name: str, pins: tuple[int, int], emulator: int, *, uuid: str = UUID) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{uuid}</uuid>"
        "<memory unit='MiB'>256</memory>"
        "<memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>"
        "<vcpu>2</vcpu><cputune>"
        f"<vcpupin vcpu='0' cpuset='{pins[0]}'/><vcpupin vcpu='1' cpuset='{pins[1]}'/>"
        f"<emulatorpin cpuset='{emulator}'/></cputune>"
        "<numatune><memory mode='strict' nodeset='0'/><memnode cellid='0' mode='strict' "
        "nodeset='0'/></numatune><os><type>hvm</type></os>"
        "<cpu><numa><cell id='0' cpus='0-1' memory='256' unit='MiB'/></numa></cpu></domain>"
    )


DB = domain_xml("nm-val-db", (2, 3), 4)
PLAN = DestinationPlan(
    vcpu_pins={0: frozenset({2}), 1: frozenset({3})},
    emulator_pins=frozenset({4}),
    iothread_pins={},
    shared_cpuset=None,
    memory_nodes=frozenset({0}),
    cell_nodes={0: 0},
    hugepage_kib={0: 2048},
)


def _cleanup(conn: Any) -> None:
    for dom in conn.listAllDomains(0):
        if dom.name().startswith("nm-val-"):
            persistent = dom.isPersistent()
            if dom.isActive():
                dom.destroy()
            if persistent:
                dom.undefine()


@pytest.fixture
def conn() -> Iterator[Any]:
    """An open connection (it keeps the shared test host alive) with nm-val-db running.

    The driver's own ``test`` domain floats over every CPU, which rightly fails
    ``others_avoid_pinned``; it is stopped meanwhile and started again afterwards.
    """
    handle = libvirt.open(URI)
    _cleanup(handle)
    stopped = []
    for dom in handle.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        if not dom.name().startswith("nm-val-"):
            dom.destroy()
            stopped.append(dom)
    handle.defineXML(DB).create()
    try:
        yield handle
    finally:
        _cleanup(handle)
        for dom in stopped:
            dom.create()
        handle.close()


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(f'[hosts.lab]\nuri = "{URI}"\n\n[hosts.gone]\n'
                    'uri = "qemu+unix:///system?socket=/nonexistent/nm/virtqemud-sock"\n')
    return path


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_to_json(PLAN, domain="nm-val-db", host="lab")))
    return path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["validate", *args], env=env, catch_exceptions=False)


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def test_placed_as_planned(conn: Any, inventory: Path, plan_file: Path) -> None:
    result = run("nm-val-db", "--host", "lab", "--hosts", str(inventory), "--plan",
                 str(plan_file))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "nm-val-db on lab (test:///default)" in out
    assert "vCPU pins as planned" in out and "0->2, 1->3" in out
    assert "nm-val-db: placed as checked: " in out and " 0 failed" in out
    assert "skipped vcpu_affinity: test:///default is libvirt's TEST driver" in out


def test_json_document(conn: Any, inventory: Path, plan_file: Path) -> None:
    result = run("nm-val-db", "--host", "lab", "--hosts", str(inventory), "--plan",
                 str(plan_file), "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["passed"] is True and doc["domain"] == "nm-val-db" and doc["host"] == "lab"
    assert doc["uri"] == URI and doc["driver"] == "TEST" and doc["plan"] == str(plan_file)
    assert doc["affinity_source"].startswith("none: test:///default is libvirt's TEST driver")
    checks = {c["name"]: c for c in doc["checks"]}
    for name in ("vcpu_pins_planned", "emulator_pins_planned", "emulator_isolated",
                 "persistent_pins", "persistent_numa", "pcpus_exclusive", "cpu_pools",
                 "numatune_strict", "numatune_nodes", "hugepages_planned",
                 "others_avoid_pinned"):
        assert checks[name]["status"] == "passed", checks[name]
    assert checks["vcpu_affinity"]["status"] == "skipped"
    assert doc["counts"]["failed"] == 0
    assert isinstance(doc["host_notes"], list) and doc["host_conflicts"] == []


def test_persistent_definition_keeping_the_source_pins_fails(
    conn: Any, inventory: Path, plan_file: Path
) -> None:
    """Live XML on the planned CPUs, persistent XML still on the source's (CVE-2020-17376)."""
    conn.defineXML(domain_xml("nm-val-db", (12, 13), 14))  # changes the persistent def only
    result = run("nm-val-db", "--host", "lab", "--hosts", str(inventory), "--plan",
                 str(plan_file), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    failed = {c["name"]: c for c in doc["checks"] if c["status"] == "failed"}
    assert set(failed) == {"persistent_pins"}
    assert "vCPU 0 on 12, expected 2" in failed["persistent_pins"]["detail"]
    assert "CVE-2020-17376" in failed["persistent_pins"]["detail"]
    table = run("nm-val-db", "--host", "lab", "--hosts", str(inventory), "--plan",
                str(plan_file))
    assert table.exit_code == 1
    assert "FAILED persistent_pins: persistent: vCPU 0 on 12" in table.stdout
    assert "NOT as planned" in table.stdout


def test_live_pins_off_plan_fail(conn: Any, inventory: Path, plan_file: Path) -> None:
    conn.lookupByName("nm-val-db").pinVcpu(1, tuple(i == 6 for i in range(16)))
    result = run("nm-val-db", "--host", "lab", "--hosts", str(inventory), "--plan",
                 str(plan_file), "--json")
    assert result.exit_code == 1
    failed = {c["name"] for c in json.loads(result.stdout)["checks"] if c["status"] == "failed"}
    assert failed == {"vcpu_pins_planned", "persistent_pins"}


def test_dedicated_cpu_shared_with_another_guest(conn: Any, inventory: Path) -> None:
    conn.createXML(domain_xml("nm-val-intruder", (3, 9), 10,
                              uuid="5a0e8c1d-3b2f-4e6a-9c7d-1f2e3d4c5b6b"), 0)
    result = run("nm-val-db", "--host", "lab", "--hosts", str(inventory), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    check = next(c for c in doc["checks"] if c["name"] == "pcpus_exclusive")
    assert check["status"] == "failed"
    assert check["detail"] == "CPU 3 also pinned by nm-val-intruder"
    assert doc["host_conflicts"] == ["CPU 3 is pinned by nm-val-db, nm-val-intruder"]


def test_without_a_plan_only_plan_free_checks_run(conn: Any, inventory: Path) -> None:
    result = run("nm-val-db", "--host", "lab", "--hosts", str(inventory), "--json")
    assert result.exit_code == 0
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["vcpu_pins_planned"]["status"] == "skipped"
    assert "--plan" in checks["vcpu_pins_planned"]["detail"]
    assert checks["numatune_nodes"]["status"] == "passed"  # from the pins and the host


def test_inventory_from_the_environment_and_the_working_directory(
    conn: Any, inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run("nm-val-db", "--host", "lab", env={"NUMA_MIGRATE_INVENTORY": str(inventory)})
    assert result.exit_code == 0, result.output
    work = tmp_path / "work"
    work.mkdir()
    (work / "inventory.toml").write_text(inventory.read_text())
    monkeypatch.chdir(work)
    monkeypatch.delenv("NUMA_MIGRATE_INVENTORY", raising=False)
    assert run("nm-val-db", "--host", "lab").exit_code == 0


def test_no_inventory_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NUMA_MIGRATE_INVENTORY", raising=False)
    monkeypatch.setenv("NUMA_MIGRATE_LAB_DIR", str(tmp_path / "no-lab"))
    line = one_error_line(run("db", "--host", "lab"))
    assert "no hosts inventory: give --hosts FILE, set NUMA_MIGRATE_INVENTORY" in line


def test_bad_inputs_are_one_line_and_exit_2(
    conn: Any, inventory: Path, plan_file: Path, tmp_path: Path
) -> None:
    hosts = ["--hosts", str(inventory)]
    line = one_error_line(run("nm-val-nope", "--host", "lab", *hosts))
    assert "host lab (test:///default) has no domain 'nm-val-nope' (domains: " in line
    line = one_error_line(run("nm-val-db", "--host", "nohost", *hosts))
    assert "no host 'nohost' in the inventory (hosts: lab, gone)" in line
    line = one_error_line(run("nm-val-db", "--host", "gone", *hosts))
    assert ("host gone: cannot connect to qemu+unix:///system?socket=/nonexistent/nm/"
            "virtqemud-sock") in line
    line = one_error_line(run("nm-val-db", "--host", "lab", "--hosts",
                              str(tmp_path / "missing.toml")))
    assert "missing.toml: hosts inventory not found" in line
    bad_inventory = tmp_path / "bad.toml"
    bad_inventory.write_text("[hosts.lab]\nuri = 'test:///default'\ncpu_set = '1'\n")
    assert "hosts.lab: unknown key 'cpu_set'" in one_error_line(
        run("nm-val-db", "--host", "lab", "--hosts", str(bad_inventory)))
    bad_plan = tmp_path / "bad-plan.json"
    bad_plan.write_text(json.dumps({**plan_to_json(PLAN), "vcpu_pins": {"0": "x"}}))
    assert "vcpu_pins[0]: 'x' is not a CPU id" in one_error_line(
        run("nm-val-db", "--host", "lab", *hosts, "--plan", str(bad_plan)))
    other_plan = tmp_path / "other-plan.json"
    other_plan.write_text(json.dumps(plan_to_json(PLAN, domain="web-1")))
    assert "the plan is for domain web-1, not nm-val-db" in one_error_line(
        run("nm-val-db", "--host", "lab", *hosts, "--plan", str(other_plan)))
    conn.defineXML(domain_xml("nm-val-off", (5, 6), 7,
                              uuid="5a0e8c1d-3b2f-4e6a-9c7d-1f2e3d4c5b6c"))
    assert "nm-val-off is defined on host lab but not running" in one_error_line(
        run("nm-val-off", "--host", "lab", *hosts))


def test_host_option_is_required() -> None:
    result = run("nm-val-db")
    assert result.exit_code == 2 and "Missing option '--host'" in result.output


def test_validate_reads_what_migrate_dry_run_json_writes(
    conn: Any, inventory: Path, tmp_path: Path
) -> None:
    from numa_migrate.adapters.domain import domain_from_xml
    from numa_migrate.cli.migrate import dry_run_json
    from numa_migrate.core.model.placement import Placement
    from numa_migrate.migrate.plan import MigrationPlan

    source_xml = domain_xml("nm-val-db", (6, 7), 5)
    plan = MigrationPlan(
        domain="nm-val-db", uuid=UUID, source="elsewhere", destination="lab", request=None,
        inference="pinned, 1 cell", placement=Placement(()), dest_plan=PLAN,
        source_info=domain_from_xml(source_xml), live_xml=DB, persistent_xml=DB,
        current_pagesize_kib=2048, source_live_xml=source_xml)
    document = tmp_path / "dry-run.json"
    document.write_text(json.dumps(dry_run_json(plan), indent=2))
    assert json.loads(document.read_text())["vcpu_pins"] == {"0": [2], "1": [3]}
    result = run("nm-val-db", "--host", "lab", "--hosts", str(inventory),
                 "--plan", str(document), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plan"] == str(document)


def test_a_refusal_document_is_not_a_plan(conn: Any, inventory: Path, tmp_path: Path) -> None:
    document = tmp_path / "no-room.json"
    document.write_text(json.dumps({"fits": False, "domain": "nm-val-db",
                                    "destination": "lab", "summary": "no", "reasons": []}))
    line = one_error_line(run("nm-val-db", "--host", "lab", "--hosts", str(inventory),
                              "--plan", str(document)))
    assert "is a refusal (fits: false), not a plan" in line

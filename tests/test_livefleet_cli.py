"""``--hosts`` on ``fleet``, ``where`` and ``drain``: the fleet read live.

The hosts are in-memory hosts (the hypervisor seam) carrying the fixtures' capabilities and
domain XML, put behind the connection the live read opens; one test reads libvirt's own test
driver (test:///default) through libvirt-python.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from numa_migrate.adapters import livefleet
from numa_migrate.adapters.inventory import HostConfig
from numa_migrate.cli.main import cli
from numa_migrate.hypervisor.memory import MemoryHost

XML = Path(__file__).parent / "fixtures" / "xml"
CAPS = (XML / "caps-2s-intel-smt.xml").read_text()


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Inventory cmp-a (running the fixtures' pinned guests) and cmp-b (idle)."""
    busy = MemoryHost("cmp-a", CAPS)
    for name in ("dom-pinned-2cell-2m", "dom-nova", "dom-sriov"):
        busy.add((XML / f"{name}.xml").read_text())
    machines = {"cmp-a": busy, "cmp-b": MemoryHost("cmp-b", CAPS)}

    @contextmanager
    def connect(config: HostConfig) -> Iterator[Any]:
        yield machines[config.name]

    monkeypatch.setattr(livefleet, "open_connection", connect)
    # no claims store in the test's state directory
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("NUMA_MIGRATE_DB", raising=False)
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[hosts.cmp-a]\nuri = "qemu+ssh://cmp-a/system"\n'
                         '[hosts.cmp-b]\nuri = "qemu+ssh://cmp-b/system"\n')
    yield inventory


def test_fleet_hosts_json_shows_the_running_guests_with_their_pins(hosts: Path) -> None:
    result = run("fleet", "--hosts", str(hosts), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["source"] == f"hosts inventory {hosts}"
    a, b = doc["hosts"]
    assert (a["name"], b["name"], b["guests"]) == ("cmp-a", "cmp-b", [])
    db = next(g for g in a["guests"] if g["name"] == "db-pinned-1")
    assert [c["cpu_pinning"] for c in db["cells"]] == [{"0": 2, "1": 22}, {"2": 12, "3": 32}]
    assert db["emulator_pins"] == [1, 21] and db["uuid"].startswith("3b1d6e2a")
    assert any("nfv-sriov-1 left out" in n for n in doc["notes"])


def test_fleet_hosts_table_lists_guests_and_notes(hosts: Path) -> None:
    result = run("fleet", "--hosts", str(hosts))
    assert result.exit_code == 0
    assert "db-pinned-1 (4 dedicated vCPUs" in result.output
    assert "Fleet notes:" in result.output and "nfv-sriov-1 left out" in result.output


def test_where_a_running_domain_can_go(hosts: Path) -> None:
    result = run("where", "db-pinned-1", "--hosts", str(hosts), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["source"]["host"] == "cmp-a"
    assert [c["cpu_pinning"] for c in doc["source"]["cells"]] == [
        {"0": 2, "1": 22}, {"2": 12, "3": 32}]
    assert [d["host"] for d in doc["destinations"]] == ["cmp-b"]
    assert doc["source"]["pagesize_kib"] == 2048


def test_where_a_domain_left_out_says_why(hosts: Path) -> None:
    result = run("where", "nfv-sriov-1", "--hosts", str(hosts))
    assert result.exit_code == 2
    assert result.output.startswith("error: guest 'nfv-sriov-1' is not in the guests of "
                                    "hosts inventory")
    assert "PCI devices but no NUMA placement" in result.output


def test_drain_a_live_host(hosts: Path) -> None:
    result = run("drain", "cmp-a", "--hosts", str(hosts), "--json")
    # nfv-sriov-1 runs on cmp-a but could not be modelled: no plan moves it, so the drain
    # cannot empty cmp-a (exit 1) and names it with the reason
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    moves = {m["guest"]: m for w in doc["waves"] for m in w["moves"]}
    assert sorted(moves) == ["db-pinned-1", "instance-0000002a"]
    assert {m["destination"] for m in moves.values()} == {"cmp-b"}
    assert any("nfv-sriov-1 left out" in n for n in doc["fleet_notes"])
    (stuck,) = doc["unplaceable"]
    assert stuck["guest"] == "nfv-sriov-1" and stuck["source"] == "cmp-a"
    assert stuck["reason"].startswith("not planned: has PCI devices but no NUMA placement")


@pytest.mark.parametrize(("args", "message"), [
    (["fleet", "--fleet", "{sample}", "--hosts", "{hosts}"],
     "give either --fleet FILE (a fleet file or snapshot) or --hosts FILE"),
    (["where", "x", "--fleet", "{sample}", "--hosts", "{hosts}"], "not both"),
    (["drain", "cmp-a", "--fleet", "{sample}", "--hosts", "{hosts}"], "not both"),
    (["drain", "cmp-a", "--db", "sqlite:///x.db"], "--db goes with --hosts"),
    (["drain", "cmp-z", "--hosts", "{hosts}"], "host(s) cmp-z not in hosts inventory"),
    (["fleet", "--hosts", "{missing}"], "inventory"),
])
def test_bad_fleet_sources_are_one_clear_line(hosts: Path, args: list[str],
                                              message: str) -> None:
    sample = hosts.parent / "sample.json"
    sample.write_text(run("fleet", "--json").output)  # any existing file will do
    values = {"sample": str(sample), "hosts": str(hosts), "missing": str(hosts) + ".nope"}
    result = run(*(a.format(**values) for a in args))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if "rror" in line]) == 1


def test_unreachable_host_is_a_note_and_draining_it_says_why(
        hosts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    down = MemoryHost("cmp-b", CAPS)
    down.fail("capabilities", "no route to host")
    real = livefleet.open_connection

    @contextmanager
    def connect(config: HostConfig) -> Iterator[Any]:
        if config.name == "cmp-b":
            yield down
        else:
            with real(config) as conn:
                yield conn

    monkeypatch.setattr(livefleet, "open_connection", connect)
    result = run("drain", "cmp-b", "--hosts", str(hosts))
    assert result.exit_code == 2
    assert "host(s) cmp-b not in hosts inventory" in result.output
    assert "cmp-b: not read, left out of the fleet" in result.output
    assert "no route to host" in result.output


def test_libvirt_test_driver_through_libvirt_python(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No in-memory host: the live read goes through libvirt-python to test:///default."""
    pytest.importorskip("libvirt")
    from numa_migrate.adapters.inventory import parse_inventory
    from numa_migrate.adapters.inventory_live import connect

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("NUMA_MIGRATE_DB", raising=False)
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[hosts.t]\nuri = "test:///default"\n')
    xml = ("<domain type='test'><name>nm-lf-pinned</name><memory unit='MiB'>256</memory>"
           "<vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' "
           "cpuset='3'/></cputune><numatune><memory mode='strict' nodeset='0'/></numatune>"
           "<os><type>hvm</type></os></domain>")
    handle = connect(parse_inventory(inventory.read_text(), path=inventory).host("t"))
    dom = handle.conn.defineXML(xml)  # type: ignore[attr-defined]
    try:
        dom.create()
        result = run("fleet", "--hosts", str(inventory), "--json")
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefine()
        handle.close()
    assert result.exit_code == 0, result.output
    [host] = json.loads(result.output)["hosts"]
    guest = next(g for g in host["guests"] if g["name"] == "nm-lf-pinned")
    assert guest["cells"][0]["cpu_pinning"] == {"0": 2, "1": 3}
    assert guest["cells"][0]["host_cell"] == 0


def test_a_live_snapshot_plans_like_the_live_fleet(hosts: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / "live.json"
    taken = run("fleet", "snapshot", "--hosts", str(hosts), "-o", str(snapshot), "--json")
    assert taken.exit_code == 0, taken.output
    assert json.loads(taken.output)["taken_from"] == f"hosts inventory {hosts}"
    live = json.loads(run("where", "db-pinned-1", "--hosts", str(hosts), "--json").output)
    offline = json.loads(run("where", "db-pinned-1", "--fleet", str(snapshot), "--json").output)
    assert offline["destinations"] == live["destinations"] and live["destinations"]
    assert offline["fleet_notes"] == live["fleet_notes"]
    drained = json.loads(run("drain", "cmp-a", "--fleet", str(snapshot), "--json").output)
    assert drained["waves"] == json.loads(
        run("drain", "cmp-a", "--hosts", str(hosts), "--json").output)["waves"]


def test_other_operators_claims_through_db(hosts: Path, tmp_path: Path) -> None:
    from numa_migrate.claims import ClaimStore
    from numa_migrate.core.fit.fitter import fit_guest
    from numa_migrate.core.request import Flavor, guest_from_flavor

    idle = json.loads(run("fleet", "--hosts", str(hosts), "--json").output)
    assert not any(c["pinned_cpus"] for c in idle["hosts"][1]["cells"])
    from numa_migrate.adapters.livefleet import live_fleet
    from numa_migrate.migrate.hosts import load_hosts

    cmp_b = live_fleet(load_hosts(hosts), hosts=["cmp-b"]).host("cmp-b")
    guest = guest_from_flavor(Flavor(4, 1024, {"hw:cpu_policy": "dedicated"}))
    placement = fit_guest(cmp_b, guest).placement
    assert placement is not None and guest.numa is not None
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    with ClaimStore.open(url) as store:
        claim = store.claim(cmp_b, guest.numa, placement, domain="vm-x", owner="bob",
                            ttl_s=600)
    doc = json.loads(run("fleet", "--hosts", str(hosts), "--db", url, "--json").output)
    from numa_migrate.core.cpuset import CpuSet

    pinned = frozenset().union(*(CpuSet.parse(c["pinned_cpus"])
                                 for c in doc["hosts"][1]["cells"]))
    assert pinned == placement.pinned_host_cpus()
    assert f"cmp-b: other operators' claims {claim.id} are counted as used" in doc["notes"]

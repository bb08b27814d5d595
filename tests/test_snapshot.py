"""Fleet snapshots: written whole, read back identical, hostile ones refused in one line."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numa_migrate.adapters.fleet import Fleet, PlacedGuest, load_fleet
from numa_migrate.adapters.inventory import parse_inventory
from numa_migrate.adapters.livefleet import live_fleet
from numa_migrate.adapters.snapshot import snapshot_doc, write_snapshot
from numa_migrate.cli.main import cli
from numa_migrate.core.errors import ParseError
from numa_migrate.hypervisor.memory import MemoryHost
from numa_migrate.migrate.hosts import Hosts
from tests.fleetgen import generate

XML = Path(__file__).parent / "fixtures" / "xml"
CAPS = (XML / "caps-2s-intel-smt.xml").read_text()
WHEN = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)


def same(a: Fleet, b: Fleet) -> None:
    """Identical hosts (topology, usage, devices), guests (request, placement, VFs), notes."""
    assert a.hosts == b.hosts
    assert [(g.name, g.host, g.guest, g.placement, g.pci_devices, g.uuid) for g in a.guests] \
        == [(g.name, g.host, g.guest, g.placement, g.pci_devices, g.uuid) for g in b.guests]
    assert a.notes == b.notes
    assert a.left_out == b.left_out


def round_trip(fleet: Fleet, tmp_path: Path) -> Fleet:
    path = tmp_path / "snap.json"
    write_snapshot(fleet, path, taken_at=WHEN)
    return load_fleet(path)


def test_the_sample_fleet_round_trips(tmp_path: Path) -> None:
    sample = load_fleet()
    back = round_trip(sample, tmp_path)
    same(sample, back)
    assert back.source == (f"snapshot {tmp_path / 'snap.json'} (taken 2026-12-04T16:00:00Z "
                           "from sample fleet (sample-fleet.json))")
    # the capabilities XML is inline, and kept: a snapshot of the snapshot is the same
    assert snapshot_doc(back, taken_at=WHEN)["hosts"] == snapshot_doc(sample,
                                                                      taken_at=WHEN)["hosts"]


def live(tmp_path: Path) -> Fleet:
    busy = MemoryHost("cmp-a", CAPS)
    for name in ("dom-pinned-2cell-2m", "dom-nova", "dom-mixed", "dom-1g", "dom-sriov",
                 "dom-shared-cpuset"):
        busy.add((XML / f"{name}.xml").read_text())
    inventory = parse_inventory('[hosts.cmp-a]\nuri = "qemu+ssh://a/system"\n'
                                '[hosts.cmp-b]\nuri = "qemu+ssh://b/system"\n'
                                'reserved_huge_pages = ["node:0,size:2048,count:64"]\n',
                                path=tmp_path / "inv.toml")
    return live_fleet(Hosts(inventory),
                      connections={"cmp-a": busy, "cmp-b": MemoryHost("cmp-b", CAPS)})


def test_a_live_fleet_round_trips_with_what_was_left_out(tmp_path: Path) -> None:
    fleet = live(tmp_path)
    back = round_trip(fleet, tmp_path)
    same(fleet, back)
    doc = json.loads((tmp_path / "snap.json").read_text())
    a, b = doc["hosts"]
    assert a["uri"] == "qemu+ssh://a/system" and a["capabilities_xml"] == CAPS
    assert b["reserved_huge_pages"] == [{"node": 0, "size_kib": 2048, "count": 64}]
    # nfv-sriov-1 is left out (a whole PCI device): what it uses is other usage (it has no
    # NUMA placement, so nothing per cell), and its note is kept
    assert any("nfv-sriov-1" in n for n in doc["notes"])
    assert [(o["host"], o["name"]) for o in doc["left_out"]] == [("cmp-a", "nfv-sriov-1")]
    db = next(g for g in a["guests"] if g["name"] == "db-pinned-1")
    assert db["uuid"] == "3b1d6e2a-9f47-4c58-8e0d-71a2c4b5d6e9"
    assert db["numa"]["cells"] == [
        {"shared_vcpus": "", "dedicated_vcpus": "0-1", "memory_mib": 2048},
        {"shared_vcpus": "", "dedicated_vcpus": "2-3", "memory_mib": 2048}]
    assert db["placement"]["cells"][1]["cpu_pinning"] == {"2": 12, "3": 32}
    assert db["placement"]["emulator_pins"] == [1, 21]


def test_other_usage_is_what_the_guests_do_not_explain(tmp_path: Path) -> None:
    busy = MemoryHost("cmp-a", CAPS)
    busy.add((XML / "dom-pinned-2cell-2m.xml").read_text())
    # a one-cell guest pinned over both host nodes: left out, its pins are other usage
    busy.add((XML / "dom-nova.xml").read_text().replace('cpuset="26"', 'cpuset="16"')
             .replace('<memnode cellid="0" mode="strict" nodeset="0"/>', "")
             .replace('<memory mode="strict" nodeset="0"/>', ""))
    inventory = parse_inventory('[hosts.cmp-a]\nuri = "x:///"\n', path="inv.toml")
    fleet = live_fleet(Hosts(inventory), connections={"cmp-a": busy})
    assert [g.name for g in fleet.guests] == ["db-pinned-1"]
    back = round_trip(fleet, tmp_path)
    same(fleet, back)
    [host] = json.loads((tmp_path / "snap.json").read_text())["hosts"]
    pinned = {u["cell"]: u["pinned_cpus"] for u in host["other_usage"]}
    assert pinned == {0: "4-6,25", 1: "16"}


def fleet_of(seed: int, hosts: int, guests: int) -> Fleet:
    state = generate(seed, hosts, guests)
    return Fleet("generated", state.hosts,
                 tuple(PlacedGuest(g.name, g.host, g.guest, g.placement, g.pci_devices)
                       for g in state.guests))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), hosts=st.integers(1, 6), guests=st.integers(0, 60))
def test_generated_fleets_round_trip(tmp_path: Path, seed: int, hosts: int,
                                     guests: int) -> None:
    fleet = fleet_of(seed, hosts, guests)
    same(fleet, round_trip(fleet, tmp_path))


# --------------------------------------------------------------------------- hostile input


@pytest.fixture(scope="module")
def good() -> dict[str, Any]:
    return snapshot_doc(load_fleet(), taken_at=WHEN)


def refused(tmp_path: Path, doc: object, raw: bytes | None = None) -> str:
    path = tmp_path / "bad.json"
    path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
    with pytest.raises(ParseError) as info:
        load_fleet(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def edit(doc: dict[str, Any], change: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    change(out)
    return out


def guest(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for h in doc["hosts"] for g in h["guests"] if g["name"] == name)


HOSTILE: list[tuple[str, Any, str]] = [
    ("version 2", lambda d: d.update(version=2),
     "version: 2 is not a snapshot version this numa-migrate reads (it reads version 1)"),
    ("version string", lambda d: d.update(version="1"), "version: '1' is not a snapshot"),
    ("version true", lambda d: d.update(version=True), "version: True is not a snapshot"),
    ("format", lambda d: d.update(format="numa-migrate fleet snapshot v2"),
     "format: must be 'numa-migrate fleet snapshot'"),
    ("unknown top field", lambda d: d.update(extra=1), "extra: unknown field"),
    ("huge note", lambda d: d.update(notes=["x" * 5000]),
     "notes[0]: 5000 characters, more than 4096"),
    ("huge host name", lambda d: d["hosts"][0].update(name="h" * 300),
     "hosts[0].name: 300 characters, more than 255"),
    ("duplicate host", lambda d: d["hosts"].append(copy.deepcopy(d["hosts"][0])),
     "hosts[3].name: host 'cmp-intel-01' is listed twice"),
    ("both xml and topology", lambda d: d["hosts"][0].update(topology={"cells": []}),
     "hosts[0]: give either capabilities_xml"),
    ("bad xml", lambda d: d["hosts"][0].update(capabilities_xml="<capabilities>"),
     "hosts[0].capabilities_xml"),
    ("pin on a taken CPU", lambda d: guest(d, "db-1")["placement"]["cells"][0].update(
        cpu_pinning={str(v): p for v, p in zip(range(8), [0, 1, 2, 3, 4, 5, 6, 7],
                                                 strict=True)}),
     "hosts[0].guests[0].placement: (db-1) does not fit cmp-intel-01 as recorded"),
    ("cell the host lacks", lambda d: guest(d, "web-1")["placement"]["cells"][0].update(
        host_cell=7), "host cell 7 does not exist"),
    ("pins of another guest", lambda d: guest(d, "nfv-1")["placement"]["cells"][0].update(
        cpu_pinning=guest(d, "db-1")["placement"]["cells"][0]["cpu_pinning"]),
     "(nfv-1) does not fit cmp-intel-01 as recorded"),
    ("more pages than the cell has", lambda d: d["hosts"][0]["other_usage"].append(
        {"cell": 0, "pages": [{"size_kib": 1048576, "count": 17}]}),
     "hosts[0].other_usage[0].pages[0]: 17 pages of 1048576 KiB used, cell 0 has 16"),
    ("a VF nobody has", lambda d: guest(d, "vnf-2").update(pci_devices=["0000:99:00.1"]),
     "0000:99:00.1 is not among the PCI devices of cmp-intel-01"),
    ("vCPUs outside the guest", lambda d: guest(d, "web-1")["numa"]["cells"][0].update(
        shared_vcpus="0-7"), "the cells' vCPUs are 0-7, the guest has vCPUs 0-3"),
    ("bad cpu list", lambda d: guest(d, "web-1")["numa"]["cells"][0].update(
        shared_vcpus="0-99999"), "shared_vcpus"),
    ("bad policy", lambda d: guest(d, "db-1")["numa"].update(cpu_policy="fast"),
     "cpu_policy: one of shared, dedicated, mixed (got 'fast')"),
]


@pytest.mark.parametrize(("change", "message"), [(c, m) for _, c, m in HOSTILE],
                         ids=[n for n, _, _ in HOSTILE])
def test_hostile_snapshots_are_one_line_naming_the_field(
        tmp_path: Path, good: dict[str, Any], change: Any, message: str) -> None:
    assert message in refused(tmp_path, edit(good, change))


def test_a_big_fleet_file_that_is_no_snapshot_is_refused(tmp_path: Path) -> None:
    raw = b'{"hosts": [], "pad": "' + b"x" * (17 * 2**20) + b'"}'
    assert "more than the 16 MiB allowed (only a fleet snapshot" in refused(tmp_path, None, raw)


def test_a_snapshot_with_its_fields_in_another_order_is_still_one(
        tmp_path: Path, good: dict[str, Any]) -> None:
    doc = {"hosts": good["hosts"], **{k: v for k, v in good.items() if k != "hosts"}}
    path = tmp_path / "reordered.json"
    path.write_text(json.dumps(doc))
    same(load_fleet(), load_fleet(path))


# --------------------------------------------------------------------------- command line


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_snapshot_command_and_every_fleet_command_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "fleet-snap.json"
    result = run("fleet", "snapshot", "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["hosts"], summary["guests"]) == (3, 9)
    assert summary["bytes"] == out.stat().st_size
    table = run("fleet", "--fleet", str(out))
    assert table.exit_code == 0 and "db-1 (8 dedicated vCPUs" in table.output
    sample_where = json.loads(run("where", "vnf-2", "--json").output)
    snap_where = json.loads(run("where", "vnf-2", "--fleet", str(out), "--json").output)
    assert snap_where["destinations"] == sample_where["destinations"]
    sample_drain = json.loads(run("drain", "cmp-intel-01", "--json").output)
    snap_drain = json.loads(run("drain", "cmp-intel-01", "--fleet", str(out), "--json").output)
    assert snap_drain["waves"] == sample_drain["waves"]
    pinned = ["--flavor-vcpus", "4", "--flavor-ram", "4096", "--extra-spec",
              "hw:cpu_policy=dedicated"]
    assert run("explain", "--fleet", str(out), *pinned).exit_code == 0
    assert run("fit", "--fleet", str(out), "--host", "cmp-small-01", *pinned).exit_code == 0


def test_snapshot_command_errors(tmp_path: Path) -> None:
    result = run("fleet", "snapshot", "-o", str(tmp_path / "nope" / "x.json"))
    assert result.exit_code == 2
    assert "cannot write the snapshot" in result.output
    result = run("fleet", "--json", "snapshot", "-o", str(tmp_path / "x.json"))
    assert result.exit_code == 2 and "after `fleet snapshot`" in result.output
    result = run("fleet", "snapshot")
    assert result.exit_code == 2 and "-o" in result.output


def test_a_drain_lists_the_guests_the_live_read_left_out(tmp_path: Path) -> None:
    """A domain that could not be modelled is on its host all the same: a drain of that
    host cannot empty it, and says so (exit 1), from a snapshot as from the live read."""
    fleet = live(tmp_path)
    path = tmp_path / "snap.json"
    write_snapshot(fleet, path, taken_at=WHEN)
    result = run("drain", "cmp-a", "--fleet", str(path), "--json", "--solver", "heuristic")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    stuck = {u["guest"]: u["reason"] for u in doc["unplaceable"]}
    assert stuck["nfv-sriov-1"].startswith("not planned: ")
    assert not doc["complete"]
    moved = {m["guest"] for w in doc["waves"] for m in w["moves"]}
    assert "nfv-sriov-1" not in moved


def test_a_left_out_guest_on_an_unknown_host_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    write_snapshot(live(tmp_path), path, taken_at=WHEN)
    doc = json.loads(path.read_text())
    doc["left_out"][0]["host"] = "cmp-zz"
    path.write_text(json.dumps(doc))
    with pytest.raises(ParseError, match=r"left_out.*cmp-zz.*not one of the snapshot's hosts"):
        load_fleet(path)


def test_snapshot_never_replaces_a_device_or_a_directory(tmp_path: Path) -> None:
    """`-o /dev/null` must not turn the device into a regular file (it once did)."""
    result = run("fleet", "snapshot", "-o", "/dev/null")
    assert result.exit_code == 2, result.output
    assert "not a regular file" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert Path("/dev/null").is_char_device()
    result = run("fleet", "snapshot", "-o", str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in result.output

"""SR-IOV/PCI devices from the real inputs into the fit (issue 11): capabilities sockets,
node-device XML with physical networks, fleet files with devices and guests' requests, and
the fit/explain command line with --pci-request."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.fleet import load_fleet
from numa_migrate.adapters.nodedev import pci_functions_from_nodedevs
from numa_migrate.cli.main import cli
from numa_migrate.core.errors import ParseError
from numa_migrate.core.model.pci import PciFunction
from numa_migrate.core.model.pcidev import DevType
from numa_migrate.core.pcidevices import PhysNets, fit_devices, take_devices

XML = Path(__file__).parent / "fixtures" / "xml"
NODEDEV = XML / "nodedev"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def functions() -> tuple[PciFunction, ...]:
    return pci_functions_from_nodedevs(
        (p.name, p.read_text()) for p in sorted(NODEDEV.glob("*.xml")))


def test_capabilities_give_each_cell_its_socket() -> None:
    two = host_from_capabilities((XML / "caps-2s-intel-smt.xml").read_text())
    assert [c.socket for c in two.cells] == [0, 1]
    epyc = host_from_capabilities((XML / "caps-epyc-4node.xml").read_text())
    assert len({c.socket for c in epyc.cells}) == 1 and epyc.cells[0].socket is not None


def test_node_devices_become_fit_devices_with_their_pfs_network() -> None:
    by_if = {d.address: d for d in fit_devices(
        functions(), nets=PhysNets({"physnet1": ("ens1f0",)}), busy={"0000:3b:02.1": "web"})}
    by_addr = {d.address: d for d in fit_devices(
        functions(), nets=PhysNets({"physnet2": ("0000:3b:00.0",)}), busy={})}
    vf = by_if["0000:3b:02.0"]
    assert vf.dev_type is DevType.VF and vf.parent_addr == "0000:3b:00.0"
    assert vf.physical_network == "physnet1" and not vf.allocated
    assert by_if["0000:3b:02.1"].allocated
    assert by_if["0000:3b:00.0"].dev_type is DevType.PF
    assert by_if["0000:3b:00.0"].physical_network == "physnet1"
    assert by_addr["0000:3b:02.0"].physical_network == "physnet2"
    # the ConnectX VF's PF is in no network
    assert by_if["0000:18:02.3"].physical_network is None
    taken = take_devices(by_addr.values(), ["0000:3b:02.0"])
    assert [d.address for d in taken if d.allocated] == ["0000:3b:02.0"]


def test_the_sample_fleet_holds_vfs_and_vnf2_holds_one_near_its_cell() -> None:
    fleet = load_fleet()
    intel = fleet.host("cmp-intel-01")
    held = [d for d in intel.pci_devices if d.allocated]
    assert len(held) == 1 and held[0].dev_type is DevType.VF
    (vnf,) = [g for g in fleet.guests if g.name == "vnf-2"]
    assert held[0].numa_node in {c.host_cell for c in vnf.placement.cells}


def _fleet(tmp_path: Path, host: dict[str, object]) -> Path:
    shutil.copy(XML / "caps-2s-intel-smt.xml", tmp_path / "caps.xml")
    for p in NODEDEV.glob("*.xml"):
        shutil.copy(p, tmp_path / p.name)
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"hosts": [{"name": "h1", "capabilities": "caps.xml", **host}]}))
    return path


NODEDEVS = sorted(p.name for p in NODEDEV.glob("*.xml"))


def test_a_fleet_host_reads_node_device_xml_with_physical_networks(tmp_path: Path) -> None:
    guest = {"name": "vnf", "vcpus": 2, "memory_mib": 1024,
             "extra_specs": {"hw:cpu_policy": "dedicated"},
             "pci_requests": [{"count": 2, "spec": [{"physical_network": "physnet1"}],
                               "numa_policy": "required"}]}
    fleet = load_fleet(_fleet(tmp_path, {"nodedevs": NODEDEVS,
                                         "physical_networks": {"physnet1": ["ens1f0"]},
                                         "guests": [guest]}))
    host = fleet.host("h1")
    held = sorted(d.address for d in host.pci_devices if d.allocated)
    assert len(held) == 2 and all(a.startswith("0000:3b:02.") for a in held)
    (placed,) = fleet.guests
    nodes = {d.numa_node for d in host.pci_devices if d.allocated}
    assert nodes == {c.host_cell for c in placed.placement.cells}


@pytest.mark.parametrize(("host", "message"), [
    ({"nodedevs": NODEDEVS, "pci_devices": []}, "either pci_devices or nodedevs"),
    ({"physical_networks": {"physnet1": ["ens1f0"]}}, "goes with nodedevs"),
    ({"nodedevs": NODEDEVS, "physical_networks": {"physnet1": ["not an if name!"]}},
     "neither a PCI address"),
    ({"nodedevs": ["missing.xml"]}, "not found"),
    ({"pci_devices": [{"address": "0000:3b:02.0", "vendor_id": "80861",
                       "product_id": "154c", "numa_node": 0}]}, "four hex digits"),
    ({"guests": [{"vcpus": 1, "memory_mib": 64, "extra_specs": {"hw:numa_nodes": "1"},
                  "pci_requests": [{"count": 1, "spec": [{"physnet": "x"}]}]}]},
     "unknown field (allowed: vendor_id"),
])
def test_bad_pci_parts_of_a_fleet_name_the_field(tmp_path: Path, host: dict[str, object],
                                                 message: str) -> None:
    with pytest.raises(ParseError, match=message.replace("(", r"\(")):
        load_fleet(_fleet(tmp_path, host))


def test_a_guest_whose_vfs_are_gone_does_not_fit_in_a_fleet(tmp_path: Path) -> None:
    guest = {"name": "vnf", "vcpus": 1, "memory_mib": 64,
             "extra_specs": {"hw:numa_nodes": "1"},
             "pci_requests": [{"count": 5, "spec": [{"physical_network": "physnet1"}]}]}
    with pytest.raises(ParseError, match=r"\(vnf\) does not fit on h1: PCI request 1"):
        load_fleet(_fleet(tmp_path, {"nodedevs": NODEDEVS,
                                     "physical_networks": {"physnet1": ["ens1f0"]},
                                     "guests": [guest]}))


def test_explain_with_a_pci_request_counts_free_devices_per_cell() -> None:
    result = run("explain", "--flavor-vcpus", "2", "--flavor-ram", "2048", "--extra-spec",
                 "hw:cpu_policy=dedicated", "--pci-request",
                 "physical_network=physnet1,count=2,numa_policy=required", "--json")
    doc = json.loads(result.output)
    assert "PCI: 2 devices matching physical_network=physnet1 (required)" in doc["summary"]
    hosts = {h["host"]: h for h in doc["hosts"]}
    epyc = hosts["cmp-epyc-01"]
    assert not epyc["fits"]
    assert [c["per_request"] for c in epyc["pci_free"]] == [[1], [1], [1], [1]]
    per_cell = [r for r in epyc["reasons"] if r["host_cell"] is not None]
    assert [r["code"] for r in per_cell] == ["pci_devices_short"] * 4
    assert "1 free here" in per_cell[0]["message"]
    assert hosts["cmp-intel-01"]["fits"]
    [taken] = hosts["cmp-intel-01"]["pci_devices"]
    assert len(taken) == 2 and len({a[:7] for a in taken}) == 1  # both from one node's PF
    assert doc["guest"]["pci_requests"][0]["numa_policy"] == "required"


def test_the_socket_policy_takes_devices_from_other_nodes_of_the_socket() -> None:
    args = ("fit", "--host", "cmp-epyc-01", "--flavor-vcpus", "2", "--flavor-ram", "2048",
            "--extra-spec", "hw:cpu_policy=dedicated", "--json", "--pci-request")
    socket = run(*args, "physical_network=physnet1,count=2,numa_policy=socket")
    assert socket.exit_code == 0 and len(json.loads(socket.output)["pci_devices"][0]) == 2
    required = run(*args, "physical_network=physnet1,count=2,numa_policy=required")
    assert required.exit_code == 1


def test_the_flavors_policy_applies_to_a_pci_request_without_one() -> None:
    result = run("fit", "--host", "cmp-epyc-01", "--flavor-vcpus", "2", "--flavor-ram", "2048",
                 "--extra-spec", "hw:cpu_policy=dedicated", "--extra-spec",
                 "hw:pci_numa_affinity_policy=socket", "--pci-request",
                 "physical_network=physnet1,count=2")
    assert result.exit_code == 0, result.output
    assert "PCI request 1:" in result.output


@pytest.mark.parametrize(("value", "message"), [
    ("physnet=physnet1", "--pci-request[0].spec[0].physnet: unknown field"),
    ("physical_network=physnet1,count=zero", "count='zero' is not a positive whole number"),
    ("physical_network=physnet1,numa_policy=near", "one of required, socket, legacy"),
    ("vendor_id=intel", "four hex digits"),
    ("physical_network", "is not KEY=VALUE"),
])
def test_bad_pci_requests_are_one_clear_line(value: str, message: str) -> None:
    result = CliRunner().invoke(cli, ["fit", "--host", "cmp-intel-01", "--flavor-vcpus", "1",
                                      "--flavor-ram", "64", "--pci-request", value])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_spec_dev_type_compares_case_insensitively() -> None:
    from numa_migrate.adapters.casefmt import answer_case

    case = {"id": "c", "host": {"cells": [{"id": 0, "pcpuset": [0, 1], "memory_mib": 1024}],
                                "pci_devices": [{"address": "0000:3b:02.0", "vendor_id": "8086",
                                                 "product_id": "154c", "numa_node": 0,
                                                 "dev_type": "type-VF"}]},
            "flavor": {"vcpus": 1, "memory_mib": 64,
                       "extra_specs": {"hw:cpu_policy": "dedicated"}},
            "pci_requests": [{"count": 1, "spec": [{"dev_type": "TYPE-vf"}]}]}
    assert answer_case(case)["fits"] is True
    case["pci_requests"] = [{"count": 1, "spec": [{"dev_type": "type-vdpa"}]}]
    error = answer_case(case)["error"]
    assert error["type"] == "InvalidCase" and "type-VF, type-PF, type-PCI" in error["message"]


def test_a_fleets_node_device_files_are_bounded_in_all(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import numa_migrate.adapters.fleet as fleet_module

    monkeypatch.setattr(fleet_module, "MAX_NODEDEV_BYTES", 4096)
    with pytest.raises(ParseError, match="node-device files are more than 0 MiB in all"):
        load_fleet(_fleet(tmp_path, {"nodedevs": NODEDEVS,
                                     "physical_networks": {"physnet1": ["ens1f0"]}}))

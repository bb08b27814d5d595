"""The fleet read live from a hosts inventory (adapters/livefleet.py), on in-memory hosts.

The hosts are :class:`MemoryHost` s (the hypervisor seam's in-memory implementation) with
the real capabilities XML of tests/fixtures/xml and the fixtures' domain XML running on them;
the expected placements are read off those XML files (their <vcpupin>, <memnode>, pages).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from numa_migrate.adapters.drainstate import fleet_state
from numa_migrate.adapters.inventory import InventoryError, parse_inventory
from numa_migrate.adapters.inventory_live import LiveHostError
from numa_migrate.adapters.livefleet import live_fleet
from numa_migrate.claims import ClaimStore
from numa_migrate.core.drain import plan_drain
from numa_migrate.core.fit.fitter import fit_guest
from numa_migrate.core.model.guest import CPUPolicy, EmulatorPolicy
from numa_migrate.core.request import Flavor, guest_from_flavor
from numa_migrate.hypervisor.memory import MemoryHost
from numa_migrate.lab.flavored import FlavoredGuest, flavored_guest
from numa_migrate.migrate.hosts import Hosts

XML = Path(__file__).parent / "fixtures" / "xml"
CAPS = (XML / "caps-2s-intel-smt.xml").read_text()
NODEDEVS = [(p.stem, p.read_text()) for p in sorted((XML / "nodedev").glob("*.xml"))]
RUNNING = ["dom-pinned-2cell-2m", "dom-nova", "dom-mixed", "dom-1g", "dom-sriov",
           "dom-shared-cpuset"]
PHYSNET = 'physical_networks = { physnet1 = ["0000:3b:00.0"] }\n'


def fixture(name: str) -> str:
    return (XML / f"{name}.xml").read_text()


def inventory(*names: str, extra: str = "") -> Hosts:
    text = "".join(f'[hosts.{n}]\nuri = "memory:///{n}"\n{extra}' for n in names)
    return Hosts(parse_inventory(text, path="inv.toml"))


@pytest.fixture
def busy() -> MemoryHost:
    host = MemoryHost("cmp-a", CAPS)
    for name in RUNNING:
        host.add(fixture(name))
    return host


def test_running_domains_become_guests_placed_as_they_run(busy: MemoryHost) -> None:
    idle = MemoryHost("cmp-b", CAPS)
    fleet = live_fleet(inventory("cmp-a", "cmp-b"), connections={"cmp-a": busy, "cmp-b": idle})
    assert [h.name for h in fleet.hosts] == ["cmp-a", "cmp-b"]
    guests = {g.name: g for g in fleet.guests}
    assert sorted(guests) == ["db-pinned-1", "hpc-1g", "instance-0000002a", "mixed-rt-2",
                              "web-shared-3"]
    db = guests["db-pinned-1"]
    assert db.host == "cmp-a" and db.uuid == "3b1d6e2a-9f47-4c58-8e0d-71a2c4b5d6e9"
    assert db.guest.numa is not None and db.guest.numa.cpu_policy is CPUPolicy.DEDICATED
    # two guest cells on host nodes 0 and 1 (<memnode>), 2 MiB pages, the <vcpupin>s
    assert [(c.guest_cell, c.host_cell, c.memory_mib, c.pagesize_kib, c.pinning)
            for c in db.placement.cells] == [
        (0, 0, 2048, 2048, ((0, 2), (1, 22))), (1, 1, 2048, 2048, ((2, 12), (3, 32)))]
    assert db.placement.emulator_pins == frozenset({1, 21})  # <emulatorpin cpuset='1,21'>
    nova = guests["instance-0000002a"]
    assert nova.guest.numa is not None
    assert nova.guest.numa.emulator_policy is EmulatorPolicy.ISOLATE
    assert nova.placement.emulator_pins == frozenset({4})
    hpc = guests["hpc-1g"]
    assert [c.pagesize_kib for c in hpc.placement.cells] == [1048576, 1048576]
    assert hpc.placement.emulator_pins is None  # it shares vCPU 0's CPU 7
    mixed = guests["mixed-rt-2"]
    assert mixed.guest.numa is not None and mixed.guest.numa.cpu_policy is CPUPolicy.MIXED
    [cell] = mixed.placement.cells
    # <hugepages> without a size: the host cell's smallest huge page size
    assert (cell.host_cell, cell.pinning, cell.pagesize_kib) == (1, ((2, 15), (3, 35)), 2048)
    [shared] = guests["web-shared-3"].placement.cells
    assert shared.pinning is None and shared.pagesize_kib is None and shared.host_cell == 0


def test_the_hosts_carry_the_real_usage(busy: MemoryHost) -> None:
    fleet = live_fleet(inventory("cmp-a"), connections={"cmp-a": busy})
    host = fleet.host("cmp-a")
    cell0, cell1 = host.cells
    assert cell0.pinned_cpus == {1, 21, 2, 22, 4, 5, 25, 6, 26, 7, 27, 8, 28}
    assert cell1.pinned_cpus == {12, 32, 15, 35, 17, 37, 18, 38}
    pages = {(c.id, p.size_kib): p.used for c in host.cells for p in c.mempages}
    assert pages[(0, 2048)] == (2048 + 4096) // 2 and pages[(1, 2048)] == (2048 + 8192) // 2
    assert pages[(0, 1048576)] == 8 and pages[(1, 1048576)] == 8
    # each guest's placement is exactly what it holds: releasing them all leaves no pins
    from numa_migrate.core.drain.hosts import remove_guest

    for g in fleet.guests:
        host = remove_guest(host, g.guest, g.placement, g.pci_devices)
    assert not any(c.pinned_cpus for c in host.cells)


def test_a_domain_that_cannot_be_modelled_is_left_out_with_a_note(busy: MemoryHost) -> None:
    # a one-cell guest whose vCPUs are pinned on both host nodes, with no <numatune>
    spread = (fixture("dom-nova").replace("instance-0000002a", "spread-1")
              .replace("5f0c8e3d", "5f0c8e3e").replace('cpuset="26"', 'cpuset="16"')
              .replace('<memnode cellid="0" mode="strict" nodeset="0"/>', "")
              .replace('<memory mode="strict" nodeset="0"/>', ""))
    host = MemoryHost("cmp-a", CAPS)
    host.add(spread)
    host.add(fixture("dom-sriov"))
    fleet = live_fleet(inventory("cmp-a"), connections={"cmp-a": host})
    assert fleet.guests == ()
    left = [n for n in fleet.notes if "left out of the guests" in n]
    assert len(left) == 2
    assert any("spread-1" in n and "not tied to one host cell" in n for n in left)
    assert any("nfv-sriov-1" in n and "PCI devices but no NUMA placement" in n for n in left)
    # their usage still counts: the pins of spread-1 are pinned
    assert {5, 25, 6} <= fleet.host("cmp-a").cell(0).pinned_cpus
    assert 16 in fleet.host("cmp-a").cell(1).pinned_cpus


def test_unreadable_xml_is_a_note(busy: MemoryHost) -> None:
    bad = fixture("dom-nova").replace("instance-0000002a", "bad-1").replace(
        "5f0c8e3d", "5f0c8e30").replace('<vcpu cpuset="3-9,23-29">4</vcpu>',
                                         '<vcpu cpuset="3-9,23-29">four</vcpu>')
    busy.add(bad)
    fleet = live_fleet(inventory("cmp-a"), connections={"cmp-a": busy})
    assert "bad-1" not in {g.name for g in fleet.guests}
    assert any(n.startswith("cmp-a: bad-1 (running): XML not understood") for n in fleet.notes)
    assert "instance-0000002a" in {g.name for g in fleet.guests}


def test_a_host_that_cannot_be_read_is_left_out_unless_all_are(busy: MemoryHost) -> None:
    down = MemoryHost("cmp-b", CAPS)
    down.fail("capabilities", "connection refused")
    fleet = live_fleet(inventory("cmp-a", "cmp-b"), connections={"cmp-a": busy, "cmp-b": down})
    assert [h.name for h in fleet.hosts] == ["cmp-a"]
    assert any(n.startswith("cmp-b: not read, left out of the fleet: host cmp-b")
               and "connection refused" in n for n in fleet.notes)
    down.fail("capabilities", "connection refused")
    with pytest.raises(LiveHostError, match=r"no host of the hosts inventory inv\.toml could "
                       r"be read: host cmp-b .*connection refused"):
        live_fleet(inventory("cmp-b"), connections={"cmp-b": down})


def test_only_the_hosts_asked_for(busy: MemoryHost) -> None:
    idle = MemoryHost("cmp-b", CAPS)
    hosts = inventory("cmp-a", "cmp-b")
    fleet = live_fleet(hosts, hosts=["cmp-b"], connections={"cmp-a": busy, "cmp-b": idle})
    assert [h.name for h in fleet.hosts] == ["cmp-b"] and fleet.guests == ()
    assert "capabilities" not in busy.calls
    with pytest.raises(InventoryError, match="cmp-z"):
        live_fleet(hosts, hosts=["cmp-z"], connections={"cmp-b": idle})


def _vnf_xml() -> str:
    """A pinned guest generated the way the lab makes them, with an SR-IOV port (VF
    0000:3b:02.1 of the fixtures' node devices)."""
    from numa_migrate.adapters.capabilities import host_from_capabilities

    host = host_from_capabilities(CAPS, name="cmp-c")
    guest = flavored_guest("vnf", Flavor(2, 128, {"hw:cpu_policy": "dedicated"}), host,
                           image="/x.img")
    assert isinstance(guest, FlavoredGuest)
    port = ("<interface type='hostdev' managed='yes'><mac address='52:54:00:6d:90:02'/>"
            "<source><address type='pci' domain='0x0000' bus='0x3b' slot='0x02' "
            "function='0x1'/></source><alias name='hostdev0'/></interface>")
    return guest.xml.replace("<memballoon", port + "<memballoon")


def test_a_guest_with_a_vf_holds_it_and_a_drain_gives_it_another() -> None:
    src = MemoryHost("cmp-c", CAPS, pci=list(NODEDEVS))
    src.add(_vnf_xml())
    dst = MemoryHost("cmp-d", CAPS, pci=list(NODEDEVS))
    fleet = live_fleet(inventory("cmp-c", "cmp-d", extra=PHYSNET),
                       connections={"cmp-c": src, "cmp-d": dst})
    [vnf] = fleet.guests
    assert vnf.pci_devices == ("0000:3b:02.1",)
    [request] = vnf.guest.pci_requests
    assert request.count == 1 and ("physical_network", "physnet1") in request.spec[0]
    held = {d.address: d.allocated for d in fleet.host("cmp-c").pci_devices}
    assert held["0000:3b:02.1"] is True and held["0000:3b:02.0"] is False
    plan = plan_drain(fleet_state(fleet), ("cmp-c",), 4, 2, None)
    [move] = plan.moves
    assert move.destination == "cmp-d" and move.pci_devices == ("0000:3b:02.0",)


def test_other_operators_claims_are_subtracted(tmp_path: Path) -> None:
    src = MemoryHost("cmp-c", CAPS, pci=list(NODEDEVS))
    dst = MemoryHost("cmp-d", CAPS, pci=list(NODEDEVS))
    hosts = inventory("cmp-c", "cmp-d", extra=PHYSNET)
    conns = {"cmp-c": src, "cmp-d": dst}
    before = live_fleet(hosts, connections=conns)
    guest = guest_from_flavor(Flavor(4, 1024, {"hw:cpu_policy": "dedicated"}))
    result = fit_guest(before.host("cmp-d"), guest)
    assert result.placement is not None and guest.numa is not None
    with ClaimStore.open(f"sqlite:///{tmp_path / 'claims.db'}") as store:
        claim = store.claim(before.host("cmp-d"), guest.numa, result.placement,
                            domain="other-vm", owner="alice", ttl_s=600,
                            vfs=["0000:3b:02.2"])
        after = live_fleet(hosts, store=store, connections=conns)
    pins = result.placement.pinned_host_cpus()
    assert pins and pins <= after.host("cmp-d").cells[0].pinned_cpus | after.host(
        "cmp-d").cells[1].pinned_cpus
    assert not any(c.pinned_cpus for c in before.host("cmp-d").cells)
    vfs = {d.address: d.allocated for d in after.host("cmp-d").pci_devices}
    assert vfs["0000:3b:02.2"] is True and vfs["0000:3b:02.0"] is False
    assert f"cmp-d: other operators' claims {claim.id} are counted as used" in after.notes


def test_snapshot_inputs_are_kept(busy: MemoryHost) -> None:
    fleet = live_fleet(inventory("cmp-a", extra='cpu_dedicated_set = "2-9,12-19,22-29,32-39"\n'
                                 'cpu_shared_set = "0-1,10-11,20-21,30-31"\n'),
                       connections={"cmp-a": busy})
    [inputs] = fleet.inputs
    assert inputs.capabilities_xml == CAPS and inputs.uri == "memory:///cmp-a"
    assert inputs.cpu_shared_set == frozenset({0, 1, 10, 11, 20, 21, 30, 31})
    # its <emulatorpin cpuset='1,21'> is in the shared set: Nova's "share" policy
    db = next(g for g in fleet.guests if g.name == "db-pinned-1")
    assert db.guest.numa is not None
    assert db.guest.numa.emulator_policy is EmulatorPolicy.SHARE
    assert db.placement.emulator_pins is None

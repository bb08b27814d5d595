"""SR-IOV ports across a migration: choosing the destination VF, the plan, the hand-over.

What this proves and what it does not: the VF choice and the XML rewrite are pure and fully
tested here; the hand-over (detach on the source, migrate without the port, attach the
chosen VF on the destination, re-attach on failure) is tested with a recording stand-in for
the libvirt domain, plus one run on libvirt's test driver, which serves node devices from a
file but supports neither device detach nor migration (its refusal is the failure path
tested). No real VF was detached or attached: the lab machine has no SR-IOV NIC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.hostdevxml import device_elements, without_devices
from numa_migrate.adapters.nodedev import pci_functions_from_nodedevs
from numa_migrate.claims.journal import Journal
from numa_migrate.core.errors import ParseError
from numa_migrate.core.fit.pcifit import PciPools, PciServed, PciShort
from numa_migrate.core.migration.journal import VfAttachedEntry
from numa_migrate.core.model.domain import PciHostdev
from numa_migrate.core.model.pci import PciFunction
from numa_migrate.core.request import Flavor
from numa_migrate.hypervisor.base import HypervisorError, detach_and_wait
from numa_migrate.hypervisor.memory import MemoryDomain, MemoryHost
from numa_migrate.lab.flavored import FlavoredGuest, flavored_guest
from numa_migrate.migrate.plan import MigrationPlan, NoRoom, SriovInputs
from numa_migrate.migrate.planxml import plan_migration
from numa_migrate.migrate.run import Ports
from numa_migrate.migrate.sriov import (
    PhysNets,
    SriovRefused,
    busy_note,
    fit_devices,
    port_requests,
)

XML = Path(__file__).parent / "fixtures" / "xml"
NODEDEV = XML / "nodedev"


def source_pci() -> tuple[PciFunction, ...]:
    return pci_functions_from_nodedevs(
        (p.name, p.read_text()) for p in sorted(NODEDEV.glob("*.xml")))


def pf(address: str, node: int, ifname: str, product: str = "1572") -> PciFunction:
    return PciFunction(name=f"pci_{address}", address=address, numa_node=node,
                       vendor_id="8086", product_id=product, parent=None, driver="i40e",
                       is_pf=True, net_interfaces=(ifname,))


def vf(address: str, pf_address: str, node: int | None) -> PciFunction:
    return PciFunction(name=f"pci_{address}", address=address, numa_node=node,
                       vendor_id="8086", product_id="154c", parent=None, driver="vfio-pci",
                       pf_address=pf_address)


# the destination: PF ens1f0 on node 0 with 2 VFs, PF ens2f0 on node 1 with 2 VFs
DEST = (pf("0000:18:00.0", 0, "ens1f0"), vf("0000:18:02.0", "0000:18:00.0", 0),
        vf("0000:18:02.1", "0000:18:00.0", 0),
        pf("0000:86:00.0", 1, "ens2f0"), vf("0000:86:02.0", "0000:86:00.0", 1),
        vf("0000:86:02.1", "0000:86:00.0", 1))
PORT = PciHostdev(address="0000:3b:02.1", managed=True, interface=True,
                  mac="52:54:00:6d:90:02", alias="hostdev0")


def choose(guest_nodes: set[int], policy: str = "legacy", busy: dict[str, str] | None = None,
           dest: tuple[PciFunction, ...] = DEST, **nets: PhysNets) -> Any:
    """The VF the fit serves the port with when the guest runs on ``guest_nodes``: a host of
    two cells (0 and 1, one socket each) carrying ``dest``'s devices."""
    needs = port_requests([PORT], source_pci=source_pci(), policy=policy, **nets)
    if needs.refusals:
        return needs
    devices = fit_devices(dest, nets=nets.get("dest_nets", PhysNets()), busy=busy or {})
    pools = PciPools(devices, {0: 0, 1: 1})
    return pools.serve(needs.requests, frozenset(guest_nodes))


def taken(choice: Any) -> list[str]:
    return [a for t in choice.taken for a in t] if isinstance(choice, PciServed) else []


def test_the_vf_goes_to_the_guests_node() -> None:
    needs = port_requests([PORT], source_pci=source_pci())
    assert needs.networks == ("8086:154c",)  # matched by the VF's ids, and said so
    assert "vendor:product" in needs.notes[0]
    assert taken(choose({1})) == ["0000:86:02.0"]


def test_busy_vfs_are_skipped_and_the_refusal_counts_what_is_left() -> None:
    assert taken(choose({1}, busy={"0000:86:02.0": "web-2"})) == ["0000:86:02.1"]
    short = choose({1}, busy={"0000:86:02.0": "web-2", "0000:86:02.1": "a claim"})
    assert isinstance(short, PciShort)
    assert "on host cell(s) 1 or with no NUMA node (legacy); 0 free there" in short.message()
    assert "node 0: 2" in short.message()
    devices = fit_devices(DEST, nets=PhysNets(), busy={"0000:86:02.0": "web-2"})
    assert busy_note({"0000:86:02.0": "web-2"}, devices) == (
        "VFs held on the destination: 0000:86:02.0 (web-2)")


@pytest.mark.parametrize(("policy", "expected"), [
    ("required", []), ("legacy", []), ("preferred", ["0000:18:02.0"]),
    ("socket", [])])
def test_policies_when_only_the_other_node_has_a_free_vf(policy: str,
                                                         expected: list[str]) -> None:
    choice = choose({1}, policy, busy={"0000:86:02.0": "x", "0000:86:02.1": "y"})
    assert taken(choice) == expected


def test_legacy_accepts_a_vf_without_numa_node_required_does_not() -> None:
    dest = (pf("0000:18:00.0", 0, "ens1f0"), vf("0000:18:02.0", "0000:18:00.0", None))
    assert taken(choose({1}, "legacy", dest=dest)) == ["0000:18:02.0"]
    assert isinstance(choose({1}, "required", dest=dest), PciShort)


def test_physical_networks_keep_the_port_on_its_network() -> None:
    src_nets = PhysNets({"physnet2": ("0000:3b:00.0",)})
    dst_nets = PhysNets({"physnet1": ("ens2f0",), "physnet2": ("ens1f0",)})
    # node 1 has VFs, but on physnet1: the port stays on physnet2 (node 0, preferred policy)
    choice = choose({1}, "preferred", source_nets=src_nets, dest_nets=dst_nets)
    assert taken(choice) == ["0000:18:02.0"]
    assert isinstance(choose({1}, "required", source_nets=src_nets, dest_nets=dst_nets),
                      PciShort)
    orphan = choose({1}, source_nets=PhysNets({"physnet9": ("eth9",)}), dest_nets=dst_nets)
    assert "in no physical network of the source" in orphan.refusals[0]


def test_a_whole_pci_device_and_an_unknown_policy_are_refused() -> None:
    whole = PciHostdev(address="0000:3b:00.0", managed=False, interface=False, mac=None,
                       alias=None)
    with pytest.raises(SriovRefused, match="not an SR-IOV VF"):
        port_requests([whole], source_pci=source_pci())
    with pytest.raises(SriovRefused, match="use one of legacy, required, preferred, socket"):
        port_requests([PORT], source_pci=source_pci(), policy="strict")


# --------------------------------------------------------------------------- the plan


def guest_with_port() -> str:
    host = host_from_capabilities((XML / "caps-2s-intel-smt.xml").read_text(), name="src")
    guest = flavored_guest("vnf", Flavor(2, 128, {"hw:cpu_policy": "dedicated"}), host,
                           image="/x.img")
    assert isinstance(guest, FlavoredGuest)
    port = ("<interface type='hostdev' managed='yes'><mac address='52:54:00:6d:90:02'/>"
            "<source><address type='pci' domain='0x0000' bus='0x3b' slot='0x02' "
            "function='0x1'/></source><alias name='hostdev0'/></interface>")
    return guest.xml.replace("<memballoon", port + "<memballoon")


def dest_host() -> Any:
    return host_from_capabilities((XML / "caps-2s-intel-smt.xml").read_text(), name="dst")


def test_plan_rewrites_the_port_in_both_xmls_and_claims_the_vf() -> None:
    xml = guest_with_port()
    plan = plan_migration(live_xml=xml, persistent_xml=xml, source="src",
                          destination=dest_host(),
                          sriov=SriovInputs(source_pci(), DEST, policy="required"))
    assert isinstance(plan, MigrationPlan)
    [move] = plan.vf_moves
    node = move.numa_node
    assert node in {c.host_cell for c in plan.placement.cells}
    for doc in (plan.live_xml, plan.persistent_xml):
        assert doc is not None
        assert [d.address for d in domain_from_xml(doc).hostdevs] == [move.destination]
    assert f"VF 0000:3b:02.1 -> {move.destination}" in plan.summary()


@pytest.mark.parametrize("free_node", [0, 1])
def test_the_fit_puts_the_guest_on_the_cell_whose_vf_is_free(free_node: int) -> None:
    """The VF is chosen with the cells (issue 11): under ``required`` the guest's cell is the
    one where a VF is free, whichever cell the fitter would otherwise have taken first."""
    xml = guest_with_port()
    busy = {f.address: "other" for f in DEST if f.is_vf and f.numa_node != free_node}
    plan = plan_migration(live_xml=xml, persistent_xml=xml, source="src",
                          destination=dest_host(),
                          sriov=SriovInputs(source_pci(), DEST, busy, policy="required"))
    assert isinstance(plan, MigrationPlan)
    assert [c.host_cell for c in plan.placement.cells] == [free_node]
    [move] = plan.vf_moves
    assert move.numa_node == free_node and move.destination not in busy


def test_plan_without_a_free_vf_is_no_room_with_the_reasons() -> None:
    xml = guest_with_port()
    busy = {f.address: "other" for f in DEST if f.is_vf}
    plan = plan_migration(live_xml=xml, persistent_xml=None, source="src",
                          destination=dest_host(), sriov=SriovInputs(source_pci(), DEST, busy))
    assert isinstance(plan, NoRoom) and "PCI request 1 (port 0000:3b:02.1)" in plan.summary
    assert "0 free" in plan.summary
    assert any("0000:18:02.0 (other)" in r for r in plan.reasons)


def test_plan_without_pci_inventory_refuses_a_guest_with_ports() -> None:
    with pytest.raises(Exception, match="PCI inventory was not read"):
        plan_migration(live_xml=guest_with_port(), persistent_xml=None, source="src",
                       destination=dest_host())


# --------------------------------------------------------------------------- the hand-over


def test_device_elements_cut_out_the_port_without_libvirts_alias() -> None:
    xml = guest_with_port()
    [port] = device_elements(xml, ["0000:3b:02.1"], source="t")
    assert port.startswith("<interface") and "hostdev0" not in port and "52:54:00" in port
    assert domain_from_xml(without_devices(xml, ["0000:3b:02.1"], source="t")).hostdevs == ()
    with pytest.raises(ParseError, match=r"no PCI hostdev with host address 0000:00:01\.0"):
        device_elements(xml, ["0000:00:01.0"], source="t")


CAPS = "<capabilities/>"
PORT_ADDRESS = "0000:3b:02.1"


def in_memory(xml: str, name: str = "src", **kwargs: Any) -> tuple[MemoryHost, MemoryDomain]:
    """An in-memory host running the guest ``xml``."""
    host = MemoryHost(name, CAPS, **kwargs)
    return host, host.add(xml)


def ports_in(xml: str | None) -> set[str]:
    return set() if xml is None else {d.address for d in domain_from_xml(xml).hostdevs}


@pytest.fixture
def planned() -> MigrationPlan:
    xml = guest_with_port()
    plan = plan_migration(live_xml=xml, persistent_xml=xml, source="src",
                          destination=dest_host(), sriov=SriovInputs(source_pci(), DEST))
    assert isinstance(plan, MigrationPlan)
    return plan


def test_ports_detach_then_attach_the_chosen_vf_live_and_persistent(
        planned: MigrationPlan) -> None:
    ports = Ports.of(planned, "src", "dst")
    src, source = in_memory(planned.source_live_xml)
    ports.detach_from_source(source)
    assert src.calls.count("detach_device vnf") == 1 and "attach_device vnf" not in src.calls
    assert ports_in(source.xml()) == set()  # detached live ...
    assert ports_in(source.persistent_xml()) == {PORT_ADDRESS}  # ... only
    stripped = ports.strip(planned.live_xml)
    assert domain_from_xml(stripped).hostdevs == ()  # migrated without the port
    journal: list[Any] = []
    dst, dest = in_memory(stripped, "dst")
    assert ports.attach_on_destination(dest, journal.append) == ""
    assert dst.calls.count("attach_device vnf") == 1
    chosen = planned.vf_moves[0].destination
    assert ports_in(dest.xml()) == {chosen}
    assert ports_in(dest.persistent_xml()) == {chosen}  # live and persistent
    assert journal == [VfAttachedEntry(failed=())]
    assert journal[0].to_json() == {"failed": []}


def test_a_failed_migration_re_attaches_the_old_vf_on_the_source(
        planned: MigrationPlan) -> None:
    ports = Ports.of(planned, "src", "dst")
    src, source = in_memory(planned.source_live_xml)
    ports.detach_from_source(source)
    notes = ports.reattach_on_source(source)
    assert notes == ["re-attached VF 0000:3b:02.1 on src"]
    assert [c for c in src.calls if c.endswith("_device vnf")] == [
        "detach_device vnf", "attach_device vnf"]
    assert ports_in(source.xml()) == {PORT_ADDRESS}
    assert ports.reattach_on_source(source) == []  # only once


def test_a_guest_that_never_releases_the_vf_is_a_clear_error(
        planned: MigrationPlan, monkeypatch: pytest.MonkeyPatch) -> None:
    from numa_migrate.hypervisor import base

    ports = Ports.of(planned, "src", "dst")
    _src, source = in_memory(planned.source_live_xml, unplug=False)
    monkeypatch.setattr(base.time, "sleep", lambda _s: None)
    with pytest.raises(HypervisorError,
                       match=r"^host src: vnf did not release PCI device 0000:3b:02\.1"):
        detach_and_wait(source, ports.source_xml[0], PORT_ADDRESS, timeout_s=0.05)
    assert ports.detached == []


def test_an_attach_failure_on_the_destination_is_reported(planned: MigrationPlan) -> None:
    ports = Ports.of(planned, "src", "dst")
    dst, dest = in_memory(ports.strip(planned.live_xml), "dst")
    dst.fail("attach_device", "no free IOMMU group")
    error = ports.attach_on_destination(dest, lambda _e: None)
    assert error.startswith("host dst: cannot attach PCI device ")
    assert "no free IOMMU group" in error
    assert ports_in(dest.xml()) == set()


# --------------------------------------------------------------------------- Migration.run


def _run(tmp_path: Path, *, fail: bool) -> Any:
    from numa_migrate.claims import ClaimStore
    from numa_migrate.migrate.run import HostDevices, HostRef, Migration

    src, source = in_memory(guest_with_port())
    dst = MemoryHost("dst", CAPS)
    hosts = {"src": src, "dst": dst}
    if fail:
        src.fail("migrate", "connection reset")

    def devices(_conn: Any, ref: HostRef) -> HostDevices:
        return HostDevices(source_pci() if ref.name == "src" else DEST, {})

    store = ClaimStore.open(f"sqlite:///{tmp_path / 'claims.db'}")
    job = Migration(store=store, source=HostRef("src", "memory:///src"),
                    destination=HostRef("dst", "memory:///dst"), domain="vnf",
                    read_host=lambda _c, ref: dest_host(), read_devices=devices,
                    pci_numa_policy="required", connect=lambda ref: hosts[ref.name])
    return job, source, hosts, store


def test_run_hands_the_port_over_around_the_migration(tmp_path: Path) -> None:
    job, source, hosts, store = _run(tmp_path, fail=False)
    uuid = source.uuid()
    outcome = job.run()
    [move] = outcome.plan.vf_moves
    src, dst = hosts["src"], hosts["dst"]
    assert [c for c in src.calls if c.endswith("vnf")].count("detach_device vnf") == 1
    assert "attach_device vnf" not in src.calls and "migrate vnf" in src.calls
    assert uuid not in src.records  # moved: nothing left on the source
    [moved] = dst.records.values()
    assert moved.uuid == uuid and moved.persistent_xml is not None
    # migrated without the port; the chosen VF attached afterwards, live and persistent
    assert dst.calls.count("attach_device vnf") == 1
    assert ports_in(moved.xml) == {move.destination}
    assert ports_in(moved.persistent_xml) == {move.destination}
    phases = [e.phase for e in Journal(store).entries(outcome.migration_id)]
    assert phases == ["planned", "claimed", "migrating", "vf_detaching", "vf_detached",
                      "migrated", "vf_attached", "done"]
    claim = store.get(outcome.claim_id)
    assert claim.resources.vfs == frozenset({move.destination})
    store.close()


def test_run_failure_re_attaches_the_port_and_rolls_back(tmp_path: Path) -> None:
    from numa_migrate.migrate.run import MigrationFailed

    job, source, hosts, store = _run(tmp_path, fail=True)
    with pytest.raises(MigrationFailed, match=r"re-attached VF 0000:3b:02\.1 on src"):
        job.run()
    src = hosts["src"]
    assert [c for c in src.calls if c.endswith("_device vnf")] == [
        "detach_device vnf", "attach_device vnf"]
    assert ports_in(source.xml()) == {PORT_ADDRESS} and source.is_active()
    assert hosts["dst"].records == {}
    assert [c for c in store.list_claims() if c.state.live] == []
    store.close()


def test_run_failure_after_post_copy_keeps_the_claim_and_journals_it(tmp_path: Path) -> None:
    from numa_migrate.migrate.run import MigrationFailed

    job, _source, _hosts, store = _run(tmp_path, fail=False)

    def switched_then_failed(_dom: Any, _dst: Any, *, on_post_copy: Any, **_kw: Any) -> Any:
        on_post_copy()
        error = HypervisorError("migration failed after the switch to post-copy: link down")
        error.post_copy_started = True
        raise error

    job.transfer = switched_then_failed
    with pytest.raises(MigrationFailed, match="did NOT roll back"):
        job.run()
    phases = [e.phase for e in Journal(store).entries(job.migration_id)]
    assert phases == ["planned", "claimed", "migrating", "vf_detaching", "vf_detached",
                      "post_copy", "post_copy_failed"]
    [claim] = [c for c in store.list_claims() if c.state.live]
    assert claim.state.value == "migrating"
    store.close()

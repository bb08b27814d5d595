"""Reading hosts live through libvirt-python, against libvirt's real test driver.

test:///default is one shared in-process host (2 NUMA cells: CPUs 0-7 with 2 GiB and CPUs
8-15 with 4 GiB) whose state lives while any connection to it is open; the domains these
tests define carry an ``nm-live-`` prefix and are removed afterwards. Other domains (the
driver's own ``test``) may be there too, so totals are checked with ``>=``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.adapters.inventory import InventoryError, parse_inventory
from numa_migrate.adapters.inventory_live import (
    LiveHost,
    LiveHostError,
    connect,
    open_connection,
    read_live_host,
    read_pci_functions,
)
from numa_migrate.hypervisor.base import HypervisorError

libvirt = pytest.importorskip("libvirt")

URI = "test:///default"
FIXTURES = Path(__file__).parent / "fixtures" / "xml"


def config(extra: str = "", uri: str = URI, name: str = "t") -> Any:
    return parse_inventory(f'[hosts.{name}]\nuri = "{uri}"\n{extra}\n', path="inv.toml").host(name)


def domain_xml(name: str, body: str, *, vcpus: str = "<vcpu>2</vcpu>", memory_mib: int = 256,
               devices: str = "") -> str:
    return (f"<domain type='test'><name>{name}</name><memory unit='MiB'>{memory_mib}</memory>"
            f"{vcpus}{body}<os><type>hvm</type></os><devices>{devices}</devices></domain>")


PINNED = domain_xml(
    "nm-live-pinned",
    "<cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='3'/>"
    "<emulatorpin cpuset='4'/></cputune>"
    "<numatune><memory mode='strict' nodeset='0'/><memnode cellid='0' mode='strict' nodeset='0'/>"
    "</numatune><cpu><numa><cell id='0' cpus='0-1' memory='256' unit='MiB'/></numa></cpu>",
)
SHARED = domain_xml(
    "nm-live-shared", "<numatune><memory mode='strict' nodeset='1'/></numatune>",
    vcpus="<vcpu cpuset='8-15'>3</vcpu>", memory_mib=512,
)
STOPPED = domain_xml(
    "nm-live-stopped",
    "<cputune><vcpupin vcpu='0' cpuset='5'/><vcpupin vcpu='1' cpuset='6'/></cputune>",
)
TRANSIENT = domain_xml(
    "nm-live-transient",
    "<cputune><vcpupin vcpu='0' cpuset='10'/><vcpupin vcpu='1' cpuset='11'/></cputune>",
    devices="<interface type='hostdev' managed='yes'><mac address='52:54:00:6d:90:02'/>"
    "<source><address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/>"
    "</source></interface>",
)


def _cleanup(conn: Any) -> None:
    for dom in conn.listAllDomains(0):
        if dom.name().startswith("nm-live-"):
            persistent = dom.isPersistent()  # a transient domain is gone once destroyed
            if dom.isActive():
                dom.destroy()
            if persistent:
                dom.undefine()


@pytest.fixture
def conn() -> Iterator[Any]:
    handle = connect(config())
    _cleanup(handle.conn)  # type: ignore[attr-defined]
    try:
        yield handle
    finally:
        _cleanup(handle.conn)  # type: ignore[attr-defined]
        handle.close()


@pytest.fixture
def host(conn: Any) -> Iterator[LiveHost]:
    conn.conn.defineXML(PINNED).create()
    conn.conn.defineXML(SHARED).create()
    conn.conn.defineXML(STOPPED)
    conn.conn.createXML(TRANSIENT, 0)
    yield read_live_host(config(), conn=conn)


def test_domains_running_stopped_and_transient(host: LiveHost) -> None:
    assert host.name == "t" and host.uri == URI and host.driver == "TEST"
    mine = {d.name: d for d in host.domains if d.name.startswith("nm-live-")}
    assert sorted(mine) == ["nm-live-pinned", "nm-live-shared", "nm-live-stopped",
                            "nm-live-transient"]
    assert [d.name for d in host.domains] == sorted(d.name for d in host.domains)
    assert mine["nm-live-stopped"].active is False
    assert mine["nm-live-pinned"].active and mine["nm-live-pinned"].persistent is not None
    assert mine["nm-live-transient"].persistent is None
    assert dict(mine["nm-live-pinned"].info.vcpupin) == {0: frozenset({2}), 1: frozenset({3})}
    assert host.domain("nm-live-pinned") is mine["nm-live-pinned"]
    assert host.domain(mine["nm-live-shared"].uuid) is mine["nm-live-shared"]
    assert host.domain("nm-live-nope") is None


def test_usage_of_the_running_domains(host: LiveHost) -> None:
    cell0, cell1 = host.topology.cells
    # pinned vCPUs 2-3 plus the isolated emulator CPU 4; the stopped domain's 5-6 are free
    assert cell0.pinned_cpus >= {2, 3, 4} and not cell0.pinned_cpus & {5, 6}
    assert cell1.pinned_cpus >= {10, 11}
    usage = {u.name: u for u in host.usage.domains}
    assert "nm-live-stopped" not in usage
    pinned = usage["nm-live-pinned"]
    assert pinned.emulator_isolated == frozenset({4})
    assert [(c.host_cell, c.memory_mib) for c in pinned.cells] == [(0, 256)]
    shared = usage["nm-live-shared"]
    assert [(c.host_cell, c.floating_vcpus, c.memory_mib) for c in shared.cells] == [
        (1, 3, 512)]
    assert cell1.cpu_usage >= 3 and cell1.memory_usage_mib >= 512
    assert cell0.memory_usage_mib >= 256
    # the capacity is the same host without usage
    assert all(not c.pinned_cpus and not c.memory_usage_mib for c in host.capacity.cells)
    assert host.devices_in_use["0000:3b:02.1"] == ("nm-live-transient",)
    assert host.vfs_in_use == {}  # the test driver lists no PCI devices to call it a VF


def test_free_pages_source_and_notes(host: LiveHost) -> None:
    assert host.free_pages_source == (
        "running domains' XML (the TEST driver's virNodeGetFreePages returned no counts)")
    assert any("every host CPU serves pinned and floating guests" in n for n in host.notes)
    assert any("lists no PCI devices" in n for n in host.notes)
    assert host.pci_functions == ()


def test_live_only_repin_leaves_the_persistent_definition_behind(conn: Any) -> None:
    dom = conn.conn.defineXML(PINNED)
    dom.create()
    dom.pinVcpu(1, tuple(i == 7 for i in range(16)))  # live only, like a migration's DEST_XML
    live = read_live_host(config(), conn=conn).domain("nm-live-pinned")
    assert live is not None and live.persistent is not None
    assert dict(live.info.vcpupin)[1] == frozenset({7})
    assert dict(live.persistent.vcpupin)[1] == frozenset({3})


def test_two_domains_pinned_to_one_cpu_are_a_conflict(conn: Any) -> None:
    conn.conn.defineXML(PINNED).create()
    conn.conn.createXML(domain_xml(
        "nm-live-clash", "<cputune><vcpupin vcpu='0' cpuset='3'/><vcpupin vcpu='1' cpuset='9'/>"
        "</cputune>"), 0)
    host = read_live_host(config(), conn=conn)
    assert "CPU 3 is pinned by nm-live-clash, nm-live-pinned" in host.usage.conflicts
    assert "conflict: CPU 3 is pinned by nm-live-clash, nm-live-pinned" in host.notes


def test_own_connection_is_opened_and_closed(conn: Any) -> None:
    conn.conn.defineXML(PINNED).create()  # conn keeps the shared test host alive meanwhile
    host = read_live_host(config())
    assert host.domain("nm-live-pinned") is not None


def test_inventory_cpu_sets_apply(conn: Any) -> None:
    conn.conn.defineXML(PINNED).create()
    host = read_live_host(
        config('cpu_dedicated_set = "2-7,10-15"\ncpu_shared_set = "0-1,8-9"\n'
               "reserved_host_memory_mb = 512"), conn=conn)
    cell0, cell1 = host.capacity.cells
    assert cell0.pcpuset == frozenset(range(2, 8)) and cell0.cpuset == frozenset({0, 1})
    assert cell1.pcpuset == frozenset(range(10, 16)) and cell1.cpuset == frozenset({8, 9})
    assert host.topology.cell(0).pinned_cpus >= {2, 3, 4}
    assert any("reserved_host_memory_mb = 512" in n for n in host.notes)


@pytest.mark.parametrize(("extra", "pattern"), [
    ('cpu_dedicated_set = "2-31"',
     r"inv\.toml: hosts\.t\.cpu_dedicated_set: CPUs 16-31 are not on the host"),
    ('reserved_huge_pages = ["node:0,size:2048,count:1"]',
     r"hosts\.t\.reserved_huge_pages: node 0 reserves 1 pages of 2048 KiB but has only 0"),
    ('reserved_huge_pages = ["node:0,size:8,count:1"]',
     r"hosts\.t\.reserved_huge_pages: node 0 has no 8 KiB pages"),
])
def test_inventory_values_the_host_lacks(conn: Any, extra: str, pattern: str) -> None:
    with pytest.raises(InventoryError, match=pattern):
        read_live_host(config(extra), conn=conn)


@pytest.mark.parametrize("uri", [
    "qemu+unix:///system?socket=/nonexistent/numa-migrate/virtqemud-sock",
    "test:///nonexistent/numa-migrate-node.xml",
])
def test_unreachable_uri_is_one_clear_error(uri: str) -> None:
    with pytest.raises(LiveHostError) as info:
        read_live_host(config(uri=uri, name="cmp-9"))
    message = str(info.value)
    assert message.startswith(f"host cmp-9: cannot connect to {uri}: ")
    assert "\n" not in message.strip()
    with pytest.raises(LiveHostError), open_connection(config(uri=uri)):
        pass


def test_vcpu_affinity_through_libvirt(conn: Any) -> None:
    dom = conn.conn.defineXML(PINNED)
    dom.create()
    # the test driver answers virDomainGetVcpus from the definition, the QEMU driver from
    # the kernel (sched_getaffinity of each vCPU thread)
    by_name = conn.lookup("nm-live-pinned")
    by_uuid = conn.lookup(dom.UUIDString())
    assert by_name.vcpu_affinity() == {0: frozenset({2}), 1: frozenset({3})}
    assert by_uuid.vcpu_affinity() == {0: frozenset({2}), 1: frozenset({3})}
    assert conn.lookup("nm-live-none") is None
    dom.destroy()
    with pytest.raises(HypervisorError,
                       match="host t: cannot read the vCPU affinity of nm-live-pinned: "):
        by_name.vcpu_affinity()


# --------------------------------------------------------------------------- PCI devices

VF_DEVICE = (FIXTURES / "nodedev" / "pci_0000_3b_02_1.xml").read_text(encoding="utf-8")
PF_DEVICE = (FIXTURES / "nodedev" / "pci_0000_3b_00_0.xml").read_text(encoding="utf-8")


def test_test_driver_cannot_create_pci_node_devices(conn: Any) -> None:
    """nodeDeviceCreateXML of the test driver only makes vHBAs (fc_host), and it has no
    nodeDeviceDefineXML: a VF cannot be added to test:///default."""
    with pytest.raises(libvirt.libvirtError, match="not a fibre channel HBA"):
        conn.conn.nodeDeviceCreateXML(VF_DEVICE, 0)
    with pytest.raises(libvirt.libvirtError) as info:
        conn.conn.nodeDeviceDefineXML(VF_DEVICE, 0)
    assert info.value.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT


def _strip_comment(xml: str) -> str:
    start, end = xml.find("<!--"), xml.find("-->")
    return xml if start < 0 else xml[:start] + xml[end + 3:]


@pytest.fixture
def custom_host(tmp_path: Path) -> Path:
    """A test driver host from a file: it can hold PCI node devices (but has no NUMA cells)."""
    devices = "".join(
        _strip_comment(d).replace("<parent>pci_0000_3a_00_0</parent>", "<parent>computer"
                                  "</parent>").replace("<path>", "<!-- ").replace("</path>",
                                                                                    " -->")
        for d in (VF_DEVICE, PF_DEVICE))
    node = tmp_path / "node.xml"
    node.write_text(
        "<node><cpu><mhz>2000</mhz><model>i686</model><active>16</active><nodes>2</nodes>"
        "<sockets>2</sockets><cores>8</cores><threads>1</threads></cpu>"
        f"<memory>8388608</memory>{TRANSIENT.replace('nm-live-transient', 'vf-guest')}"
        f"{devices}</node>", encoding="utf-8")
    return node


def test_pci_functions_from_a_test_driver_host(custom_host: Path) -> None:
    cfg = config(uri=f"test://{custom_host}", name="file")
    with open_connection(cfg) as handle:
        functions, notes = read_pci_functions(handle, cfg)
        assert notes == ()
        by_address = {f.address: f for f in functions}
        vf = by_address["0000:3b:02.1"]
        assert vf.is_vf and vf.numa_node == 1 and vf.pf_address == "0000:3b:00.0"
        pf = by_address["0000:3b:00.0"]
        assert pf.is_pf and "0000:3b:02.1" in pf.vf_addresses
        # ... but such a host reports no NUMA cells in its capabilities
        with pytest.raises(LiveHostError, match=r"host file \(test:///.*lack NUMA topology"):
            read_live_host(cfg, conn=handle)

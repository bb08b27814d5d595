"""What running domains use on a host, from domain XML alone (numa_migrate.core.domainusage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import DomainInfo, domain_from_xml
from numa_migrate.core.domainusage import (
    CellUse,
    cell_of_cpu,
    domain_usage,
    floating_vcpus,
    guest_cell_page_kib,
    host_usage,
    isolated_emulator,
)
from numa_migrate.core.model.host import HostTopology

FIXTURES = Path(__file__).parent / "fixtures" / "xml"
CAPS = (FIXTURES / "caps-2s-intel-smt.xml").read_bytes()
HOST = host_from_capabilities(CAPS, name="cmp")
SPLIT_HOST = host_from_capabilities(
    CAPS, name="cmp-split",
    cpu_shared_set=frozenset({0, 1, 20, 21, 10, 11, 30, 31}),
    cpu_dedicated_set=frozenset({*range(2, 10), *range(22, 30), *range(12, 20),
                                 *range(32, 40)}),
)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def dom(name: str) -> DomainInfo:
    return domain_from_xml(fixture(name), source=name)


def xml(body: str, *, name: str = "g", uuid: str = "00000000-0000-4000-8000-000000000001",
        vcpus: str = "<vcpu>2</vcpu>", memory: str = "<memory unit='MiB'>1024</memory>") -> str:
    return (f"<domain type='kvm'><name>{name}</name><uuid>{uuid}</uuid>{memory}{vcpus}"
            f"{body}<os><type>hvm</type></os></domain>")


def cells(usage_cells: tuple[CellUse, ...]) -> dict[int, CellUse]:
    return {c.host_cell: c for c in usage_cells}


def test_pinned_two_cells_with_isolated_emulator() -> None:
    usage = domain_usage(HOST, dom("dom-pinned-2cell-2m.xml"))
    assert dict(usage.dedicated) == {0: 2, 1: 22, 2: 12, 3: 32}
    assert dict(usage.floating) == {}
    assert usage.emulator_isolated == frozenset({1, 21})
    assert usage.pinned_cpus == frozenset({1, 2, 12, 21, 22, 32})
    assert dict(usage.guest_cells) == {0: 0, 1: 1}
    assert cells(usage.cells) == {
        0: CellUse(0, frozenset({1, 2, 21, 22}), 0, 2048, ((2048, 1024),)),
        1: CellUse(1, frozenset({12, 32}), 0, 2048, ((2048, 1024),)),
    }
    assert usage.devices == ()
    assert usage.notes == ()


def test_emulator_on_the_shared_set_is_not_isolated() -> None:
    """With a cpu_shared_set, Nova's emulator_threads_policy=share puts the emulator there:
    apart from the vCPU pins, yet not an isolated set."""
    info = domain_from_xml(
        fixture("dom-pinned-2cell-2m.xml").replace("cpuset='1,21'", "cpuset='0-1,20-21'"))
    assert isolated_emulator(info, HOST) == frozenset({0, 1, 20, 21})
    assert isolated_emulator(info, SPLIT_HOST) == frozenset()
    usage = domain_usage(SPLIT_HOST, info)
    assert usage.pinned_cpus == frozenset({2, 12, 22, 32})


def test_emulator_sharing_a_vcpu_cpu_is_not_isolated_and_1g_pages() -> None:
    usage = domain_usage(HOST, dom("dom-1g.xml"))
    assert usage.emulator_isolated == frozenset()
    assert usage.pinned_cpus == frozenset({7, 27, 8, 28, 17, 37, 18, 38})
    by_cell = cells(usage.cells)
    assert by_cell[0].pages == ((1048576, 8),) and by_cell[1].pages == ((1048576, 8),)
    assert by_cell[0].memory_mib == by_cell[1].memory_mib == 8192
    assert any("numatune mode preferred" in n for n in usage.notes)


def test_mixed_guest_floating_vcpus_and_default_huge_pages() -> None:
    info = dom("dom-mixed.xml")
    usage = domain_usage(HOST, info)
    assert dict(usage.dedicated) == {2: 15, 3: 35}
    assert floating_vcpus(info) == {0: frozenset({10, 11, 12, 13, 30, 31, 32, 33}),
                                    1: frozenset({10, 11, 12, 13, 30, 31, 32, 33})}
    assert guest_cell_page_kib(info) == {0: 0}  # <hugepages/>: the default size
    (use,) = usage.cells
    assert use == CellUse(1, frozenset({15, 35}), 2, 8192, ((2048, 4096),))
    assert any("<hugepages> without a size: counted as 2048 KiB" in n for n in usage.notes)


def test_shared_guest_goes_where_its_vcpu_cpuset_points() -> None:
    usage = domain_usage(HOST, dom("dom-shared-cpuset.xml"))
    assert usage.pinned_cpus == frozenset()
    (use,) = usage.cells
    assert use == CellUse(0, frozenset(), 4, 2048, ((4, 524288),))


def test_guest_without_numa_placement_uses_no_cell_but_holds_its_devices() -> None:
    usage = domain_usage(HOST, dom("dom-sriov.xml"))
    assert usage.cells == () and not usage.numa_placed
    assert usage.devices == ("0000:3b:02.1", "0000:af:00.0")  # the USB hostdev is not PCI
    assert any("no NUMA placement" in n for n in usage.notes)


def test_nova_instance_isolated_emulator() -> None:
    usage = domain_usage(HOST, dom("dom-nova.xml"))
    assert usage.emulator_isolated == frozenset({4})
    (use,) = usage.cells
    assert use.host_cell == 0 and use.pinned == frozenset({4, 5, 6, 25, 26})
    assert use.pages == ((2048, 2048),)


@pytest.mark.parametrize(("body", "note"), [
    # pins over both cells, nothing binds memory: not tied to one cell
    ("<cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='12'/></cputune>",
     "pins on host cells 0-1"),
    ("<numatune><memory mode='strict' nodeset='0-1'/></numatune>"
     "<cputune><vcpupin vcpu='0' cpuset='2-3'/><vcpupin vcpu='1' cpuset='12-13'/></cputune>",
     "numatune nodes 0-1"),
    ("<numatune><memory mode='strict' nodeset='5'/></numatune>",
     "bound to host node 5, which the host does not have"),
    ("<memoryBacking><hugepages/></memoryBacking>", "no pin or numatune"),
])
def test_unplaceable_memory_is_noted_not_counted(body: str, note: str) -> None:
    usage = domain_usage(HOST, domain_from_xml(xml(body)))
    assert all(c.memory_mib == 0 for c in usage.cells)
    assert any(note in n for n in usage.notes), usage.notes


def test_pin_to_a_cpu_the_host_lacks_is_noted() -> None:
    info = domain_from_xml(xml("<cputune><vcpupin vcpu='0' cpuset='2'/>"
                               "<vcpupin vcpu='1' cpuset='99'/></cputune>"))
    usage = domain_usage(HOST, info)
    assert any("pinned to CPU 99, which cmp does not have" in n for n in usage.notes)
    assert cells(usage.cells)[0].pinned == frozenset({2})


def test_host_usage_sums_domains_without_touching_the_input() -> None:
    domains = [dom(n) for n in ("dom-pinned-2cell-2m.xml", "dom-mixed.xml",
                                "dom-shared-cpuset.xml", "dom-sriov.xml")]
    before = HOST
    result = host_usage(HOST, domains)
    assert HOST is before and all(c.pinned_cpus == frozenset() for c in HOST.cells)
    cell0, cell1 = result.topology.cells
    assert cell0.pinned_cpus == frozenset({1, 2, 21, 22})
    assert cell1.pinned_cpus == frozenset({12, 32, 15, 35})
    assert (cell0.cpu_usage, cell1.cpu_usage) == (4, 2)
    assert (cell0.memory_usage_mib, cell1.memory_usage_mib) == (2048 + 2048, 2048 + 8192)
    assert cell0.page_pool(2048).used == 1024  # type: ignore[union-attr]
    assert cell1.page_pool(2048).used == 1024 + 4096  # type: ignore[union-attr]
    assert cell0.page_pool(4).used == 524288  # type: ignore[union-attr]
    assert result.conflicts == ()
    assert dict(result.devices_in_use) == {"0000:3b:02.1": ("nfv-sriov-1",),
                                           "0000:af:00.0": ("nfv-sriov-1",)}
    assert [u.name for u in result.domains] == [d.name for d in domains]
    assert any("SMT siblings of pinned CPUs are not counted" in n for n in result.notes)


def test_conflicts_shared_pins_and_devices() -> None:
    first = dom("dom-pinned-2cell-2m.xml")
    second = domain_from_xml(xml(
        "<cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='3'/></cputune>"
        "<devices><hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/></source></hostdev>"
        "</devices>", name="intruder"))
    third = dom("dom-sriov.xml")
    result = host_usage(HOST, [first, second, third])
    assert result.conflicts == (
        "CPU 2 is pinned by db-pinned-1, intruder",
        "PCI device 0000:3b:02.1 is given to intruder, nfv-sriov-1",
    )
    assert result.topology.cell(0).pinned_cpus >= frozenset({2, 3})


def test_page_overuse_is_noted() -> None:
    lab = host_from_capabilities((FIXTURES / "caps-lab-1node.xml").read_bytes(), name="lab")
    info = domain_from_xml(xml(
        "<memoryBacking><hugepages><page size='2' unit='MiB'/></hugepages></memoryBacking>"
        "<cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/></cputune>",
        memory="<memory unit='MiB'>256</memory>"))
    result = host_usage(lab, [info])
    pool = result.topology.cell(0).page_pool(2048)
    assert pool is not None and pool.used == 128 and pool.free == 0 and pool.overcommitted == 48
    assert any("domains use 128 pages of 2048 KiB but the cell has 80" in n
               for n in result.notes)


def test_cell_of_cpu() -> None:
    assert cell_of_cpu(HOST, 25) == 0 and cell_of_cpu(HOST, 39) == 1
    assert cell_of_cpu(HOST, 40) is None
    empty = HostTopology("none", ())
    assert cell_of_cpu(empty, 0) is None

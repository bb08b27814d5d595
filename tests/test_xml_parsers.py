"""libvirt XML parsers over hand-written fixtures: capabilities, domains, node devices, hostile XML.

All of these run on fixtures only (tests/fixtures/xml/), not on the real lab.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.adapters.capabilities import (
    CpuTopology,
    HostFacts,
    host_facts_from_capabilities,
    host_from_capabilities,
)
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.nodedev import pci_functions_from_nodedevs
from numa_migrate.adapters.xmlsafe import parse_xml, unit_scale
from numa_migrate.core.domainrequest import guest_request_from_domain
from numa_migrate.core.errors import ParseError
from numa_migrate.core.model.domain import (
    DomainInfo,
    GuestNumaCell,
    HugePages,
    MemNode,
    NovaMetadata,
    NumaTune,
    PciHostdev,
    VcpuSched,
)
from numa_migrate.core.model.guest import (
    CPUPolicy,
    EmulatorPolicy,
    GuestCell,
    GuestRequest,
    PageSizeKind,
    PageSizeRequest,
)
from numa_migrate.core.model.host import PagePool
from numa_migrate.core.model.pci import PciFunction

FIXTURES = Path(__file__).parent / "fixtures" / "xml"
GIB_MIB = 1024
INTEL_UUID = "4c4c4544-0052-3510-8052-b4c04f4b3732"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def variant(name: str, old: str, new: str, count: int = 1) -> str:
    """The fixture with ``old`` replaced by ``new`` (``old`` must occur)."""
    text = fixture(name)
    assert old in text, old
    return text.replace(old, new, count)


def cpus(*ranges: range) -> frozenset[int]:
    return frozenset().union(*ranges)


def raises_parse_error(*fragments: str) -> pytest.RaisesExc[ParseError]:
    """pytest.raises(ParseError) whose message contains every fragment, in order."""
    return pytest.raises(ParseError, match=".*".join(re.escape(f) for f in fragments))


# --------------------------------------------------------------------------- xmlsafe


@pytest.mark.parametrize(
    ("unit", "scale"),
    [
        ("b", 1),
        ("bytes", 1),
        ("KB", 1000),
        ("k", 1024),
        ("K", 1024),
        ("KiB", 1024),
        ("kib", 1024),
        ("MB", 1000**2),
        ("M", 1024**2),
        ("MiB", 1024**2),
        ("GB", 1000**3),
        ("G", 1024**3),
        ("GiB", 1024**3),
        ("TB", 1000**4),
        ("T", 1024**4),
        ("TiB", 1024**4),
        ("EiB", 1024**6),
        ("XB", None),
        ("KiBB", None),
        ("", None),
    ],
)
def test_unit_scale_follows_libvirt(unit: str, scale: int | None) -> None:
    assert unit_scale(unit) == scale


def test_parse_xml_drops_comments_and_returns_the_root() -> None:
    root = parse_xml(b"<a><!-- note --><b x='1'/><?pi data?></a>", source="t")
    assert root.tag == "a"
    assert [child.tag for child in root] == ["b"]


def test_parse_xml_accepts_str_with_an_encoding_declaration() -> None:
    root = parse_xml("<?xml version='1.0' encoding='UTF-8'?><a>é</a>", source="t")
    assert root.text == "é"


def test_syntax_error_names_source_and_line() -> None:
    with raises_parse_error("caps.xml: line 3: ", "mismatch"):
        parse_xml("<a>\n<b>\n</a>", source="caps.xml")


def test_empty_document_is_a_parse_error() -> None:
    with raises_parse_error("empty.xml: line"):
        parse_xml(b"", source="empty.xml")


def test_non_utf8_input_is_refused() -> None:
    with raises_parse_error("latin.xml: not UTF-8 text"):
        parse_xml("<a>é</a>".encode("latin-1"), source="latin.xml")


def test_max_bytes_is_configurable() -> None:
    with raises_parse_error("t: document is 9 bytes, more than the limit of 8 bytes"):
        parse_xml(b"<a>b</a> ", source="t", max_bytes=8)


# --------------------------------------------------------------------------- hostile


@pytest.mark.parametrize(
    "name",
    ["billion-laughs.xml", "xxe-file.xml", "xxe-parameter.xml", "external-dtd.xml"],
)
def test_doctype_and_entities_are_refused_quickly(name: str) -> None:
    data = (FIXTURES / "hostile" / name).read_bytes()
    start = time.monotonic()
    with pytest.raises(ParseError) as info:
        parse_xml(data, source=name)
    assert time.monotonic() - start < 0.5
    message = str(info.value)
    assert message.startswith(f"{name}: refusing a document with a DOCTYPE declaration")
    assert "root:" not in message  # /etc/passwd was not read


@pytest.mark.parametrize(
    ("parser", "name"),
    [
        (host_from_capabilities, "billion-laughs.xml"),
        (domain_from_xml, "xxe-file.xml"),
        (host_facts_from_capabilities, "external-dtd.xml"),
    ],
)
def test_parsers_refuse_hostile_documents(parser: Callable[[bytes], object], name: str) -> None:
    with raises_parse_error("DOCTYPE"):
        parser((FIXTURES / "hostile" / name).read_bytes())


def test_entity_bomb_in_utf16_is_refused_as_not_utf8() -> None:
    data = (FIXTURES / "hostile" / "billion-laughs.xml").read_text().encode("utf-16")
    with raises_parse_error("bomb: not UTF-8 text"):
        parse_xml(data, source="bomb")


def test_undeclared_entity_reference_is_a_syntax_error() -> None:
    with raises_parse_error("t: line 1: ", "passwd"):
        parse_xml("<domain><name>&passwd;</name></domain>", source="t")


def test_document_over_4_mib_is_refused_before_parsing() -> None:
    padding = "<feature name='x'/>" * (4 * 1024 * 1024 // 19 + 1)
    data = f"<capabilities><host>{padding}</host></capabilities>"
    start = time.monotonic()
    with raises_parse_error("big.xml: document is", "more than the limit of 4194304 bytes"):
        host_from_capabilities(data, source="big.xml")
    assert time.monotonic() - start < 0.5


def test_truncated_document_names_the_line() -> None:
    with raises_parse_error("truncated.xml: line 34: "):
        host_from_capabilities(
            (FIXTURES / "hostile" / "truncated.xml").read_bytes(), source="truncated.xml"
        )


def test_wrong_root_element_is_refused() -> None:
    with raises_parse_error(
        "capabilities: root element is <domainCapabilities>, expected <capabilities>"
    ):
        host_from_capabilities(fixture("hostile/wrong-root.xml"))


# --------------------------------------------------------------------------- capabilities


def test_intel_two_socket_host_round_trip() -> None:
    host = host_from_capabilities(fixture("caps-2s-intel-smt.xml"))
    assert host.name == INTEL_UUID
    assert host.labels == ()
    assert [cell.id for cell in host.cells] == [0, 1]
    for cell, first in zip(host.cells, (0, 10), strict=True):
        cell_cpus = cpus(range(first, first + 10), range(first + 20, first + 30))
        assert len(cell_cpus) == 20
        assert cell.cpuset == cell.pcpuset == cell_cpus
        assert cell.legacy_pin_set
        assert cell.siblings == tuple(frozenset({c, c + 20}) for c in range(first, first + 10))
        assert cell.threads_per_core == 2
        assert cell.memory_mib == 128 * GIB_MIB
        assert cell.mempages == (
            PagePool(size_kib=4, total=16777216),
            PagePool(size_kib=2048, total=16384),
            PagePool(size_kib=1048576, total=32),
        )
        assert cell.pinned_cpus == frozenset()
        assert cell.memory_usage_mib == 0


def test_epyc_four_node_host() -> None:
    host = host_from_capabilities(fixture("caps-epyc-4node.xml"), name="epyc-1")
    assert host.name == "epyc-1"
    assert [cell.id for cell in host.cells] == [0, 1, 2, 3]
    for cell in host.cells:
        first = cell.id * 8
        assert cell.cpuset == cpus(range(first, first + 8), range(first + 32, first + 40))
        assert cell.siblings == tuple(frozenset({c, c + 32}) for c in range(first, first + 8))
        assert cell.memory_mib == 64 * GIB_MIB
        assert cell.mempages == (
            PagePool(size_kib=4, total=12582912),
            PagePool(size_kib=2048, total=8192),
        )


def test_small_single_node_host() -> None:
    (cell,) = host_from_capabilities(fixture("caps-small-1node.xml")).cells
    assert cell.id == 0
    assert cell.cpuset == cell.pcpuset == frozenset(range(8))
    assert cell.siblings == tuple(frozenset({c, c + 4}) for c in range(4))
    assert cell.memory_mib == 16 * GIB_MIB
    assert [(p.size_kib, p.total) for p in cell.mempages] == [(4, 3670016), (2048, 1024)]


def test_lab_host_has_no_smt() -> None:
    (cell,) = host_from_capabilities(fixture("caps-lab-1node.xml")).cells
    assert cell.cpuset == cell.pcpuset == frozenset({0, 1})
    assert cell.siblings == (frozenset({0}), frozenset({1}))
    assert cell.threads_per_core == 1
    assert cell.memory_mib == 4 * GIB_MIB
    assert cell.page_pool(2048) == PagePool(size_kib=2048, total=80)
    assert cell.page_pool(4) == PagePool(size_kib=4, total=1007616)


def test_dedicated_and_shared_sets_split_each_cell_like_nova() -> None:
    shared = cpus(range(0, 2), range(20, 22), range(10, 12), range(30, 32))
    dedicated = cpus(range(2, 10), range(22, 30), range(12, 20), range(32, 40))
    host = host_from_capabilities(
        fixture("caps-2s-intel-smt.xml"), cpu_dedicated_set=dedicated, cpu_shared_set=shared
    )
    cell0, cell1 = host.cells
    assert cell0.cpuset == frozenset({0, 1, 20, 21})
    assert cell0.pcpuset == cpus(range(2, 10), range(22, 30))
    assert cell1.cpuset == frozenset({10, 11, 30, 31})
    assert cell1.pcpuset == cpus(range(12, 20), range(32, 40))
    assert not cell0.legacy_pin_set
    assert cell0.siblings == tuple(frozenset({c, c + 20}) for c in range(10))


def test_only_a_dedicated_set_leaves_the_shared_pool_empty_and_trims_siblings() -> None:
    host = host_from_capabilities(
        fixture("caps-2s-intel-smt.xml"), cpu_dedicated_set=frozenset({2, 3, 22})
    )
    cell0, cell1 = host.cells
    assert cell0.cpuset == frozenset()
    assert cell0.pcpuset == frozenset({2, 3, 22})
    assert cell0.siblings == (frozenset({2, 22}), frozenset({3}))
    assert cell1.cpuset == cell1.pcpuset == frozenset()
    assert cell1.siblings == ()


def test_only_a_shared_set_leaves_the_dedicated_pool_empty() -> None:
    host = host_from_capabilities(fixture("caps-small-1node.xml"), cpu_shared_set=frozenset({0, 4}))
    (cell,) = host.cells
    assert cell.cpuset == frozenset({0, 4})
    assert cell.pcpuset == frozenset()
    assert cell.siblings == (frozenset({0, 4}),)


def test_reserved_huge_pages_per_cell_and_size() -> None:
    host = host_from_capabilities(
        fixture("caps-2s-intel-smt.xml"), reserved_huge_pages={(1, 2048): 512, (0, 1048576): 2}
    )
    cell0, cell1 = host.cells
    assert cell0.page_pool(1048576) == PagePool(size_kib=1048576, total=32, reserved=2)
    assert cell0.page_pool(2048) == PagePool(size_kib=2048, total=16384)
    pool = cell1.page_pool(2048)
    assert pool == PagePool(size_kib=2048, total=16384, reserved=512)
    assert pool.free == 16384 - 512


def test_cpu_without_siblings_attribute_has_no_sibling() -> None:
    xml = variant("caps-small-1node.xml", " siblings='3,7'", "", count=2)
    (cell,) = host_from_capabilities(xml).cells
    assert cell.siblings == (
        *(frozenset({c, c + 4}) for c in range(3)),
        frozenset({3}),
        frozenset({7}),
    )


def test_cell_memory_in_other_units_is_converted_exactly() -> None:
    xml = variant(
        "caps-lab-1node.xml", "<memory unit='KiB'>4194304</memory>", "<memory unit='GB'>4</memory>"
    )
    (cell,) = host_from_capabilities(xml).cells
    assert cell.memory_mib == 4_000_000_000 // (1024 * 1024)


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        (
            {"cpu_dedicated_set": frozenset({2, 40, 41})},
            ("cpu_dedicated_set: CPUs 40-41 do not exist on this host (host CPUs: 0-39)",),
        ),
        (
            {"cpu_shared_set": frozenset({99})},
            ("cpu_shared_set: CPUs 99 do not exist", "host CPUs: 0-39"),
        ),
        (
            {"cpu_dedicated_set": frozenset({1, 2, 3}), "cpu_shared_set": frozenset({3, 4, 5, 2})},
            ("cpu_dedicated_set and cpu_shared_set overlap on CPUs 2-3",),
        ),
        (
            {"reserved_huge_pages": {(2, 2048): 1}},
            ("reserved_huge_pages: host has no 2048 KiB pages in cell 2", "cell 1 2048 KiB"),
        ),
        (
            {"reserved_huge_pages": {(0, 2048): -1}},
            ("reserved_huge_pages: cell 0 2048 KiB: -1 is negative",),
        ),
    ],
)
def test_bad_host_options_are_parse_errors(
    kwargs: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    with raises_parse_error("capabilities: ", *fragments):
        host_from_capabilities(fixture("caps-2s-intel-smt.xml"), **kwargs)


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        (
            "<cell id='1'>\n          <memory unit='KiB'>",
            "<cell id='1'>\n          <memory unit='XB'>",
            (
                "capabilities: /capabilities/host/topology/cells/cell[2]/memory: unit 'XB' is "
                "not one of b, bytes, KB, K/KiB, MB, M/MiB, GB, G/GiB",
            ),
        ),
        (
            "<cell id='1'>",
            "<cell id='0'>",
            ("/capabilities/host: cell ids [0] appear more than once",),
        ),
        ("<cell id='1'>", "<cell id='one'>", ("cell[2]: id 'one' is not an integer",)),
        ("<cell id='1'>", "<cell>", ("cell[2]: missing required attribute 'id'",)),
        ("siblings='0,20'", "siblings='0,x'", ("cpu[1]: siblings: 'x' is not a CPU id",)),
        ("<cpu id='5'", "<cpu id='-5'", ("cpu[6]: id '-5' must be at least 0",)),
        ("<cpu id='5'", f"<cpu id='{'9' * 5000}'", ("cpu[6]: id '999", "' is not an integer")),
        (
            "<pages unit='KiB' size='2048'>16384</pages>",
            "<pages unit='KiB' size='2048'>many</pages>",
            ("cell[1]/pages[2]: 'many' is not an integer",),
        ),
        (
            f"<uuid>{INTEL_UUID}</uuid>",
            "",
            ("/capabilities/host: missing required element <uuid>",),
        ),
    ],
)
def test_bad_capabilities_name_the_element(old: str, new: str, fragments: tuple[str, ...]) -> None:
    with raises_parse_error(*fragments):
        host_from_capabilities(variant("caps-2s-intel-smt.xml", old, new))


@pytest.mark.parametrize("topology", ["", "<topology><cells num='0'/></topology>"])
def test_host_without_numa_cells_is_refused(topology: str) -> None:
    xml = f"<capabilities><host><uuid>u</uuid><cpu/>{topology}</host></capabilities>"
    with raises_parse_error("capabilities: /capabilities/host: the capabilities lack NUMA"):
        host_from_capabilities(xml)


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        (
            "caps-2s-intel-smt.xml",
            HostFacts(
                uuid=INTEL_UUID,
                arch="x86_64",
                cpu_model="Skylake-Server-IBRS",
                cpu_vendor="Intel",
                cpu_topology=CpuTopology(sockets=1, dies=1, cores=10, threads=2),
                migration_transports=("tcp", "rdma"),
                security_models=("selinux", "dac"),
            ),
        ),
        (
            "caps-epyc-4node.xml",
            HostFacts(
                uuid="1f0e8b2a-3d4c-11ee-9a7b-3cecef0a52d4",
                arch="x86_64",
                cpu_model="EPYC-Rome",
                cpu_vendor="AMD",
                cpu_topology=CpuTopology(sockets=1, dies=1, cores=8, threads=2),
                migration_transports=("tcp", "rdma"),
                security_models=("apparmor", "dac"),
            ),
        ),
        (
            "caps-small-1node.xml",
            HostFacts(
                uuid="6a1f5c0e-8d7b-4e2a-9c31-0b5d2e7f4a18",
                arch="x86_64",
                cpu_model="Cascadelake-Server-noTSX",
                cpu_vendor="Intel",
                cpu_topology=CpuTopology(sockets=1, dies=1, cores=4, threads=2),
                migration_transports=("tcp",),
                security_models=("apparmor", "dac"),
            ),
        ),
        (
            "caps-lab-1node.xml",
            HostFacts(
                uuid="0e5b9a44-7f3c-4d61-8a2e-5c9d1b7e3f20",
                arch="x86_64",
                cpu_model=None,
                cpu_vendor=None,
                cpu_topology=CpuTopology(sockets=1, dies=1, cores=2, threads=1),
                migration_transports=("tcp", "rdma"),
                security_models=("none",),
            ),
        ),
    ],
)
def test_host_facts(name: str, facts: HostFacts) -> None:
    assert host_facts_from_capabilities(fixture(name)) == facts


def test_host_topology_matches_cells() -> None:
    """libvirt's <cpu><topology> is per NUMA node: sockets x cores x threads x cells = CPUs."""
    for name in (
        "caps-2s-intel-smt.xml",
        "caps-epyc-4node.xml",
        "caps-small-1node.xml",
        "caps-lab-1node.xml",
    ):
        facts = host_facts_from_capabilities(fixture(name))
        host = host_from_capabilities(fixture(name))
        topo = facts.cpu_topology
        assert topo is not None
        per_node = topo.sockets * topo.dies * topo.cores * topo.threads
        assert all(len(cell.cpuset) == per_node for cell in host.cells)


def test_host_facts_without_cpu_topology() -> None:
    xml = variant(
        "caps-lab-1node.xml", "<topology sockets='1' dies='1' cores='2' threads='1'/>", ""
    )
    facts = host_facts_from_capabilities(xml)
    assert facts.cpu_topology is None
    assert facts.migration_transports == ("tcp", "rdma")


def test_host_facts_bad_topology_names_the_attribute() -> None:
    xml = variant("caps-lab-1node.xml", "cores='2'", "cores='0'")
    with raises_parse_error("/capabilities/host/cpu/topology: cores '0' must be at least 1"):
        host_facts_from_capabilities(xml)


# --------------------------------------------------------------------------- domains


def test_pinned_two_cell_guest() -> None:
    info = domain_from_xml(fixture("dom-pinned-2cell-2m.xml"))
    assert info == DomainInfo(
        name="db-pinned-1",
        uuid="3b1d6e2a-9f47-4c58-8e0d-71a2c4b5d6e9",
        vcpus=4,
        vcpu_current=4,
        vcpu_cpuset=None,
        memory_mib=4096,
        current_memory_mib=4096,
        vcpupin=(
            (0, frozenset({2})),
            (1, frozenset({22})),
            (2, frozenset({12})),
            (3, frozenset({32})),
        ),
        emulatorpin=frozenset({1, 21}),
        iothreadpins=((1, frozenset({1, 21})),),
        vcpusched=(),
        numatune=NumaTune(
            mode="strict",
            nodeset=frozenset({0, 1}),
            memnodes=(
                MemNode(cell_id=0, mode="strict", nodeset=frozenset({0})),
                MemNode(cell_id=1, mode="strict", nodeset=frozenset({1})),
            ),
        ),
        numa_cells=(
            GuestNumaCell(id=0, cpus=frozenset({0, 1}), memory_mib=2048, mem_access="shared"),
            GuestNumaCell(id=1, cpus=frozenset({2, 3}), memory_mib=2048, mem_access="shared"),
        ),
        hugepages=(HugePages(size_kib=2048, nodeset=None),),
        hostdevs=(),
        nova=None,
        cpu_mode="custom",
        cpu_model="Skylake-Server-IBRS",
    )
    assert not info.nova_managed


def test_pinned_two_cell_guest_request() -> None:
    request, why = guest_request_from_domain(domain_from_xml(fixture("dom-pinned-2cell-2m.xml")))
    assert request == GuestRequest(
        cells=(
            GuestCell(0, frozenset(), frozenset({0, 1}), 2048),
            GuestCell(1, frozenset(), frozenset({2, 3}), 2048),
        ),
        cpu_policy=CPUPolicy.DEDICATED,
        thread_policy=None,
        emulator_policy=EmulatorPolicy.ISOLATE,
        page_size=PageSizeRequest.explicit(2048),
    )
    assert why == (
        "db-pinned-1: 2 guest cells from <cpu><numa>; all 4 vCPUs pinned to one host CPU each: "
        "dedicated; emulator threads pinned to host CPUs 1,21, apart from every vCPU: isolate; "
        "2 MiB huge pages: explicit page size; thread policy: cannot be inferred from a "
        "domain, left unset"
    )
    assert request.describe() == (
        "4 dedicated vCPUs, 4096 MiB, isolated emulator threads, 2 cells, 2 MiB pages"
    )


def test_shared_guest_with_vcpu_cpuset() -> None:
    info = domain_from_xml(fixture("dom-shared-cpuset.xml"), source="web.xml")
    assert info.name == "web-shared-3"
    assert info.vcpus == 4
    assert info.vcpu_current == 2
    assert info.vcpu_cpuset == cpus(range(0, 10), range(20, 30))
    assert info.memory_mib == 2048
    assert info.current_memory_mib == 1536
    assert info.vcpupin == info.iothreadpins == ()
    assert info.vcpusched == ()
    assert info.emulatorpin is None
    assert info.numatune is None
    assert info.numa_cells == (GuestNumaCell(0, frozenset(range(4)), 2048, None),)
    assert info.hugepages == ()
    assert info.hostdevs == ()
    assert info.cpu_mode == "host-model"
    assert info.cpu_model is None
    request, why = guest_request_from_domain(info)
    assert request == GuestRequest(
        cells=(GuestCell(0, frozenset(range(4)), frozenset(), 2048),),
        cpu_policy=CPUPolicy.SHARED,
    )
    assert "no vCPU pinned to a single host CPU, <vcpu cpuset='0-9,20-29'>: shared" in why
    assert "no huge pages: page size unset" in why


def test_mixed_realtime_guest() -> None:
    info = domain_from_xml(fixture("dom-mixed.xml"))
    floating = cpus(range(10, 14), range(30, 34))
    assert info.vcpupin == (
        (0, floating),
        (1, floating),
        (2, frozenset({15})),
        (3, frozenset({35})),
    )
    assert info.emulatorpin == floating
    assert info.vcpusched == (VcpuSched(frozenset({2, 3}), "fifo", 1),)
    assert info.numatune == NumaTune(mode="restrictive", nodeset=frozenset({1}), memnodes=())
    assert info.hugepages == (HugePages(size_kib=None, nodeset=None),)
    assert info.memory_mib == 8192
    assert info.cpu_mode == "host-passthrough"
    request, why = guest_request_from_domain(info)
    assert request == GuestRequest(
        cells=(GuestCell(0, frozenset({0, 1}), frozenset({2, 3}), 8192),),
        cpu_policy=CPUPolicy.MIXED,
        emulator_policy=None,
        page_size=PageSizeRequest(PageSizeKind.LARGE),
        realtime_vcpus=frozenset({2, 3}),
    )
    assert "vCPUs 2-3 pinned to one host CPU each, the others float: mixed" in why
    assert "emulator threads share host CPUs 10-13,30-33 with vCPU pins, policy unset" in why
    assert "vCPUs 2-3 have a real-time scheduler: realtime" in why
    assert "any large page size" in why


def test_nova_managed_guest() -> None:
    info = domain_from_xml(fixture("dom-nova.xml"))
    assert info.nova_managed
    assert info.nova == NovaMetadata(
        namespace="http://openstack.org/xmlns/libvirt/nova/1.1",
        instance_name="web-7",
        flavor_name="m1.pinned.2m",
        flavor_memory_mib=4096,
        flavor_vcpus=4,
    )
    assert info.name == "instance-0000002a"
    assert info.memory_mib == 4096  # <memory> without a unit is KiB
    assert info.vcpu_cpuset == cpus(range(3, 10), range(23, 30))
    assert info.hugepages == (HugePages(size_kib=2048, nodeset=frozenset({0})),)
    assert info.numa_cells == (GuestNumaCell(0, frozenset(range(4)), 4096, "shared"),)
    request, _ = guest_request_from_domain(info)
    assert request is not None
    assert request.cpu_policy is CPUPolicy.DEDICATED
    assert request.emulator_policy is EmulatorPolicy.ISOLATE
    assert request.page_size == PageSizeRequest.explicit(2048)


@pytest.mark.parametrize(
    ("namespace", "managed"),
    [
        ("http://openstack.org/xmlns/libvirt/nova/1.0", True),
        ("http://openstack.org/xmlns/libvirt/nova/1.2", True),
        ("http://example.org/xmlns/libvirt/nova/1.1", False),
    ],
)
def test_nova_namespace_versions(namespace: str, managed: bool) -> None:
    xml = variant(
        "dom-nova.xml",
        'xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1"',
        f'xmlns:nova="{namespace}"',
    )
    info = domain_from_xml(xml)
    assert info.nova_managed is managed
    assert (info.nova.namespace if info.nova else None) == (namespace if managed else None)


def test_nova_metadata_without_flavor() -> None:
    text = fixture("dom-nova.xml")
    start, end = text.index("<nova:flavor"), text.index("</nova:flavor>") + len("</nova:flavor>")
    info = domain_from_xml(text[:start] + text[end:])
    assert info.nova == NovaMetadata(
        namespace="http://openstack.org/xmlns/libvirt/nova/1.1",
        instance_name="web-7",
        flavor_name=None,
        flavor_memory_mib=None,
        flavor_vcpus=None,
    )


def test_sriov_guest_devices() -> None:
    info = domain_from_xml(fixture("dom-sriov.xml"))
    assert info.hostdevs == (
        PciHostdev(
            address="0000:3b:02.1",
            managed=True,
            interface=True,
            mac="52:54:00:6d:90:02",
            alias="hostdev0",
        ),
        PciHostdev(
            address="0000:af:00.0", managed=False, interface=False, mac=None, alias="hostdev1"
        ),
    )
    request, why = guest_request_from_domain(info)
    assert request is None
    assert why == "nfv-sriov-1: no NUMA need (no <vcpupin>, no guest NUMA cells, no huge pages)"


def test_hostdev_without_domain_and_alias() -> None:
    xml = variant(
        "dom-sriov.xml",
        "<address domain='0x0000' bus='0xaf' slot='0x00' function='0x0'/>\n      </source>\n"
        "      <alias name='hostdev1'/>",
        "<address bus='175' slot='0x1f' function='7'/>\n      </source>",
    )
    assert domain_from_xml(xml).hostdevs[1] == PciHostdev("0000:af:1f.7", False, False, None, None)


def test_one_gib_page_guest() -> None:
    info = domain_from_xml(fixture("dom-1g.xml"))
    assert info.memory_mib == 16 * GIB_MIB
    assert info.hugepages == (HugePages(size_kib=1048576, nodeset=frozenset({0, 1})),)
    assert info.numa_cells == (
        GuestNumaCell(0, frozenset(range(4)), 8192, None),
        GuestNumaCell(1, frozenset(range(4, 8)), 8192, None),
    )
    assert info.numatune is not None
    assert info.numatune.memnodes[1] == MemNode(cell_id=1, mode="preferred", nodeset=frozenset({1}))
    request, why = guest_request_from_domain(info)
    assert request == GuestRequest(
        cells=(
            GuestCell(0, frozenset(), frozenset(range(4)), 8192),
            GuestCell(1, frozenset(), frozenset(range(4, 8)), 8192),
        ),
        cpu_policy=CPUPolicy.DEDICATED,
        page_size=PageSizeRequest.explicit(1048576),
    )
    assert "emulator threads share host CPUs 7 with vCPU pins, policy unset" in why
    assert "1 GiB huge pages: explicit page size" in why


def test_pins_without_guest_numa_make_one_cell() -> None:
    text = fixture("dom-1g.xml")
    start, end = text.index("    <numa>"), text.index("</numa>") + len("</numa>\n")
    xml = text[:start] + text[end:]
    xml = xml.replace("<memnode cellid='0' mode='strict' nodeset='0'/>", "")
    xml = xml.replace("<memnode cellid='1' mode='preferred' nodeset='1'/>", "")
    request, why = guest_request_from_domain(domain_from_xml(xml))
    assert request == GuestRequest(
        cells=(GuestCell(0, frozenset(), frozenset(range(8)), 16384),),
        cpu_policy=CPUPolicy.DEDICATED,
        page_size=PageSizeRequest.explicit(1048576),
    )
    assert "no <cpu><numa>: one guest cell with all 8 vCPUs and 16384 MiB" in why


def test_vcpus_outside_every_guest_cell_go_to_the_first_cell() -> None:
    xml = variant("dom-1g.xml", "cpus='4-7'", "cpus='4-5'")
    request, why = guest_request_from_domain(domain_from_xml(xml))
    assert request is not None
    assert request.cells[0].dedicated_vcpus == frozenset({0, 1, 2, 3, 6, 7})
    assert request.cells[1].dedicated_vcpus == frozenset({4, 5})
    assert "vCPUs 6-7 are in no guest cell: counted in cell 0" in why


def test_several_page_sizes_request_any_large_page() -> None:
    xml = variant(
        "dom-1g.xml",
        "<page size='1' unit='G' nodeset='0-1'/>",
        "<page size='1' unit='G' nodeset='0'/><page size='2' unit='M' nodeset='1'/>",
    )
    info = domain_from_xml(xml)
    assert info.hugepages == (
        HugePages(1048576, frozenset({0})),
        HugePages(2048, frozenset({1})),
    )
    request, _ = guest_request_from_domain(info)
    assert request is not None
    assert request.page_size == PageSizeRequest(PageSizeKind.LARGE)


def test_unpinned_guest_without_vcpu_cpuset_has_no_cpu_policy() -> None:
    xml = variant("dom-shared-cpuset.xml", " cpuset='0-9,20-29'", "")
    request, why = guest_request_from_domain(domain_from_xml(xml))
    assert request is not None
    assert request.cpu_policy is None
    assert "no vCPU pinned to a single host CPU and no <vcpu cpuset>: no CPU policy" in why


def test_guest_without_numa_need() -> None:
    text = fixture("dom-shared-cpuset.xml")
    start, end = text.index("    <numa>"), text.index("</numa>") + len("</numa>\n")
    request, why = guest_request_from_domain(domain_from_xml(text[:start] + text[end:]))
    assert request is None
    assert "no NUMA need" in why


def test_vcpusched_without_vcpus_covers_every_vcpu() -> None:
    xml = variant(
        "dom-mixed.xml",
        "<vcpusched vcpus='2-3' scheduler='fifo' priority='1'/>",
        "<vcpusched scheduler='batch'/>",
    )
    info = domain_from_xml(xml)
    assert info.vcpusched == (VcpuSched(frozenset(range(4)), "batch", None),)
    request, _ = guest_request_from_domain(info)
    assert request is not None
    assert request.realtime_vcpus is None


DOMAIN_ERRORS = [
    (
        "dom-pinned-2cell-2m.xml",
        "<vcpupin vcpu='1' cpuset='22'/>",
        "<vcpupin vcpu='1' cpuset='abc'/>",
        "/domain/cputune/vcpupin[2]: cpuset: 'abc' is not a CPU id",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<vcpupin vcpu='3'",
        "<vcpupin vcpu='4'",
        "/domain/cputune/vcpupin[4]: vcpu '4' names vCPU 4 but <vcpu> gives 4 vCPUs (ids 0-3)",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<vcpupin vcpu='3'",
        "<vcpupin vcpu='2'",
        "/domain/cputune/vcpupin[4]: vcpu 2 is pinned more than once",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<vcpupin vcpu='1' cpuset='22'/>",
        "<vcpupin vcpu='1' cpuset='^22'/>",
        "/domain/cputune/vcpupin[2]: cpuset '^22' names no CPU or node",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<memory unit='KiB'>4194304</memory>",
        "<memory unit='KIBI'>4194304</memory>",
        "/domain/memory: unit 'KIBI' is not one of b, bytes, KB, K/KiB",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<memory unit='KiB'>4194304</memory>",
        "<memory unit='KiB'>4 GiB</memory>",
        "/domain/memory: '4 GiB' is not an integer",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "cpus='2-3' memory",
        "cpus='1-3' memory",
        "/domain/cpu/numa/cell[2]: cpus '1-3' overlaps another cell on vCPUs 1",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "cpus='2-3' memory",
        "cpus='2-5' memory",
        "/domain/cpu/numa/cell[2]: cpus '2-5' names vCPU 4-5 but <vcpu> gives 4 vCPUs",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<cell id='1'",
        "<cell id='2'",
        "/domain/cpu/numa: cell ids [0, 2] must be 0 to 1, each once",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<cell id='1'",
        "<cell id='0'",
        "/domain/cpu/numa: cell ids [0, 0] must be 0 to 1, each once",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "memory='2097152' unit='KiB' memAccess='shared'/>\n      <cell id='1'",
        "memory='2097152' unit='XB' memAccess='shared'/>\n      <cell id='1'",
        "/domain/cpu/numa/cell[1]: unit 'XB' is not one of",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<memnode cellid='1'",
        "<memnode cellid='2'",
        "/domain/numatune/memnode[2]: cellid 2 is not a guest NUMA cell in <cpu><numa> "
        "(cells: 0, 1)",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<memory mode='strict' nodeset='0-1'/>",
        "<memory mode='bind' nodeset='0-1'/>",
        "/domain/numatune/memory: mode 'bind' is not one of strict, preferred, interleave, "
        "restrictive",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<memnode cellid='0' mode='strict' nodeset='0'/>",
        "<memnode cellid='0' mode='strict'/>",
        "/domain/numatune/memnode[1]: missing required attribute 'nodeset'",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<emulatorpin cpuset='1,21'/>",
        "<emulatorpin cpuset='1-'/>",
        "/domain/cputune/emulatorpin: cpuset: '1-' is not a CPU id",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<iothreadpin iothread='1'",
        "<iothreadpin iothread='0'",
        "/domain/cputune/iothreadpin: iothread '0' must be at least 1",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<page size='2048' unit='KiB'/>",
        "<page unit='KiB'/>",
        "/domain/memoryBacking/hugepages/page: missing required attribute 'size'",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<vcpu placement='static'>4</vcpu>",
        "<vcpu placement='static'>0</vcpu>",
        "/domain/vcpu: '0' must be at least 1",
    ),
    (
        "dom-pinned-2cell-2m.xml",
        "<vcpu placement='static'>4</vcpu>",
        "",
        "/domain: missing required element <vcpu>",
    ),
    (
        "dom-shared-cpuset.xml",
        "current='2'",
        "current='5'",
        "/domain/vcpu: current '5' must be at least 1 and at most 4",
    ),
    (
        "dom-mixed.xml",
        "scheduler='fifo' priority='1'",
        "scheduler='fifo'",
        "/domain/cputune/vcpusched: missing required attribute 'priority'",
    ),
    (
        "dom-mixed.xml",
        "scheduler='fifo' priority='1'",
        "scheduler='deadline' priority='1'",
        "/domain/cputune/vcpusched: scheduler 'deadline' is not one of batch, idle, fifo, rr",
    ),
    (
        "dom-mixed.xml",
        "<vcpusched vcpus='2-3'",
        "<vcpusched vcpus='3-4'",
        "/domain/cputune/vcpusched: vcpus '3-4' names vCPU 4",
    ),
    (
        "dom-sriov.xml",
        "<interface type='hostdev' managed='yes'>",
        "<interface type='hostdev' managed='maybe'>",
        "/domain/devices/interface: managed 'maybe' is not one of yes, no",
    ),
    (
        "dom-sriov.xml",
        "slot='0x02' function='0x1'",
        "slot='0x20' function='0x1'",
        "/domain/devices/interface/source/address: slot '0x20' must be at least 0 and at most 31",
    ),
    (
        "dom-sriov.xml",
        "bus='0xaf' slot='0x00' function='0x0'",
        "bus='0xaf' slot='0x00'",
        "/domain/devices/hostdev[1]/source/address: missing required attribute 'function'",
    ),
    (
        "dom-nova.xml",
        "<nova:vcpus>4</nova:vcpus>",
        "<nova:vcpus>four</nova:vcpus>",
        "/domain/metadata/nova:instance/nova:flavor/nova:vcpus: 'four' is not an integer",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "message"), DOMAIN_ERRORS)
def test_bad_domains_name_the_element_and_value(
    name: str, old: str, new: str, message: str
) -> None:
    with raises_parse_error(f"{name}: {message}"):
        domain_from_xml(variant(name, old, new), source=name)


# --------------------------------------------------------------------------- node devices


def nodedev_docs(*names: str) -> list[tuple[str, str]]:
    paths = (
        [FIXTURES / "nodedev" / n for n in names]
        if names
        else sorted((FIXTURES / "nodedev").glob("*.xml"))
    )
    return [(p.name, p.read_text(encoding="utf-8")) for p in paths]


def test_pci_functions_from_all_nodedevs() -> None:
    functions = pci_functions_from_nodedevs(nodedev_docs())
    by_name = {f.name: f for f in functions}
    assert [f.address for f in functions] == [
        "0000:00:00.0",
        "0000:00:1f.2",
        "0000:18:02.3",
        "0000:3b:00.0",
        "0000:3b:02.0",
        "0000:3b:02.1",
        "0000:3b:02.2",
        "0000:3b:02.3",
    ]
    assert "usb_1_4" not in by_name
    assert by_name["pci_0000_3b_00_0"] == PciFunction(
        name="pci_0000_3b_00_0",
        address="0000:3b:00.0",
        numa_node=1,
        vendor_id="8086",
        product_id="1572",
        parent="pci_0000_3a_00_0",
        driver="i40e",
        is_pf=True,
        vf_max_count=64,
        vf_addresses=("0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3"),
        pf_address=None,
        net_interfaces=("ens1f0",),
    )
    assert not by_name["pci_0000_3b_00_0"].is_vf
    for function in range(4):
        vf = by_name[f"pci_0000_3b_02_{function}"]
        assert vf.is_vf
        assert not vf.is_pf
        assert vf.pf_address == "0000:3b:00.0"
        assert vf.numa_node == 1
        assert (vf.vendor_id, vf.product_id) == ("8086", "154c")
        assert vf.driver == ("iavf" if function == 0 else "vfio-pci")
        assert vf.vf_max_count is None
        assert vf.vf_addresses == vf.net_interfaces == ()
    assert by_name["pci_0000_18_02_3"] == PciFunction(
        name="pci_0000_18_02_3",
        address="0000:18:02.3",
        numa_node=0,
        vendor_id="15b3",
        product_id="1018",
        parent="pci_0000_17_00_0",
        driver="mlx5_core",
        pf_address="0000:18:00.1",
    )
    assert by_name["pci_0000_00_1f_2"].numa_node is None  # <numa node='-1'/>
    assert by_name["pci_0000_00_00_0"].numa_node is None  # no <numa>
    assert by_name["pci_0000_00_00_0"].driver is None


def test_net_child_without_its_pci_parent_is_ignored() -> None:
    (function,) = pci_functions_from_nodedevs(
        nodedev_docs("net_ens1f0_3c_fd_fe_a1_b2_c0.xml", "pci_0000_18_02_3.xml", "usb_1_4.xml")
    )
    assert function.name == "pci_0000_18_02_3"
    assert function.net_interfaces == ()


def test_nodedev_input_may_be_bytes_and_empty() -> None:
    assert pci_functions_from_nodedevs([]) == ()
    source, text = nodedev_docs("pci_0000_00_1f_2.xml")[0]
    (function,) = pci_functions_from_nodedevs([(source, text.encode())])
    assert function.address == "0000:00:1f.2"


@pytest.mark.parametrize(
    ("name", "old", "new", "message"),
    [
        ("pci_0000_00_1f_2.xml", "<numa node='-1'/>", "<numa node='-2'/>",
         "/device/capability/numa: node '-2' must be at least -1"),
        ("pci_0000_00_1f_2.xml", "<bus>0</bus>", "<bus>256</bus>",
         "/device/capability/bus: '256' must be at least 0 and at most 255"),
        ("pci_0000_00_1f_2.xml", "<function>2</function>", "",
         "/device/capability: missing required element <function>"),
        ("pci_0000_00_1f_2.xml", "<vendor id='0x8086'>", "<vendor id='intel'>",
         "/device/capability/vendor: id 'intel' is not an integer"),
        ("pci_0000_00_1f_2.xml", "<name>pci_0000_00_1f_2</name>", "",
         "/device: missing required element <name>"),
        ("pci_0000_3b_00_0.xml", "maxCount='64'", "maxCount='lots'",
         "/device/capability/capability: maxCount 'lots' is not an integer"),
        ("pci_0000_3b_02_1.xml",
         "<capability type='phys_function'>\n      <address domain='0x0000' bus='0x3b' "
         "slot='0x00' function='0x0'/>\n    </capability>",
         "<capability type='phys_function'/>",
         "/device/capability/capability: missing required element <address>"),
    ],
)  # fmt: skip
def test_bad_nodedevs_name_the_element(name: str, old: str, new: str, message: str) -> None:
    docs = [(name, variant(f"nodedev/{name}", old, new))]
    with raises_parse_error(f"{name}: {message}"):
        pci_functions_from_nodedevs(docs)


def test_non_device_root_is_an_error() -> None:
    with raises_parse_error("x.xml: root element is <nodedev>, expected <device>"):
        pci_functions_from_nodedevs([("x.xml", "<nodedev><name>x</name></nodedev>")])


def test_duplicate_device_is_an_error() -> None:
    docs = nodedev_docs("pci_0000_18_02_3.xml") * 2
    with raises_parse_error(
        "pci_0000_18_02_3.xml: /device: device pci_0000_18_02_3 appears in more than one document"
    ):
        pci_functions_from_nodedevs(docs)


def test_hostile_nodedev_is_refused() -> None:
    with raises_parse_error("evil: refusing a document with a DOCTYPE declaration"):
        pci_functions_from_nodedevs([("evil", fixture("hostile/xxe-parameter.xml"))])

"""Destination XML rewrite: pins, NUMA tuning, huge pages and VF addresses for the new host.

All of these run on hand-written fixtures only (tests/fixtures/xml/dom-*.xml, caps-*.xml and
tests/fixtures/xml/rewrite/), not on the real lab: they check the XML we hand to libvirt,
not what libvirt does with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.rewrite import rewrite_domain_xml, xml_diff
from numa_migrate.adapters.xmlsafe import parse_xml
from numa_migrate.core.destination import DestinationPlan, RewriteError, plan_from_placement
from numa_migrate.core.domainrequest import guest_request_from_domain
from numa_migrate.core.errors import NumaMigrateError, ParseError
from numa_migrate.core.fit.fitter import fit_guest
from numa_migrate.core.model.domain import REALTIME_SCHEDULERS, DomainInfo
from numa_migrate.core.model.guest import Guest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import CellPlacement, Placement

FIXTURES = Path(__file__).parent / "fixtures" / "xml"
DOMAINS = tuple(
    sorted(
        [p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("dom-*.xml")]
        + [p.relative_to(FIXTURES).as_posix() for p in (FIXTURES / "rewrite").glob("dom-*.xml")]
    )
)
HOSTS = tuple(sorted(p.name for p in FIXTURES.glob("caps-*.xml")))
NO_PINS: Mapping[int, frozenset[int]] = {}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def variant(name: str, old: str, new: str) -> str:
    text = fixture(name)
    assert old in text, old
    return text.replace(old, new, 1)


@cache
def host(name: str) -> HostTopology:
    return host_from_capabilities(fixture(name), name=name.removesuffix(".xml"))


@cache
def info_of(name: str) -> DomainInfo:
    return domain_from_xml(fixture(name), source=name)


def placement_on(info: DomainInfo, caps: str) -> Placement | None:
    request, _ = guest_request_from_domain(info)
    result = fit_guest(host(caps), Guest(info.vcpus, info.memory_mib, request, info.name))
    return result.placement


def fitting_pairs() -> list[tuple[str, str]]:
    return [
        (dom, caps)
        for dom in DOMAINS
        for caps in HOSTS
        if placement_on(info_of(dom), caps) is not None
    ]


PAIRS = fitting_pairs()


def plan_for(dom: str, caps: str, **kwargs: Any) -> DestinationPlan:
    info = info_of(dom)
    placement = placement_on(info, caps)
    assert placement is not None
    return plan_from_placement(info, placement, host(caps), **kwargs)


def iothread_ids(xml: str) -> tuple[int, ...]:
    root = parse_xml(xml, source="t")
    ids = [int(el.get("id", "0")) for el in root.iterfind("iothreadids/iothread")]
    if ids:
        return tuple(sorted(ids))
    count = root.findtext("iothreads")
    return tuple(range(1, int(count) + 1)) if count else ()


def plan(**overrides: Any) -> DestinationPlan:
    """A plan for dom-pinned-2cell-2m.xml (4 vCPUs, 2 cells, 1 IOThread), with overrides."""
    fields: dict[str, Any] = {
        "vcpu_pins": {0: {4}, 1: {24}, 2: {14}, 3: {34}},
        "emulator_pins": frozenset({3}),
        "iothread_pins": {},
        "shared_cpuset": None,
        "memory_nodes": frozenset({0, 1}),
        "cell_nodes": {0: 1, 1: 0},
        "hugepage_kib": None,
        "hostdev_map": {},
    }
    fields.update(overrides)
    return DestinationPlan(**fields)


# --------------------------------------------------------------------------- checks


def assert_matches_plan(before: str, after: str, plan: DestinationPlan) -> None:
    """The rewritten domain, read back with the domain parser, says what the plan says."""
    old = domain_from_xml(before, source="before")
    new = domain_from_xml(after, source="after")
    assert dict(new.vcpupin) == dict(plan.vcpu_pins)
    assert new.emulatorpin == (plan.emulator_pins or None)
    threads = iothread_ids(before)
    expected_io = {
        t: cpus for t in threads if (cpus := plan.iothread_pins.get(t, plan.emulator_pins))
    }
    assert dict(new.iothreadpins) == expected_io
    assert new.vcpu_cpuset == plan.shared_cpuset
    if plan.memory_nodes:
        assert new.numatune is not None
        assert new.numatune.nodeset == plan.memory_nodes
        assert new.numatune.mode == (old.numatune.mode if old.numatune else "strict")
        memnodes = {m.cell_id: m.nodeset for m in new.numatune.memnodes}
        if new.numa_cells:
            assert memnodes == {c: frozenset({n}) for c, n in plan.cell_nodes.items()}
            old_modes = {m.cell_id: m.mode for m in (old.numatune.memnodes if old.numatune else ())}
            for m in new.numatune.memnodes:
                assert m.mode == old_modes.get(m.cell_id, m.mode)
        else:
            assert memnodes == {}
    else:
        assert new.numatune is None or (new.numatune.nodeset is None and not new.numatune.memnodes)
    if plan.hugepage_kib is None:
        assert new.hugepages == old.hugepages
    else:
        cells = frozenset(c.id for c in new.numa_cells) or None
        pages = {(p.size_kib, p.nodeset or cells) for p in new.hugepages}
        by_size: dict[int, set[int]] = {}
        for cell, size in plan.hugepage_kib.items():
            by_size.setdefault(size, set()).add(cell)
        assert pages == {(s, frozenset(c) if cells else None) for s, c in by_size.items()}
    moved = {dev.address: dev for dev in new.hostdevs}
    for dev in old.hostdevs:
        new_dev = moved[plan.hostdev_map.get(dev.address, dev.address)]
        assert (new_dev.interface, new_dev.mac, new_dev.alias, new_dev.managed) == (
            dev.interface,
            dev.mac,
            dev.alias,
            dev.managed,
        )
    if plan.realtime_priority is None:
        assert new.vcpusched == old.vcpusched
    else:
        assert new.vcpusched == tuple(
            replace(sched, priority=plan.realtime_priority)
            if sched.scheduler in REALTIME_SCHEDULERS else sched
            for sched in old.vcpusched
        )
    assert (new.name, new.uuid, new.vcpus, new.vcpu_current) == (
        old.name,
        old.uuid,
        old.vcpus,
        old.vcpu_current,
    )
    assert new.numa_cells == old.numa_cells
    assert (new.memory_mib, new.current_memory_mib) == (old.memory_mib, old.current_memory_mib)


_REWRITTEN = (
    "cputune/vcpupin",
    "cputune/emulatorpin",
    "cputune/iothreadpin",
    "numatune",
    "memoryBacking/hugepages",
)
_PCI_ATTRS = ("domain", "bus", "slot", "function")


def without_rewritten_parts(xml: str) -> bytes:
    """Canonical XML of the domain with every part the rewrite may change taken out."""
    root = parse_xml(xml, source="t")
    vcpu = root.find("vcpu")
    assert vcpu is not None
    for attr in ("cpuset", "placement"):
        if attr in vcpu.attrib:
            del vcpu.attrib[attr]
    for path in _REWRITTEN:
        for el in root.findall(path):
            parent = el.getparent()
            assert parent is not None
            parent.remove(el)
    for sched in root.iterfind("cputune/vcpusched"):  # a real-time priority may change
        if sched.get("scheduler") in REALTIME_SCHEDULERS and "priority" in sched.attrib:
            del sched.attrib["priority"]
    for tag in ("cputune", "memoryBacking"):
        container = root.find(tag)
        if container is not None and len(container) == 0:
            root.remove(container)
    for dev in root.iterfind("devices/*"):
        address = dev.find("source/address")
        pci = (dev.tag == "hostdev" and dev.get("type") == "pci") or (
            dev.tag == "interface" and dev.get("type") == "hostdev"
        )
        if pci and address is not None:
            for attr in _PCI_ATTRS:
                if attr in address.attrib:
                    del address.attrib[attr]
    for el in root.iter():
        if el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
    return etree.tostring(root, method="c14n")


def top_level_tags(xml: str) -> list[str]:
    return [str(el.tag) for el in parse_xml(xml, source="t") if isinstance(el.tag, str)]


def raises_rewrite(*fragments: str) -> Any:
    """pytest.raises(RewriteError) whose message contains every fragment, in order."""
    return pytest.raises(RewriteError, match=".*".join(re.escape(f) for f in fragments))


# --------------------------------------------------------------------------- round trips


def test_every_domain_fixture_fits_some_host_fixture() -> None:
    assert {dom for dom, _ in PAIRS} == set(DOMAINS)
    assert len(DOMAINS) >= 7


@pytest.mark.parametrize(("dom", "caps"), PAIRS)
def test_round_trip_matches_plan_and_keeps_everything_else(dom: str, caps: str) -> None:
    before = fixture(dom)
    plan = plan_for(dom, caps)
    after = rewrite_domain_xml(before, plan, source=dom)
    assert_matches_plan(before, after, plan)
    assert without_rewritten_parts(after) == without_rewritten_parts(before)
    # The rewritten guest still reads as the same request (same cells, same policies).
    request_before, _ = guest_request_from_domain(info_of(dom))
    request_after, _ = guest_request_from_domain(domain_from_xml(after))
    if request_before is not None and request_after is not None:
        assert [c.vcpus for c in request_after.cells] == [c.vcpus for c in request_before.cells]
        assert request_after.page_size == request_before.page_size or (
            plan.hugepage_kib is not None
        )


@pytest.mark.parametrize(("dom", "caps"), PAIRS)
def test_rewrite_is_idempotent(dom: str, caps: str) -> None:
    plan = plan_for(dom, caps)
    once = rewrite_domain_xml(fixture(dom), plan)
    assert rewrite_domain_xml(once, plan) == once
    assert xml_diff(once, rewrite_domain_xml(once, plan)) == ""


@pytest.mark.parametrize(("dom", "caps"), PAIRS)
def test_live_and_persistent_xml_get_the_same_pins(dom: str, caps: str) -> None:
    """CVE-2020-17376: the persistent XML must not keep the source's pins."""
    live = fixture(dom)
    root = parse_xml(live, source=dom)
    if "id" in root.attrib:
        del root.attrib["id"]
    for alias in root.findall(".//alias"):
        parent = alias.getparent()
        assert parent is not None
        parent.remove(alias)
    persistent = etree.tostring(root, encoding="unicode")
    plan = plan_for(dom, caps)
    new_live = domain_from_xml(rewrite_domain_xml(live, plan))
    new_persistent = domain_from_xml(rewrite_domain_xml(persistent, plan))
    for field in ("vcpupin", "emulatorpin", "iothreadpins", "numatune", "hugepages", "vcpu_cpuset"):
        assert getattr(new_live, field) == getattr(new_persistent, field), field
    source_pins = set(info_of(dom).vcpupin)
    if source_pins and set(new_live.vcpupin) != source_pins:
        assert set(new_persistent.vcpupin).isdisjoint(source_pins - set(new_live.vcpupin))


def test_pinned_two_cell_domain_on_epyc_diff() -> None:
    dom = "dom-pinned-2cell-2m.xml"
    after = rewrite_domain_xml(fixture(dom), plan_for(dom, "caps-epyc-4node.xml"))
    changed = [
        line
        for line in xml_diff(fixture(dom), after).splitlines()
        if line[:1] in "+-" and line[:3] not in ("---", "+++")
    ]
    assert changed == [
        '-    <vcpupin vcpu="0" cpuset="2"/>',
        '-    <vcpupin vcpu="1" cpuset="22"/>',
        '-    <vcpupin vcpu="2" cpuset="12"/>',
        '-    <vcpupin vcpu="3" cpuset="32"/>',
        '-    <emulatorpin cpuset="1,21"/>',
        '-    <iothreadpin iothread="1" cpuset="1,21"/>',
        '+    <vcpupin vcpu="0" cpuset="0"/>',
        '+    <vcpupin vcpu="1" cpuset="32"/>',
        '+    <vcpupin vcpu="2" cpuset="8"/>',
        '+    <vcpupin vcpu="3" cpuset="40"/>',
        '+    <emulatorpin cpuset="1"/>',
        '+    <iothreadpin iothread="1" cpuset="1"/>',
    ]


def test_plan_from_placement_for_a_mixed_guest() -> None:
    dom, caps = "dom-mixed.xml", "caps-epyc-4node.xml"
    info = info_of(dom)
    placement = placement_on(info, caps)
    assert placement is not None
    (cell,) = placement.cells
    shared = host(caps).cell(cell.host_cell).cpuset
    plan = plan_from_placement(info, placement, host(caps))
    pinned = cell.pinning_map()
    assert set(pinned) == {2, 3}
    assert dict(plan.vcpu_pins) == {
        0: shared,
        1: shared,
        2: frozenset({pinned[2]}),
        3: frozenset({pinned[3]}),
    }
    # vCPUs 2-3 run with a FIFO scheduler: like Nova, the emulator threads stay off their
    # CPUs and run on the other vCPUs' pins (the shared pool), as on the source.
    assert plan.emulator_pins == shared
    assert plan.shared_cpuset is None  # the source had no <vcpu cpuset>
    assert plan.memory_nodes == {cell.host_cell}
    assert dict(plan.cell_nodes) == {0: cell.host_cell}
    assert plan.hugepage_kib == {0: cell.pagesize_kib}
    after = rewrite_domain_xml(fixture(dom), plan)
    new = domain_from_xml(after)
    assert new.numatune is not None
    # <memory mode='restrictive'> requires restrictive memnodes: the new one inherits it.
    assert [(m.cell_id, m.mode) for m in new.numatune.memnodes] == [(0, "restrictive")]
    assert '<page size="2048" unit="KiB" nodeset="0"/>' in after


# --------------------------------------------------------------------------- real-time priority

REALTIME_SCHEDS = (
    "<vcpusched vcpus='0' scheduler='batch'/>"
    "<vcpusched vcpus='1' scheduler='idle' priority='3'/>"
    "<vcpusched vcpus='2' scheduler='fifo' priority='1'/>"
    "<vcpusched vcpus='3' scheduler='rr' priority='20'/>"
)


@pytest.mark.parametrize(
    ("scheds", "priority", "expected"),
    [
        # (the domain's <vcpusched> elements, the plan's priority, (scheduler, priority) after)
        ("<vcpusched vcpus='2-3' scheduler='fifo' priority='1'/>", None, [("fifo", 1)]),
        ("<vcpusched vcpus='2-3' scheduler='fifo' priority='1'/>", 50, [("fifo", 50)]),
        ("<vcpusched vcpus='2-3' scheduler='fifo' priority='1'/>", 1, [("fifo", 1)]),
        ("<vcpusched vcpus='2-3' scheduler='rr' priority='99'/>", 1, [("rr", 1)]),
        (REALTIME_SCHEDS, 42, [("batch", None), ("idle", 3), ("fifo", 42), ("rr", 42)]),
        (REALTIME_SCHEDS, None, [("batch", None), ("idle", 3), ("fifo", 1), ("rr", 20)]),
        ("<vcpusched vcpus='0-3' scheduler='batch'/>", 42, [("batch", None)]),
        ("", 42, []),
    ],
)
def test_realtime_priority_is_the_destinations(
    scheds: str, priority: int | None, expected: list[tuple[str, int | None]]
) -> None:
    xml = variant("dom-mixed.xml", "<vcpusched vcpus='2-3' scheduler='fifo' priority='1'/>",
                  scheds)
    rt_plan = plan_for("dom-mixed.xml", "caps-epyc-4node.xml", realtime_priority=priority)
    after = rewrite_domain_xml(xml, rt_plan)
    new = domain_from_xml(after)
    assert [(s.scheduler, s.priority) for s in new.vcpusched] == expected
    assert rewrite_domain_xml(after, rt_plan) == after  # idempotent
    assert_matches_plan(xml, after, rt_plan)


def test_plan_from_placement_carries_the_priority_of_a_realtime_guest_only() -> None:
    rt = plan_for("dom-mixed.xml", "caps-epyc-4node.xml", realtime_priority=7)
    assert rt.realtime_priority == 7
    assert plan_for("dom-mixed.xml", "caps-epyc-4node.xml").realtime_priority is None
    plain = plan_for("dom-pinned-2cell-2m.xml", "caps-2s-intel-smt.xml", realtime_priority=7)
    assert plain.realtime_priority is None


def test_plan_from_placement_isolated_emulator_and_explicit_shared_cpus() -> None:
    dom, caps = "dom-nova.xml", "caps-2s-intel-smt.xml"
    info = info_of(dom)
    placement = placement_on(info, caps)
    assert placement is not None and placement.emulator_pins is not None
    plan = plan_from_placement(info, placement, host(caps), shared_cpus=frozenset({38, 39}))
    assert plan.emulator_pins == placement.emulator_pins
    assert plan.shared_cpuset == frozenset({38, 39})
    assert all(len(cpus) == 1 for cpus in plan.vcpu_pins.values())
    default = plan_from_placement(info, placement, host(caps))
    host_cell = host(caps).cell(placement.cells[0].host_cell)
    assert default.shared_cpuset == host_cell.cpuset  # source had one: kept, destination CPUs


def test_plan_from_placement_shared_cpus_override_the_floating_pool() -> None:
    dom, caps = "dom-shared-cpuset.xml", "caps-small-1node.xml"
    plan = plan_for(dom, caps, shared_cpus=frozenset({1, 5}))
    assert set(plan.vcpu_pins.values()) == {frozenset({1, 5})}
    assert plan.emulator_pins == {1, 5}


def test_plan_from_placement_small_pages_drop_hugepages() -> None:
    """A cell on its host cell's smallest page size gets ordinary pages, as Nova writes it."""
    dom, caps = "dom-pinned-2cell-2m.xml", "caps-2s-intel-smt.xml"
    info = info_of(dom)
    placement = placement_on(info, caps)
    assert placement is not None
    small = Placement(
        tuple(
            CellPlacement(c.guest_cell, c.host_cell, c.vcpus, c.memory_mib, 4, c.pinning)
            for c in placement.cells
        ),
        placement.emulator_pins,
    )
    plan = plan_from_placement(info, small, host(caps))
    assert plan.hugepage_kib == {}
    after = rewrite_domain_xml(fixture(dom), plan)
    assert domain_from_xml(after).hugepages == ()
    assert "<memoryBacking>\n    <locked/>\n  </memoryBacking>" in after


def test_no_numa_placement_removes_the_source_pins() -> None:
    """A guest with no NUMA need must not keep stale host CPUs or nodes on the destination."""
    xml = variant(
        "dom-sriov.xml",
        "<vcpu placement='static'>2</vcpu>",
        "<vcpu placement='static' cpuset='4-7'>2</vcpu>\n  <cputune>\n    <shares>1024</shares>\n"
        "    <emulatorpin cpuset='7'/>\n  </cputune>\n  <numatune>\n"
        "    <memory mode='strict' nodeset='1'/>\n  </numatune>",
    )
    info = domain_from_xml(xml)
    assert guest_request_from_domain(info)[0] is None
    caps = "caps-epyc-4node.xml"
    plan = plan_from_placement(info, Placement(()), host(caps))
    assert not plan.vcpu_pins and not plan.emulator_pins and not plan.memory_nodes
    assert plan.shared_cpuset == frozenset().union(*(c.cpuset for c in host(caps).cells))
    new = domain_from_xml(rewrite_domain_xml(xml, plan))
    assert (new.emulatorpin, new.numatune) == (None, None)
    assert new.vcpu_cpuset == plan.shared_cpuset
    after = rewrite_domain_xml(xml, plan)
    assert "<cputune>\n    <shares>1024</shares>\n  </cputune>" in after


def test_sriov_vf_swap_changes_only_the_host_address() -> None:
    dom = "dom-sriov.xml"
    plan = plan_for(dom, "caps-lab-1node.xml", hostdev_map={"0000:3B:02.1": "0000:3b:02.3"})
    assert dict(plan.hostdev_map) == {"0000:3b:02.1": "0000:3b:02.3"}
    before = fixture(dom)
    after = rewrite_domain_xml(before, plan)
    new = domain_from_xml(after)
    assert [d.address for d in new.hostdevs] == ["0000:3b:02.3", "0000:af:00.0"]
    assert '<address type="pci" domain="0x0000" bus="0x3b" slot="0x02" function="0x3"/>' in after
    # the guest-side address and the USB hostdev are untouched
    assert 'bus="0x05" slot="0x00" function="0x0"' in after
    assert '<address bus="1" device="4"/>' in after
    assert rewrite_domain_xml(after, plan) == after


def test_two_hostdevs_can_trade_places() -> None:
    swap = {"0000:3b:02.1": "0000:af:00.0", "0000:af:00.0": "0000:3b:02.1"}
    new = domain_from_xml(
        rewrite_domain_xml(
            fixture("dom-sriov.xml"),
            plan(
                vcpu_pins={},
                emulator_pins=frozenset(),
                memory_nodes=frozenset(),
                cell_nodes={},
                hostdev_map=swap,
            ),
        )
    )
    assert [(d.address, d.interface) for d in new.hostdevs] == [
        ("0000:af:00.0", True),
        ("0000:3b:02.1", False),
    ]


# --------------------------------------------------------------------------- structure


def test_missing_elements_are_created_in_libvirt_order_and_indented() -> None:
    dom = "dom-shared-cpuset.xml"
    hugepages = {0: 2048}
    after = rewrite_domain_xml(
        fixture(dom),
        plan(
            vcpu_pins={v: {0, 1} for v in range(4)},
            emulator_pins=frozenset({0, 1}),
            memory_nodes=frozenset({0}),
            cell_nodes={0: 0},
            hugepage_kib=hugepages,
        ),
    )
    assert top_level_tags(after)[:9] == [
        "name",
        "uuid",
        "memory",
        "currentMemory",
        "memoryBacking",
        "vcpu",
        "cputune",
        "numatune",
        "os",
    ]
    assert (
        '  <currentMemory unit="MiB">1536</currentMemory>\n'
        "  <memoryBacking>\n"
        "    <hugepages>\n"
        '      <page size="2048" unit="KiB" nodeset="0"/>\n'
        "    </hugepages>\n"
        "  </memoryBacking>\n"
        '  <vcpu placement="static" current="2">4</vcpu>\n'
        "  <cputune>\n"
        '    <vcpupin vcpu="0" cpuset="0-1"/>\n'
    ) in after
    assert (
        '    <emulatorpin cpuset="0-1"/>\n'
        "  </cputune>\n"
        "  <numatune>\n"
        '    <memory mode="strict" nodeset="0"/>\n'
        '    <memnode cellid="0" mode="strict" nodeset="0"/>\n'
        "  </numatune>\n"
        "  <os>\n"
    ) in after


def test_new_pins_go_between_tunables_and_schedulers() -> None:
    after = rewrite_domain_xml(
        fixture("rewrite/dom-iothreads-auto.xml"),
        plan(
            vcpu_pins={0: {2}, 1: {3}},
            emulator_pins=frozenset({1}),
            iothread_pins={2: {6}},
            memory_nodes=frozenset({0, 1}),
            cell_nodes={0: 0, 1: 1},
        ),
    )
    cputune = parse_xml(after, source="t").find("cputune")
    assert cputune is not None
    assert [(el.tag, el.get("iothread")) for el in cputune] == [
        ("period", None),
        ("vcpupin", None),
        ("vcpupin", None),
        ("emulatorpin", None),
        ("iothreadpin", "2"),
        ("iothreadpin", "5"),
        ("emulatorsched", None),
        ("cachetune", None),
    ]
    new = domain_from_xml(after)
    assert dict(new.iothreadpins) == {2: {6}, 5: {1}}  # 5 follows the emulator pins


def test_automatic_placement_becomes_static_with_the_plan() -> None:
    dom = "rewrite/dom-iothreads-auto.xml"
    after = rewrite_domain_xml(fixture(dom), plan_for(dom, "caps-2s-intel-smt.xml"))
    root = parse_xml(after, source="t")
    assert root.find("vcpu") is not None
    assert root.find("vcpu").get("placement") == "static"  # type: ignore[union-attr]
    memory = root.find("numatune/memory")
    assert memory is not None
    assert (memory.get("mode"), memory.get("placement"), memory.get("nodeset")) == (
        "interleave",
        "static",
        "0-1",
    )


def test_compact_xml_stays_compact() -> None:
    root = parse_xml(fixture("dom-shared-cpuset.xml"), source="t")
    for el in root.iter():
        if el.text is not None and not el.text.strip():
            el.text = None
        el.tail = None
    compact = etree.tostring(root, encoding="unicode")
    after = rewrite_domain_xml(
        compact,
        plan(
            vcpu_pins={v: {0} for v in range(4)},
            memory_nodes=frozenset({0}),
            cell_nodes={0: 0},
            hugepage_kib={0: 2048},
        ),
    )
    assert "\n" not in after.rstrip("\n")
    assert '<cputune><vcpupin vcpu="0" cpuset="0"/>' in after


def test_matching_hugepages_are_left_as_written() -> None:
    dom = "dom-1g.xml"
    plan_1g = plan_for(dom, "caps-2s-intel-smt.xml")
    assert plan_1g.hugepage_kib == {0: 1048576, 1: 1048576}
    after = rewrite_domain_xml(fixture(dom), plan_1g)
    assert '<page size="1" unit="G" nodeset="0-1"/>' in after
    mixed = rewrite_domain_xml(
        fixture(dom),
        plan_1g.__class__(**{**plan_1g.__dict__, "hugepage_kib": {0: 2048, 1: 1048576}}),
    )
    assert (
        '<hugepages>\n      <page size="2048" unit="KiB" nodeset="0"/>\n'
        '      <page size="1048576" unit="KiB" nodeset="1"/>\n    </hugepages>\n    <nosharepages/>'
    ) in mixed


def test_hugepages_none_leaves_memory_backing_alone_and_empty_removes_it() -> None:
    dom = "dom-mixed.xml"
    base = plan_for(dom, "caps-epyc-4node.xml")
    keep = rewrite_domain_xml(
        fixture(dom), DestinationPlan(**{**base.__dict__, "hugepage_kib": None})
    )
    assert "<memoryBacking>\n    <hugepages/>\n  </memoryBacking>" in keep
    gone = rewrite_domain_xml(
        fixture(dom), DestinationPlan(**{**base.__dict__, "hugepage_kib": {}})
    )
    assert "memoryBacking" not in gone
    assert '  <currentMemory unit="KiB">8388608</currentMemory>\n  <vcpu' in gone


def test_default_emulator_pins_are_the_union_of_the_vcpu_pins() -> None:
    dom, caps = "dom-1g.xml", "caps-2s-intel-smt.xml"  # dedicated, no emulator policy
    plan_1g = plan_for(dom, caps)
    assert plan_1g.emulator_pins == frozenset().union(*plan_1g.vcpu_pins.values())
    assert len(plan_1g.emulator_pins) == 8


def test_source_memnode_mode_is_kept() -> None:
    dom = "dom-1g.xml"  # memnode cellid=1 is 'preferred'
    new = domain_from_xml(rewrite_domain_xml(fixture(dom), plan_for(dom, "caps-2s-intel-smt.xml")))
    assert new.numatune is not None
    assert [(m.cell_id, m.mode) for m in new.numatune.memnodes] == [(0, "strict"), (1, "preferred")]


def test_domain_without_guest_numa_cells_gets_no_memnode_and_no_page_nodeset() -> None:
    xml = variant(
        "dom-shared-cpuset.xml",
        "<numa>\n      <cell id='0' cpus='0-3' memory='2048' unit='MiB'/>\n    </numa>",
        "",
    )
    after = rewrite_domain_xml(
        xml,
        plan(
            vcpu_pins={v: {2} for v in range(4)},
            memory_nodes=frozenset({1}),
            cell_nodes={0: 1},
            hugepage_kib={0: 2048},
        ),
    )
    assert "memnode" not in after
    assert '<page size="2048" unit="KiB"/>' in after


def test_xml_diff_ignores_quoting_and_comments() -> None:
    text = fixture("dom-1g.xml")
    requoted = etree.tostring(parse_xml(text, source="t"), encoding="unicode")
    assert xml_diff(text, requoted) == ""
    diff = xml_diff(
        text, text.replace("cpuset='27'", "cpuset='26'"), before_name="a", after_name="b"
    )
    assert diff.splitlines()[:2] == ["--- a", "+++ b"]
    assert '-    <vcpupin vcpu="1" cpuset="27"/>' in diff.splitlines()
    assert '+    <vcpupin vcpu="1" cpuset="26"/>' in diff.splitlines()


def test_plan_is_immutable_and_hashable() -> None:
    p = plan()
    with pytest.raises(TypeError):
        p.vcpu_pins[0] = frozenset({1})  # type: ignore[index]
    assert hash(p) == hash(plan())
    assert p == plan()
    assert list(plan(cell_nodes={1: 0, 0: 1}).cell_nodes) == [0, 1]


# --------------------------------------------------------------------------- errors


def test_plan_naming_a_vcpu_the_domain_lacks() -> None:
    bad = plan(vcpu_pins={0: {4}, 1: {24}, 2: {14}, 3: {34}, 9: {5}})
    with raises_rewrite("dom: the plan pins vCPU 9, which the domain does not have", "0-3"):
        rewrite_domain_xml(fixture("dom-pinned-2cell-2m.xml"), bad, source="dom")


def test_domain_vcpu_missing_from_the_plan() -> None:
    with raises_rewrite("the plan has no pin for vCPU 2-3 of the domain") as info:
        rewrite_domain_xml(fixture("dom-pinned-2cell-2m.xml"), plan(vcpu_pins={0: {4}, 1: {5}}))
    assert info.value.element == "cputune/vcpupin"


def test_guest_cell_without_host_node() -> None:
    with raises_rewrite("guest NUMA cell 1 has no host node in the plan") as info:
        rewrite_domain_xml(fixture("dom-pinned-2cell-2m.xml"), plan(cell_nodes={0: 1}))
    assert info.value.element == "numatune/memnode"


def test_plan_naming_a_guest_cell_the_domain_lacks() -> None:
    with raises_rewrite("cell_nodes names guest cell 2", "guest NUMA cells 0-1"):
        rewrite_domain_xml(fixture("dom-pinned-2cell-2m.xml"), plan(cell_nodes={0: 1, 1: 0, 2: 0}))
    with raises_rewrite("hugepage_kib names guest cell 3"):
        rewrite_domain_xml(fixture("dom-pinned-2cell-2m.xml"), plan(hugepage_kib={3: 2048}))


def test_cell_node_outside_memory_nodes() -> None:
    with raises_rewrite("host node 1, outside memory_nodes (0)"):
        rewrite_domain_xml(fixture("dom-pinned-2cell-2m.xml"), plan(memory_nodes=frozenset({0})))


def test_hostdev_not_in_domain() -> None:
    with raises_rewrite(
        "moves PCI device 0000:3b:02.5, which is not in the domain",
        "0000:3b:02.1, 0000:af:00.0",
    ) as info:
        rewrite_domain_xml(
            fixture("dom-sriov.xml"),
            plan(
                vcpu_pins={},
                memory_nodes=frozenset(),
                cell_nodes={},
                emulator_pins=frozenset(),
                hostdev_map={"0000:3b:02.5": "0000:3b:02.6"},
            ),
        )
    assert info.value.element == "devices/hostdev"


def test_hostdev_swap_onto_a_device_the_guest_keeps() -> None:
    with raises_rewrite("PCI device 0000:af:00.0 would be given to the guest twice"):
        rewrite_domain_xml(
            fixture("dom-sriov.xml"),
            plan(
                vcpu_pins={},
                memory_nodes=frozenset(),
                cell_nodes={},
                emulator_pins=frozenset(),
                hostdev_map={"0000:3b:02.1": "0000:af:00.0"},
            ),
        )


def test_unknown_iothread() -> None:
    with raises_rewrite("the plan pins IOThread 2", "(IOThreads: 1)"):
        rewrite_domain_xml(fixture("dom-pinned-2cell-2m.xml"), plan(iothread_pins={2: {1}}))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"vcpu_pins": {0: set()}}, "vcpu_pins[0] pins to no host CPU"),
        ({"vcpu_pins": {-1: {1}}}, "vcpu_pins: id -1 is not an integer of at least 0"),
        ({"iothread_pins": {0: {1}}}, "iothread_pins: id 0 is not an integer of at least 1"),
        ({"emulator_pins": frozenset({-2})}, "emulator_pins: host CPU -2"),
        ({"shared_cpuset": frozenset()}, "shared_cpuset is empty"),
        ({"hugepage_kib": {0: 0}}, "hugepage_kib: page size 0 is not an integer of at least 1"),
        ({"cell_nodes": {0: "1"}}, "cell_nodes: host node '1'"),
        ({"hostdev_map": {"3b:02.1": "0000:3b:02.2"}}, "'3b:02.1' is not a PCI address"),
        ({"hostdev_map": {"0000:3b:02.1": "0000:3b:20.2"}}, "slot at most 1f"),
        ({"hostdev_map": {"0000:3b:02.1": "10000:3b:02.2"}}, "is not a PCI address dddd:bb:ss.f"),
        ({"realtime_priority": 0}, "realtime_priority: 0 is not a real-time scheduler priority"),
        ({"realtime_priority": 100}, "realtime_priority: 100 is not a real-time scheduler"),
        ({"realtime_priority": True}, "realtime_priority: True is not a real-time scheduler"),
        ({"realtime_priority": "5"}, "realtime_priority: '5' is not a real-time scheduler"),
    ],
)
def test_invalid_plans_are_refused(overrides: dict[str, Any], message: str) -> None:
    with raises_rewrite("plan: invalid plan: ", message):
        plan(**overrides)


@pytest.mark.parametrize("name", ["xxe-file.xml", "billion-laughs.xml", "external-dtd.xml"])
def test_hostile_xml_is_refused(name: str) -> None:
    data = (FIXTURES / "hostile" / name).read_bytes()
    with pytest.raises(ParseError, match="DOCTYPE"):
        rewrite_domain_xml(data, plan(), source=name)
    with pytest.raises(ParseError, match="DOCTYPE"):
        xml_diff(data.decode(), fixture("dom-1g.xml"))


def test_non_domain_and_broken_xml_are_parse_errors() -> None:
    with pytest.raises(ParseError, match="root element is <capabilities>, expected <domain>"):
        rewrite_domain_xml(fixture("caps-lab-1node.xml"), plan())
    with pytest.raises(ParseError, match="names vCPU 7 but <vcpu> gives 4 vCPUs"):
        rewrite_domain_xml(variant("dom-mixed.xml", "vcpu='3'", "vcpu='7'"), plan())


def test_plan_from_placement_errors() -> None:
    dom, caps = "dom-pinned-2cell-2m.xml", "caps-2s-intel-smt.xml"
    info = info_of(dom)
    placement = placement_on(info, caps)
    assert placement is not None
    one_cell = host_from_capabilities(fixture("caps-lab-1node.xml"), name="lab")
    with raises_rewrite("guest cell 1 on host cell 1, which host lab does not have (cells: 0)"):
        plan_from_placement(info, placement, one_cell)
    floating = info_of("dom-shared-cpuset.xml")
    all_dedicated = host_from_capabilities(
        fixture("caps-small-1node.xml"), name="small", cpu_dedicated_set=frozenset(range(8))
    )
    cell = CellPlacement(0, 0, frozenset(range(4)), 2048, None, None)
    with raises_rewrite(
        "floating vCPU 0 of guest cell 0 has no shared CPU", "host cell 0 of small"
    ):
        plan_from_placement(floating, Placement((cell,)), all_dedicated)
    half = Placement(
        (placement.cells[0], CellPlacement(1, 1, frozenset({2, 3}), 2048, None, ((2, 10), (3, 30))))
    )
    with raises_rewrite("page size to guest cells 0 only"):
        plan_from_placement(info, half, host(caps))


def test_errors_are_numa_migrate_errors() -> None:
    assert issubclass(RewriteError, NumaMigrateError)


# --------------------------------------------------------------------------- properties

CPU_SETS = st.frozensets(st.integers(0, 127), min_size=1, max_size=5)
PAGE_SIZES = st.sampled_from([4, 2048, 16384, 1048576])


@st.composite
def random_plans(draw: st.DrawFn, dom: str) -> DestinationPlan:
    info = info_of(dom)
    explicit = bool(info.numa_cells)
    cells = [c.id for c in info.numa_cells] or [0]
    vcpu_pins = {v: draw(CPU_SETS) for v in range(info.vcpus)} if draw(st.integers(0, 5)) else {}
    if explicit or draw(st.booleans()):
        cell_nodes = {c: draw(st.integers(0, 7)) for c in cells}
    else:
        cell_nodes = {}
    memory_nodes = frozenset(cell_nodes.values()) | draw(
        st.frozensets(st.integers(0, 7), max_size=2)
    )
    hugepage_kib = draw(
        st.none() | st.dictionaries(st.sampled_from(cells), PAGE_SIZES, max_size=len(cells))
    )
    threads = iothread_ids(fixture(dom))
    iothread_pins = draw(st.dictionaries(st.sampled_from(threads), CPU_SETS)) if threads else {}
    present = [d.address for d in info.hostdevs]
    hostdev_map: dict[str, str] = {}
    if present:
        moved = draw(st.lists(st.sampled_from(present), unique=True))
        targets = draw(
            st.lists(
                st.tuples(st.integers(0, 0xFF), st.integers(0, 0x1F), st.integers(0, 7)),
                min_size=len(moved),
                max_size=len(moved),
                unique=True,
            )
        )
        hostdev_map = {
            old: f"0001:{b:02x}:{s:02x}.{f}" for old, (b, s, f) in zip(moved, targets, strict=True)
        }
    return DestinationPlan(
        vcpu_pins=vcpu_pins,
        emulator_pins=draw(st.frozensets(st.integers(0, 127), max_size=4)),
        iothread_pins=iothread_pins,
        shared_cpuset=draw(st.none() | CPU_SETS),
        memory_nodes=memory_nodes,
        cell_nodes=cell_nodes,
        hugepage_kib=hugepage_kib,
        hostdev_map=hostdev_map,
        realtime_priority=draw(st.none() | st.integers(1, 99)),
    )


@st.composite
def domain_and_plan(draw: st.DrawFn) -> tuple[str, DestinationPlan]:
    dom = draw(st.sampled_from(DOMAINS))
    return dom, draw(random_plans(dom))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(domain_and_plan())
def test_random_plans_give_xml_whose_pins_equal_the_plan(case: tuple[str, DestinationPlan]) -> None:
    dom, plan = case
    before = fixture(dom)
    after = rewrite_domain_xml(before, plan)
    assert_matches_plan(before, after, plan)
    assert without_rewritten_parts(after) == without_rewritten_parts(before)
    assert rewrite_domain_xml(after, plan) == after


@settings(max_examples=100, deadline=None)
@given(domain_and_plan(), domain_and_plan())
def test_a_second_plan_fully_replaces_the_first(
    first: tuple[str, DestinationPlan], second: tuple[str, DestinationPlan]
) -> None:
    """Rewriting an already rewritten XML leaves nothing of the first plan's pins behind."""
    dom, plan_a = first
    _, plan_b = second
    plan_b_here = reshaped_for(dom, plan_b)
    middle = rewrite_domain_xml(fixture(dom), plan_a)
    assert_matches_plan(middle, rewrite_domain_xml(middle, plan_b_here), plan_b_here)


def reshaped_for(dom: str, other: DestinationPlan) -> DestinationPlan:
    """``other``'s CPU choices, shaped to fit ``dom`` (its vCPUs, cells and IOThreads)."""
    info = info_of(dom)
    pools = list(other.vcpu_pins.values()) or [frozenset({0})]
    cells = [c.id for c in info.numa_cells] or [0]
    nodes = sorted(other.memory_nodes) or [0]
    cell_nodes = {c: nodes[i % len(nodes)] for i, c in enumerate(cells)}
    return DestinationPlan(
        vcpu_pins={v: pools[v % len(pools)] for v in range(info.vcpus)},
        emulator_pins=other.emulator_pins,
        iothread_pins={},
        shared_cpuset=other.shared_cpuset,
        memory_nodes=frozenset(cell_nodes.values()),
        cell_nodes=cell_nodes,
        hugepage_kib=None if other.hugepage_kib is None else dict.fromkeys(cells, 2048),
        hostdev_map={},
    )

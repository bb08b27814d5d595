"""Migration planning (pure): fixtures only — the real migration is in tests/e2e."""

from __future__ import annotations

from pathlib import Path

import pytest

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.usage import apply_placement
from numa_migrate.migrate.plan import (
    Destination,
    MigrationPlan,
    MigrationRefused,
    NoRoom,
    current_pagesize_kib,
    plan_destination,
)
from numa_migrate.migrate.planxml import plan_migration

FIXTURES = Path(__file__).parent / "fixtures" / "xml"


def text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def intel(**kw: object) -> HostTopology:
    return host_from_capabilities(text("caps-2s-intel-smt.xml"), name="dst", **kw)  # type: ignore[arg-type]


def test_pinned_two_cell_guest_gets_destination_pins_in_both_xmls() -> None:
    xml = text("dom-pinned-2cell-2m.xml")
    plan = plan_migration(live_xml=xml, persistent_xml=xml, source="src", destination=intel())
    assert isinstance(plan, MigrationPlan)
    assert plan.current_pagesize_kib == 2048
    assert {c.pagesize_kib for c in plan.placement.cells} == {2048}
    live = domain_from_xml(plan.live_xml)
    assert plan.persistent_xml is not None
    persistent = domain_from_xml(plan.persistent_xml)
    # the CVE-2020-17376 class of bug: the persistent XML must not keep the source's pins
    assert live.vcpupin == persistent.vcpupin
    pins = {v: c for v, c in live.vcpupin}
    expected = {
        v: frozenset({p}) for cell in plan.placement.cells for v, p in cell.pinning or ()
    }
    assert pins == expected
    assert plan.dest_plan is not None
    assert live.numatune is not None
    assert {m.cell_id: m.nodeset for m in live.numatune.memnodes} == {
        g: frozenset({n}) for g, n in plan.dest_plan.cell_nodes.items()
    }
    assert "db-pinned-1" in plan.summary()


def test_destination_usage_is_respected() -> None:
    """CPUs another guest pins on the destination are never chosen."""
    xml = text("dom-pinned-2cell-2m.xml")
    first = plan_migration(live_xml=xml, persistent_xml=None, source="src", destination=intel())
    assert isinstance(first, MigrationPlan) and first.request is not None
    busy = apply_placement(intel(), first.request, first.placement)
    second = plan_migration(live_xml=xml, persistent_xml=None, source="src", destination=busy)
    assert isinstance(second, MigrationPlan)
    assert not (first.placement.pinned_host_cpus() & second.placement.pinned_host_cpus())
    assert second.persistent_xml is None


def test_no_room_carries_the_fitters_reasons() -> None:
    xml = text("dom-pinned-2cell-2m.xml")
    small = host_from_capabilities(text("caps-lab-1node.xml"), name="tiny")
    plan = plan_migration(live_xml=xml, persistent_xml=xml, source="src", destination=small)
    assert isinstance(plan, NoRoom)
    assert "2 NUMA cells" in plan.summary and "host has 1" in plan.summary


def test_page_size_is_kept_not_reselected() -> None:
    """No free 2 MiB pages on the destination: refused, even though 1 GiB pages are free."""
    xml = text("dom-pinned-2cell-2m.xml")
    host = intel(reserved_huge_pages={(0, 2048): 16384, (1, 2048): 16384})
    plan = plan_migration(live_xml=xml, persistent_xml=xml, source="src", destination=host)
    assert isinstance(plan, NoRoom)
    assert "2 MiB" in plan.summary or "2048" in plan.summary


def test_nova_managed_domain_is_refused_with_the_way_out() -> None:
    with pytest.raises(MigrationRefused, match=r"OpenStack Nova.*openstack server migrate"):
        plan_migration(live_xml=text("dom-nova.xml"), persistent_xml=None, source="src",
                       destination=intel())


def test_default_hugepage_size_and_mixed_sizes() -> None:
    info = domain_from_xml(text("dom-pinned-2cell-2m.xml").replace(
        "<page size='2048' unit='KiB'/>", ""))
    assert current_pagesize_kib(info) == 2048
    mixed = domain_from_xml(text("dom-pinned-2cell-2m.xml").replace(
        "<page size='2048' unit='KiB'/>",
        "<page size='2048' unit='KiB' nodeset='0'/><page size='1048576' unit='KiB' nodeset='1'/>"))
    with pytest.raises(MigrationRefused, match="mixes huge page sizes"):
        current_pagesize_kib(mixed)


def test_guest_without_numa_need_moves_unchanged() -> None:
    xml = text("dom-pinned-2cell-2m.xml")
    for tag in ("cputune", "numatune", "memoryBacking"):
        start, end = xml.index(f"<{tag}>"), xml.index(f"</{tag}>") + len(f"</{tag}>")
        xml = xml[:start] + xml[end:]
    start, end = xml.index("<numa>"), xml.index("</numa>") + len("</numa>")
    xml = xml[:start] + xml[end:]
    plan = plan_migration(live_xml=xml, persistent_xml=xml, source="src", destination=intel())
    assert isinstance(plan, MigrationPlan)
    assert plan.request is None and plan.dest_plan is None and plan.live_xml == xml


def test_realtime_guest_takes_the_destinations_priority_in_both_xmls() -> None:
    """Nova writes its destination's realtime_scheduler_priority; without one the guest
    keeps its own (dom-mixed.xml runs vCPUs 2-3 fifo at priority 1)."""
    xml = text("dom-mixed.xml")
    epyc = host_from_capabilities(text("caps-epyc-4node.xml"), name="dst")
    for given, expected in ((None, 1), (1, 1), (60, 60)):
        plan = plan_migration(live_xml=xml, persistent_xml=xml, source="src", destination=epyc,
                              realtime_priority=given)
        assert isinstance(plan, MigrationPlan) and plan.dest_plan is not None
        assert plan.dest_plan.realtime_priority == given
        assert plan.persistent_xml is not None
        for doc in (plan.live_xml, plan.persistent_xml):
            scheds = domain_from_xml(doc).vcpusched
            assert [(s.scheduler, s.priority) for s in scheds] == [("fifo", expected)]
        if given == 60:
            assert "priority=\"60\"" in plan.diff() and "priority=\"1\"" in plan.diff()


def test_plan_destination_is_pure_and_matches_plan_migration() -> None:
    xml = text("dom-pinned-2cell-2m.xml")
    info = domain_from_xml(xml)
    placed = plan_destination(info, destination=intel())
    planned = plan_migration(live_xml=xml, persistent_xml=None, source="src", destination=intel())
    assert isinstance(placed, Destination) and isinstance(planned, MigrationPlan)
    assert placed.dest_plan == planned.dest_plan
    assert placed.placement == planned.placement and placed.request == planned.request

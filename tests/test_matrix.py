"""The validation matrix without the lab: scenarios, needs, the report's JSON and renderings,
and the two bugs the matrix found on the lab (floating guests' cpuset, one-CPU shared sets)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.core.domainusage import dedicated_vcpus, floating_vcpus
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.request import Flavor
from numa_migrate.lab.flavored import FlavoredGuest, flavored_guest
from numa_migrate.matrix.report import (
    CellPicture,
    Check,
    HostPicture,
    Leg,
    MatrixReport,
    ReportError,
    ScenarioResult,
    Status,
    colour,
    render_html,
    render_markdown,
)
from numa_migrate.matrix.scenarios import SCENARIOS, Kind, Scenario, select
from numa_migrate.migrate.plan import MigrationPlan, NoRoom
from numa_migrate.migrate.planxml import plan_migration

XML = Path(__file__).parent / "fixtures" / "xml"


def lab(name: str, dedicated: set[int], shared: set[int]) -> HostTopology:
    return host_from_capabilities((XML / "caps-lab-1node.xml").read_text(), name=name,
                                  cpu_dedicated_set=frozenset(dedicated),
                                  cpu_shared_set=frozenset(shared))


SRC, DST = lab("lab-src", {1}, {0}), lab("lab-dst", {0}, {1})


def by_id(scenario_id: str) -> Scenario:
    return select([scenario_id])[0]


# --------------------------------------------------------------------------- scenarios


def test_every_group_of_the_issue_is_covered() -> None:
    groups = {s.group for s in SCENARIOS}
    assert groups == {"NUMA awareness", "CPU pinning", "Huge pages", "SR-IOV", "Negative"}
    specs = [dict(s.extra_specs) for s in SCENARIOS]
    for wanted in ({"hw:numa_nodes": "1"}, {"hw:numa_nodes": "2"},
                   {"hw:cpu_thread_policy": "prefer"}, {"hw:cpu_thread_policy": "isolate"},
                   {"hw:cpu_thread_policy": "require"}, {"hw:emulator_threads_policy": "isolate"},
                   {"hw:cpu_policy": "mixed"}, {"hw:mem_page_size": "large"},
                   {"hw:mem_page_size": "2048"}, {"hw:mem_page_size": "1GB"}):
        assert any(wanted.items() <= s.items() for s in specs), wanted
    assert {s.kind for s in SCENARIOS} >= {Kind.NO_ROOM, Kind.NO_PAGE_SIZE, Kind.FIXTURES}
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)


def test_the_one_node_lab_cannot_express_two_cells_or_smt_and_says_why() -> None:
    assert by_id("numa-1").unmet(SRC, DST) == []
    reasons = by_id("numa-2").unmet(SRC, DST)
    assert "lab-src has 1 NUMA node, not 2" in reasons
    assert any("SMT" in r for r in by_id("pin-require").unmet(SRC, DST))
    assert any("1 GiB" in r for r in by_id("pages-1g").unmet(SRC, DST))
    smt = host_from_capabilities((XML / "caps-2s-intel-smt.xml").read_text(), name="smt")
    assert by_id("numa-2").unmet(smt, smt) == []
    assert by_id("pin-require").unmet(smt, smt) == []


def test_unknown_scenario_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(NumaMigrateError, match=r"unknown scenario nope.*numa-1"):
        select(["nope"])
    assert [s.id for s in select(["pages-2m", "numa-1"])] == ["numa-1", "pages-2m"]


# --------------------------------------------------------------------------- found on the lab


def _placed(specs: dict[str, str], host: HostTopology, vcpus: int = 1) -> FlavoredGuest:
    guest = flavored_guest("g", Flavor(vcpus, 64, specs), host, image="/x.img")
    assert isinstance(guest, FlavoredGuest)
    return guest


def test_floating_guest_moves_onto_the_destinations_shared_cpus() -> None:
    guest = _placed({}, SRC)
    assert domain_from_xml(guest.xml).vcpu_cpuset == frozenset({0})
    plan = plan_migration(live_xml=guest.xml, persistent_xml=guest.xml, source="lab-src",
                          destination=DST)
    assert isinstance(plan, MigrationPlan) and plan.request is None
    for xml in (plan.live_xml, plan.persistent_xml):
        assert xml is not None
        assert domain_from_xml(xml).vcpu_cpuset == frozenset({1})
    assert "shared CPUs 1" in plan.summary()


def test_floating_guest_is_refused_where_every_cpu_is_dedicated() -> None:
    plan = plan_migration(live_xml=_placed({}, SRC).xml, persistent_xml=None,
                          source="lab-src", destination=lab("all-pinned", {0, 1}, set()))
    assert isinstance(plan, NoRoom) and "no shared CPUs" in plan.summary


def test_guest_without_cpus_named_moves_unchanged() -> None:
    xml = _placed({}, SRC).xml.replace(' cpuset="0"', "")
    plan = plan_migration(live_xml=xml, persistent_xml=None, source="lab-src", destination=DST)
    assert isinstance(plan, MigrationPlan) and plan.dest_plan is None and plan.live_xml == xml


def test_mixed_guest_floating_vcpu_on_a_one_cpu_shared_set_is_not_dedicated() -> None:
    guest = _placed({"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "^0"}, SRC, vcpus=2)
    info = domain_from_xml(guest.xml)
    assert dict(info.vcpupin) == {0: frozenset({0}), 1: frozenset({1})}  # both one CPU
    assert dedicated_vcpus(info) == {1: 1}
    assert floating_vcpus(info) == {0: frozenset({0})}
    # without the metadata the pins alone cannot tell: both look dedicated
    bare = guest.xml.split("<metadata>")[0] + guest.xml.split("</metadata>")[1]
    assert dedicated_vcpus(domain_from_xml(bare)) == {0: 0, 1: 1}


# --------------------------------------------------------------------------- the report


def sample() -> MatrixReport:
    picture = HostPicture("lab-dst", "after", (
        CellPicture(0, (0, 1), {0: "nm-mx-<b>&'\""}, {0: "dedicated", 1: "shared"}),))
    return MatrixReport(
        title="matrix <on> the lab", started_at="2026-11-24T10:00:00+00:00",
        finished_at="2026-11-24T10:02:00+00:00",
        environment={"lab-src libvirt": "9.0.0", "accel": "kvm"},
        scenarios=(
            ScenarioResult("numa-1", "NUMA awareness", "one cell", {"hw:numa_nodes": "1"},
                           Status.PASSED, legs=(
                               Leg("lab-src", "lab-dst", 1.5, 13, {0: (1,)}, {0: (0,)},
                                   {0: 0}, {0: 0}),
                               Leg("lab-dst", "lab-src", 1.6, 14, {0: (0,)}, {0: (1,)},
                                   {0: 0}, {0: 0})),
                           checks=(Check("there:vcpu_pins", "there: vCPU pins", "pass"),),
                           pictures=(picture,)),
            ScenarioResult("pin-mixed", "CPU pinning", "mixed", {"hw:cpu_policy": "mixed"},
                           Status.FAILED, reason="pins outside the set <script>",
                           checks=(Check("cpu_pools", "pins in sets", "fail",
                                         "dedicated CPU 1 outside the dedicated set 0"),)),
            ScenarioResult("numa-2", "NUMA awareness", "two cells", {}, Status.SKIPPED,
                           reason="lab-src has 1 NUMA node(s), not 2", ran_on="none"),
            ScenarioResult("sriov-direct", "SR-IOV", "VF", {}, Status.FIXTURES,
                           reason="not run on hardware", ran_on="fixtures"),
            ScenarioResult("refuse-no-room", "Negative", "no room", {}, Status.PASSED,
                           legs=(Leg("lab-src", "lab-dst", None, None, {0: (1,)}, {}, {0: 0},
                                     {}, ("needs 1 dedicated CPU, 0 free",)),)),
        ),
    )


def test_report_json_round_trip_keeps_int_keys() -> None:
    report = sample()
    again = MatrixReport.from_json(json.loads(json.dumps(report.to_json())))
    assert again == report
    assert again.scenarios[0].legs[0].dest_pins == {0: (0,)}
    assert report.counts()[Status.PASSED] == 2 and not report.ok
    assert report.to_json()["counts"] == {"passed": 2, "failed": 1, "skipped": 1, "fixtures": 1}


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda d: d.pop("title"), r"report\.title is missing"),
    (lambda d: d.update(format="other"), "numa-migrate-matrix"),
    (lambda d: d["scenarios"][0].update(status="great"), r"scenarios\[0\]\.status: one of"),
    (lambda d: d["scenarios"][0]["legs"][0].update(dest_pins={"x": [1]}), "integers"),
    (lambda d: d["scenarios"][0]["checks"][0].update(outcome="ok"), "pass, fail, skip"),
    (lambda d: d["scenarios"][0].update(page_size_kib="big"),
     r"scenarios\[0\]\.page_size_kib: expected an integer, got string .big."),
])
def test_bad_report_documents_name_the_field(
    mutate: Callable[[dict[str, Any]], object], match: str
) -> None:
    doc = sample().to_json()
    mutate(doc)
    with pytest.raises(ReportError, match=match):
        MatrixReport.from_json(doc)


def test_renderings_show_every_scenario_with_its_status_and_why() -> None:
    report = sample()
    for text in (render_markdown(report), render_html(report)):
        for r in report.scenarios:
            assert r.id in text
        assert "dedicated CPU 1 outside the dedicated set 0" in text
        assert "lab-src has 1 NUMA node(s), not 2" in text
        assert "needs 1 dedicated CPU, 0 free" in text
        assert "FAIL" in text
    md = render_markdown(report)
    assert md.index("## NUMA awareness") < md.index("## CPU pinning") < md.index("## SR-IOV")
    assert "0→1 ⇒ 0→0" in md and "[0:nm-mx-<b>&'\"][1:--]" in md


def test_html_escapes_everything_from_outside() -> None:
    page = render_html(sample())
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "nm-mx-<b>" not in page and "matrix <on>" not in page
    assert page.startswith("<!DOCTYPE html>") and "http" not in page.split("<body>")[0]


def test_guest_colours_are_stable_and_distinguish_guests() -> None:
    assert colour("nm-mx-numa-1") == colour("nm-mx-numa-1")
    assert len({colour(f"g{i}") for i in range(20)}) > 3


def test_sriov_row_runs_on_the_bundled_fixtures_and_says_so() -> None:
    from numa_migrate.matrix.fixtures import run_fixture_scenario

    result = run_fixture_scenario(select(["sriov-direct"])[0])
    assert result.status is Status.FIXTURES and result.ran_on == "fixtures"
    assert "not run" in result.reason and "no SR-IOV NIC" in result.reason
    outcomes = {c.name: c.outcome for c in result.checks}
    assert outcomes["vf_choice"] == "pass"
    assert outcomes["hostdev_numa[0000:3b:02.2]"] == "pass"
    assert outcomes["live_xml"] == outcomes["persistent_xml"] == "pass"
    assert "fail" not in outcomes.values()


def test_the_no_room_blocker_takes_every_cell_of_a_multi_node_host() -> None:
    from numa_migrate.core.model.host import HostCell, HostTopology
    from numa_migrate.matrix.runner import blocker_specs

    cells = (HostCell(0, frozenset(), frozenset({2, 3}), 1024),
             HostCell(1, frozenset(), frozenset({6, 7, 8}), 1024, pinned_cpus=frozenset({8})))
    specs, vcpus, memory = blocker_specs({"hw:cpu_policy": "dedicated"},
                                         HostTopology("h", cells))
    assert vcpus == 4 and memory == 32
    assert specs == {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "2",
                     "hw:numa_cpus.0": "0-1", "hw:numa_mem.0": "16",
                     "hw:numa_cpus.1": "2-3", "hw:numa_mem.1": "16"}
    one = HostTopology("h", (HostCell(0, frozenset(), frozenset({1}), 1024),))
    assert blocker_specs({}, one) == ({}, 1, 16)

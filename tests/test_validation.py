"""Validation of a placed domain: every check passing, failing for the right reason, or
skipped with the reason it could not be made (never passed for lack of data)."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.nodedev import pci_functions_from_nodedevs
from numa_migrate.adapters.rewrite import rewrite_domain_xml
from numa_migrate.core.destination import DestinationPlan
from numa_migrate.core.model.domain import DomainInfo
from numa_migrate.core.model.pci import PciFunction
from numa_migrate.core.planjson import PlanFormatError, plan_from_json, plan_to_json
from numa_migrate.core.validation import (
    Check,
    Status,
    ThreadAffinities,
    ValidationReport,
    validate,
)
from numa_migrate.inputs.plans import load_plan

FIXTURES = Path(__file__).parent / "fixtures" / "xml"
CAPS = (FIXTURES / "caps-2s-intel-smt.xml").read_bytes()
HOST = host_from_capabilities(CAPS, name="cmp-02")
SPLIT_HOST = host_from_capabilities(
    CAPS, name="cmp-02",
    cpu_shared_set=frozenset({0, 20, 10, 30}),
    cpu_dedicated_set=frozenset({*range(1, 10), *range(21, 30), *range(11, 20), *range(31, 40)}),
)
PINNED_XML = (FIXTURES / "dom-pinned-2cell-2m.xml").read_text(encoding="utf-8")
PCI: tuple[PciFunction, ...] = pci_functions_from_nodedevs(
    [(p.name, p.read_bytes()) for p in sorted((FIXTURES / "nodedev").glob("*.xml"))])

# the plan that dom-pinned-2cell-2m.xml satisfies
PLAN = DestinationPlan(
    vcpu_pins={0: frozenset({2}), 1: frozenset({22}), 2: frozenset({12}), 3: frozenset({32})},
    emulator_pins=frozenset({1, 21}),
    iothread_pins={1: frozenset({1, 21})},
    shared_cpuset=None,
    memory_nodes=frozenset({0, 1}),
    cell_nodes={0: 0, 1: 1},
    hugepage_kib={0: 2048, 1: 2048},
)
AFFINITY = ThreadAffinities(
    source="test data",
    vcpus={0: frozenset({2}), 1: frozenset({22}), 2: frozenset({12}), 3: frozenset({32})},
    emulator=(("qemu-kvm (100)", frozenset({1, 21})), ("call_rcu (101)", frozenset({1, 21})),
              ("kvm-nx-lpage-recovery (102)", frozenset(range(40)))),
    iothreads={1: frozenset({1, 21})},
)


def info(xml: str, name: str = "test") -> DomainInfo:
    return domain_from_xml(xml, source=name)


LIVE = info(PINNED_XML)


def edit(*pairs: tuple[str, str], xml: str = PINNED_XML) -> DomainInfo:
    for old, new in pairs:
        assert old in xml, old
        xml = xml.replace(old, new)
    return info(xml)


def other(body: str, *, name: str = "other", vcpus: int = 2, cpuset: str = "") -> DomainInfo:
    cs = f" cpuset='{cpuset}'" if cpuset else ""
    return info(
        f"<domain type='kvm'><name>{name}</name>"
        f"<uuid>00000000-0000-4000-8000-{zlib.crc32(name.encode()):012d}</uuid>"
        f"<memory unit='MiB'>1024</memory><vcpu{cs}>{vcpus}</vcpu>{body}"
        "<os><type>hvm</type></os></domain>")


def run(**kwargs: object) -> ValidationReport:
    args: dict[str, object] = {"plan": PLAN, "host": HOST, "others": (),
                               "pci_functions": PCI, "affinity": AFFINITY}
    args.update(kwargs)
    live = args.pop("live", LIVE)
    persistent = args.pop("persistent", live)
    return validate(live, persistent, **args)  # type: ignore[arg-type]


def status(report: ValidationReport, name: str) -> Status:
    return report.check(name).status


# --------------------------------------------------------------------------- all good


def test_a_domain_placed_as_planned_passes_every_check_it_can_make() -> None:
    report = run()
    assert report.passed
    passed = {c.name for c in report.checks if c.passed}
    assert passed == {
        "vcpu_pins_planned", "emulator_pins_planned", "emulator_isolated", "persistent_pins",
        "persistent_numa", "pcpus_exclusive", "cpu_pools", "numatune_strict", "numatune_nodes",
        "hugepages_planned", "vcpu_affinity", "emulator_affinity", "others_avoid_pinned",
    }
    skipped = {c.name: c.detail for c in report.checks if c.skipped}
    assert skipped == {
        "hostdevs_planned": "the domain has no PCI hostdev",
        "hostdev_numa": "the domain has no PCI hostdev",
        "hostdev_exclusive": "the domain has no PCI hostdev",
        "floating_avoids_pinned": "the domain has no floating vCPU",
        "realtime_priority_planned": "the domain has no real-time vCPU (no <vcpusched> fifo/rr)",
    }
    assert report.domain == "db-pinned-1" and report.host == "cmp-02"
    assert "kvm-nx-lpage-recovery" in report.check("emulator_affinity").detail


def test_without_plan_host_pci_or_affinity_nothing_passes_for_lack_of_data() -> None:
    report = validate(LIVE, LIVE)
    by_name = {c.name: c for c in report.checks}
    for name in ("vcpu_pins_planned", "emulator_pins_planned", "emulator_isolated",
                 "hugepages_planned", "hostdevs_planned", "cpu_pools", "numatune_nodes",
                 "vcpu_affinity", "emulator_affinity"):
        assert by_name[name].skipped, name
        assert by_name[name].detail, name
    assert by_name["vcpu_affinity"].detail == "no thread affinity data given"
    assert "--plan" in by_name["vcpu_pins_planned"].detail
    # what needs no outside data is still checked
    assert by_name["persistent_pins"].passed and by_name["numatune_strict"].passed
    assert report.passed and report.host is None


# --------------------------------------------------------------------------- real-time priority

REALTIME_XML = PINNED_XML.replace(
    "</cputune>", "<vcpusched vcpus='2-3' scheduler='fifo' priority='1'/></cputune>")


@pytest.mark.parametrize(("live_priority", "persistent_priority", "planned", "want", "detail"), [
    (1, 1, 1, Status.PASSED, ""),
    (50, 50, 50, Status.PASSED, ""),
    (1, 1, 50, Status.FAILED, "live: vCPUs 2-3 run fifo at priority 1, planned 50"),
    (50, 1, 50, Status.FAILED, "persistent: vCPUs 2-3 run fifo at priority 1, planned 50"),
    (1, 1, None, Status.SKIPPED, "the plan keeps the guest's own real-time priority"),
])
def test_realtime_priority_is_the_planned_one(
    live_priority: int, persistent_priority: int, planned: int | None, want: Status, detail: str
) -> None:
    live = info(REALTIME_XML.replace("priority='1'", f"priority='{live_priority}'"))
    persistent = info(REALTIME_XML.replace("priority='1'", f"priority='{persistent_priority}'"))
    report = run(live=live, persistent=persistent,
                 plan=replace(PLAN, realtime_priority=planned))
    check = report.check("realtime_priority_planned")
    assert check.status == want, check
    assert detail in check.detail
    if want == Status.PASSED:
        assert check.expected == f"priority {planned}"


def test_realtime_priority_without_plan_or_realtime_is_skipped() -> None:
    assert run(live=info(REALTIME_XML), plan=None).check(
        "realtime_priority_planned").detail.startswith("no plan given")
    assert status(run(plan=replace(PLAN, realtime_priority=5)),
                  "realtime_priority_planned") == Status.SKIPPED


def test_report_json() -> None:
    doc = run(affinity=None, affinity_skip_reason="remote host").to_json()
    json.dumps(doc)
    assert doc["passed"] is True and doc["domain"] == "db-pinned-1"
    assert doc["counts"]["failed"] == 0 and doc["counts"]["skipped"] == 7
    row = next(c for c in doc["checks"] if c["name"] == "vcpu_affinity")
    assert row == {"name": "vcpu_affinity", "title": "real vCPU thread affinity = pins",
                   "status": "skipped", "passed": False, "expected": "", "actual": "",
                   "detail": "remote host"}


# --------------------------------------------------------------------------- failures

FAILURES = [
    # (name of the failing check, run() arguments, words the detail must contain)
    ("vcpu_pins_planned",
     {"live": edit(("vcpu='1' cpuset='22'", "vcpu='1' cpuset='23'"))},
     "vCPU 1 on 23, expected 22"),
    ("vcpu_pins_planned",
     {"live": edit(("<vcpupin vcpu='3' cpuset='32'/>", ""))},
     "vCPU 3 has no pin, expected 32"),
    ("emulator_pins_planned",
     {"live": edit(("<emulatorpin cpuset='1,21'/>", "<emulatorpin cpuset='3'/>"))},
     "<emulatorpin> is 3, the plan says 1,21"),
    ("emulator_isolated",
     {"live": edit(("<emulatorpin cpuset='1,21'/>", "<emulatorpin cpuset='1-2'/>"))},
     "the emulator threads share CPU 2 with vCPU threads"),
    ("emulator_isolated",
     {"live": edit(("<emulatorpin cpuset='1,21'/>", ""))},
     "no <emulatorpin>: the emulator threads float"),
    ("pcpus_exclusive",
     {"others": [other("<cputune><vcpupin vcpu='0' cpuset='22'/>"
                       "<vcpupin vcpu='1' cpuset='5'/></cputune>", name="web-9")]},
     "CPU 22 also pinned by web-9"),
    ("pcpus_exclusive",
     {"others": [other("<cputune><vcpupin vcpu='0' cpuset='5'/><vcpupin vcpu='1' cpuset='6'/>"
                       "<emulatorpin cpuset='21'/></cputune>", name="iso-1")]},
     "CPU 21 also pinned by iso-1"),
    ("pcpus_exclusive",
     {"live": edit(("vcpu='1' cpuset='22'", "vcpu='1' cpuset='2'")),
      "plan": None},
     "vCPUs 0-1 share CPU 2"),
    ("cpu_pools",
     {"host": SPLIT_HOST, "live": edit(("vcpu='1' cpuset='22'", "vcpu='1' cpuset='20'"),
                                       ("emulatorpin cpuset='1,21'", "emulatorpin cpuset='0'")),
      "plan": None},
     "dedicated CPU 20 outside the dedicated set"),
    ("numatune_strict",
     {"live": edit(("<memnode cellid='1' mode='strict' nodeset='1'/>",
                    "<memnode cellid='1' mode='preferred' nodeset='1'/>"))},
     "memnode 1 is preferred"),
    ("numatune_strict",
     {"live": edit(("<memory mode='strict' nodeset='0-1'/>",
                    "<memory mode='interleave' nodeset='0-1'/>"))},
     "memory is interleave"),
    ("numatune_nodes",
     {"live": edit(("<memnode cellid='0' mode='strict' nodeset='0'/>",
                    "<memnode cellid='0' mode='strict' nodeset='1'/>"))},
     "guest cell 0 memory on node 1, its pins say 0"),
    ("numatune_nodes",
     {"live": edit(("<memory mode='strict' nodeset='0-1'/>", "<memory mode='strict' nodeset='1'/>"),
                   ("<memnode cellid='0' mode='strict' nodeset='0'/>", ""))},
     "<memory nodeset> is 1, expected 0-1"),
    ("numatune_nodes",
     {"plan": replace(PLAN, cell_nodes={0: 1, 1: 0})},
     "guest cell 0 memory on node 0, its plan say 1"),
    ("hugepages_planned",
     {"live": edit(("<page size='2048' unit='KiB'/>", "<page size='1' unit='GiB'/>"))},
     "guest cell 0: 1048576 KiB pages, planned 2048 KiB"),
    ("hugepages_planned",
     {"plan": replace(PLAN, hugepage_kib={})},
     "guest cell 1: 2048 KiB pages, planned small"),
    ("vcpu_affinity",
     {"affinity": replace(AFFINITY, vcpus={**AFFINITY.vcpus, 2: frozenset(range(40))})},
     "vCPU thread 2 on 0-39, expected 12"),
    ("vcpu_affinity",
     {"affinity": replace(AFFINITY, vcpus={0: frozenset({2})})},
     "vCPU thread 1 has no thread, expected 22"),
    ("emulator_affinity",
     {"affinity": replace(AFFINITY, emulator=(("qemu-kvm (100)", frozenset(range(40))),))},
     "main thread qemu-kvm (100) on 0-39"),
    ("emulator_affinity",
     {"affinity": replace(AFFINITY, emulator=(*AFFINITY.emulator,
                                              ("worker (103)", frozenset({5}))))},
     "thread worker (103) on 5"),
    ("emulator_affinity",
     {"affinity": replace(AFFINITY, iothreads={1: frozenset({5})})},
     "IOThread 1 on 5, expected 1,21"),
    ("others_avoid_pinned",
     {"others": [other("", name="floater")]},
     "floater has floating vCPUs without <vcpupin> or <vcpu cpuset>"),
    ("others_avoid_pinned",
     {"others": [other("", name="web-1", cpuset="0-9")]},
     "web-1 may run threads on CPU 1-2"),
    ("others_avoid_pinned",
     {"others": [other("<cputune><vcpupin vcpu='0' cpuset='5'/><vcpupin vcpu='1' cpuset='6'/>"
                       "<emulatorpin cpuset='5-6,12'/></cputune>", name="emu-share")]},
     "emu-share may run threads on CPU 12"),
]


@pytest.mark.parametrize(("name", "kwargs", "words"), FAILURES,
                         ids=[f"{f[0]}-{i}" for i, f in enumerate(FAILURES)])
def test_each_check_fails_for_the_right_reason(
    name: str, kwargs: dict[str, object], words: str
) -> None:
    report = run(**kwargs)
    check = report.check(name)
    assert check.status is Status.FAILED, check
    assert words in check.detail, check.detail
    assert not report.passed
    assert check.expected and check.actual


# --------------------------------------------------------------------------- persistent XML


def test_persistent_xml_that_keeps_the_source_pins_fails() -> None:
    """The CVE-2020-17376 class: the live XML was rewritten for the destination, the
    persistent one still names the source host's CPUs."""
    source_pins = edit(
        ("vcpu='0' cpuset='2'", "vcpu='0' cpuset='5'"),
        ("vcpu='1' cpuset='22'", "vcpu='1' cpuset='25'"),
        ("<emulatorpin cpuset='1,21'/>", "<emulatorpin cpuset='4'/>"),
    )
    report = run(persistent=source_pins)
    check = report.check("persistent_pins")
    assert check.failed
    assert check.detail.startswith("persistent: vCPU 0 on 5, expected 2; vCPU 1 on 25, expected 22")
    assert "<emulatorpin> 4, live 1,21" in check.detail
    assert "CVE-2020-17376" in check.detail
    assert check.expected.startswith("live: 0->2, 1->22") and "persistent: 0->5" in check.actual
    # the live side alone is fine
    assert report.check("vcpu_pins_planned").passed


def test_persistent_numa_tuning_and_devices_must_match() -> None:
    persistent = edit(("<memnode cellid='1' mode='strict' nodeset='1'/>",
                       "<memnode cellid='1' mode='strict' nodeset='0'/>"),
                      ("<page size='2048' unit='KiB'/>", "<page size='1048576' unit='KiB'/>"))
    check = run(persistent=persistent).check("persistent_numa")
    assert check.failed
    assert "<numatune> differs" in check.detail and "huge page sizes differ" in check.detail
    assert "cell 1 strict 0" in check.actual


def test_rewritten_persistent_xml_passes() -> None:
    """Both documents rewritten with the same plan agree (the fix for the CVE class)."""
    source = PINNED_XML.replace("vcpu='0' cpuset='2'", "vcpu='0' cpuset='3'")
    live = info(rewrite_domain_xml(source, PLAN))
    persistent = info(rewrite_domain_xml(source, PLAN))
    report = run(live=live, persistent=persistent)
    assert report.check("persistent_pins").passed and report.check("vcpu_pins_planned").passed


def test_transient_domain_skips_the_persistent_checks() -> None:
    report = validate(LIVE, None, plan=PLAN, host=HOST)
    for name in ("persistent_pins", "persistent_numa"):
        assert report.check(name).skipped
        assert "transient domain" in report.check(name).detail


# --------------------------------------------------------------------------- PCI devices

SRIOV = (FIXTURES / "dom-sriov.xml").read_text(encoding="utf-8")
VF_GUEST = info(SRIOV.replace(
    "<vcpu placement='static'>2</vcpu>",
    "<vcpu placement='static'>2</vcpu><cputune><vcpupin vcpu='0' cpuset='12'/>"
    "<vcpupin vcpu='1' cpuset='13'/><emulatorpin cpuset='12-13'/></cputune>"
    "<numatune><memory mode='strict' nodeset='1'/></numatune>"))
VF_PLAN = DestinationPlan(
    vcpu_pins={0: frozenset({12}), 1: frozenset({13})}, emulator_pins=frozenset({12, 13}),
    iothread_pins={}, shared_cpuset=None, memory_nodes=frozenset({1}), cell_nodes={0: 1},
    hugepage_kib=None, hostdev_map={"0000:3b:02.0": "0000:3b:02.1"},
)


def test_vf_on_the_guests_node_passes_and_unknown_nodes_are_skipped() -> None:
    report = run(live=VF_GUEST, plan=VF_PLAN, affinity=None)
    vf = report.check("hostdev_numa[0000:3b:02.1]")
    assert vf.passed and vf.expected == "node in 1" and vf.actual == "node 1"
    whole = report.check("hostdev_numa[0000:af:00.0]")
    assert whole.skipped and "not among the host's PCI devices" in whole.detail
    assert report.check("hostdevs_planned").passed
    assert report.check("hostdev_exclusive[0000:3b:02.1]").passed
    assert report.passed


def test_vf_on_another_node_fails() -> None:
    live = info(SRIOV.replace(
        "<vcpu placement='static'>2</vcpu>",
        "<vcpu placement='static'>2</vcpu><cputune><vcpupin vcpu='0' cpuset='2'/>"
        "<vcpupin vcpu='1' cpuset='3'/></cputune><numatune><memory mode='strict' nodeset='0'/>"
        "</numatune>"))
    plan = replace(VF_PLAN, vcpu_pins={0: frozenset({2}), 1: frozenset({3})},
                   emulator_pins=frozenset({2, 3}), memory_nodes=frozenset({0}),
                   cell_nodes={0: 0})
    check = run(live=live, plan=plan, affinity=None).check("hostdev_numa[0000:3b:02.1]")
    assert check.failed
    assert "VF 0000:3b:02.1 is on host node 1, the guest's cells are on node 0" in check.detail


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"plan": None}, "known from a plan only"),
    ({"pci_functions": None}, "no PCI device inventory of the host was given"),
    ({"pci_functions": [f for f in PCI if f.address != "0000:3b:02.1"]},
     "not among the host's PCI devices"),
    ({"pci_functions": [replace(f, numa_node=None) for f in PCI]},
     "the host reports no NUMA node for this device"),
])
def test_vf_numa_not_checked_says_why(kwargs: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {"live": VF_GUEST, "plan": VF_PLAN, **kwargs}
    check = run(**args).check("hostdev_numa[0000:3b:02.1]")
    assert check.skipped and reason in check.detail


def test_hostdevs_planned_and_exclusive_failures() -> None:
    still_source = replace(VF_PLAN, hostdev_map={"0000:3b:02.1": "0000:3b:02.2"})
    check = run(live=VF_GUEST, plan=still_source, affinity=None).check("hostdevs_planned")
    assert check.failed
    assert "0000:3b:02.2 (planned for 0000:3b:02.1) is not given to the guest" in check.detail
    assert "0000:3b:02.1 (the source's device) is still given" in check.detail
    thief = other("<devices><interface type='hostdev' managed='yes'><source>"
                  "<address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/>"
                  "</source></interface></devices>", name="thief")
    report = run(live=VF_GUEST, plan=VF_PLAN, affinity=None, others=[thief])
    assert report.check("hostdev_exclusive[0000:3b:02.1]").failed
    assert "also given to thief" in report.check("hostdev_exclusive[0000:3b:02.1]").detail
    assert report.check("hostdev_exclusive[0000:af:00.0]").passed


# --------------------------------------------------------------------------- floating vCPUs

MIXED = (FIXTURES / "dom-mixed.xml").read_text(encoding="utf-8")


def test_floating_vcpus_must_avoid_other_guests_pins() -> None:
    mixed = info(MIXED)
    ok = validate(mixed, mixed, host=HOST, others=[info((FIXTURES / "dom-nova.xml").read_text())])
    assert ok.check("floating_avoids_pinned").passed
    pinned_on_11 = other("<cputune><vcpupin vcpu='0' cpuset='11'/>"
                         "<vcpupin vcpu='1' cpuset='16'/></cputune>", name="db-3")
    bad = validate(mixed, mixed, host=HOST, others=[pinned_on_11])
    check = bad.check("floating_avoids_pinned")
    assert check.failed and "vCPU 0 may run on CPU 11 (pinned by db-3)" in check.detail
    # and the other direction: the pinned guest sees the floating one on its CPU
    reverse = validate(pinned_on_11, pinned_on_11, host=HOST, others=[mixed])
    assert reverse.check("others_avoid_pinned").failed
    assert "mixed-rt-2 may run threads on CPU 11" in reverse.check("others_avoid_pinned").detail


def test_floating_vcpus_must_avoid_own_dedicated_cpus() -> None:
    mixed = info(MIXED.replace("<vcpupin vcpu='2' cpuset='15'/>",
                               "<vcpupin vcpu='2' cpuset='12'/>"))
    check = validate(mixed, mixed, host=HOST).check("floating_avoids_pinned")
    assert check.failed and "(pinned by this domain)" in check.detail


def test_unrestricted_floating_vcpu_without_host_fails_when_anything_is_pinned() -> None:
    floater = other("<cputune><vcpupin vcpu='0' cpuset='4'/></cputune>", name="half")
    check = validate(floater, floater).check("floating_avoids_pinned")
    assert check.failed and "vCPU 1 may run on any host CPU, including pinned CPUs 4" in (
        check.detail)


# --------------------------------------------------------------------------- skips


@pytest.mark.parametrize(("live", "name", "reason"), [
    (info(SRIOV), "numatune_strict", "no NUMA placement"),
    (info(SRIOV), "pcpus_exclusive", "no dedicated vCPU"),
    (info(SRIOV), "others_avoid_pinned", "no dedicated vCPU"),
    (info(SRIOV), "vcpu_affinity", "pins no vCPU and has no <vcpu cpuset>"),
])
def test_checks_that_do_not_apply_are_skipped_with_a_reason(
    live: DomainInfo, name: str, reason: str
) -> None:
    check = run(live=live, plan=None).check(name)
    assert check.skipped and reason in check.detail


def test_affinity_sources_without_the_data_skip() -> None:
    tcg = ThreadAffinities(source="/proc/1", vcpus={}, emulator=())
    report = run(affinity=tcg)
    assert report.check("vcpu_affinity").skipped
    assert "MTTCG" in report.check("vcpu_affinity").detail
    assert report.check("emulator_affinity").detail == "/proc/1 reports vCPU threads only"


def test_emulator_isolation_needs_a_plan_that_isolates() -> None:
    shared = replace(PLAN, emulator_pins=frozenset({1, 2, 12, 21, 22, 32}))
    check = run(plan=shared).check("emulator_isolated")
    assert check.skipped and "does not isolate" in check.detail


def test_no_numatune_fails_for_a_pinned_guest() -> None:
    live = edit(("<memory mode='strict' nodeset='0-1'/>", ""),
                ("<memnode cellid='0' mode='strict' nodeset='0'/>", ""),
                ("<memnode cellid='1' mode='strict' nodeset='1'/>", ""),
                ("<numatune>", ""), ("</numatune>", ""))
    report = run(live=live)
    assert report.check("numatune_strict").failed
    assert report.check("numatune_strict").actual == "no <numatune>"
    assert "has no memnode/nodeset" in report.check("numatune_nodes").detail


def test_restrictive_mode_passes_with_a_note() -> None:
    live = edit(("<memory mode='strict' nodeset='0-1'/>", "<memory mode='restrictive' "
                 "nodeset='0-1'/>"))
    check = run(live=live).check("numatune_strict")
    assert check.passed and "restrictive binds memory through cgroups only" in check.detail


def test_inputs_are_not_changed_and_the_domain_is_not_its_own_neighbour() -> None:
    others = [LIVE]
    report = run(others=others)
    assert others == [LIVE]
    assert report.check("pcpus_exclusive").actual == "0 other running guest(s) checked"


def test_check_properties() -> None:
    check = Check("x", "X", Status.SKIPPED, detail="why")
    assert check.skipped and not check.passed and not check.failed
    with pytest.raises(KeyError):
        run().check("nope")


# --------------------------------------------------------------------------- plan JSON


def test_plan_json_round_trip(tmp_path: Path) -> None:
    for plan in (PLAN, VF_PLAN, replace(PLAN, shared_cpuset=frozenset({0, 20}),
                                        hugepage_kib=None),
                 replace(PLAN, realtime_priority=1), replace(PLAN, realtime_priority=99)):
        doc = plan_to_json(plan, domain="db-pinned-1", host="cmp-02")
        path = tmp_path / "plan.json"
        path.write_text(json.dumps(doc))
        loaded = load_plan(path)
        assert loaded.plan == plan
        assert dict(loaded.plan.vcpu_pins) == dict(plan.vcpu_pins)
        assert loaded.plan.hugepage_kib == plan.hugepage_kib
        assert dict(loaded.plan.hostdev_map) == dict(plan.hostdev_map)
        assert (loaded.domain, loaded.host) == ("db-pinned-1", "cmp-02")
        assert loaded.plan.realtime_priority == plan.realtime_priority
        assert doc["realtime_priority"] == plan.realtime_priority
    doc = plan_to_json(PLAN)
    assert doc["vcpu_pins"] == {"0": "2", "1": "22", "2": "12", "3": "32"}
    assert doc["emulator_pins"] == "1,21" and doc["memory_nodes"] == "0-1"
    assert "domain" not in doc


def test_plan_json_accepts_integer_lists() -> None:
    doc = plan_from_json({"vcpu_pins": {"0": [2]}, "emulator_pins": [], "memory_nodes": [0],
                          "cell_nodes": {"0": 0}})
    assert dict(doc.plan.vcpu_pins) == {0: frozenset({2})}
    assert doc.plan.emulator_pins == frozenset() and doc.plan.hugepage_kib is None


@pytest.mark.parametrize(("data", "pattern"), [
    ([], r"a plan is a JSON object \(got list\)"),
    ({"vcpu_pins": {}}, r"missing key emulator_pins, memory_nodes, cell_nodes"),
    ({**plan_to_json(PLAN), "extra": 1}, r"unknown key 'extra' \(allowed: format"),
    ({**plan_to_json(PLAN), "format": "x"}, r"format is 'x'"),
    ({**plan_to_json(PLAN), "version": 2}, r"version 2 is not supported"),
    ({**plan_to_json(PLAN), "domain": 3}, r"domain must be a string"),
    ({**plan_to_json(PLAN), "vcpu_pins": {"a": "1"}}, r"vcpu_pins: key 'a' is not"),
    ({**plan_to_json(PLAN), "vcpu_pins": []}, r"vcpu_pins must be an object"),
    ({**plan_to_json(PLAN), "vcpu_pins": {"0": "x"}}, r"vcpu_pins\[0\]: 'x' is not a CPU id"),
    ({**plan_to_json(PLAN), "vcpu_pins": {"0": [-1]}}, r"vcpu_pins\[0\]: \[-1\] is not a CPU"),
    ({**plan_to_json(PLAN), "vcpu_pins": {"0": ""}}, r"vcpu_pins\[0\] pins to no host CPU"),
    ({**plan_to_json(PLAN), "cell_nodes": {"0": "0"}}, r"cell_nodes\[0\]: '0' is not a non-neg"),
    ({**plan_to_json(PLAN), "cell_nodes": {"0": 3}},
     r"cell_nodes: guest cell 0 on host node 3, outside memory_nodes 0-1"),
    ({**plan_to_json(PLAN), "hugepage_kib": {"0": 0}}, r"hugepage_kib.*at least 1"),
    ({**plan_to_json(PLAN), "hostdev_map": {"x": "y"}}, r"hostdev_map: 'x' is not a PCI"),
    ({**plan_to_json(PLAN), "hostdev_map": []}, r"hostdev_map must be an object"),
    ({**plan_to_json(PLAN), "hostdev_map": {"0000:3b:02.1": "0000:3b:02.8"}},
     r"hostdev_map\['0000:3b:02.1'\]: '0000:3b:02.8' has function 0x8, beyond 0x7"),
    ({**plan_to_json(PLAN), "realtime_priority": 0},
     r"realtime_priority: 0 is not a real-time scheduler priority \(an integer from 1 to 99"),
    ({**plan_to_json(PLAN), "realtime_priority": 100}, r"realtime_priority: 100 is not a real"),
    ({**plan_to_json(PLAN), "realtime_priority": "5"}, r"realtime_priority: '5' is not a real"),
    ({**plan_to_json(PLAN), "realtime_priority": True}, r"realtime_priority: True is not a real"),
    ({**plan_to_json(PLAN), "realtime_priority": 1.5}, r"realtime_priority: 1.5 is not a real"),
])
def test_bad_plan_documents_name_the_field(data: object, pattern: str) -> None:
    with pytest.raises(PlanFormatError, match=pattern) as exc:
        plan_from_json(data, source="p.json")
    assert str(exc.value).startswith("p.json: ")


def test_bad_plan_files(tmp_path: Path) -> None:
    with pytest.raises(PlanFormatError, match="plan file not found"):
        load_plan(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  'x': 1\n}")
    with pytest.raises(PlanFormatError, match=r"bad\.json: not JSON: line 2, column 3"):
        load_plan(bad)


def test_memory_thread_contexts_follow_their_host_nodes_not_emulatorpin() -> None:
    """QEMU's 'TC ...' threads preallocate memory on the CPUs of its host nodes (seen on the
    lab): they are checked against those CPUs, not against <emulatorpin>."""
    on_nodes = replace(AFFINITY, emulator=(*AFFINITY.emulator,
                                           ("TC tc-ram-node0 (104)", frozenset(range(40)))))
    check = run(affinity=on_nodes).check("emulator_affinity")
    assert check.passed and "TC tc-ram-node0 (104)" in check.detail
    node0_only = edit(("<memory mode='strict' nodeset='0-1'/>",
                       "<memory mode='strict' nodeset='0'/>"),
                      ("<memnode cellid='1' mode='strict' nodeset='1'/>",
                       "<memnode cellid='1' mode='strict' nodeset='0'/>"))
    check = run(live=node0_only, affinity=on_nodes).check("emulator_affinity")
    assert check.failed
    assert "memory thread context TC tc-ram-node0 (104)" in check.detail

"""numa-migrate preflight, the controller's side: scheduler filters, conductor workaround,
[upgrade_levels], the nova-cloud-controller charm and the cloud's API facts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from numa_migrate.cli.main import cli
from numa_migrate.preflight.checks import Compute, Finding, Severity, check_all
from numa_migrate.preflight.cloudfacts import (
    CloudFacts,
    ComputeService,
    api_releases,
    check_cloud,
    version_text,
)
from numa_migrate.preflight.controller import (
    Controller,
    charm_openstack_release,
    check_controller,
    nova_default_filters,
    parse_rpc_pin,
    scheduler_filters,
)
from numa_migrate.preflight.sources import (
    RELEASES,
    CharmConfig,
    PreflightInputError,
    Value,
    parse_charm_config,
    parse_nova_conf,
    release_index,
)

FIX = Path(__file__).parent / "fixtures" / "preflight"


def controller(file: str | None, release: str | None, text: str | None = None,
               name: str = "ctl") -> Controller:
    content = text if text is not None else (FIX / (file or "")).read_text()
    return Controller(name, parse_nova_conf(content, file or name),
                      None if release is None else release_index(release))


def compute(name: str, release: str | None, text: str = "[DEFAULT]\n") -> Compute:
    return Compute(name, parse_nova_conf(text, name),
                   None if release is None else release_index(release))


def ncc(file: str) -> CharmConfig:
    return parse_charm_config((FIX / file).read_text(), file, "nova-cloud-controller")


def by_code(findings: list[Finding]) -> dict[str, Finding]:
    return {f.code: f for f in findings}


def codes(findings: list[Finding], severity: Severity | None = None) -> set[str]:
    return {f.code for f in findings if severity is None or f.severity is severity}


def rel(name: str) -> int:
    return RELEASES.index(name)


# --------------------------------------------------------------------------- scheduler


@pytest.mark.parametrize(("release", "first"), [
    ("stein", "RetryFilter"), ("train", "AvailabilityZoneFilter"), ("zed", "ComputeFilter"),
    (None, "ComputeFilter")])
def test_nova_default_filters_never_have_numa(release: str | None, first: str) -> None:
    filters = nova_default_filters(None if release is None else release_index(release))
    assert filters[0] == first and "NUMATopologyFilter" not in filters


def test_default_filters_miss_numa_topology_filter_with_the_fix() -> None:
    found = by_code(scheduler_filters(controller("controller-default.conf", "zed"),
                                      rel("zed")))
    missing = found["scheduler-numa-filter-missing"]
    assert missing.severity is Severity.ERROR and "Nova's default list" in missing.message
    assert missing.fix == ("[filter_scheduler] enabled_filters = ComputeFilter,"
                           "ComputeCapabilitiesFilter,ImagePropertiesFilter,"
                           "ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,"
                           "NUMATopologyFilter")
    assert found["scheduler-pci-filter-missing"].severity is Severity.INFO


def test_a_numa_ready_controller_is_ok_across_continuation_lines() -> None:
    c = controller("controller-numa.conf", "2024.1")
    found = check_controller([c], [rel("2024.1")])
    assert {"scheduler-numa-filter", "conductor-numa-live-migration",
            "upgrade-levels"} <= codes(found, Severity.OK)
    assert not codes(found, Severity.ERROR) and not codes(found, Severity.WARNING)
    assert by_code(found)["scheduler-numa-filter"].where == "controller-numa.conf:7"


def test_deprecated_filter_option_is_read_until_wallaby_only() -> None:
    text = "[DEFAULT]\nscheduler_default_filters = ComputeFilter,NUMATopologyFilter\n"
    wallaby = by_code(scheduler_filters(controller(None, "wallaby", text), rel("wallaby")))
    assert "scheduler-numa-filter" in wallaby
    xena = by_code(scheduler_filters(controller(None, "xena", text), rel("xena")))
    assert {"scheduler-filters-ignored", "scheduler-numa-filter-missing"} <= set(xena)


def test_unknown_and_unavailable_filters_stop_the_scheduler() -> None:
    c = controller("controller-bad-filters.conf", "zed")
    found = by_code(scheduler_filters(c, rel("zed")))
    unknown = found["scheduler-filter-unknown"]
    # GoldFilter is a custom class listed in available_filters; ComputeFilter and RamFilter
    # are not available since available_filters lacks all_filters
    assert "ComputeFilter, RamFilter" in unknown.message
    assert "removed in train" in unknown.message and "GoldFilter" not in unknown.message
    assert unknown.where == "controller-bad-filters.conf:3"
    assert found["scheduler-pci-filter-missing"].severity is Severity.WARNING  # [pci] alias


def test_removed_filters_are_unknown_only_from_their_release() -> None:
    text = "[filter_scheduler]\nenabled_filters = RetryFilter,NUMATopologyFilter\n"
    assert "scheduler-filter-unknown" not in codes(
        scheduler_filters(controller(None, "ussuri", text), rel("ussuri")))
    victoria = by_code(scheduler_filters(controller(None, "victoria", text), rel("victoria")))
    assert "RetryFilter" in victoria["scheduler-filter-unknown"].message


def test_retries_and_option_ranges() -> None:
    found = check_controller([controller("controller-stein-pinned.conf", "stein")],
                             [rel("stein")])
    assert "migrate-no-retry" in codes(found, Severity.WARNING)
    bad = controller(None, "zed", "[scheduler]\nmax_attempts = 0\n")
    assert "scheduler-option-range" in codes(check_controller([bad], []), Severity.ERROR)
    with pytest.raises(PreflightInputError, match=r"x:2: \[scheduler\] max_attempts = 'three'"):
        check_controller([controller(None, "zed", "[scheduler]\nmax_attempts = three\n",
                                     name="x")], [])


# --------------------------------------------------------------------------- conductor


def test_stein_conductor_without_the_workaround_refuses_numa_guests() -> None:
    c = controller("controller-default.conf", "stein")
    found = by_code(check_controller([c], [rel("stein")]))
    refused = found["conductor-numa-live-migration-disabled"]
    assert refused.severity is Severity.ERROR and "CONDUCTOR" in refused.message
    rocky = by_code(check_controller([controller("controller-default.conf", "rocky")], []))
    assert "18.2.0" in rocky["conductor-numa-live-migration-disabled"].message


def test_stein_conductor_with_the_workaround_is_unsafe() -> None:
    c = controller("controller-stein-pinned.conf", "stein")
    found = by_code(check_controller([c], [rel("stein")]))
    unsafe = found["conductor-numa-live-migration-unsafe"]
    assert unsafe.severity is Severity.WARNING and unsafe.where.endswith(":10")
    # a Stein cloud cannot do NUMA-aware live migration anyway: the RPC pin is only info
    assert found["upgrade-levels"].severity is Severity.INFO


def test_train_conductor_falls_back_while_a_compute_is_older() -> None:
    c = controller("controller-numa.conf", "train")
    found = by_code(check_controller([c], [rel("stein"), rel("train")]))
    assert "falls back" in found["conductor-numa-live-migration-disabled"].message
    ok = by_code(check_controller([c], [rel("train"), rel("ussuri")]))
    assert ok["conductor-numa-live-migration"].severity is Severity.OK


def test_the_workaround_set_only_on_computes_is_pointed_out() -> None:
    c = controller("controller-default.conf", "train")
    comp = compute("cmp", "stein", "[workarounds]\nenable_numa_live_migration = true\n")
    found = by_code(check_all([comp], controllers=[c]))
    assert found["numa-workaround-on-computes-only"].host == "cmp"
    assert "conductor-numa-live-migration-disabled" in found


def test_unknown_controller_release_warns_unless_the_api_says() -> None:
    c = controller("controller-numa.conf", None)
    assert "controller-release-unknown" in codes(check_controller([c], []))
    cloud = CloudFacts("2.96")
    found = codes(check_controller([c], [], cloud=cloud))
    assert "controller-release-unknown" not in found and "conductor-numa-live-migration" in found


# --------------------------------------------------------------------------- upgrade levels


@pytest.mark.parametrize(("text", "cap"), [
    ("auto", None), ("", None), ("stein", (5, 1)), ("Train", (5, 3)), ("5.11", (5, 11)),
    ("antelope", (6, 2))])
def test_rpc_pins(text: str, cap: tuple[int, int] | None) -> None:
    assert parse_rpc_pin(Value(text, 1), "x:1") == cap


def test_a_pin_below_rpc_5_3_makes_live_migration_numa_unaware() -> None:
    text = "[upgrade_levels]\ncompute = stein\n"
    found = by_code(check_controller([controller(None, "ussuri", text)], [rel("ussuri")]))
    unaware = found["upgrade-levels-numa-unaware"]
    assert unaware.severity is Severity.ERROR and "5.1" in unaware.message
    # the same pin on a compute (the source's check) is caught by check_all
    comp = compute("cmp", "ussuri", text)
    assert "upgrade-levels-numa-unaware" in codes(check_all([comp]), Severity.ERROR)


def test_numbered_release_pins_and_bad_pins() -> None:
    found = by_code(check_controller(
        [controller(None, "2024.1", "[upgrade_levels]\ncompute = 2023.1\n")], []))
    assert "antelope" in found["upgrade-levels-number"].fix
    with pytest.raises(PreflightInputError, match=r"controller-bad-pin.conf:2: .*neither auto"):
        check_controller([controller("controller-bad-pin.conf", "zed")], [])


def test_mixed_computes_without_a_pin_warn() -> None:
    found = codes(check_controller([controller("controller-default.conf", "train")],
                                   [rel("train"), rel("ussuri")]))
    assert "upgrade-levels-unset" in found


# --------------------------------------------------------------------------- charm


@pytest.mark.parametrize(("origin", "expected"), [
    ("cloud:jammy-zed", "zed"), ("cloud:jammy-antelope/proposed", "2023.1"),
    ("caracal", "2024.1"), ("distro", None), ("ppa:me/custom", None),
    ("deb http://example/ubuntu jammy-updates/bobcat main", "2023.2")])
def test_openstack_origin(origin: str, expected: str | None) -> None:
    doc = ("charm: nova-cloud-controller\nsettings:\n  openstack-origin:\n"
           f"    value: {json.dumps(origin)}\n")
    charm = parse_charm_config(doc, "o.yaml", "nova-cloud-controller")
    got = charm_openstack_release(charm)
    assert (None if got is None else RELEASES[got]) == expected


def test_charm_without_numa_filter_gives_the_juju_command() -> None:
    charm = ncc("ncc.yaml")
    found = by_code(check_all([compute("cmp", "zed")], controller_charm=charm))
    missing = found["charm-scheduler-numa-filter-missing"]
    assert missing.severity is Severity.ERROR and "charm's default list" in missing.message
    assert missing.fix == (
        'juju config nova-cloud-controller scheduler-default-filters="AvailabilityZoneFilter,'
        "ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,"
        "ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,DifferentHostFilter,"
        'SameHostFilter,NUMATopologyFilter"')
    assert found["charm-scheduler-pci-filter"].severity is Severity.WARNING  # pci-alias set
    assert "PCPU" in found["charm-cpu-allocation-ratio"].message
    assert found["charm-release"].message.endswith("zed")
    assert found["charm-scheduler-max-attempts"].where == "ncc.yaml:38"


def test_charm_with_numa_filter_and_its_release_drives_the_controller() -> None:
    charm = ncc("ncc-numa.yaml")
    ctl = controller("controller-numa.conf", None)
    found = check_all([compute("cmp", "2024.1")], controllers=[ctl],
                      controller_charm=charm)
    assert "charm-scheduler-numa-filter" in codes(found, Severity.OK)
    # openstack-origin caracal gives the controller's release
    assert "conductor-numa-live-migration" in codes(found, Severity.OK)
    assert {f.host for f in found if f.code.startswith("charm-")} == {"ncc"}


def test_charm_before_train_cannot_set_the_workaround() -> None:
    doc = ("charm: nova-cloud-controller\nsettings:\n  openstack-origin:\n"
           "    value: cloud:bionic-stein\n")
    charm = parse_charm_config(doc, "s.yaml", "nova-cloud-controller")
    found = by_code(check_all([compute("cmp", "stein")], controller_charm=charm))
    assert found["charm-numa-workaround-not-exposed"].severity is Severity.ERROR


def test_charm_bad_values_are_input_errors() -> None:
    with pytest.raises(PreflightInputError, match=r"ncc-bad-ratio.yaml:\d+: cpu-allocation"):
        check_all([], controller_charm=ncc("ncc-bad-ratio.yaml"))
    with pytest.raises(PreflightInputError, match=r"openstack-origin 'cloud:jammy-pike2'"):
        check_all([], controller_charm=ncc("ncc-bad-origin.yaml"))
    with pytest.raises(PreflightInputError, match="charm 'nova-compute'"):
        ncc("charm.yaml")


# --------------------------------------------------------------------------- cloud facts


@pytest.mark.parametrize(("microversion", "first", "last"), [
    ("2.60", "queens", "queens"), ("2.72", "stein", "stein"), ("2.79", "train", "train"),
    ("2.87", "ussuri", "victoria"), ("2.90", "xena", "yoga"), ("2.93", "zed", "zed"),
    ("2.95", "2023.1", "2023.2"), ("2.96", "2024.1", "2024.2"), ("2.100", "2025.1", "2025.2"),
    ("2.103", "2026.1", "2026.1"), ("2.89", "wallaby", "xena"), ("2.50", None, "queens"),
    ("2.104", "2026.1", None)])
def test_api_release_from_the_max_microversion(microversion: str, first: str | None,
                                               last: str | None) -> None:
    lo, hi = api_releases(microversion)
    assert (None if lo is None else RELEASES[lo]) == first
    assert (None if hi is None else RELEASES[hi]) == last


def svc(host: str, *, state: str = "up", status: str = "enabled", version: int | None = 8_002_000,
        pcpu: int | None = 32, kind: str = "QEMU") -> ComputeService:
    return ComputeService(host, state, status, kind, version, pcpu, 16, frozenset())


CONTROL = (("nova-conductor", "ctl1", "up", "enabled"),
           ("nova-scheduler", "ctl1", "up", "enabled"))


def test_a_healthy_cloud() -> None:
    found = check_cloud(CloudFacts("2.96", (svc("a"), svc("b")), CONTROL))
    assert codes(found) == {"api-release"}
    assert "2024.1 (caracal) or 2024.2 (dalmatian)" in found[0].message


def test_down_disabled_and_pcpu_less_computes() -> None:
    cloud = CloudFacts("2.93", (svc("a"), svc("b", state="down"), svc("c", status="disabled"),
                                svc("d", pcpu=None)), CONTROL)
    found = {(f.code, f.host) for f in check_cloud(cloud)}
    assert {("compute-down", "b"), ("compute-disabled", "c"), ("compute-no-pcpu", "d")} <= found


def test_hypervisor_versions_and_types() -> None:
    cloud = CloudFacts("2.93", (svc("a", version=8_002_000), svc("b", version=9_000_000),
                                svc("z", kind="ironic", version=1)), CONTROL)
    found = by_code(check_cloud(cloud))
    mixed = found["hypervisor-version-mixed"]
    assert "a 8.2.0, b 9.0.0" in mixed.message and "so a cannot receive" in mixed.message
    assert "hypervisor-type-mixed" in found
    skipped = by_code(check_cloud(cloud, skip_hypervisor_check=True))
    assert "skips its version check" in skipped["hypervisor-version-mixed"].message
    assert version_text(9_001_002) == "9.1.2"


def test_cpu_traits_that_only_some_computes_have() -> None:
    a = ComputeService("a", "up", "enabled", traits=frozenset({"HW_CPU_X86_AVX2",
                                                               "HW_CPU_X86_AVX512F",
                                                               "COMPUTE_NET_VIF_MODEL_VIRTIO"}))
    b = ComputeService("b", "up", "enabled", traits=frozenset({"HW_CPU_X86_AVX2"}))
    [f] = [f for f in check_cloud(CloudFacts("2.93", (a, b), CONTROL))
           if f.code == "cpu-traits-differ"]
    assert f.message.endswith("a: HW_CPU_X86_AVX512F") and f.severity is Severity.INFO


def test_control_services_down() -> None:
    cloud = CloudFacts("2.93", (svc("a"),), (
        ("nova-conductor", "ctl1", "down", "enabled"),
        ("nova-scheduler", "ctl1", "down", "enabled"),
        ("nova-scheduler", "ctl2", "up", "enabled")))
    found = by_code(check_cloud(cloud))
    assert found["conductor-down"].severity is Severity.ERROR
    assert found["scheduler-down"].severity is Severity.WARNING  # ctl2 still serves
    assert "service-not-reported" in codes(check_cloud(CloudFacts("2.93")))


def test_old_or_lagging_api() -> None:
    found = by_code(check_cloud(CloudFacts("2.72", (), CONTROL), [rel("train")]))
    assert {"api-release-pre-train", "api-older-than-computes"} <= set(found)


def test_the_conductor_skip_flag_reaches_the_cloud_check() -> None:
    ctl = controller(None, "zed", "[workarounds]\nskip_hypervisor_version_check_on_lm = true\n")
    cloud = CloudFacts("2.93", (svc("a", version=8_000_000), svc("b", version=9_000_000)),
                       CONTROL)
    found = by_code(check_all([], controllers=[ctl], cloud=cloud))
    assert "conductor-skips-hypervisor-check" in found
    assert "skips its version check" in found["hypervisor-version-mixed"].message


@pytest.mark.parametrize("bad", [
    lambda: ComputeService("a", "sideways", "enabled"),
    lambda: ComputeService("a", "up", "maybe"),
    lambda: ComputeService("a", "up", "enabled", pcpu_total=-1),
    lambda: CloudFacts("two.ninety"),
    lambda: CloudFacts("2.93", (), (("nova-conductor", "c", "up", "on"),)),
])
def test_cloud_facts_refuse_unknown_values(bad: object) -> None:
    with pytest.raises(PreflightInputError):
        bad()  # type: ignore[operator]


# --------------------------------------------------------------------------- CLI


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["preflight", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_controller_json() -> None:
    code, out, _ = run("--nova-conf", f"cmp={FIX / 'train-good.conf'}",
                       "--controller-conf", f"ctl={FIX / 'controller-default.conf'}",
                       "--controller-charm-config", str(FIX / "ncc.yaml"),
                       "--release", "zed", "--json")
    doc = json.loads(out)
    found = {(f["code"], f["host"]) for f in doc["findings"]}
    assert code == 1 and not doc["ok"]
    assert {("scheduler-numa-filter-missing", "ctl"),
            ("charm-scheduler-numa-filter-missing", "nova-cloud-controller")} <= found


def test_cli_controller_ready_exits_0_and_release_names_a_controller() -> None:
    code, out, _ = run("--nova-conf", f"cmp={FIX / 'train-good.conf'}",
                       "--controller-conf", f"ctl={FIX / 'controller-numa.conf'}",
                       "--release", "cmp=2024.1", "--release", "ctl=2024.1")
    assert code == 0 and "no blocking finding" in out


def test_cli_controller_alone_and_table() -> None:
    code, out, _ = run("--controller-conf", f"ctl={FIX / 'controller-stein-pinned.conf'}",
                       "--release", "stein")
    assert code == 0 and "│ ctl " in out and "[upgrade_levels]" in out  # not eaten as markup


@pytest.mark.parametrize(("args", "message"), [
    (("--controller-conf", "/nonexistent/ctl.conf"), "/nonexistent/ctl.conf: cannot read it"),
    (("--controller-conf", str(FIX / "malformed.conf")), "malformed.conf:3"),
    (("--controller-conf", str(FIX / "controller-bad-pin.conf")),
     "controller-bad-pin.conf:2: [upgrade_levels] compute"),
    (("--controller-charm-config", str(FIX / "charm-malformed.yaml")), "charm-malformed.yaml:4"),
    (("--controller-charm-config", str(FIX / "charm.yaml")), "charm 'nova-compute'"),
    (("--controller-charm-config", str(FIX / "ncc-bad-ratio.yaml")), "is not a positive number"),
    (("--controller-charm-config", str(FIX / "ncc-bad-origin.yaml")), "openstack-origin"),
    (("--controller-charm-config", "/nonexistent/ncc.yaml"), "cannot read it"),
    (("--controller-conf", f"x={FIX / 'controller-numa.conf'}", "--release", "y=train"),
     "--release for y"),
    (("--nova-conf", f"a={FIX / 'train-good.conf'}",
      "--controller-conf", f"a={FIX / 'controller-numa.conf'}"), "already a --nova-conf"),
])
def test_cli_controller_bad_input_is_one_line_exit_2(args: tuple[str, ...], message: str) -> None:
    code, _out, err = run(*args)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

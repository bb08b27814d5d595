"""numa-migrate preflight: nova.conf / charm config / host facts -> findings with fixes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.cli.main import cli
from numa_migrate.preflight.checks import (
    Compute,
    Finding,
    HostFacts,
    Severity,
    check_all,
    cpu_sets,
    huge_pages,
    versions,
)
from numa_migrate.preflight.sources import (
    PreflightInputError,
    parse_charm_config,
    parse_nova_conf,
    release_index,
)

FIX = Path(__file__).parent / "fixtures" / "preflight"
XML = Path(__file__).parent / "fixtures" / "xml"


def compute(name: str, release: str | None, file: str | None = None,
            text: str | None = None) -> Compute:
    content = text if text is not None else (FIX / (file or name)).read_text()
    return Compute(name, parse_nova_conf(content, file or name),
                   None if release is None else release_index(release))


def codes(findings: list[Finding], severity: Severity | None = None) -> set[str]:
    return {f.code for f in findings if severity is None or f.severity is severity}


def smt_host() -> object:
    return host_from_capabilities((XML / "caps-2s-intel-smt.xml").read_text(), name="cmp")


# --------------------------------------------------------------------------- releases


@pytest.mark.parametrize(("name", "expected"), [
    ("Train", "train"), ("20.6.1", "train"), ("19", "stein"), ("caracal", "2024.1"),
    ("2024.1", "2024.1"), ("Gazpacho", "2026.1"), ("34.0.0", "2026.2"), ("queens", "queens")])
def test_release_names_and_versions(name: str, expected: str) -> None:
    from numa_migrate.preflight.sources import RELEASES

    assert RELEASES[release_index(name)] == expected


@pytest.mark.parametrize("bad", ["pike", "16.0.0", "2027.1", "", "train2"])
def test_unknown_releases_list_the_allowed_ones(bad: str) -> None:
    with pytest.raises(PreflightInputError, match=r"unknown.*train.*caracal"):
        release_index(bad)


# --------------------------------------------------------------------------- the release rule


def test_before_train_without_the_workaround_is_an_error_with_the_line() -> None:
    [f] = [f for f in check_all([compute("a", "stein", "stein-no-workaround.conf")])
           if f.code == "numa-live-migration-disabled"]
    assert f.severity is Severity.ERROR and "Train" in f.fix


def test_before_train_with_the_workaround_warns_that_pins_are_not_recalculated() -> None:
    findings = check_all([compute("a", "stein", "stein-workaround.conf")])
    [f] = [f for f in findings if f.code == "numa-live-migration-unsafe"]
    assert f.severity is Severity.WARNING and "WITHOUT recalculating" in f.message
    assert f.where == "stein-workaround.conf:5"


def test_train_and_later_is_fine_and_mixed_versions_warn() -> None:
    alone = check_all([compute("b", "train", "train-good.conf")])
    assert "numa-live-migration" in codes(alone, Severity.OK)
    mixed = check_all([compute("a", "stein", "stein-workaround.conf"),
                       compute("b", "train", "train-good.conf")])
    assert "numa-live-migration-mixed" in codes(mixed, Severity.WARNING)


def test_unknown_release_is_said() -> None:
    assert "release-unknown" in codes(check_all([compute("b", None, "train-good.conf")]))


# --------------------------------------------------------------------------- CPU sets


def test_conflicting_and_overlapping_cpu_sets() -> None:
    found = cpu_sets(compute("o", "train", "overlapping.conf"), None)
    assert {"cpu-sets-conflict", "cpu-sets-overlap"} <= codes(found, Severity.ERROR)
    overlap = next(f for f in found if f.code == "cpu-sets-overlap")
    assert "2-3" in overlap.message and overlap.where == "overlapping.conf:6"


def test_legacy_pin_set_after_train_warns() -> None:
    found = cpu_sets(compute("a", "ussuri", "stein-workaround.conf"), None)
    assert "cpu-sets-legacy" in codes(found, Severity.WARNING)


def test_cpu_sets_against_the_host() -> None:
    text = "[compute]\ncpu_dedicated_set = 2-19,20,60-61\ncpu_shared_set = 0-1,21-39\n"
    found = cpu_sets(compute("cmp", "train", text=text), smt_host())  # type: ignore[arg-type]
    missing = next(f for f in found if f.code == "cpu-sets-missing-cpus")
    assert "60-61" in missing.message
    split = [f for f in found if f.code == "cpu-sets-split-siblings"]
    assert split and any("0,20" in f.message for f in split)


def test_bad_cpu_list_names_the_line() -> None:
    found = cpu_sets(compute("x", "train", text="[compute]\ncpu_dedicated_set = 2-x\n"), None)
    [f] = [f for f in found if f.code == "cpu-set-syntax"]
    assert f.where == "x:2"


# --------------------------------------------------------------------------- huge pages


def test_reserved_pages_against_the_host() -> None:
    host = smt_host()
    ok = huge_pages(compute("cmp", "train", "stein-no-workaround.conf"), host)  # type: ignore[arg-type]
    assert ok == []
    text = ("[DEFAULT]\nreserved_huge_pages = node:0,size:2MB,count:999999\n"
            "reserved_huge_pages = node:3,size:2048,count:1\n")
    found = huge_pages(compute("cmp", "train", text=text), host)  # type: ignore[arg-type]
    assert codes(found) == {"reserved-pages-too-many", "reserved-pages-missing"}
    with pytest.raises(PreflightInputError, match=r"x:2: reserved_huge_pages 'node:0,size'"):
        huge_pages(compute("x", "train", text="[DEFAULT]\nreserved_huge_pages = node:0,size\n"),
                   host)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- options


def test_migration_options() -> None:
    bad = check_all([compute("a", "train", "stein-no-workaround.conf")])
    assert {"migration-unlimited", "migration-no-timeout"} <= codes(bad, Severity.WARNING)
    good = check_all([compute("b", "train", "train-good.conf")])
    assert "migration-unlimited" not in codes(good)
    assert "migration-force-complete" not in codes(good)  # post-copy is permitted there


# --------------------------------------------------------------------------- hosts


def test_versions_and_cpu_models() -> None:
    host = smt_host()
    old = HostFacts("a", host, (5, 0, 0), (4, 2, 0), "Skylake", frozenset({"avx512f"}))  # type: ignore[arg-type]
    new = HostFacts("b", host, (9, 0, 0), (7, 2, 0), "Icelake", frozenset())  # type: ignore[arg-type]
    found = versions([old, new])
    assert [f.host for f in found if f.code == "version-libvirt"
            and f.severity is Severity.ERROR] == ["a"]
    [mismatch] = [f for f in found if f.code == "cpu-model-mismatch"]
    assert "avx512f" in mismatch.message and mismatch.host == "a/b"


# --------------------------------------------------------------------------- charm


def test_charm_config_findings_and_commands() -> None:
    charm = parse_charm_config((FIX / "charm.yaml").read_text(), "charm.yaml")
    assert charm.value("cpu-dedicated-set") == "2-19,22-39"
    found = check_all([compute("a", "stein", "stein-workaround.conf")], charm=charm)
    off = next(f for f in found if f.code == "charm-live-migration-off")
    assert off.fix == "juju config nova-compute enable-live-migration=true"
    assert off.where == "charm.yaml:27"
    not_exposed = {f.message.split(" is not")[0]: f for f in found
                   if f.code == "charm-not-exposed"}
    numa = not_exposed["[workarounds] enable_numa_live_migration"]
    assert numa.severity is Severity.ERROR and "config-flags writes only" in numa.fix
    concurrent = not_exposed["[DEFAULT] max_concurrent_live_migrations"]
    assert 'config-flags="max_concurrent_live_migrations=VALUE"' in concurrent.fix


def test_malformed_inputs_name_file_and_line() -> None:
    with pytest.raises(PreflightInputError, match=r"malformed\.conf:3: not an INI line"):
        parse_nova_conf((FIX / "malformed.conf").read_text(), "malformed.conf")
    with pytest.raises(PreflightInputError, match=r"before-section\.conf:1: debug comes before"):
        parse_nova_conf((FIX / "before-section.conf").read_text(), "before-section.conf")
    with pytest.raises(PreflightInputError, match=r"charm-malformed\.yaml:4: not valid YAML"):
        parse_charm_config((FIX / "charm-malformed.yaml").read_text(), "charm-malformed.yaml")
    with pytest.raises(PreflightInputError, match="expected `juju config"):
        parse_charm_config("- a list\n", "x.yaml")
    bad = compute("x", "stein", "bad-bool.conf")
    with pytest.raises(PreflightInputError, match=r"bad-bool.conf:2: .*not a boolean"):
        check_all([bad])


def test_continuation_lines_and_repeated_keys() -> None:
    conf = parse_nova_conf("[DEFAULT]\nreserved_huge_pages = node:0,size:2048,count:1\n"
                           "reserved_huge_pages = node:1,size:2048,count:2\n"
                           "[libvirt]\nx = a\n  b\n", "c")
    assert [v.value for v in conf.all("DEFAULT", "reserved_huge_pages")] == [
        "node:0,size:2048,count:1", "node:1,size:2048,count:2"]
    assert conf.get("libvirt", "x").value == "a\nb"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- CLI


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["preflight", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_json_and_exit_codes() -> None:
    code, out, _ = run("--nova-conf", f"a={FIX / 'stein-no-workaround.conf'}",
                       "--release", "stein", "--json")
    doc = json.loads(out)
    assert code == 1 and not doc["ok"] and doc["counts"]["error"] >= 1
    assert {"severity", "code", "host", "where", "message", "fix"} <= set(doc["findings"][0])
    code, out, _ = run("--nova-conf", f"b={FIX / 'train-good.conf'}", "--release", "b=2024.1")
    assert code == 0 and "no blocking finding" in out


@pytest.mark.parametrize(("args", "message"), [
    ((), "nothing to check"),
    (("--nova-conf", "/nonexistent/nova.conf"), "/nonexistent/nova.conf: cannot read it"),
    (("--nova-conf", str(FIX / "train-good.conf"), "--release", "pike"), "release 'pike'"),
    (("--nova-conf", f"a={FIX / 'train-good.conf'}", "--release", "zz=train"),
     "--release for zz"),
    (("--nova-conf", str(FIX / "malformed.conf")), "malformed.conf:3"),
])
def test_cli_bad_input_is_one_line_exit_2(args: tuple[str, ...], message: str) -> None:
    code, _out, err = run(*args)
    assert code == 2 and message in err and "Traceback" not in err


def test_cli_reads_inventory_hosts_through_libvirt(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[hosts.cmp]\nuri = "test:///default"\ncpu_dedicated_set = "0-3"\n')
    conf = tmp_path / "cmp.conf"
    conf.write_text("[compute]\ncpu_dedicated_set = 0-3,40\n")
    _code, out, err = run("--hosts", str(inventory), "--nova-conf", f"cmp={conf}",
                         "--release", "train", "--json")
    doc = json.loads(out)
    found = {f["code"]: f for f in doc["findings"]}
    assert "version-libvirt" in found and "version-qemu" in found
    assert "40" in found["cpu-sets-missing-cpus"]["message"], err


def test_cli_table_keeps_section_names_visible() -> None:
    code, out, _ = run("--nova-conf", f"a={FIX / 'stein-workaround.conf'}", "--release",
                       "stein", "--charm-config", str(FIX / "charm.yaml"))
    assert code == 1 and "[workarounds]" in out  # not eaten as rich markup

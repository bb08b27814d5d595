"""Lab pieces that need neither root nor a daemon: the boot sector, the counter guest's XML,
the inventory, the lab layout, /proc affinity of this very process, and the CLI's help and
status of a lab that is not up."""

from __future__ import annotations

import json
import os
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from numa_migrate.adapters.inventory import load_inventory
from numa_migrate.cli.main import cli
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.lab import (
    DST,
    SRC,
    Lab,
    LabError,
    LabPaths,
    boot_sector,
    counter_delta,
    counter_guest_xml,
    floppy_image,
    process_affinity,
)
from numa_migrate.lab.daemons import DaemonConfig, libvirtd_conf, qemu_conf
from numa_migrate.lab.state import inventory_text

IMAGE = Path("/lab/images/counter-floppy.img")


# -- the boot sector ------------------------------------------------------------------------


def test_boot_sector_is_the_documented_counting_loop() -> None:
    sector = boot_sector()
    assert len(sector) == 512
    assert sector[:11] == bytes(
        [0x31, 0xC0, 0x8E, 0xD8, 0x66, 0xFF, 0x06, 0x00, 0x05, 0xEB, 0xF9]
    )
    assert sector[11:510] == bytes(499)
    assert sector[510:] == b"\x55\xaa"


def test_boot_sector_jump_goes_back_to_the_increment() -> None:
    sector = boot_sector()
    jmp_at = sector.index(b"\xeb")
    target = jmp_at + 2 + int.from_bytes(sector[jmp_at + 1 : jmp_at + 2], signed=True)
    # the jump lands on "66 FF 06 00 05" = inc dword [0x0500]
    assert sector[target : target + 5] == bytes([0x66, 0xFF, 0x06, 0x00, 0x05])
    assert int.from_bytes(sector[target + 3 : target + 5], "little") == 0x500


def test_floppy_image_is_144mb_with_the_boot_sector_first() -> None:
    image = floppy_image()
    assert len(image) == 1_474_560 == 80 * 2 * 18 * 512
    assert image[:512] == boot_sector()
    assert image[512:] == bytes(len(image) - 512)


def test_counter_delta_wraps_at_32_bits() -> None:
    assert counter_delta(5, 9) == 4
    assert counter_delta(0xFFFF_FFFE, 3) == 5
    assert counter_delta(7, 7) == 0


# -- the counter guest's XML ----------------------------------------------------------------


def _xml(**kwargs: object) -> ET.Element:
    return ET.fromstring(counter_guest_xml("g1", image=IMAGE, **kwargs))  # type: ignore[arg-type]


def test_full_guest_xml() -> None:
    root = _xml(
        vcpus=2,
        memory_mib=64,
        vcpu_pins={1: "1", 0: 0},
        emulator_pin="0-1",
        cells=[("0", 32), ("1", 32)],
        nodeset="0",
        memnodes={0: "0", 1: "0"},
        hugepage_kib=2048,
        domain_type="kvm",
    )
    assert root.get("type") == "kvm" and root.findtext("name") == "g1"
    assert root.find("memory").attrib == {"unit": "MiB"}  # type: ignore[union-attr]
    assert root.findtext("memory") == "64" and root.findtext("currentMemory") == "64"
    assert root.findtext("vcpu") == "2"
    pins = [(p.get("vcpu"), p.get("cpuset")) for p in root.iterfind("cputune/vcpupin")]
    assert pins == [("0", "0"), ("1", "1")]
    assert root.find("cputune/emulatorpin").get("cpuset") == "0-1"  # type: ignore[union-attr]
    assert root.find("numatune/memory").attrib == {"mode": "strict", "nodeset": "0"}  # type: ignore[union-attr]
    assert [m.attrib for m in root.iterfind("numatune/memnode")] == [
        {"cellid": "0", "mode": "strict", "nodeset": "0"},
        {"cellid": "1", "mode": "strict", "nodeset": "0"},
    ]
    assert [c.attrib for c in root.iterfind("cpu/numa/cell")] == [
        {"id": "0", "cpus": "0", "memory": "32", "unit": "MiB"},
        {"id": "1", "cpus": "1", "memory": "32", "unit": "MiB"},
    ]
    assert root.find("cpu/model") is None  # no CPU model: refused on nested KVM
    page = root.find("memoryBacking/hugepages/page")
    assert page is not None and page.attrib == {"size": "2048", "unit": "KiB"}
    # libvirt's element order: memoryBacking before vcpu, cputune before numatune before os
    order = [child.tag for child in root]
    assert order.index("memoryBacking") < order.index("vcpu") < order.index("cputune")
    assert order.index("cputune") < order.index("numatune") < order.index("os")
    assert root.find("os/boot").get("dev") == "fd"  # type: ignore[union-attr]
    assert root.find("os/type").get("machine") == "pc"  # type: ignore[union-attr]
    # late PIT ticks are dropped, not re-injected (a BIOS stalls on nested KVM otherwise)
    assert root.find("clock/timer").attrib == {"name": "pit", "tickpolicy": "discard"}  # type: ignore[union-attr]


def test_guest_disk_is_a_read_only_floppy() -> None:
    disk = _xml().find("devices/disk")
    assert disk is not None
    assert disk.attrib == {"type": "file", "device": "floppy"}
    assert disk.find("source").get("file") == str(IMAGE)  # type: ignore[union-attr]
    assert disk.find("target").attrib == {"dev": "fda", "bus": "fdc"}  # type: ignore[union-attr]
    assert disk.find("readonly") is not None


def test_plain_guest_has_no_tuning() -> None:
    root = _xml(domain_type="qemu")
    assert root.get("type") == "qemu"
    for absent in ("cputune", "numatune", "memoryBacking", "cpu"):
        assert root.find(absent) is None, absent
    assert root.findtext("vcpu") == "1" and root.findtext("memory") == "64"


def test_emulator_pin_alone_makes_a_cputune() -> None:
    tune = _xml(emulator_pin="1").find("cputune")
    assert tune is not None and [c.tag for c in tune] == ["emulatorpin"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vcpus": 2, "vcpu_pins": {2: 0}}, "names vCPU 2"),
        ({"memory_mib": 64, "cells": [("0", 32), ("1", 16)]}, "hold 48 MiB"),
        ({"cells": [("0", 64)], "memnodes": {1: "0"}}, "guest cell 1"),
        ({"memory_mib": 63, "hugepage_kib": 2048}, "63 MiB is not a whole number"),
        ({"domain_type": "xen"}, "'xen'"),
        ({"vcpus": 0}, "at least 1"),
    ],
)
def test_guest_xml_refuses_inconsistent_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LabError, match=message) as info:
        counter_guest_xml("g1", image=IMAGE, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, NumaMigrateError)


def test_guest_name_is_checked() -> None:
    with pytest.raises(LabError, match="name"):
        counter_guest_xml("bad name", image=IMAGE)


# -- layout, configuration, inventory -------------------------------------------------------


def test_lab_layout_and_uris(tmp_path: Path) -> None:
    lab = Lab.at(tmp_path / "lab")
    src = lab.host(SRC)
    assert src.socket == tmp_path / "lab" / "hosts" / SRC / "run" / "libvirt-sock"
    assert lab.uri(SRC) == f"qemu+unix:///system?socket={src.socket}"
    assert lab.uris == {SRC: lab.uri(SRC), DST: lab.uri(DST)}
    assert lab.uri(SRC) != lab.uri(DST)
    assert src.qemu_pid_file("g") == src.run_dir / "qemu" / "g.pid"
    assert lab.inventory_path == tmp_path / "lab" / "inventory.toml"
    with pytest.raises(LabError, match="unknown lab host"):
        lab.host("lab-other")


def test_lab_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NUMA_MIGRATE_LAB_DIR", str(tmp_path / "x"))
    assert Lab.at().lab_dir == tmp_path / "x"
    monkeypatch.delenv("NUMA_MIGRATE_LAB_DIR")
    assert Lab.at().lab_dir == Path("/var/lib/numa-migrate/lab")


def test_lab_dir_may_not_hide_under_a_private_dir() -> None:
    with pytest.raises(LabError, match="inside /var/lib/libvirt"):
        LabPaths(Path("/var/lib/libvirt/lab"))


def test_inventory_is_toml_with_one_uri_per_host(tmp_path: Path) -> None:
    lab = Lab.at(tmp_path / 'we"ird')
    doc = tomllib.loads(inventory_text(lab.uris))
    assert doc == {"hosts": {SRC: {"uri": lab.uri(SRC)}, DST: {"uri": lab.uri(DST)}}}


@pytest.mark.parametrize(("cpus", "src", "dst"), [
    ((0, 1), ("1", "0"), ("0", "1")),
    ((0, 1, 2, 3), ("2-3", "0-1"), ("0-1", "2-3")),
    ((0, 1, 2), ("1-2", "0"), ("0", "1-2")),
    ((4, 6, 5, 7), ("6-7", "4-5"), ("4-5", "6-7")),
])
def test_lab_hosts_get_opposite_cpu_sets(
    tmp_path: Path, cpus: tuple[int, ...], src: tuple[str, str], dst: tuple[str, str]
) -> None:
    lab = Lab.at(tmp_path / "lab")
    doc = tomllib.loads(inventory_text(lab.uris, cpus))
    for name, (dedicated, shared) in ((SRC, src), (DST, dst)):
        assert doc["hosts"][name] == {"uri": lab.uri(name), "cpu_dedicated_set": dedicated,
                                      "cpu_shared_set": shared}
    # and the inventory reader accepts what the lab writes
    path = tmp_path / "inventory.toml"
    path.write_text(inventory_text(lab.uris, cpus))
    assert [h.name for h in load_inventory(path).hosts] == [SRC, DST]


def test_one_cpu_lab_has_no_cpu_sets(tmp_path: Path) -> None:
    lab = Lab.at(tmp_path / "lab")
    doc = tomllib.loads(inventory_text(lab.uris, (0,)))
    assert "cpu_dedicated_set" not in doc["hosts"][SRC]


def test_daemon_configuration_files(tmp_path: Path) -> None:
    host = Lab.at(tmp_path).host(DST)
    config = DaemonConfig("0b7c2d7e-1111-4222-8333-444455556666", (49200, 49247), True)
    conf = libvirtd_conf(config)
    assert 'host_uuid = "0b7c2d7e-1111-4222-8333-444455556666"' in conf
    assert 'auth_unix_rw = "none"' in conf and 'unix_sock_rw_perms = "0777"' in conf
    assert "listen_tcp = 0" in conf
    qemu = qemu_conf(config, host)
    for line in ('user = "root"', 'security_driver = "none"', "cgroup_controllers = [ ]",
                 'stdio_handler = "file"', "migration_port_min = 49200",
                 "migration_port_max = 49247", f'hugetlbfs_mount = "{host.hugepages_dir}"'):
        assert line in qemu
    assert "hugetlbfs_mount" not in qemu_conf(DaemonConfig(config.host_uuid, (1, 2), False), host)


# -- /proc affinity (of this test process: no root, no guest needed) ------------------------


def test_affinity_of_this_process_matches_the_kernel() -> None:
    affinity = process_affinity(os.getpid())
    assert affinity.main.tid == os.getpid()
    assert affinity.main.cpus == frozenset(os.sched_getaffinity(0))
    assert affinity.vcpus == {} and affinity.accelerator is None


def test_affinity_of_a_missing_domain_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="not running"):
        Lab.at(tmp_path).affinity(SRC, "nothing")


# -- the command line without a lab ----------------------------------------------------------


def test_lab_help_teaches() -> None:
    result = CliRunner().invoke(cli, ["lab", "--help"])
    assert result.exit_code == 0
    for word in ("lab-src", "lab-dst", "up --hugepages", "down", "NUMA_MIGRATE_LAB_DIR"):
        assert word in result.output
    up_help = CliRunner().invoke(cli, ["lab", "up", "--help"]).output
    assert "--hugepages" in up_help and "twice" in up_help


def test_status_of_a_lab_that_is_not_up(tmp_path: Path) -> None:
    env = {"NUMA_MIGRATE_LAB_DIR": str(tmp_path / "nolab")}
    result = CliRunner().invoke(cli, ["lab", "status", "--json"], env=env)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["up"] is False
    assert [h["name"] for h in doc["hosts"]] == [SRC, DST]
    assert all(h["running"] is False for h in doc["hosts"])


def test_bad_lab_dir_is_one_clear_error_line() -> None:
    env = {"NUMA_MIGRATE_LAB_DIR": "/run/libvirt/lab"}
    result = CliRunner().invoke(cli, ["lab", "status"], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: lab directory /run/libvirt/lab is inside")
    assert len(result.stderr.strip().splitlines()) == 1

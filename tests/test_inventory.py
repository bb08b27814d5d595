"""The hosts inventory file (TOML): every field, every error, and the checks against a host."""

from __future__ import annotations

from pathlib import Path

import pytest

from numa_migrate.adapters.inventory import (
    HostConfig,
    InventoryError,
    ReservedPages,
    UnknownInventoryHostError,
    default_inventory_path,
    load_inventory,
    parse_inventory,
    topology_for_host,
)
from numa_migrate.core.errors import NumaMigrateError, UnknownHostError

FIXTURES = Path(__file__).parent / "fixtures" / "xml"
CAPS_SMT = (FIXTURES / "caps-2s-intel-smt.xml").read_bytes()
CAPS_LAB = (FIXTURES / "caps-lab-1node.xml").read_bytes()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(text, encoding="utf-8")
    return path


def host(text: str, name: str = "a") -> HostConfig:
    return parse_inventory(text, path="inv.toml").host(name)


# --------------------------------------------------------------------------- good files


def test_full_host_entry(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, """
[hosts.cmp-01]
uri = "qemu+ssh://root@cmp-01/system"
cpu_dedicated_set = "2-9,^5,22-29"
cpu_shared_set = "0-1,20-21"
reserved_huge_pages = ["node:0,size:2048,count:64", "node:1,size:1GB,count:1",
                       "node:1, size:2MB, count:8"]
reserved_host_memory_mb = 4096

[hosts.lab]
uri = "test:///default"
"""))
    assert inv.names == ("cmp-01", "lab")
    one = inv.host("cmp-01")
    assert one.uri == "qemu+ssh://root@cmp-01/system"
    assert one.cpu_dedicated_set == frozenset({2, 3, 4, 6, 7, 8, 9, *range(22, 30)})
    assert one.cpu_shared_set == frozenset({0, 1, 20, 21})
    assert one.reserved_huge_pages == (
        ReservedPages(0, 2048, 64), ReservedPages(1, 2048, 8), ReservedPages(1, 1048576, 1))
    assert dict(one.reserved_pages_map()) == {(0, 2048): 64, (1, 2048): 8, (1, 1048576): 1}
    assert one.reserved_host_memory_mb == 4096
    assert not one.legacy_cpus
    assert one.source == str(tmp_path / "inventory.toml")
    lab = inv.host("lab")
    assert lab.legacy_cpus and lab.reserved_huge_pages == ()
    assert lab.reserved_host_memory_mb is None


@pytest.mark.parametrize("uri", [
    "qemu:///system",
    "qemu+unix:///system?socket=/run/lab/a/libvirt/virtqemud-sock",
    "qemu+ssh://root@10.0.0.5:2222/system?keyfile=/root/.ssh/id",
    "qemu+tls://cmp-01.example/system",
    "test:///default",
])
def test_any_libvirt_uri(uri: str) -> None:
    assert host(f'[hosts.a]\nuri = "{uri}"\n').uri == uri


def test_only_one_cpu_set_is_allowed() -> None:
    only = host('[hosts.a]\nuri = "test:///default"\ncpu_dedicated_set = "4-7"\n')
    assert only.cpu_dedicated_set == frozenset(range(4, 8)) and only.cpu_shared_set is None
    assert not only.legacy_cpus


def test_unknown_host_names_the_known_ones() -> None:
    inv = parse_inventory('[hosts.a]\nuri = "test:///default"\n[hosts.b]\nuri = "qemu:///system"',
                          path="inv.toml")
    with pytest.raises(UnknownInventoryHostError, match=r"inv\.toml: no host 'c'.*hosts: a, b"):
        inv.host("c")
    with pytest.raises(UnknownHostError):  # the project-wide type
        inv.host("c")


# --------------------------------------------------------------------------- bad files

BAD = [
    # (inventory text, pattern the one-line message must match)
    ("[hosts.a\nuri = 'x'\n", r"not valid TOML: line 1, column"),
    ("[hosts.a]\nuri = 'test:///default'\nuri = 'y'\n", r"not valid TOML: line 3"),
    ("other = 1\n[hosts.a]\nuri = 'test:///default'\n",
     r"unknown top-level key 'other' \(allowed: hosts"),
    ("", r"no hosts: add a \[hosts\.NAME\] table"),
    ("hosts = 3\n", r"no hosts"),
    ("[hosts]\na = 1\n", r"hosts\.a must be a table .*not a int"),
    ("[hosts.a]\nuri = 'test:///default'\nflavour = 1\ncpu_set = '1'\n",
     r"hosts\.a: unknown key 'cpu_set', 'flavour' \(allowed: uri, cpu_dedicated_set, "
     r"cpu_shared_set, reserved_huge_pages, reserved_host_memory_mb, physical_networks, "
     r"realtime_scheduler_priority\)"),
    ("[hosts.a]\ncpu_shared_set = '0'\n", r"hosts\.a\.uri is missing: a libvirt URI such as"),
    ("[hosts.a]\nuri = 3\n", r"hosts\.a\.uri: 3 is not a libvirt URI"),
    ("[hosts.a]\nuri = 'cmp-01'\n", r"hosts\.a\.uri: 'cmp-01' is not a libvirt URI"),
    ("[hosts.a]\nuri = ''\n", r"hosts\.a\.uri: '' is not a libvirt URI"),
    ('[hosts." "]\nuri = "test:///default"\n', r"host names must be non-empty"),
    ("[hosts.a]\nuri = 'test:///default'\ncpu_dedicated_set = 3\n",
     r"hosts\.a\.cpu_dedicated_set: must be a CPU list string in Nova's syntax"),
    ("[hosts.a]\nuri = 'test:///default'\ncpu_dedicated_set = ['1']\n",
     r"hosts\.a\.cpu_dedicated_set: must be a CPU list string"),
    ("[hosts.a]\nuri = 'test:///default'\ncpu_dedicated_set = '2-x'\n",
     r"hosts\.a\.cpu_dedicated_set: cpu_dedicated_set: '2-x' is not a CPU id"),
    ("[hosts.a]\nuri = 'test:///default'\ncpu_shared_set = '5-2'\n",
     r"hosts\.a\.cpu_shared_set: cpu_shared_set: invalid range '5-2'"),
    ("[hosts.a]\nuri = 'test:///default'\ncpu_shared_set = '1,^1'\n",
     r"hosts\.a\.cpu_shared_set: '1,\^1' names no CPU"),
    ("[hosts.a]\nuri = 'test:///default'\ncpu_dedicated_set = '2-7'\ncpu_shared_set = '0-2'\n",
     r"hosts\.a: cpu_dedicated_set and cpu_shared_set overlap on CPUs 2"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_huge_pages = 'node:0,size:2048,count:1'\n",
     r"hosts\.a\.reserved_huge_pages: must be a list of strings"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_huge_pages = [1]\n",
     r"reserved_huge_pages: must be a list of strings"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_huge_pages = ['node:0,size:2048']\n",
     r"reserved_huge_pages: 'node:0,size:2048' lacks count"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_huge_pages = ['node:0,sz:2048,count:1']\n",
     r"reserved_huge_pages: 'node:0,sz:2048,count:1' is not node:N,size:SIZE,count:N"),
    ("[hosts.a]\nuri = 'test:///default'\n"
     "reserved_huge_pages = ['node:0,node:1,size:2048,count:1']\n",
     r"is not node:N,size:SIZE,count:N"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_huge_pages = ['node:x,size:2048,count:1']\n",
     r"node 'x' is not a non-negative integer"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_huge_pages = ['node:0,size:2048,count:-1']\n",
     r"count '-1' is not a non-negative integer"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_huge_pages = ['node:0,size:2G,count:1']\n",
     r"size '2G' is not a page size in KiB or with a unit \(2048, 2MB, 1GB\)"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_huge_pages = ['node:0,size:0,count:1']\n",
     r"size must be more than 0 KiB"),
    ("[hosts.a]\nuri = 'test:///default'\n"
     "reserved_huge_pages = ['node:0,size:2048,count:1', 'node:0,size:2MB,count:2']\n",
     r"node 0 size 2048 KiB is given twice"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_host_memory_mb = -1\n",
     r"hosts\.a\.reserved_host_memory_mb: must be a non-negative integer \(MiB\), got -1"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_host_memory_mb = '512'\n",
     r"reserved_host_memory_mb: must be a non-negative integer"),
    ("[hosts.a]\nuri = 'test:///default'\nreserved_host_memory_mb = true\n",
     r"reserved_host_memory_mb: must be a non-negative integer"),
    ("[hosts.a]\nuri = 'test:///default'\nrealtime_scheduler_priority = 0\n",
     r"hosts\.a\.realtime_scheduler_priority: 0 is not a real-time scheduler priority \(an "
     r"integer from 1 to 99"),
    ("[hosts.a]\nuri = 'test:///default'\nrealtime_scheduler_priority = 100\n",
     r"realtime_scheduler_priority: 100 is not a real-time scheduler priority"),
    ("[hosts.a]\nuri = 'test:///default'\nrealtime_scheduler_priority = '50'\n",
     r"realtime_scheduler_priority: '50' is not a real-time scheduler priority"),
    ("[hosts.a]\nuri = 'test:///default'\nrealtime_scheduler_priority = true\n",
     r"realtime_scheduler_priority: True is not a real-time scheduler priority"),
    ("[hosts.a]\nuri = 'test:///default'\nphysical_networks = { p1 = ['0000:3b:20.1'] }\n",
     r"hosts\.a\.physical_networks\.p1: '0000:3b:20\.1' has slot 0x20, beyond 0x1f; a PCI "
     r"address is dddd:bb:ss\.f"),
    ("[hosts.a]\nuri = 'test:///default'\n"
     "physical_networks = { p1 = ['0000:3B:00.1'], p2 = ['0000:3b:00.1'] }\n",
     r"physical_networks: 0000:3b:00\.1 is in both p1 and p2"),
]


def test_realtime_priority_and_physnet_pci_addresses(tmp_path: Path) -> None:
    path = write(tmp_path, "[hosts.a]\nuri = 'test:///default'\nrealtime_scheduler_priority = 1\n"
                 "physical_networks = { p1 = ['0000:3B:00.1', 'ens1f0'], p2 = ['0:5e:0.2'] }\n"
                 "[hosts.b]\nuri = 'test:///default'\nrealtime_scheduler_priority = 99\n"
                 "[hosts.c]\nuri = 'test:///default'\n")
    inventory = load_inventory(path)
    a, b, c = inventory.hosts
    assert a.realtime_scheduler_priority == 1
    assert b.realtime_scheduler_priority == 99
    assert c.realtime_scheduler_priority is None
    assert a.physical_networks == (("p1", ("0000:3b:00.1", "ens1f0")), ("p2", ("0000:5e:00.2",)))


@pytest.mark.parametrize(("text", "pattern"), BAD)
def test_bad_inventory_names_file_host_and_field(
    tmp_path: Path, text: str, pattern: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError, match=pattern) as info:
        load_inventory(path)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert "\n" not in message
    assert isinstance(info.value, NumaMigrateError)


def test_missing_file_directory_and_encoding(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"nope\.toml: hosts inventory not found"):
        load_inventory(tmp_path / "nope.toml")
    with pytest.raises(InventoryError, match="is a directory"):
        load_inventory(tmp_path)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"# caf\xe9\n[hosts.a]\nuri = 'test:///default'\n")
    with pytest.raises(InventoryError, match=r"latin\.toml: not UTF-8 text"):
        load_inventory(latin)


# --------------------------------------------------------------------------- default path


def test_default_path_env_then_cwd_then_error(tmp_path: Path) -> None:
    assert default_inventory_path({"NUMA_MIGRATE_INVENTORY": "/x/inv.toml"}, tmp_path) == Path(
        "/x/inv.toml")
    with pytest.raises(InventoryError, match=r"give --hosts FILE, set NUMA_MIGRATE_INVENTORY"):
        default_inventory_path({}, tmp_path)
    write(tmp_path, "[hosts.a]\nuri = 'test:///default'\n")
    assert default_inventory_path({"NUMA_MIGRATE_INVENTORY": " "}, tmp_path) == (
        tmp_path / "inventory.toml")


# --------------------------------------------------------------------------- against a host


def test_topology_uses_the_cpu_sets_and_reservations() -> None:
    config = host("""
[hosts.a]
uri = "test:///default"
cpu_dedicated_set = "2-9,22-29,12-19,32-39"
cpu_shared_set = "0-1,20-21,10-11,30-31"
reserved_huge_pages = ["node:1,size:1GB,count:2"]
""")
    topo = topology_for_host(config, CAPS_SMT)
    cell0, cell1 = topo.cells
    assert topo.name == "a"
    assert cell0.cpuset == frozenset({0, 1, 20, 21})
    assert cell0.pcpuset == frozenset({*range(2, 10), *range(22, 30)})
    assert cell1.page_pool(1048576) is not None
    assert cell1.page_pool(1048576).reserved == 2  # type: ignore[union-attr]
    assert cell0.page_pool(1048576).reserved == 0  # type: ignore[union-attr]


def test_topology_without_sets_is_legacy() -> None:
    topo = topology_for_host(host("[hosts.a]\nuri = 'test:///default'\n"), CAPS_LAB)
    (cell,) = topo.cells
    assert cell.cpuset == cell.pcpuset == frozenset({0, 1}) and cell.legacy_pin_set


@pytest.mark.parametrize(("extra", "pattern"), [
    ('cpu_dedicated_set = "0-3"',
     r"inv\.toml: hosts\.a\.cpu_dedicated_set: CPUs 2-3 are not on the host \(its CPUs: 0-1\)"),
    ('cpu_shared_set = "1,7"',
     r"hosts\.a\.cpu_shared_set: CPUs 7 are not on the host"),
    ('reserved_huge_pages = ["node:1,size:2048,count:1"]',
     r"hosts\.a\.reserved_huge_pages: node 1 is not a NUMA node of the host "
     r"\(node 0: 4/2048 KiB\)"),
    ('reserved_huge_pages = ["node:0,size:1GB,count:1"]',
     r"hosts\.a\.reserved_huge_pages: node 0 has no 1048576 KiB pages"),
    ('reserved_huge_pages = ["node:0,size:2048,count:81"]',
     r"node 0 reserves 81 pages of 2048 KiB but has only 80"),
])
def test_topology_refuses_what_the_host_lacks(extra: str, pattern: str) -> None:
    config = host(f"[hosts.a]\nuri = 'test:///default'\n{extra}\n")
    with pytest.raises(InventoryError, match=pattern):
        topology_for_host(config, CAPS_LAB)


def test_host_refs_carry_the_destinations_realtime_priority() -> None:
    from numa_migrate.migrate.hosts import Hosts

    hosts = Hosts(parse_inventory("[hosts.a]\nuri = 'test:///default'\n"
                                  "realtime_scheduler_priority = 5\n"
                                  "[hosts.b]\nuri = 'test:///default'\n"))
    assert hosts.ref("a").realtime_priority == 5
    assert hosts.ref("b").realtime_priority is None
    assert (hosts.ref("a").name, hosts.ref("a").uri) == ("a", "test:///default")

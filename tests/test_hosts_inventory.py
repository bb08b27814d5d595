"""Hosts inventory (TOML) and the pure usage of running domains, on fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.hostsfile import InventoryError, UnknownHostError, load_inventory
from numa_migrate.hostusage import usage_from_domains

FIXTURES = Path(__file__).parent / "fixtures" / "xml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return path


def test_full_entry(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, """
[hosts.cmp-01]
uri = "qemu+ssh://root@cmp-01/system"
cpu_dedicated_set = "2-7,^5"
cpu_shared_set = "0-1"
reserved_huge_pages = ["node:0,size:2048,count:64", "node:1,size:1048576,count:1"]
[hosts.cmp-02]
uri = "test:///default"
"""))
    one = inv.host("cmp-01")
    assert one.cpu_dedicated_set == frozenset({2, 3, 4, 6, 7})
    assert one.cpu_shared_set == frozenset({0, 1})
    assert dict(one.reserved_huge_pages) == {(0, 2048): 64, (1, 1048576): 1}
    two = inv.host("cmp-02")
    assert two.cpu_dedicated_set is None and not two.reserved_huge_pages


@pytest.mark.parametrize(("text", "message"), [
    ("[hosts.a]\nuri = 'x'\nflavour = 1\n", r"unknown key\(s\) flavour \(allowed: uri,"),
    ("[hosts.a]\ncpu_shared_set = '0'\n", r"hosts\.a\.uri is missing"),
    ("[hosts.a]\nuri = 'x'\ncpu_dedicated_set = 3\n", r"hosts\.a\.cpu_dedicated_set must be"),
    ("[hosts.a]\nuri = 'x'\ncpu_dedicated_set = '2-x'\n", r"hosts\.a\.cpu_dedicated_set:"),
    ("[hosts.a]\nuri = 'x'\nreserved_huge_pages = ['node:0,size:2048']\n",
     r"node:N,size:KiB,count:N"),
    ("[hosts.a]\nuri = 'x'\nreserved_huge_pages = 'node:0'\n", r"must be a list of strings"),
    ("[hosts\nuri = 1\n", r"not valid TOML"),
    ("[other]\nx = 1\n", r"no \[hosts\.NAME\] tables"),
    ("[hosts]\na = 1\n", r"hosts\.a must be a table"),
])
def test_bad_inventories_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message) as info:
        load_inventory(write(tmp_path, text))
    assert str(tmp_path) in str(info.value)


def test_missing_file_and_unknown_host(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read the hosts inventory"):
        load_inventory(tmp_path / "nope.toml")
    inv = load_inventory(write(tmp_path, "[hosts.a]\nuri = 'test:///default'\n"))
    with pytest.raises(UnknownHostError, match=r"no host 'b' \(hosts: a\)"):
        inv.host("b")



def test_pinned_two_cell_guest_usage() -> None:
    host = host_from_capabilities((FIXTURES / "caps-2s-intel-smt.xml").read_text(), name="h")
    info = domain_from_xml((FIXTURES / "dom-pinned-2cell-2m.xml").read_text())
    used, notes = usage_from_domains(host, [info])
    c0, c1 = used.cell(0), used.cell(1)
    assert {2, 22} <= c0.pinned_cpus and {12, 32} <= c1.pinned_cpus
    assert c0.memory_usage_mib == 2048 and c1.memory_usage_mib == 2048
    pool0 = c0.page_pool(2048)
    assert pool0 is not None and pool0.used == 1024
    assert notes == ()
    # the caller's topology is untouched
    assert host.cell(0).pinned_cpus == frozenset() and host.cell(0).memory_usage_mib == 0


def test_shared_guest_counts_cpu_usage_on_its_cell() -> None:
    host = host_from_capabilities((FIXTURES / "caps-2s-intel-smt.xml").read_text(), name="h")
    info = domain_from_xml((FIXTURES / "dom-shared-cpuset.xml").read_text())
    used, _notes = usage_from_domains(host, [info])
    assert sum(c.cpu_usage for c in used.cells) == info.vcpus - sum(
        1 for _, cpus in info.vcpupin if len(cpus) == 1)
    assert all(not c.pinned_cpus for c in used.cells)


def test_guest_floating_over_the_host_is_noted() -> None:
    host = host_from_capabilities((FIXTURES / "caps-2s-intel-smt.xml").read_text(), name="h")
    xml = (FIXTURES / "dom-pinned-2cell-2m.xml").read_text()
    for tag in ("cputune", "numatune"):
        start, end = xml.index(f"<{tag}>"), xml.index(f"</{tag}>") + len(f"</{tag}>")
        xml = xml[:start] + xml[end:]
    used, notes = usage_from_domains(host, [domain_from_xml(xml)])
    assert any("not bound to a host cell" in n for n in notes)
    assert any("floats over the whole host" in n for n in notes)
    assert all(c.memory_usage_mib == 0 for c in used.cells)

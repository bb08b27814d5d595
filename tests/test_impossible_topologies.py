"""Impossible capabilities and unbounded domain CPU lists: one ParseError, at once.

Each hostile document is the lab fixture with one thing changed; the error names the element,
the value and the bound, within milliseconds and a few KiB of message.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.core.errors import ParseError

FIXTURES = Path(__file__).parent / "fixtures" / "xml"
CAPS = (FIXTURES / "caps-lab-1node.xml").read_text()
CPU0 = "<cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0'/>"
CPU1 = "<cpu id='1' socket_id='0' die_id='0' core_id='1' siblings='1'/>"
MEMORY = "<memory unit='KiB'>4194304</memory>"
PAGES_2M = "<pages unit='KiB' size='2048'>80</pages>"


def caps(old: str, new: str) -> str:
    assert old in CAPS
    return CAPS.replace(old, new, 1)


def second_cell(cpus: str) -> str:
    cell = (f"<cell id='1'>{MEMORY}<cpus num='1'>{cpus}</cpus></cell>")
    return caps("</cells>", cell + "</cells>")


HOSTILE = [
    ("cpu twice in a cell", caps(CPU1, CPU1 + CPU1), r"CPU 1 is listed twice in this cell"),
    ("cpu in two cells", second_cell("<cpu id='1' siblings='1'/>"),
     r"CPU 1 is listed in cell 0 and in cell 1"),
    ("cpu id beyond the bound", caps(CPU1, "<cpu id='16384'/>"),
     r"id '16384' must be at least 0 and at most 16383"),
    ("cpu id beyond 2^64", caps(CPU1, "<cpu id='99999999999999999999999'/>"),
     r"id '9+' is not an integer"),
    ("cell id beyond the bound", caps("<cell id='0'>", "<cell id='4096'>"),
     r"id '4096' must be at least 0 and at most 1023"),
    ("cell id beyond 2^64", caps("<cell id='0'>", "<cell id='18446744073709551617'>"),
     r"at most 1023"),
    ("two memory elements", caps(MEMORY, MEMORY + MEMORY),
     r"has 2 <memory> elements; a cell has exactly one"),
    ("no memory element", caps(MEMORY, ""), r"has 0 <memory> elements"),
    ("huge siblings range", caps(CPU1, "<cpu id='1' siblings='0-10000000'/>"),
     r"siblings: CPU id 10000000 in '0-10000000' is beyond the bound \(ids are 0-16383\)"),
    ("siblings range beyond 2^32", caps(CPU1, "<cpu id='1' siblings='0-4000000000'/>"),
     r"CPU id 4000000000 .* beyond the bound"),
    ("siblings naming absent CPUs", caps(CPU1, "<cpu id='1' siblings='1,7-9'/>"),
     r"siblings '1,7-9' name CPUs 7-9 that no cell lists \(host CPUs: 0-1\)"),
    ("absurd page count", caps(PAGES_2M, "<pages unit='KiB' size='2048'>99999999999999999</pages>"),
     r"'99999999999999999' must be at least 0 and at most 1099511627776"),
    ("absurd page size", caps(PAGES_2M, "<pages unit='TiB' size='5'>1</pages>"),
     r"page size 5368709120 KiB is not a page size"),
    ("zero page size", caps(PAGES_2M, "<pages unit='KiB' size='0'>1</pages>"),
     r"page size 0 KiB is not a page size"),
    ("one page size twice", caps(PAGES_2M, PAGES_2M + PAGES_2M),
     r"2048 KiB pages are listed twice in this cell"),
    ("absurd memory", caps(MEMORY, "<memory unit='EiB'>9</memory>"),
     r"KiB is beyond the bound \(4294967296 MiB per cell\)"),
    ("too many cells", caps("</cells>", "<cell id='1'/>" * 1100 + "</cells>"),
     r"lists 1101 NUMA cells; a host has at most 1024"),
]


@pytest.mark.parametrize(("name", "xml", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_impossible_capabilities_are_refused(name: str, xml: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ParseError, match=message) as info:
        host_from_capabilities(xml, source="caps.xml")
    assert time.perf_counter() - start < 0.5
    text = str(info.value)
    assert text.startswith("caps.xml: ") and "\n" not in text and len(text) < 2000


def test_the_fixture_itself_is_accepted() -> None:
    host = host_from_capabilities(CAPS)
    assert host.cpus == {0, 1}


DOMAIN = """<domain type='kvm'><name>g</name><uuid>11111111-2222-3333-4444-555555555555</uuid>
<memory unit='MiB'>256</memory><vcpu placement='static'{vcpu_attr}>{vcpus}</vcpu>
<cputune>{cputune}</cputune>{extra}<os><type arch='x86_64'>hvm</type></os></domain>"""


def domain(*, vcpus: str = "2", vcpu_attr: str = "", cputune: str = "", extra: str = "") -> str:
    return DOMAIN.format(vcpus=vcpus, vcpu_attr=vcpu_attr, cputune=cputune, extra=extra)


HOSTILE_DOMAINS = [
    ("vcpupin huge range", domain(cputune="<vcpupin vcpu='0' cpuset='0-4000000000'/>"),
     r"cpuset: CPU id 4000000000 in '0-4000000000' is beyond the bound \(ids are 0-16383\)"),
    ("emulatorpin huge range", domain(cputune="<emulatorpin cpuset='0-99999999'/>"),
     r"beyond the bound"),
    ("vcpu cpuset huge range", domain(vcpu_attr=" cpuset='0-4000000000'"), r"beyond the bound"),
    ("too many vcpus", domain(vcpus="100000000"), r"at most 4096"),
    ("vcpusched huge range",
     domain(cputune="<vcpusched vcpus='0-4000000000' scheduler='fifo' priority='1'/>"),
     r"vcpus: CPU id 4000000000 .* \(ids are 0-4095\)"),
    ("numatune nodeset huge range",
     domain(extra="<numatune><memory mode='strict' nodeset='0-4000000000'/></numatune>"),
     r"nodeset: CPU id 4000000000 .* \(ids are 0-1023\)"),
]


@pytest.mark.parametrize(("name", "xml", "message"), HOSTILE_DOMAINS,
                         ids=[h[0] for h in HOSTILE_DOMAINS])
def test_unbounded_domain_lists_are_refused(name: str, xml: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ParseError, match=message) as info:
        domain_from_xml(xml, source="dom.xml")
    assert time.perf_counter() - start < 0.5
    assert str(info.value).startswith("dom.xml: ") and len(str(info.value)) < 2000

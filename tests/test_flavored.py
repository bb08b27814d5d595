"""Guests made from Nova-style flavors (lab/flavored.py) and numa-migrate's domain metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.core.domainrequest import guest_request_from_domain
from numa_migrate.core.errors import InvalidRequestError, ParseError
from numa_migrate.core.model.guest import ThreadPolicy
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.request import Flavor
from numa_migrate.lab.flavored import FlavoredGuest, flavored_guest
from numa_migrate.migrate.plan import NoRoom

XML = Path(__file__).parent / "fixtures" / "xml"


def lab_host(dedicated: set[int], shared: set[int]) -> HostTopology:
    return host_from_capabilities((XML / "caps-lab-1node.xml").read_text(), name="lab-src",
                                  cpu_dedicated_set=frozenset(dedicated),
                                  cpu_shared_set=frozenset(shared))


def smt_host() -> HostTopology:
    return host_from_capabilities((XML / "caps-2s-intel-smt.xml").read_text(), name="smt")


def placed(specs: dict[str, str], host: HostTopology, vcpus: int = 1,
           memory: int = 64) -> FlavoredGuest:
    guest = flavored_guest("g", Flavor(vcpus, memory, specs), host, image="/x.img")
    assert isinstance(guest, FlavoredGuest), guest
    return guest


def test_dedicated_guest_is_pinned_on_the_dedicated_set_with_its_pages() -> None:
    guest = placed({"hw:cpu_policy": "dedicated", "hw:mem_page_size": "2048"},
                   lab_host({1}, {0}))
    info = domain_from_xml(guest.xml)
    assert dict(info.vcpupin) == {0: frozenset({1})}
    assert info.emulatorpin == frozenset({1})
    assert [p.size_kib for p in info.hugepages] == [2048]
    assert info.numatune is not None
    assert info.declared_specs == (("hw:cpu_policy", "dedicated"), ("hw:mem_page_size", "2048"))


def test_floating_guest_gets_the_shared_set_as_cpuset() -> None:
    guest = placed({}, lab_host({1}, {0}))
    info = domain_from_xml(guest.xml)
    assert guest.plan is None and info.vcpupin == ()
    assert info.vcpu_cpuset == frozenset({0})


def test_two_cell_guest_on_an_smt_host_follows_the_placement() -> None:
    guest = placed({"hw:cpu_policy": "dedicated", "hw:numa_nodes": "2",
                    "hw:cpu_thread_policy": "isolate"}, smt_host(), vcpus=4, memory=128)
    assert guest.placement is not None and guest.plan is not None
    info = domain_from_xml(guest.xml)
    assert [c.memory_mib for c in info.numa_cells] == [64, 64]
    assert dict(info.vcpupin) == dict(guest.plan.vcpu_pins)
    # isolate: no two vCPUs on sibling threads
    host = smt_host()
    pins = [next(iter(c)) for _v, c in info.vcpupin]
    for cell in host.cells:
        for sib in cell.siblings:
            assert len(sib & set(pins)) <= 1


def test_thread_policy_require_does_not_fit_without_smt() -> None:
    result = flavored_guest("g", Flavor(1, 64, {"hw:cpu_policy": "dedicated",
                                                "hw:cpu_thread_policy": "require"}),
                            lab_host({0, 1}, set()), image="/x.img")
    assert isinstance(result, NoRoom)
    assert result.reasons


def test_bad_extra_specs_are_refused_like_nova() -> None:
    with pytest.raises(InvalidRequestError):
        flavored_guest("g", Flavor(1, 64, {"hw:cpu_policy": "sometimes"}), lab_host({1}, {0}),
                       image="/x.img")


def test_metadata_request_keeps_what_the_xml_cannot_say() -> None:
    guest = placed({"hw:cpu_policy": "dedicated", "hw:cpu_thread_policy": "isolate",
                    "hw:emulator_threads_policy": "isolate"}, lab_host({0, 1}, set()))
    request, how = guest_request_from_domain(domain_from_xml(guest.xml))
    assert request is not None and request.thread_policy is ThreadPolicy.ISOLATE
    assert "numa-migrate metadata" in how
    # without the metadata the thread policy cannot be inferred
    bare = guest.xml.split("<metadata>")[0] + guest.xml.split("</metadata>")[1]
    request, how = guest_request_from_domain(domain_from_xml(bare))
    assert request is not None and request.thread_policy is None
    assert "cannot be inferred" in how


def test_metadata_that_contradicts_the_cells_is_an_error() -> None:
    guest = placed({"hw:cpu_policy": "dedicated"}, lab_host({0, 1}, set()), vcpus=2)
    lying = guest.xml.replace('<nm:spec key="hw:cpu_policy">dedicated</nm:spec>',
                              '<nm:spec key="hw:cpu_policy">dedicated</nm:spec>'
                              '<nm:spec key="hw:numa_nodes">2</nm:spec>')
    with pytest.raises(ParseError, match=r"metadata/guest.*guest cells"):
        guest_request_from_domain(domain_from_xml(lying))


@pytest.mark.parametrize(("spec", "match"), [
    ('<nm:spec>x</nm:spec>', "needs a key"),
    ('<nm:spec key="hw:cpu_policy">dedicated</nm:spec>'
     '<nm:spec key="hw:cpu_policy">shared</nm:spec>', "appears twice"),
])
def test_malformed_metadata_is_a_clear_error(spec: str, match: str) -> None:
    guest = placed({}, lab_host({1}, {0}))
    broken = guest.xml.replace('<nm:guest xmlns:nm="urn:numa-migrate:guest:1"/>',
                               f'<nm:guest xmlns:nm="urn:numa-migrate:guest:1">{spec}</nm:guest>')
    assert broken != guest.xml
    with pytest.raises(ParseError, match=match):
        domain_from_xml(broken)


def test_metadata_with_specs_nova_refuses_names_the_metadata() -> None:
    guest = placed({"hw:cpu_policy": "dedicated"}, lab_host({0, 1}, set()))
    bad = guest.xml.replace(">dedicated<", ">sometimes<")
    with pytest.raises(ParseError, match="metadata/guest"):
        guest_request_from_domain(domain_from_xml(bad))

"""PciAddress: the one rule for a PCI address (dddd:bb:ss.f), its ranges and its forms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numa_migrate.adapters.xmlsafe import XmlDoc
from numa_migrate.core.errors import ParseError
from numa_migrate.core.model.pci import PCI_FIELDS, PciAddress


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("0000:3b:02.1", "0000:3b:02.1"),
        ("0000:3B:02.1", "0000:3b:02.1"),
        ("0:3b:2.1", "0000:3b:02.1"),
        (" ffff:ff:1f.7 ", "ffff:ff:1f.7"),
        ("0001:00:00.0", "0001:00:00.0"),
    ],
)
def test_parse_and_format(text: str, normalised: str) -> None:
    address = PciAddress.parse(text)
    assert str(address) == normalised
    assert PciAddress.parse(str(address)) == address
    assert PciAddress.normalise(text) == normalised


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0000:3b:20.1", r"f: '0000:3b:20\.1' has slot 0x20, beyond 0x1f; a PCI address is "
                         r"dddd:bb:ss\.f \(hex; domain at most ffff, bus at most ff, slot at "
                         r"most 1f, function at most 7\)"),
        ("0000:3b:02.8", r"f: '0000:3b:02\.8' has function 0x8, beyond 0x7"),
        ("10000:3b:02.1", r"f: '10000:3b:02\.1' is not a PCI address dddd:bb:ss\.f"),
        ("0000:100:02.1", r"f: '0000:100:02\.1' is not a PCI address"),
        ("3b:02.1", r"f: '3b:02\.1' is not a PCI address"),
        ("0000:3b:02", r"is not a PCI address"),
        ("0000:3g:02.1", r"is not a PCI address"),
        ("", r"f: '' is not a PCI address"),
        ("0" * 5000, r"f: '0{36}\.\.\. is not a PCI address"),
    ],
)
def test_bad_addresses_name_the_field_and_the_form(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message) as exc:
        PciAddress.parse(text, field="f")
    assert len(str(exc.value)) < 200


@pytest.mark.parametrize("value", [None, 3, b"0000:3b:02.1", ["0000:3b:02.1"]])
def test_a_non_string_is_not_an_address(value: object) -> None:
    with pytest.raises(ParseError, match="is not a PCI address"):
        PciAddress.parse(value, field="f")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((0x10000, 0, 0, 0), r"domain 65536 is not an integer from 0 to 0xffff"),
        ((0, 0x100, 0, 0), r"bus 256 is not an integer from 0 to 0xff"),
        ((0, 0, 0x20, 0), r"slot 32 is not an integer from 0 to 0x1f"),
        ((0, 0, 0, 8), r"function 8 is not an integer from 0 to 0x7"),
        ((0, -1, 0, 0), r"bus -1 is not"),
        ((0, 0, True, 0), r"slot True is not"),
    ],
)
def test_fields_are_checked(fields: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(ParseError, match=message):
        PciAddress.from_fields(*fields, field="hostdev")
    with pytest.raises(ParseError, match=r"^hostdev: PCI address " + message):
        PciAddress.from_fields(*fields, field="hostdev")


def test_libvirt_attributes() -> None:
    assert PciAddress.parse("0000:3b:02.1").libvirt_attributes() == {
        "domain": "0x0000", "bus": "0x3b", "slot": "0x02", "function": "0x1"}


def test_looks_like() -> None:
    assert PciAddress.looks_like("0000:3b:20.1")  # shape only: the range is parse's job
    assert not PciAddress.looks_like("ens1f0")
    assert not PciAddress.looks_like("3b:02.1")


def test_the_xml_reader_uses_the_same_ranges() -> None:
    assert dict(PCI_FIELDS) == {"domain": 0xFFFF, "bus": 0xFF, "slot": 0x1F, "function": 7}
    doc = XmlDoc.load("<a><address domain='0x0' bus='0x3b' slot='0x1f' function='0x7'/></a>",
                      source="t", root="a")
    el = doc.root.find("address")
    assert el is not None
    assert doc.pci_address(el) == "0000:3b:1f.7"
    bad = XmlDoc.load("<a><address bus='0x3b' slot='0x20' function='0x1'/></a>",
                      source="t", root="a")
    el = bad.root.find("address")
    assert el is not None
    with pytest.raises(ParseError, match="slot"):
        bad.pci_address(el)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 0x1F), st.integers(0, 7))
def test_round_trip(domain: int, bus: int, slot: int, function: int) -> None:
    address = PciAddress(domain, bus, slot, function)
    text = str(address)
    assert len(text) == 12
    assert PciAddress.parse(text) == address
    assert PciAddress.parse(text.upper()) == address
    attrs = address.libvirt_attributes()
    assert PciAddress.from_fields(*(int(attrs[k], 16) for k, _ in PCI_FIELDS)) == address


def test_the_claims_store_reads_vf_addresses_by_the_same_rule() -> None:
    from numa_migrate.claims.accounting import normalise_vf
    from numa_migrate.claims.model import ClaimError

    assert normalise_vf(" 0000:3B:02.1") == "0000:3b:02.1"
    assert normalise_vf("0:3b:2.1") == "0000:3b:02.1"
    for bad, why in (("0000:3b:20.1", "slot 0x20, beyond 0x1f"),
                     ("00010000:3b:02.1", "is not a PCI address dddd:bb:ss.f"),
                     ("vf1", "is not a PCI address")):
        with pytest.raises(ClaimError, match=r"^VF address: .*" + why):
            normalise_vf(bad)

"""Safe parsing of libvirt XML and small typed readers for its values.

libvirt writes UTF-8 and never a DOCTYPE, so input in another encoding, or with a DOCTYPE or
an entity declaration, is refused before lxml sees it: no entity is ever declared, expanded or
fetched. Every reader raises :class:`~numa_migrate.core.errors.ParseError` naming the source, the
element path, the attribute and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import ParseError
from numa_migrate.core.limits import MAX_CPUS
from numa_migrate.core.model.pci import PCI_FIELDS, PciAddress

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
_BYTES_PER_KIB = 1024

_DECLARATIONS = (b"<!DOCTYPE", b"<!ENTITY")
_LXML_POSITION = re.compile(r", line \d+, column \d+$")
_INTEGER = re.compile(r"-?[0-9]{1,20}|0[xX][0-9a-fA-F]{1,16}")  # libvirt reads 64 bits
_SCALED_UNIT = re.compile(r"([kmgtpe])(ib|b)?")
_UNIT_HELP = "b, bytes, KB, K/KiB, MB, M/MiB, GB, G/GiB, TB, T/TiB, PB, P/PiB, EB, E/EiB"


def parse_xml(
    data: str | bytes, *, source: str, max_bytes: int = DEFAULT_MAX_BYTES
) -> etree._Element:
    """Parse one UTF-8 XML document without DTDs, entities, network access or comments."""
    raw = _utf8_bytes(data, source=source)
    if len(raw) > max_bytes:
        raise ParseError(
            f"document is {len(raw)} bytes, more than the limit of {max_bytes} bytes",
            source=source,
        )
    for declaration in _DECLARATIONS:
        if declaration in raw:
            raise ParseError(
                f"refusing a document with a {declaration.decode()[2:]} declaration "
                "(libvirt XML never has one; entities are neither expanded nor fetched)",
                source=source,
            )
    parser = etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        return etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        message = " ".join(_LXML_POSITION.sub("", exc.msg).split())
        raise ParseError(f"line {exc.lineno}: {message}", source=source) from None


def _utf8_bytes(data: str | bytes, *, source: str) -> bytes:
    try:
        if isinstance(data, str):
            return data.encode("utf-8")
        data.decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise ParseError(
            f"not UTF-8 text ({exc.reason} at offset {exc.start})", source=source
        ) from None
    return data


def unit_scale(unit: str) -> int | None:
    """Bytes per ``unit`` as libvirt reads it (case-insensitive), None if libvirt would refuse it.

    ``b``/``byte``/``bytes`` are bytes, ``K``/``KiB`` powers of 1024 and ``KB`` powers of 1000,
    likewise for M, G, T, P and E.
    """
    lowered = unit.lower()
    if lowered in ("b", "byte", "bytes"):
        return 1
    match = _SCALED_UNIT.fullmatch(lowered)
    if match is None:
        return None
    base = 1000 if match.group(2) == "b" else 1024
    return int(base ** ("kmgtpe".index(match.group(1)) + 1))


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def kib_to_mib(kib: int, *, round_up: bool) -> int:
    return ceil_div(kib, 1024) if round_up else kib // 1024


def element_path(el: etree._Element) -> str:
    return el.getroottree().getpath(el)


@dataclass(frozen=True, slots=True)
class XmlDoc:
    """A parsed document and its source name, with readers that raise located errors."""

    root: etree._Element
    source: str

    @classmethod
    def load(
        cls, data: str | bytes, *, source: str, root: str, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> XmlDoc:
        """Parse ``data`` and check that its root element is ``<root>``."""
        element = parse_xml(data, source=source, max_bytes=max_bytes)
        if element.tag != root:
            raise ParseError(f"root element is <{element.tag}>, expected <{root}>", source=source)
        return cls(element, source)

    def error(self, el: etree._Element, message: str) -> ParseError:
        return ParseError(f"{element_path(el)}: {message}", source=self.source)

    def child(self, el: etree._Element, path: str) -> etree._Element:
        found = el.find(path)
        if found is None:
            raise self.error(el, f"missing required element <{path}>")
        return found

    def text(self, el: etree._Element) -> str:
        value = (el.text or "").strip()
        if not value:
            raise self.error(el, "empty element, expected a value")
        return value

    def opt_text(self, el: etree._Element, path: str) -> str | None:
        found = el.find(path)
        return None if found is None else self.text(found)

    def attr(self, el: etree._Element, name: str) -> str:
        value = el.get(name)
        if value is None:
            raise self.error(el, f"missing required attribute {name!r}")
        return value

    def choice(
        self, el: etree._Element, name: str, allowed: Iterable[str], *, default: str | None = None
    ) -> str:
        """Attribute ``name``, one of ``allowed``; required unless a ``default`` is given."""
        value = self.attr(el, name) if default is None else el.get(name, default)
        options = tuple(allowed)
        if value not in options:
            raise self.error(el, f"{name} {value!r} is not one of {', '.join(options)}")
        return value

    def yes_no(self, el: etree._Element, name: str, *, default: str = "no") -> bool:
        return self.choice(el, name, ("yes", "no"), default=default) == "yes"

    def integer(
        self,
        el: etree._Element,
        value: str,
        name: str | None,
        *,
        minimum: int = 0,
        maximum: int | None = None,
    ) -> int:
        """``value`` (of attribute ``name``, or ``el``'s text if None) as a decimal or ``0x``
        hexadecimal integer in ``[minimum, maximum]``."""
        label = repr(value) if name is None else f"{name} {value!r}"
        text = value.strip()
        if not _INTEGER.fullmatch(text):
            raise self.error(el, f"{label} is not an integer")
        number = int(text, 16 if text[:2].lower() == "0x" else 10)
        if number < minimum or (maximum is not None and number > maximum):
            upper = "" if maximum is None else f" and at most {maximum}"
            raise self.error(el, f"{label} must be at least {minimum}{upper}")
        return number

    def int_attr(
        self,
        el: etree._Element,
        name: str,
        *,
        default: int | None = None,
        minimum: int = 0,
        maximum: int | None = None,
    ) -> int:
        value = el.get(name)
        if value is None and default is not None:
            return default
        return self.integer(el, self.attr(el, name), name, minimum=minimum, maximum=maximum)

    def opt_int_attr(self, el: etree._Element, name: str) -> int | None:
        return None if el.get(name) is None else self.int_attr(el, name)

    def int_text(self, el: etree._Element, *, minimum: int = 0, maximum: int | None = None) -> int:
        return self.integer(el, self.text(el), None, minimum=minimum, maximum=maximum)

    def opt_int_text(self, el: etree._Element, path: str) -> int | None:
        found = el.find(path)
        return None if found is None else self.int_text(found)

    def cpus_attr(
        self, el: etree._Element, name: str, *, bound: int = MAX_CPUS
    ) -> frozenset[int]:
        """A non-empty CPU (or NUMA node) list such as ``'0-3,^2'`` from attribute ``name``;
        ids are below ``bound`` (checked before any range is expanded)."""
        value = self.attr(el, name)
        try:
            cpus = CpuSet.parse(value, field=name, bound=bound)
        except ParseError as exc:
            raise self.error(el, str(exc)) from None
        if not cpus:
            raise self.error(el, f"{name} {value!r} names no CPU or node")
        return cpus

    def opt_cpus_attr(
        self, el: etree._Element, name: str, *, bound: int = MAX_CPUS
    ) -> frozenset[int] | None:
        return None if el.get(name) is None else self.cpus_attr(el, name, bound=bound)

    def size_kib(self, el: etree._Element, value: str, name: str | None) -> int:
        """``value`` (of attribute ``name``, or ``el``'s text if None) scaled by ``el``'s
        ``unit`` attribute (default KiB, as libvirt), in KiB rounded up as libvirt does."""
        unit = el.get("unit", "KiB")
        scale = unit_scale(unit)
        if scale is None:
            raise self.error(el, f"unit {unit!r} is not one of {_UNIT_HELP}")
        return ceil_div(self.integer(el, value, name) * scale, _BYTES_PER_KIB)

    def text_kib(self, el: etree._Element) -> int:
        return self.size_kib(el, self.text(el), None)

    def attr_kib(self, el: etree._Element, name: str) -> int:
        return self.size_kib(el, self.attr(el, name), name)

    def pci_address(self, el: etree._Element) -> str:
        """``<address domain= bus= slot= function=/>`` (domain defaults to 0) as dddd:bb:ss.f."""
        domain, bus, slot, function = (
            self.int_attr(el, name, maximum=limit, default=0 if name == "domain" else None)
            for name, limit in PCI_FIELDS
        )
        return str(PciAddress(domain, bus, slot, function))

    def pci_address_elements(self, el: etree._Element) -> str:
        """``<domain>0</domain><bus>59</bus>...`` children (node-device form) as dddd:bb:ss.f."""
        domain, bus, slot, function = (
            self.int_text(self.child(el, name), maximum=limit) for name, limit in PCI_FIELDS
        )
        return str(PciAddress(domain, bus, slot, function))

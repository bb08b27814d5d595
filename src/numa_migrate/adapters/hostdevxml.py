"""The PCI device elements of a domain XML, for handing SR-IOV VFs over around a migration.

``device_elements`` cuts out the ``<hostdev>`` / ``<interface type='hostdev'>`` elements of
given host PCI addresses, ready for ``virDomainAttachDeviceFlags`` /
``virDomainDetachDeviceFlags`` (libvirt's own ``<alias>`` is dropped: libvirt refuses an
attach that names a non-user alias); ``without_devices`` is the domain XML without them
(what is migrated while the VFs are detached). Both use the safe parser.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from numa_migrate.adapters.xmlsafe import XmlDoc
from numa_migrate.core.errors import ParseError


def _matching(doc: XmlDoc, addresses: set[str]) -> list[etree._Element]:
    found = []
    devices = doc.root.find("devices")
    for el in [] if devices is None else list(devices):
        is_pci = (el.tag == "hostdev" and el.get("type") == "pci") or (
            el.tag == "interface" and el.get("type") == "hostdev")
        address = el.find("source/address")
        if is_pci and address is not None and doc.pci_address(address) in addresses:
            found.append(el)
    return found


def device_elements(xml: str, addresses: Iterable[str], *, source: str) -> list[str]:
    """The device XML of each address, in ``addresses`` order; ParseError when one is absent."""
    wanted = list(addresses)
    doc = XmlDoc.load(xml, source=source, root="domain")
    by_address: dict[str, str] = {}
    for el in _matching(doc, set(wanted)):
        copy = etree.fromstring(etree.tostring(el))
        for alias in copy.findall("alias"):
            copy.remove(alias)
        address = copy.find("source/address")
        assert address is not None
        copy.tail = None
        by_address[doc.pci_address(address)] = etree.tostring(copy, encoding="unicode")
    missing = [a for a in wanted if a not in by_address]
    if missing:
        raise ParseError(f"no PCI hostdev with host address {', '.join(missing)}", source=source)
    return [by_address[a] for a in wanted]


def without_devices(xml: str, addresses: Iterable[str], *, source: str) -> str:
    """``xml`` without the devices of ``addresses`` (unchanged when there are none)."""
    wanted = set(addresses)
    if not wanted:
        return xml
    doc = XmlDoc.load(xml, source=source, root="domain")
    for el in _matching(doc, wanted):
        parent = el.getparent()
        assert parent is not None
        parent.remove(el)
    return etree.tostring(doc.root, encoding="unicode") + "\n"

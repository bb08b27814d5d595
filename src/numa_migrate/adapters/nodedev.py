"""PCI functions (SR-IOV PFs and VFs with their NUMA node) from libvirt node-device XML.

Each input document is one ``<device>`` as ``virsh nodedev-dumpxml`` prints it. PCI devices
become :class:`~numa_migrate.core.model.pci.PciFunction`; ``net`` devices name the interface
of their parent PCI function; every other device is skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace

from lxml import etree

from numa_migrate.adapters.xmlsafe import XmlDoc
from numa_migrate.core.model.pci import PciFunction

_NO_NUMA_NODE = -1


def pci_functions_from_nodedevs(
    xml_docs: Iterable[tuple[str, str | bytes]],
) -> tuple[PciFunction, ...]:
    """Every PCI function among ``(source name, device XML)`` pairs, sorted by address."""
    functions: dict[str, PciFunction] = {}
    interfaces: defaultdict[str, list[str]] = defaultdict(list)
    for source, xml in xml_docs:
        doc = XmlDoc.load(xml, source=source, root="device")
        name = doc.text(doc.child(doc.root, "name"))
        parent = doc.opt_text(doc.root, "parent")
        pci = _capability(doc.root, "pci")
        net = _capability(doc.root, "net")
        if pci is not None:
            if name in functions:
                raise doc.error(doc.root, f"device {name} appears in more than one document")
            functions[name] = _pci_function(doc, name, parent, pci)
        elif net is not None and parent is not None:
            interfaces[parent].append(doc.text(doc.child(net, "interface")))
    return tuple(
        sorted(
            (
                replace(function, net_interfaces=tuple(sorted(interfaces[function.name])))
                for function in functions.values()
            ),
            key=lambda function: function.address,
        )
    )


def _capability(el: etree._Element, kind: str) -> etree._Element | None:
    return el.find(f"capability[@type='{kind}']")


def _pci_function(doc: XmlDoc, name: str, parent: str | None, cap: etree._Element) -> PciFunction:
    numa = cap.find("numa")
    node = _NO_NUMA_NODE if numa is None else doc.int_attr(numa, "node", minimum=_NO_NUMA_NODE)
    vfs = _capability(cap, "virt_functions")
    pf = _capability(cap, "phys_function")
    return PciFunction(
        name=name,
        address=doc.pci_address_elements(cap),
        numa_node=None if node == _NO_NUMA_NODE else node,
        vendor_id=_pci_id(doc, doc.child(cap, "vendor")),
        product_id=_pci_id(doc, doc.child(cap, "product")),
        parent=parent,
        driver=doc.opt_text(doc.root, "driver/name"),
        is_pf=vfs is not None,
        vf_max_count=None if vfs is None else doc.opt_int_attr(vfs, "maxCount"),
        vf_addresses=() if vfs is None else tuple(map(doc.pci_address, vfs.iterfind("address"))),
        pf_address=None if pf is None else doc.pci_address(doc.child(pf, "address")),
    )


def _pci_id(doc: XmlDoc, el: etree._Element) -> str:
    return f"{doc.int_attr(el, 'id', maximum=0xFFFF):04x}"

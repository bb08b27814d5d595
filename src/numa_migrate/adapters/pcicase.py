"""The SR-IOV / PCI part of the fit-case format: a host's ``pci_devices``, a case's
``pci_requests`` (shared/formats/fit-case.md, "SR-IOV / PCI devices").

Every field is checked and a bad one refused with its path and the allowed values: ids are
four hex digits, addresses PCI addresses, NUMA nodes bounded, types and policies from their
lists, and spec attributes only those Nova matches on.
"""

from __future__ import annotations

import re

from numa_migrate.core.errors import ParseError
from numa_migrate.core.limits import MAX_NUMA_NODES, MAX_PCI_DEVICES
from numa_migrate.core.model.pci import PciAddress
from numa_migrate.core.model.pcidev import (
    SPEC_KEYS,
    DevType,
    PciDevice,
    PciNumaPolicy,
    PciRequest,
)
from numa_migrate.inputs.fields import Node

__all__ = ["MAX_PCI_REQUESTS", "pci_devices_from_node", "pci_requests_from_node"]

MAX_PCI_REQUESTS = 128
"""PCI requests of one guest (each SR-IOV port and each flavor alias is one)."""
MAX_SPEC_ALTERNATIVES = 64
_HEX_ID = re.compile(r"[0-9a-fA-F]{4}")
_STATUSES = ("available", "allocated")
_DEV_TYPES = tuple(t.value for t in DevType)
_POLICIES = tuple(p.value for p in PciNumaPolicy)


def _hex_id(node: Node) -> str:
    text = node.text(max_chars=16)
    if not _HEX_ID.fullmatch(text):
        node.fail(f"{text!r} is not a PCI id: four hex digits such as '8086'")
    return text.lower()


def _address(node: Node) -> str:
    try:
        return PciAddress.normalise(node.text(max_chars=64), field=node.path)
    except ParseError as exc:
        raise node.error(str(exc).removeprefix(f"{node.path}: ")) from None


def _numa_node(node: Node) -> int:
    return node.integer(maximum=MAX_NUMA_NODES - 1,
                        why=f"NUMA node ids are below {MAX_NUMA_NODES}")


def _device(node: Node) -> PciDevice:
    dev = node.obj()
    return PciDevice(
        address=_address(dev.req("address")),
        vendor_id=_hex_id(dev.req("vendor_id")),
        product_id=_hex_id(dev.req("product_id")),
        numa_node=dev.get("numa_node", _numa_node, None),
        dev_type=DevType(dev.get("dev_type", lambda n: n.choice(_DEV_TYPES), DevType.VF.value)),
        physical_network=dev.get("physical_network",
                                 lambda n: n.text(max_chars=255, non_empty=True), None),
        parent_addr=dev.get("parent_addr", _address, None),
        allocated=dev.get("status", lambda n: n.choice(_STATUSES), "available") == "allocated",
    )


def pci_devices_from_node(node: Node) -> tuple[PciDevice, ...]:
    """A host's ``pci_devices``: each address once."""
    items = node.items(max_items=MAX_PCI_DEVICES)
    devices = tuple(_device(n) for n in items)
    seen: set[str] = set()
    for n, d in zip(items, devices, strict=True):
        if d.address in seen:
            n.child(None, "address").fail(f"device {d.address} is listed twice")
        seen.add(d.address)
    return devices


def _spec_value(key: str, node: Node) -> str:
    if key == "address":
        return _address(node)
    if key in ("vendor_id", "product_id"):
        return _hex_id(node)
    if key == "dev_type":
        # spec values compare case-insensitively (the format): "type-vf" is "type-VF"
        text = node.text(max_chars=32)
        canonical = {t.lower(): t for t in _DEV_TYPES}.get(text.lower())
        if canonical is None:
            node.fail(f"one of {', '.join(_DEV_TYPES)} (got {text!r})")
        return canonical
    return node.text(max_chars=255, non_empty=True)


def _alternative(node: Node) -> tuple[tuple[str, str], ...]:
    alt = node.obj(known=SPEC_KEYS)
    return tuple(sorted((key, _spec_value(key, value)) for key, value in alt.items()))


def _request(node: Node) -> PciRequest:
    req = node.obj()
    spec_node = req.req("spec")
    spec = tuple(_alternative(a) for a in spec_node.items(max_items=MAX_SPEC_ALTERNATIVES))
    if not spec:
        spec_node.fail("must name at least one alternative, such as "
                       "[{\"physical_network\": \"physnet1\"}]")
    policy = req.get("numa_policy", lambda n: n.choice(_POLICIES), None)
    return PciRequest(
        count=req.req("count").integer(minimum=1, maximum=MAX_PCI_DEVICES,
                                       why="the PCI functions of one host"),
        spec=spec,
        numa_policy=None if policy is None else PciNumaPolicy(policy),
        name=req.get("name", lambda n: n.text(max_chars=255), None),
    )


def pci_requests_from_node(node: Node) -> tuple[PciRequest, ...]:
    """A case's ``pci_requests``, in order."""
    return tuple(_request(n) for n in node.items(max_items=MAX_PCI_REQUESTS))

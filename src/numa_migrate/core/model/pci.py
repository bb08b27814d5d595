"""PCI values: the one rule for a PCI address, and a PCI function of a host.

A PCI address is ``dddd:bb:ss.f`` in hex: domain at most ``ffff``, bus at most ``ff``, slot
at most ``1f``, function at most ``7``. :class:`PciAddress` is the only place that rule is
written: the XML readers, the inventory's ``physical_networks`` and the destination plan's
``hostdev_map`` read addresses through it and refuse a bad one with the same message, so
the addresses every other module compares are all in the one normalised form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from numa_migrate.core.errors import ParseError

__all__ = ["PCI_FIELDS", "PciAddress", "PciFunction"]

PCI_FIELDS: tuple[tuple[str, int], ...] = (
    ("domain", 0xFFFF),
    ("bus", 0xFF),
    ("slot", 0x1F),
    ("function", 0x7),
)
"""The fields of a PCI address, in order, with the largest value each can take."""

_FORM = (
    "dddd:bb:ss.f (hex; domain at most ffff, bus at most ff, slot at most 1f, "
    "function at most 7)"
)
_SHAPE = re.compile(
    r"(?P<domain>[0-9a-f]{1,4}):(?P<bus>[0-9a-f]{1,2}):(?P<slot>[0-9a-f]{1,2})\."
    r"(?P<function>[0-9a-f])",
    re.IGNORECASE,
)
_MAX_SHOWN = 40


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


@dataclass(frozen=True, slots=True, order=True)
class PciAddress:
    """One PCI address. ``str()`` gives the normalised ``dddd:bb:ss.f`` (lower-case hex)."""

    domain: int
    bus: int
    slot: int
    function: int

    def __post_init__(self) -> None:
        for name, limit in PCI_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise ParseError(
                    f"PCI address {name} {_shown(value)} is not an integer from 0 to "
                    f"{limit:#x}; a PCI address is {_FORM}"
                )

    @classmethod
    def parse(cls, text: object, *, field: str = "PCI address") -> PciAddress:
        """``dddd:bb:ss.f`` (leading zeros optional, any case); ParseError naming ``field``."""
        match = _SHAPE.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ParseError(f"{field}: {_shown(text)} is not a PCI address {_FORM}")
        values = {name: int(match[name], 16) for name, _ in PCI_FIELDS}
        for name, limit in PCI_FIELDS:
            if values[name] > limit:
                raise ParseError(
                    f"{field}: {_shown(text)} has {name} {values[name]:#x}, beyond {limit:#x}; "
                    f"a PCI address is {_FORM}"
                )
        return cls(**values)

    @classmethod
    def from_fields(
        cls, domain: int, bus: int, slot: int, function: int, *, field: str = "PCI address"
    ) -> PciAddress:
        """The address of four integers (as libvirt's ``<address>`` gives them)."""
        try:
            return cls(domain, bus, slot, function)
        except ParseError as exc:
            raise ParseError(f"{field}: {exc}") from None

    @staticmethod
    def looks_like(text: str) -> bool:
        """Whether ``text`` has the shape of a PCI address (its ranges not checked)."""
        return _SHAPE.fullmatch(text.strip()) is not None

    @classmethod
    def normalise(cls, text: object, *, field: str = "PCI address") -> str:
        """The normalised string of a PCI address given as text."""
        return str(cls.parse(text, field=field))

    def libvirt_attributes(self) -> dict[str, str]:
        """libvirt's ``<address type='pci' domain= bus= slot= function=>`` attributes."""
        return {
            "domain": f"{self.domain:#06x}",
            "bus": f"{self.bus:#04x}",
            "slot": f"{self.slot:#04x}",
            "function": f"{self.function:#x}",
        }

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"


@dataclass(frozen=True, slots=True)
class PciFunction:
    """One PCI function. Ids are 4-digit lower-case hex (``'8086'``), addresses dddd:bb:ss.f."""

    name: str
    address: str
    numa_node: int | None
    vendor_id: str
    product_id: str
    parent: str | None
    driver: str | None
    is_pf: bool = False
    vf_max_count: int | None = None
    vf_addresses: tuple[str, ...] = ()
    pf_address: str | None = None
    net_interfaces: tuple[str, ...] = ()

    @property
    def is_vf(self) -> bool:
        return self.pf_address is not None

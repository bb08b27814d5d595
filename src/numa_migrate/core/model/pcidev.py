"""PCI devices as the fit sees them, and a guest's PCI requests (Nova's PCI stats terms).

A :class:`PciDevice` is one assignable function of a host: a VF, a PF or a plain PCI device,
with the NUMA node it reports (None: it reports none), its physical network and whether a
guest already holds it. A :class:`PciRequest` asks for ``count`` devices matching one of the
alternatives of its ``spec`` under a PCI NUMA affinity policy (Nova's
``hw:pci_numa_affinity_policy``).

Spec attributes are Nova's: ``vendor_id``, ``product_id``, ``dev_type``,
``physical_network`` and ``address`` — the PF's address for a VF (Nova pools VFs under their
parent), the device's own otherwise. Values compare case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "SPEC_KEYS",
    "DevType",
    "PciDevice",
    "PciNumaPolicy",
    "PciRequest",
    "describe_spec",
]


class DevType(StrEnum):
    VF = "type-VF"
    PF = "type-PF"
    PCI = "type-PCI"


class PciNumaPolicy(StrEnum):
    """Nova's PCI NUMA affinity policies, strictest first."""

    REQUIRED = "required"
    SOCKET = "socket"
    LEGACY = "legacy"
    PREFERRED = "preferred"


SPEC_KEYS: tuple[str, ...] = (
    "vendor_id",
    "product_id",
    "dev_type",
    "physical_network",
    "address",
)
"""The device attributes a request's spec may name."""


@dataclass(frozen=True, slots=True)
class PciDevice:
    """One assignable PCI function of a host. Ids are lower-case hex strings."""

    address: str
    vendor_id: str
    product_id: str
    numa_node: int | None
    dev_type: DevType = DevType.VF
    physical_network: str | None = None
    parent_addr: str | None = None
    allocated: bool = False

    def attribute(self, key: str) -> str | None:
        """The value a spec's ``key`` is compared with (None: the device has none)."""
        if key == "address":
            return self.parent_addr or self.address
        if key == "dev_type":
            return self.dev_type.value
        value = getattr(self, key, None) if key in SPEC_KEYS else None
        return None if value is None else str(value)

    def describe(self) -> str:
        node = "no NUMA node" if self.numa_node is None else f"node {self.numa_node}"
        net = f", {self.physical_network}" if self.physical_network else ""
        kind = {DevType.VF: "VF", DevType.PF: "PF", DevType.PCI: "PCI device"}[self.dev_type]
        return f"{kind} {self.address} ({self.vendor_id}:{self.product_id}{net}, {node})"


Spec = tuple[tuple[str, str], ...]
"""One alternative of a request's spec: (attribute, value) pairs, sorted by attribute."""


def describe_spec(spec: tuple[Spec, ...]) -> str:
    """``physical_network=physnet1`` or ``vendor_id=8086 product_id=154c | dev_type=...``."""
    def text(alt: Spec) -> str:
        ordered = sorted(alt, key=lambda kv: SPEC_KEYS.index(kv[0]) if kv[0] in SPEC_KEYS else 99)
        return " ".join(f"{k}={v}" for k, v in ordered) or "any device"

    return " | ".join(text(alt) for alt in spec)


@dataclass(frozen=True, slots=True)
class PciRequest:
    """``count`` devices, each matching one alternative of ``spec``.

    ``numa_policy`` None: the flavor's / image's policy applies, else ``legacy``
    (see :meth:`with_default_policy`).
    """

    count: int
    spec: tuple[Spec, ...]
    numa_policy: PciNumaPolicy | None = None
    name: str | None = None

    @property
    def policy(self) -> PciNumaPolicy:
        return self.numa_policy or PciNumaPolicy.LEGACY

    @property
    def wants_pf(self) -> bool:
        """Whether the request asks for PFs: only then may a PF serve it (Nova's rule)."""
        return any(
            k == "dev_type" and v.lower() == DevType.PF.value.lower()
            for alt in self.spec
            for k, v in alt
        )

    def matches(self, device: PciDevice) -> bool:
        """Whether ``device`` matches an alternative of the spec (ignoring NUMA and status)."""
        if device.dev_type is DevType.PF and not self.wants_pf:
            return False
        return any(all(_same(device.attribute(k), v) for k, v in alt) for alt in self.spec)

    def with_default_policy(self, policy: PciNumaPolicy | None) -> PciRequest:
        if self.numa_policy is not None or policy is None:
            return self
        return PciRequest(self.count, self.spec, policy, self.name)

    def describe(self) -> str:
        what = describe_spec(self.spec)
        noun = "device" if self.count == 1 else "devices"
        return f"{self.count} {noun} matching {what}"


def _same(have: str | None, want: str) -> bool:
    return have is not None and have.lower() == want.lower()

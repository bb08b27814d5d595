"""Fleet files: hosts from libvirt capabilities XML plus Nova CPU sets, with guests on them.

A fleet file (JSON) names, per host, its capabilities XML, ``cpu_dedicated_set`` /
``cpu_shared_set`` (Nova ``[compute]`` options; both absent means legacy ``vcpu_pin_set``
style), ``reserved_huge_pages`` and the guests already running there, each as a Nova flavor.
The guests are placed in order with the fitter and their usage accounted, so the fleet's
state is exactly what placing those guests produces. The bundled sample fleet is the
offline default for ``fit``, ``explain`` and ``demo``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import InvalidRequestError, ParseError, UnknownHostError
from numa_migrate.core.fit.fitter import fit_guest
from numa_migrate.core.model.guest import Guest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.request import Flavor, guest_from_flavor
from numa_migrate.core.usage import apply_placement

SAMPLE_FLEET = "sample-fleet.json"


@dataclass(frozen=True)
class PlacedGuest:
    name: str
    host: str
    guest: Guest
    placement: Placement


@dataclass(frozen=True)
class Fleet:
    source: str
    hosts: tuple[HostTopology, ...]
    guests: tuple[PlacedGuest, ...]

    def host(self, name: str) -> HostTopology:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise UnknownHostError(f"host {name!r} is not in {self.source} (hosts: {known})")

    def guests_on(self, name: str) -> tuple[PlacedGuest, ...]:
        return tuple(g for g in self.guests if g.host == name)


def _cpu_set(raw: Mapping[str, Any], key: str, where: str) -> frozenset[int] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{where}.{key} must be a CPU list string like '2-19,22-39'")
    return CpuSet.parse(value, field=f"{where}.{key}")


def _reserved_pages(raw: Mapping[str, Any], where: str) -> dict[tuple[int, int], int]:
    out: dict[tuple[int, int], int] = {}
    for i, item in enumerate(raw.get("reserved_huge_pages") or []):
        try:
            out[(int(item["node"]), int(item["size_kib"]))] = int(item["count"])
        except (KeyError, TypeError, ValueError):
            raise ParseError(
                f"{where}.reserved_huge_pages[{i}] must be "
                "{'node': N, 'size_kib': KiB, 'count': N}"
            ) from None
    return out


def _flavor(raw: Any, where: str) -> Flavor:
    try:
        specs = raw.get("extra_specs") or {}
        return Flavor(
            int(raw["vcpus"]),
            int(raw["memory_mib"]),
            {str(k): str(v) for k, v in specs.items()},
            str(raw.get("name", "")),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ParseError(
            f"{where} must have 'vcpus', 'memory_mib' and optional 'extra_specs'"
        ) from None


def _place_guests(
    host: HostTopology, raw_guests: list[Any], where: str
) -> tuple[HostTopology, list[PlacedGuest]]:
    placed: list[PlacedGuest] = []
    for i, raw in enumerate(raw_guests):
        gw = f"{where}.guests[{i}]"
        name = str(raw.get("name", f"guest-{i}")) if isinstance(raw, dict) else f"guest-{i}"
        flavor = _flavor(raw, gw)
        try:
            guest = guest_from_flavor(flavor, raw.get("image_properties") or {})
        except InvalidRequestError as exc:
            raise ParseError(f"{gw} ({name}): {exc.message}") from None
        result = fit_guest(host, guest)
        if result.placement is None:
            raise ParseError(f"{gw} ({name}) does not fit on {host.name}: {result.summary}")
        if guest.numa is not None:
            host = apply_placement(host, guest.numa, result.placement)
        placed.append(PlacedGuest(name, host.name, guest, result.placement))
    return host, placed


def load_fleet(path: Path | None = None) -> Fleet:
    """Read a fleet file (the bundled sample fleet when ``path`` is None)."""
    if path is None:
        base = resources.files("numa_migrate") / "data" / "fleet"
        text = (base / SAMPLE_FLEET).read_text()
        source = f"sample fleet ({SAMPLE_FLEET})"

        def read_xml(name: str) -> str:
            return (base / name).read_text()
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ParseError(f"cannot read fleet file: {exc.strerror}", source=str(path)) from None
        source = str(path)

        def read_xml(name: str) -> str:
            try:
                return (path.parent / name).read_text()
            except OSError as exc:
                raise ParseError(
                    f"cannot read capabilities {name!r}: {exc.strerror}", source=str(path)
                ) from None

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not JSON: {exc.msg} at line {exc.lineno}", source=source) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("hosts"), list):
        raise ParseError("a fleet file is an object with a 'hosts' list", source=source)
    hosts: list[HostTopology] = []
    guests: list[PlacedGuest] = []
    for i, raw in enumerate(doc["hosts"]):
        where = f"hosts[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ParseError(f"{where} needs a 'name'", source=source)
        if not isinstance(raw.get("capabilities"), str):
            raise ParseError(f"{where} needs 'capabilities' (an XML file name)", source=source)
        host = host_from_capabilities(
            read_xml(raw["capabilities"]),
            name=raw["name"],
            cpu_dedicated_set=_cpu_set(raw, "cpu_dedicated_set", where),
            cpu_shared_set=_cpu_set(raw, "cpu_shared_set", where),
            reserved_huge_pages=_reserved_pages(raw, where),
            source=f"{source}: {raw['capabilities']}",
        )
        host, placed = _place_guests(host, raw.get("guests") or [], where)
        hosts.append(host)
        guests.extend(placed)
    return Fleet(source, tuple(hosts), tuple(guests))

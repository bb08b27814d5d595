"""The hosts inventory (TOML): host name -> libvirt URI, plus Nova-style CPU/page settings.

    [hosts.cmp-01]
    uri = "qemu+ssh://root@cmp-01/system"
    cpu_dedicated_set = "2-19,22-39"     # Nova [compute] cpu_dedicated_set (optional)
    cpu_shared_set = "0-1,20-21"         # Nova [compute] cpu_shared_set (optional)
    reserved_huge_pages = ["node:0,size:2048,count:64"]   # Nova syntax (optional)

Without CPU sets every host CPU may be used by pinned and by shared guests (the legacy,
``vcpu_pin_set``-less behaviour). Every mistake is reported with the file, the host and
the field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numa_migrate.cpuset import parse_cpu_spec
from numa_migrate.errors import NumaMigrateError

KEYS = ("uri", "cpu_dedicated_set", "cpu_shared_set", "reserved_huge_pages")


class InventoryError(NumaMigrateError):
    """The inventory file is missing or wrong; the message names file, host and field."""


class UnknownHostError(InventoryError):
    pass


@dataclass(frozen=True)
class HostEntry:
    name: str
    uri: str
    cpu_dedicated_set: frozenset[int] | None = None
    cpu_shared_set: frozenset[int] | None = None
    reserved_huge_pages: Mapping[tuple[int, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: Mapping[str, HostEntry]

    def host(self, name: str) -> HostEntry:
        try:
            return self.hosts[name]
        except KeyError:
            known = ", ".join(sorted(self.hosts)) or "none"
            raise UnknownHostError(
                f"{self.path}: no host {name!r} (hosts: {known})"
            ) from None


def _reserved(path: Path, host: str, value: object) -> dict[tuple[int, int], int]:
    where = f"{path}: hosts.{host}.reserved_huge_pages"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InventoryError(f"{where} must be a list of strings like "
                             '"node:0,size:2048,count:64"')
    out: dict[tuple[int, int], int] = {}
    for item in value:
        parts = dict(p.partition(":")[::2] for p in item.split(","))
        try:
            node, size, count = int(parts["node"]), int(parts["size"]), int(parts["count"])
        except (KeyError, ValueError):
            raise InventoryError(
                f"{where}: {item!r} is not node:N,size:KiB,count:N (Nova's syntax)") from None
        if node < 0 or size <= 0 or count < 0:
            raise InventoryError(f"{where}: {item!r} has a negative or zero value")
        out[(node, size)] = count
    return out


def _cpus(path: Path, host: str, key: str, value: object) -> frozenset[int]:
    if not isinstance(value, str):
        raise InventoryError(f"{path}: hosts.{host}.{key} must be a CPU list string like "
                             '"2-7,^4"')
    try:
        return frozenset(parse_cpu_spec(value))
    except NumaMigrateError as exc:
        raise InventoryError(f"{path}: hosts.{host}.{key}: {exc}") from None


def _entry(path: Path, name: str, raw: object) -> HostEntry:
    if not isinstance(raw, dict):
        raise InventoryError(f"{path}: hosts.{name} must be a table with a uri")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise InventoryError(f"{path}: hosts.{name}: unknown key(s) {', '.join(unknown)} "
                             f"(allowed: {', '.join(KEYS)})")
    uri = raw.get("uri")
    if not isinstance(uri, str) or not uri.strip():
        raise InventoryError(f"{path}: hosts.{name}.uri is missing (a libvirt URI such as "
                             "qemu+ssh://root@host/system)")
    kw: dict[str, Any] = {}
    for key in ("cpu_dedicated_set", "cpu_shared_set"):
        if key in raw:
            kw[key] = _cpus(path, name, key, raw[key])
    if "reserved_huge_pages" in raw:
        kw["reserved_huge_pages"] = _reserved(path, name, raw["reserved_huge_pages"])
    return HostEntry(name=name, uri=uri.strip(), **kw)


def load_inventory(path: Path) -> Inventory:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"cannot read the hosts inventory {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{path}: not valid TOML: {exc}") from None
    hosts = data.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        raise InventoryError(f"{path}: no [hosts.NAME] tables (each with a uri)")
    return Inventory(path, {name: _entry(path, name, raw) for name, raw in hosts.items()})

"""The hosts inventory: which libvirt hosts exist and how Nova would configure their CPUs.

An inventory is a TOML file with one table per host::

    [hosts.cmp-01]
    uri = "qemu+ssh://root@cmp-01/system"    # any libvirt URI
    cpu_dedicated_set = "2-19,^10"           # Nova [compute] cpu_dedicated_set (optional)
    cpu_shared_set = "0-1"                   # Nova [compute] cpu_shared_set (optional)
    reserved_huge_pages = ["node:0,size:2048,count:64", "node:1,size:1GB,count:1"]
    reserved_host_memory_mb = 4096           # Nova [DEFAULT] reserved_host_memory_mb
    physical_networks = { physnet1 = ["ens1f0", "0000:3b:00.1"] }   # SR-IOV PFs per network
    realtime_scheduler_priority = 1          # Nova [libvirt] realtime_scheduler_priority

Libvirt's capabilities say which CPUs a host has, not which of them are for pinned guests;
the CPU sets say it the way Nova's configuration does. Without either set every host CPU is
usable by pinned and by floating guests (Nova's legacy behaviour with ``vcpu_pin_set``
unset). Every mistake is an :class:`InventoryError` naming the file, the host, the field
and what is allowed. Nothing here talks to libvirt (see
:mod:`numa_migrate.adapters.inventory_live`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.destination import check_realtime_priority
from numa_migrate.core.errors import ParseError, UnknownHostError
from numa_migrate.core.limits import MAX_HOSTS
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.pci import PciAddress
from numa_migrate.core.novaopts import (
    RESERVED_PAGES_SYNTAX,
    OptionError,
    cpu_set_option,
    reserved_huge_pages,
)
from numa_migrate.core.novaopts import ReservedPages as _ReservedPages
from numa_migrate.inputs.documents import parse_toml
from numa_migrate.inputs.files import read_bytes

ReservedPages = _ReservedPages
"""One ``reserved_huge_pages`` entry (the type lives in :mod:`numa_migrate.core.novaopts`)."""

ENV_INVENTORY = "NUMA_MIGRATE_INVENTORY"
DEFAULT_INVENTORY = Path("inventory.toml")
HOST_KEYS = (
    "uri",
    "cpu_dedicated_set",
    "cpu_shared_set",
    "reserved_huge_pages",
    "reserved_host_memory_mb",
    "physical_networks",
    "realtime_scheduler_priority",
)
TOP_LEVEL_KEYS = ("hosts",)
URI_EXAMPLES = (
    "qemu:///system, qemu+unix:///system?socket=/run/libvirt/virtqemud-sock, "
    "qemu+ssh://root@host/system, test:///default"
)
MAX_INVENTORY_BYTES = 4 * 1024 * 1024

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")


class InventoryError(ParseError):
    """The inventory is missing or wrong; the message names the file, host and field."""


class UnknownInventoryHostError(InventoryError, UnknownHostError):
    """A host name that the inventory does not list."""


@dataclass(frozen=True)
class HostConfig:
    """One ``[hosts.NAME]`` table. ``source`` is the inventory file (for error messages).

    ``cpu_dedicated_set``/``cpu_shared_set`` None means "not configured" (Nova's default);
    ``reserved_host_memory_mb`` None means not given.
    """

    name: str
    uri: str
    source: str
    cpu_dedicated_set: frozenset[int] | None = None
    cpu_shared_set: frozenset[int] | None = None
    reserved_huge_pages: tuple[ReservedPages, ...] = ()
    reserved_host_memory_mb: int | None = None
    physical_networks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """physnet name -> the PFs (net interface names or PCI addresses) on it, sorted."""
    realtime_scheduler_priority: int | None = None
    """Nova's ``[libvirt] realtime_scheduler_priority`` of the host (1-99): the priority a
    real-time guest migrated here runs with; None: not given (the guest keeps its own)."""

    @property
    def legacy_cpus(self) -> bool:
        """True when neither CPU set is given: every CPU serves pinned and floating guests."""
        return self.cpu_dedicated_set is None and self.cpu_shared_set is None

    def reserved_pages_map(self) -> Mapping[tuple[int, int], int]:
        """(host node, page size KiB) -> reserved pages, as ``host_from_capabilities`` takes."""
        return MappingProxyType({(r.node, r.size_kib): r.count for r in self.reserved_huge_pages})

    def field(self, key: str) -> str:
        """``FILE: hosts.NAME.key`` for messages."""
        return f"{self.source}: hosts.{self.name}.{key}"


@dataclass(frozen=True)
class Inventory:
    """The hosts of one inventory file, in file order."""

    path: Path
    hosts: tuple[HostConfig, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)

    def host(self, name: str) -> HostConfig:
        for config in self.hosts:
            if config.name == name:
                return config
        raise UnknownInventoryHostError(
            f"{self.path}: no host {name!r} in the inventory (hosts: {', '.join(self.names)})"
        )


# --------------------------------------------------------------------------- loading


def default_inventory_path(
    env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path:
    """``$NUMA_MIGRATE_INVENTORY``, else ``./inventory.toml`` if it exists, else an error."""
    environ = os.environ if env is None else env
    given = environ.get(ENV_INVENTORY, "").strip()
    if given:
        return Path(given)
    local = (cwd or Path.cwd()) / DEFAULT_INVENTORY
    if local.is_file():
        return local
    raise InventoryError(
        "no hosts inventory: give --hosts FILE, set NUMA_MIGRATE_INVENTORY=FILE, or create "
        "./inventory.toml (TOML: [hosts.NAME] with uri = \"qemu:///system\")"
    )


def load_inventory(path: Path | str) -> Inventory:
    """Read and check an inventory file (see the module documentation for the format)."""
    path = Path(path)
    data = read_bytes(path, what="hosts inventory", max_bytes=MAX_INVENTORY_BYTES,
                      error=InventoryError)
    return parse_inventory(data, path=path)


def parse_inventory(text: str | bytes, *, path: Path | str = "inventory") -> Inventory:
    """Parse inventory TOML ``text``; ``path`` names the file in messages."""
    path = Path(path)
    data = parse_toml(text, source=str(path), error=InventoryError)
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise InventoryError(
            f"{path}: unknown top-level key {_names(unknown)} (allowed: "
            f"{', '.join(TOP_LEVEL_KEYS)}; each host is a [hosts.NAME] table)"
        )
    hosts = data.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        raise InventoryError(
            f"{path}: no hosts: add a [hosts.NAME] table with uri = \"qemu:///system\" "
            "(or another libvirt URI)"
        )
    if len(hosts) > MAX_HOSTS:
        raise InventoryError(f"{path}: hosts: {len(hosts)} hosts, more than {MAX_HOSTS}")
    return Inventory(path, tuple(_host(str(path), name, raw) for name, raw in hosts.items()))


def _names(keys: list[str]) -> str:
    return ", ".join(repr(k) for k in keys)


def _host(source: str, name: str, raw: object) -> HostConfig:
    where = f"{source}: hosts.{name}"
    if not name.strip() or any(ch.isspace() for ch in name):
        raise InventoryError(f"{where}: host names must be non-empty and without spaces")
    if not isinstance(raw, dict):
        raise InventoryError(
            f"{where} must be a table ([hosts.{name}] with uri = ...), not a "
            f"{type(raw).__name__}"
        )
    unknown = sorted(set(raw) - set(HOST_KEYS))
    if unknown:
        raise InventoryError(
            f"{where}: unknown key {_names(unknown)} (allowed: {', '.join(HOST_KEYS)})"
        )
    if "uri" not in raw:
        raise InventoryError(f"{where}.uri is missing: a libvirt URI such as {URI_EXAMPLES}")
    uri = raw["uri"]
    if not isinstance(uri, str) or not _URI.fullmatch(uri.strip()):
        raise InventoryError(
            f"{where}.uri: {uri!r} is not a libvirt URI (scheme://...; e.g. {URI_EXAMPLES})"
        )
    dedicated = _cpus(where, "cpu_dedicated_set", raw)
    shared = _cpus(where, "cpu_shared_set", raw)
    if dedicated is not None and shared is not None and dedicated & shared:
        raise InventoryError(
            f"{where}: cpu_dedicated_set and cpu_shared_set overlap on CPUs "
            f"{CpuSet.of(dedicated & shared)}; a CPU is either dedicated or shared"
        )
    return HostConfig(
        name=name,
        uri=uri.strip(),
        source=source,
        cpu_dedicated_set=dedicated,
        cpu_shared_set=shared,
        reserved_huge_pages=_reserved_pages(where, raw.get("reserved_huge_pages")),
        reserved_host_memory_mb=_reserved_memory(where, raw.get("reserved_host_memory_mb")),
        physical_networks=physical_networks_from(where, raw.get("physical_networks")),
        realtime_scheduler_priority=_realtime_priority(
            where, raw.get("realtime_scheduler_priority")
        ),
    )


def _realtime_priority(where: str, value: object) -> int | None:
    if value is None:
        return None
    try:
        return check_realtime_priority(value, field=f"{where}.realtime_scheduler_priority")
    except ParseError as exc:
        raise InventoryError(str(exc)) from None


_IFNAME = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")


def physical_networks_from(where: str, value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    field = f"{where}.physical_networks"
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InventoryError(f"{field}: must be a table of physnet = [PF interface names or "
                             f"PCI addresses], like {{ physnet1 = [\"ens1f0\"] }}")
    out: list[tuple[str, tuple[str, ...]]] = []
    seen: dict[str, str] = {}
    for name, members in value.items():
        if not isinstance(members, list) or not members or not all(
                isinstance(m, str) for m in members):
            raise InventoryError(f"{field}.{name}: must be a non-empty list of PF interface "
                                 "names or PCI addresses (dddd:bb:ss.f)")
        normalised: list[str] = []
        for member in members:
            key = member
            if PciAddress.looks_like(member):
                try:
                    key = PciAddress.normalise(member, field=f"{field}.{name}")
                except ParseError as exc:
                    raise InventoryError(str(exc)) from None
            elif not _IFNAME.fullmatch(member):
                raise InventoryError(f"{field}.{name}: {member!r} is neither a PCI address "
                                     "(dddd:bb:ss.f) nor a network interface name")
            if key in seen:
                raise InventoryError(f"{field}: {key} is in both {seen[key]} and {name}")
            seen[key] = name
            normalised.append(key)
        out.append((name, tuple(normalised)))
    return tuple(sorted(out))


def _cpus(where: str, key: str, raw: Mapping[str, object]) -> frozenset[int] | None:
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, str):
        raise InventoryError(
            f"{where}.{key}: must be a CPU list string in Nova's syntax, like \"2-7,^4,12\" "
            f"(got {value!r})"
        )
    try:
        return cpu_set_option(value, option=key)
    except OptionError as exc:
        raise InventoryError(
            f"{where}.{key}: {exc.value!r} {exc.detail}; leave the key out instead"
        ) from None
    except ParseError as exc:
        raise InventoryError(f"{where}.{key}: {exc}") from None


def _reserved_pages(where: str, value: object) -> tuple[ReservedPages, ...]:
    field = f"{where}.reserved_huge_pages"
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InventoryError(
            f"{field}: must be a list of strings like [\"node:0,size:2048,count:64\"] "
            f"({RESERVED_PAGES_SYNTAX})"
        )
    try:
        return reserved_huge_pages(value, option=field)
    except ParseError as exc:
        raise InventoryError(str(exc)) from None


def _reserved_memory(where: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InventoryError(
            f"{where}.reserved_host_memory_mb: must be a non-negative integer (MiB), "
            f"got {value!r}"
        )
    return value


# --------------------------------------------------------------------------- the host


def topology_for_host(config: HostConfig, capabilities_xml: str | bytes) -> HostTopology:
    """The host's NUMA topology (no usage yet) with the configured CPU pools and reserved
    pages, after checking that every configured CPU and page pool exists on the host."""
    source = f"{config.name} capabilities ({config.uri})"
    bare = host_from_capabilities(capabilities_xml, name=config.name, source=source)
    host_cpus = bare.shared_cpus
    for key, cpus in (
        ("cpu_dedicated_set", config.cpu_dedicated_set),
        ("cpu_shared_set", config.cpu_shared_set),
    ):
        missing = (cpus or frozenset()) - host_cpus
        if missing:
            raise InventoryError(
                f"{config.field(key)}: CPUs {CpuSet.of(missing)} are not on the host "
                f"(its CPUs: {CpuSet.of(host_cpus)})"
            )
    for entry in config.reserved_huge_pages:
        _check_reserved(config, bare, entry)
    return host_from_capabilities(
        capabilities_xml,
        name=config.name,
        cpu_dedicated_set=config.cpu_dedicated_set,
        cpu_shared_set=config.cpu_shared_set,
        reserved_huge_pages=config.reserved_pages_map() or None,
        source=source,
    )


def _check_reserved(config: HostConfig, host: HostTopology, entry: ReservedPages) -> None:
    field = config.field("reserved_huge_pages")
    pools = ", ".join(
        f"node {c.id}: {'/'.join(str(p.size_kib) for p in c.mempages) or 'none'} KiB"
        for c in host.cells
    )
    try:
        cell = host.cell(entry.node)
    except KeyError:
        raise InventoryError(
            f"{field}: node {entry.node} is not a NUMA node of the host ({pools})"
        ) from None
    pool = cell.page_pool(entry.size_kib)
    if pool is None:
        raise InventoryError(
            f"{field}: node {entry.node} has no {entry.size_kib} KiB pages ({pools})"
        )
    if entry.count > pool.total:
        raise InventoryError(
            f"{field}: node {entry.node} reserves {entry.count} pages of {entry.size_kib} KiB "
            f"but has only {pool.total}"
        )

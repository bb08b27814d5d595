"""Each Nova compute as a libvirt host: where its libvirt is, and its CPU sets.

A compute's NUMA state is read from libvirt on that compute: its URI comes from the hosts
inventory (``[hosts.<compute host>] uri = ...``), else from a template for whole clouds
(``--uri-template 'qemu+ssh://root@{host}/system'``). Its ``cpu_dedicated_set`` /
``cpu_shared_set`` come from its nova.conf when the operator points at one
(``--nova-conf HOST=FILE``, the reader of ``preflight``), else from the inventory. Both are
then cross-checked against Placement's PCPU / VCPU inventories: a disagreement is reported,
never hidden (Nova's scheduler counts Placement's numbers; the compute claims with its
nova.conf).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from numa_migrate.adapters.inventory import HostConfig, Inventory, InventoryError
from numa_migrate.adapters.inventory_live import LiveHost, read_live_host
from numa_migrate.cloud.nova import Provider
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.novaopts import cpu_set_option
from numa_migrate.preflight.sources import parse_nova_conf, read_source

_TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")


class ComputeMappingError(InventoryError):
    """No way to reach a compute's libvirt, or a bad template / nova.conf."""


def check_template(template: str) -> str:
    fields = set(_TEMPLATE_FIELD.findall(template))
    if fields != {"host"}:
        raise ComputeMappingError(
            f"--uri-template {template!r} must contain {{host}} and no other field "
            "(e.g. 'qemu+ssh://root@{host}/system')")
    if "://" not in template:
        raise ComputeMappingError(f"--uri-template {template!r} is not a libvirt URI "
                                  "(scheme://...)")
    return template


@dataclass(frozen=True)
class ComputeMap:
    """How to reach every compute's libvirt, and where its CPU sets come from."""

    inventory: Inventory | None = None
    uri_template: str | None = None
    nova_confs: dict[str, Path] = field(default_factory=dict, hash=False)
    reader: Callable[[HostConfig], LiveHost] | None = field(default=None, compare=False)
    """How a compute's libvirt is read (default: a connection to its URI)."""

    def read(self, config: HostConfig) -> LiveHost:
        """The compute of ``config`` (see :meth:`config`) as its libvirt shows it now."""
        return (self.reader or read_live_host)(config)

    def config(self, host: str) -> HostConfig:
        config: HostConfig | None = None
        if self.inventory is not None and host in self.inventory.names:
            config = self.inventory.host(host)
        elif self.uri_template is not None:
            config = HostConfig(name=host, uri=self.uri_template.replace("{host}", host),
                                source="--uri-template")
        if config is None:
            where = f"the inventory {self.inventory.path}" if self.inventory else "no inventory"
            raise ComputeMappingError(
                f"compute {host}: no libvirt URI for it ({where} has no [hosts.{host}]); add "
                f"it to the inventory or give --uri-template 'qemu+ssh://root@{{host}}/system'")
        conf_path = self.nova_confs.get(host)
        if conf_path is not None:
            config = with_nova_conf(config, conf_path)
        return config


def with_nova_conf(config: HostConfig, path: Path) -> HostConfig:
    """``config`` with the CPU sets of this compute's nova.conf (``[compute]``)."""
    conf = parse_nova_conf(read_source(path, "nova.conf"), str(path))
    sets: dict[str, frozenset[int] | None] = {}
    for key in ("cpu_dedicated_set", "cpu_shared_set"):
        value = conf.get("compute", key)
        sets[key] = (None if value is None or not value.value.strip()
                     else cpu_set_option(value.value, option=f"{conf.where(value)}: [compute] "
                                         f"{key}"))
    return replace(config, cpu_dedicated_set=sets["cpu_dedicated_set"],
                   cpu_shared_set=sets["cpu_shared_set"], source=str(path))


def placement_disagreements(config: HostConfig, provider: Provider | None,
                            host_cpus: int) -> list[str]:
    """What Placement's PCPU / VCPU totals say against this compute's CPU sets."""
    if provider is None:
        return [f"{config.name}: Placement has no resource provider of this name: Nova's "
                "scheduler cannot choose it"]
    out = []
    pcpu = provider.inventories.get("PCPU", 0)
    vcpu = provider.inventories.get("VCPU", 0)
    dedicated = config.cpu_dedicated_set
    shared = config.cpu_shared_set
    if config.legacy_cpus:
        want_pcpu, want_vcpu, what = 0, host_cpus, "no CPU sets (every CPU floats)"
    else:
        want_pcpu = len(dedicated or ())
        want_vcpu = len(shared or ()) if shared is not None else 0
        what = (f"cpu_dedicated_set={CpuSet.of(dedicated or ()).format() or '-'} "
                f"cpu_shared_set={CpuSet.of(shared or ()).format() or '-'}")
    if pcpu != want_pcpu or vcpu != want_vcpu:
        out.append(f"{config.name}: Placement has PCPU {pcpu} / VCPU {vcpu}, but "
                   f"{config.source} says {what} (PCPU {want_pcpu} / VCPU {want_vcpu}): "
                   "the compute's nova.conf and what it reported differ; restart its "
                   "nova-compute or fix the inventory")
    return out

"""The live facts preflight needs from an inventory host (adapter: libvirt)."""

from __future__ import annotations

from numa_migrate.adapters.inventory import HostConfig
from numa_migrate.adapters.inventory_live import open_connection, read_live_host
from numa_migrate.adapters.xmlsafe import XmlDoc
from numa_migrate.preflight.checks import HostFacts


def _version(number: int) -> tuple[int, int, int]:
    return number // 1_000_000, number // 1000 % 1000, number % 1000


def read_host_facts(config: HostConfig) -> HostFacts:
    """Topology with usage and huge pages, libvirt and QEMU versions, host CPU model."""
    with open_connection(config) as conn:
        live = read_live_host(config, conn=conn)
        libvirt_version = _version(int(conn.getLibVersion()))
        qemu_version = _version(int(conn.getVersion()))
        caps = XmlDoc.load(conn.getCapabilities(), source=f"{config.name} capabilities",
                           root="capabilities")
    cpu = caps.root.find("host/cpu")
    model = "" if cpu is None else (cpu.findtext("model") or "")
    features = frozenset() if cpu is None else frozenset(
        f.get("name", "") for f in cpu.iterfind("feature"))
    return HostFacts(config.name, live.topology, libvirt_version, qemu_version, model,
                     features)

"""The live facts preflight needs from an inventory host (through the hypervisor seam)."""

from __future__ import annotations

from numa_migrate.adapters.inventory import HostConfig
from numa_migrate.adapters.inventory_live import open_connection, read_live_host
from numa_migrate.adapters.xmlsafe import XmlDoc
from numa_migrate.preflight.checks import HostFacts


def read_host_facts(config: HostConfig) -> HostFacts:
    """Topology with usage and huge pages, libvirt and QEMU versions, host CPU model."""
    with open_connection(config) as conn:
        live = read_live_host(config, conn=conn)
        versions = conn.versions()
        caps = XmlDoc.load(conn.capabilities(), source=f"{config.name} capabilities",
                           root="capabilities")
    cpu = caps.root.find("host/cpu")
    model = "" if cpu is None else (cpu.findtext("model") or "")
    features = frozenset() if cpu is None else frozenset(
        f.get("name", "") for f in cpu.iterfind("feature"))
    return HostFacts(config.name, live.topology, versions.libvirt, versions.hypervisor, model,
                     features)

"""The ``--hosts`` inventory option and the live host access the commands share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

# The modules below (libvirt access, the inventory reader, the migration engine and with it
# the claims store) are imported where they are used: `--hosts` is an option of commands
# whose --help must stay quick.
if TYPE_CHECKING:
    from numa_migrate.adapters.inventory import Inventory
    from numa_migrate.core.model.host import HostTopology
    from numa_migrate.hypervisor.base import Hypervisor
    from numa_migrate.migrate.run import HostDevices, HostRef

hosts_option = click.option(
    "--hosts", "hosts_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
    help="Hosts inventory (TOML: [hosts.NAME] uri = ...). Default: $NUMA_MIGRATE_INVENTORY, "
    "else ./inventory.toml, else the lab's (numa-migrate lab up writes it).",
)

LAB_INVENTORY = Path("/var/lib/numa-migrate/lab/inventory.toml")


def default_inventory_path() -> Path:
    """The configured inventory (env or ./inventory.toml), else the lab's, else an error."""
    from numa_migrate.adapters.inventory import InventoryError
    from numa_migrate.adapters.inventory import (
        default_inventory_path as configured_inventory_path,
    )

    try:
        return configured_inventory_path()
    except InventoryError:
        lab_dir = os.environ.get("NUMA_MIGRATE_LAB_DIR")
        lab = Path(lab_dir) / "inventory.toml" if lab_dir else LAB_INVENTORY
        if lab.exists():
            return lab
        raise InventoryError(
            "no hosts inventory: give --hosts FILE, set NUMA_MIGRATE_INVENTORY=FILE, create "
            "./inventory.toml (TOML: [hosts.NAME] with uri = \"qemu:///system\"), or run "
            "`numa-migrate lab up` to get the lab's"
        ) from None


@dataclass(frozen=True)
class Hosts:
    inventory: Inventory

    def ref(self, name: str) -> HostRef:
        from numa_migrate.migrate.run import HostRef

        entry = self.inventory.host(name)
        return HostRef(entry.name, entry.uri)

    def read_host(self, conn: Hypervisor, ref: HostRef) -> HostTopology:
        from numa_migrate.adapters.inventory_live import read_live_host

        return read_live_host(self.inventory.host(ref.name), conn=conn).topology

    def read_devices(self, conn: Hypervisor, ref: HostRef) -> HostDevices:
        """PCI functions, VFs given to running domains, and the inventory's physnets."""
        from numa_migrate.adapters.inventory_live import read_live_host
        from numa_migrate.migrate.run import HostDevices
        from numa_migrate.migrate.sriov import PhysNets

        config = self.inventory.host(ref.name)
        live = read_live_host(config, conn=conn)
        busy = {vf: ", ".join(names) for vf, names in live.vfs_in_use.items()}
        return HostDevices(live.pci_functions, busy, PhysNets(dict(config.physical_networks)))

    def find_running(self, domain: str) -> HostRef:
        """The one host where ``domain`` runs (hosts that cannot be reached are skipped)."""
        from numa_migrate.adapters.inventory import InventoryError
        from numa_migrate.hypervisor.base import HypervisorError
        from numa_migrate.hypervisor.libvirt import connection
        from numa_migrate.migrate.run import HostRef

        found: list[HostRef] = []
        unreachable: list[str] = []
        for entry in self.inventory.hosts:
            try:
                with connection(entry.uri, entry.name) as conn:
                    dom = conn.lookup(domain)
                    if dom is not None and dom.is_active():
                        found.append(HostRef(entry.name, entry.uri))
            except HypervisorError:
                unreachable.append(entry.name)
        if len(found) == 1:
            return found[0]
        if not found:
            extra = f" ({', '.join(unreachable)} unreachable)" if unreachable else ""
            raise InventoryError(f"domain {domain} runs on no host of "
                                 f"{self.inventory.path}{extra}; give --from HOST")
        raise InventoryError(f"domain {domain} runs on several hosts "
                             f"({', '.join(r.name for r in found)}); give --from HOST")


def load_hosts(path: Path | None) -> Hosts:
    from numa_migrate.adapters.inventory import load_inventory

    return Hosts(load_inventory(path or default_inventory_path()))

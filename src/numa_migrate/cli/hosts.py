"""The ``--hosts`` inventory option the commands share.

The hosts themselves: :mod:`numa_migrate.migrate.hosts`.
"""

from __future__ import annotations

from pathlib import Path

import click

hosts_option = click.option(
    "--hosts", "hosts_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
    help="Hosts inventory (TOML: [hosts.NAME] uri = ...). Default: $NUMA_MIGRATE_INVENTORY, "
    "else ./inventory.toml, else the lab's (numa-migrate lab up writes it).",
)

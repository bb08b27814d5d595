"""Where a command's fleet comes from: a fleet file or snapshot (``--fleet``), the hosts
read live (``--hosts`` with the claims of ``--db``), or the bundled sample fleet.

The live read (libvirt, the claims store) is imported only when ``--hosts`` is given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from numa_migrate.adapters.fleet import Fleet
    from numa_migrate.claims import ClaimStore

F = TypeVar("F", bound=Callable[..., Any])

live_hosts_option = click.option(
    "--hosts", "hosts_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
    help="Read the fleet live from this hosts inventory (TOML, the one `migrate` uses): "
    "every host's capabilities and running domains through libvirt, their pins, huge pages "
    "and VFs, minus other operators' claims (--db). Not with --fleet.",
)
live_db_option = click.option(
    "--db", "db_url", metavar="URL", envvar="NUMA_MIGRATE_DB",
    help="With --hosts: the claims store whose other operators' claims count as used "
    "(SQLAlchemy URL; default: the default store of `migrate` when it exists, env "
    "NUMA_MIGRATE_DB).",
)

__all__ = ["fleet_sources", "load_fleet_from", "print_fleet_notes"]


def fleet_sources(fleet_option: Callable[[F], F]) -> Callable[[F], F]:
    """Add ``--fleet`` (the given option), ``--hosts`` and ``--db`` to a command."""

    def decorate(func: F) -> F:
        return fleet_option(live_hosts_option(live_db_option(func)))

    return decorate


def load_fleet_from(fleet_path: Path | None, hosts_path: Path | None,
                    db_url: str | None) -> Fleet:
    """The fleet of ``--fleet`` or ``--hosts`` (default: the bundled sample fleet)."""
    if fleet_path is not None and hosts_path is not None:
        raise click.UsageError("give either --fleet FILE (a fleet file or snapshot) or "
                               "--hosts FILE (read the hosts live), not both")
    if hosts_path is None:
        if db_url is not None and _given_on_command_line("db_url"):
            raise click.UsageError("--db goes with --hosts (claims apply to hosts read live)")
        from numa_migrate.adapters.fleet import load_fleet

        return load_fleet(fleet_path)
    from numa_migrate.adapters.livefleet import live_fleet
    from numa_migrate.migrate.hosts import load_hosts

    inventory = load_hosts(hosts_path)
    store = _claims_store(db_url)
    if store is None:
        return live_fleet(inventory)
    with store:
        return live_fleet(inventory, store=store)


def _given_on_command_line(name: str) -> bool:
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def _claims_store(db_url: str | None) -> ClaimStore | None:
    """The claims store of ``--db``, else the default one when it exists (None: no claims)."""
    from numa_migrate.cli.common import open_store

    if db_url is None:
        from numa_migrate.claims.engine import default_url

        path = default_url().removeprefix("sqlite:///")
        if not Path(path).exists():
            return None
    return open_store(db_url)


def print_fleet_notes(console: Console, notes: Sequence[str]) -> None:
    """The fleet's notes (what a live read left out or approximated), after the output."""
    from numa_migrate.inputs.fields import one_line

    if notes:
        console.print()
        console.print("Fleet notes:", highlight=False)
    for note in notes:
        console.print(f"  - {one_line(note)}", highlight=False, soft_wrap=True, markup=False)

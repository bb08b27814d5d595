"""The ``--cloud`` side of ``explain``, ``migrate``, ``validate`` (OpenStack mode).

Exit codes, the same for every ``--cloud`` command:
  0 done (explain: some compute can take the server; migrate: Nova completed it and the
    validation passed; validate: every check passed)
  1 no room (explain: no compute fits; migrate: our check refuses the destination, nothing
    was asked of Nova) / validate: a check failed
  2 bad input: unknown server, a server without NUMA topology, a destination that is not a
    compute, a bad inventory or nova.conf
  3 Nova's migration failed or was rolled back (the server is where Nova left it)
  4 the cloud: no such cloud, unreachable or refusing API, credentials refused
  5 Nova refused the request (NoValidHost, MigrationPreCheckError, a state conflict)
  6 Nova completed the migration but the validation found the placement wrong
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from numa_migrate.core.errors import NumaMigrateError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_NO_ROOM = 1
EXIT_BAD_INPUT = 2
EXIT_NOVA_FAILED = 3
EXIT_CLOUD = 4
EXIT_NOVA_REFUSED = 5
EXIT_INVALID = 6

EXIT_CODES_HELP = (
    "Exit (with --cloud) 0 done, 1 no room / a check failed, 2 bad input, 3 Nova's migration "
    "failed or rolled back, 4 cloud unreachable or credentials refused, 5 Nova refused the "
    "request, 6 migrated but not placed as Nova said."
)


def cloud_errors(func: F) -> F:
    """One line on stderr and the documented exit code for every cloud-side failure."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from numa_migrate.cloud.api import CloudAuthError, CloudConfigError, CloudError
        from numa_migrate.cloud.explain import NotNumaError
        from numa_migrate.cloud.migrate import DestinationError
        from numa_migrate.cloud.nova import NovaRefusedError, ServerNotFoundError
        from numa_migrate.core.errors import InvalidRequestError

        try:
            return func(*args, **kwargs)
        except NovaRefusedError as exc:
            code, message = EXIT_NOVA_REFUSED, str(exc)
        except (ServerNotFoundError, NotNumaError, DestinationError) as exc:
            code, message = EXIT_BAD_INPUT, str(exc)
        except (CloudConfigError, CloudAuthError) as exc:
            code, message = EXIT_CLOUD, str(exc)
        except CloudError as exc:
            code, message = EXIT_CLOUD, str(exc)
        except InvalidRequestError as exc:
            code, message = EXIT_BAD_INPUT, (f"the server's flavor/image is not a valid NUMA "
                                             f"request ({exc.nova_type}): {exc.message}")
        except NumaMigrateError as exc:
            code, message = EXIT_BAD_INPUT, str(exc)
        click.echo(f"error: {' '.join(message.split())}", err=True)
        sys.exit(code)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class CloudTarget:
    """The cloud and the way to its computes' libvirt, as the command line gave them."""

    cloud: str | None
    hosts_path: Path | None
    uri_template: str | None
    nova_confs: tuple[str, ...]

    @property
    def given(self) -> bool:
        return self.cloud is not None

    def api(self) -> Any:
        from numa_migrate.cloud.api import connect_cloud

        return connect_cloud(self.cloud or None)

    def computes(self) -> Any:
        """The :class:`~numa_migrate.cloud.computes.ComputeMap` of the command line."""
        from numa_migrate.adapters.inventory import InventoryError, load_inventory
        from numa_migrate.cloud.computes import ComputeMap, check_template
        from numa_migrate.migrate.hosts import default_inventory_path

        inventory = None
        if self.hosts_path is not None:
            inventory = load_inventory(self.hosts_path)
        else:
            try:
                inventory = load_inventory(default_inventory_path())
            except InventoryError:
                if self.uri_template is None:
                    raise
        confs: dict[str, Path] = {}
        for spec in self.nova_confs:
            host, sep, file = spec.partition("=")
            if not sep or not host.strip() or not file.strip():
                raise click.BadParameter(f"{spec!r} is not HOST=FILE", param_hint="--nova-conf")
            confs[host.strip()] = Path(file.strip())
        template = None if self.uri_template is None else check_template(self.uri_template)
        return ComputeMap(inventory, template, confs)


def fleet_of(target: CloudTarget, fleet_path: Path | None, hosts_path: Path | None,
             db_url: str | None) -> Any:
    """The fleet a planning command works on: with --cloud the cloud's, read live (--hosts
    then maps its computes to libvirt URIs; errors exit with the --cloud codes), else that
    of --fleet / --hosts (:func:`numa_migrate.cli.fleetsource.load_fleet_from`)."""
    if not target.given:
        if target.uri_template or target.nova_confs:
            raise click.UsageError("--uri-template and --nova-conf go with --cloud")
        from numa_migrate.cli.fleetsource import load_fleet_from

        return load_fleet_from(fleet_path, hosts_path, db_url)
    if fleet_path is not None:
        raise click.UsageError("--cloud reads the fleet from the cloud: give no --fleet")
    from numa_migrate.cloud.fleet import cloud_fleet

    def read() -> Any:
        return cloud_fleet(target.api(), target.computes(), progress=_progress)

    return cloud_errors(read)()


def cloud_fleet_json(fleet: Any) -> dict[str, Any]:
    """What a plan on a cloud's fleet adds to its JSON: where it was read and each guest's
    Nova server id (what a move hands to Nova)."""
    return {"fleet": fleet.source, "servers": {g.name: g.uuid for g in fleet.guests}}


def cloud_options(func: F) -> F:
    """--cloud, --uri-template, --nova-conf and the command's --hosts, handed to the command
    as one ``target`` (:class:`CloudTarget`)."""

    keep_hosts = "hosts_path" in inspect.signature(func).parameters

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # a command without its own --hosts takes the default inventory (or --uri-template)
        hosts = kwargs.get("hosts_path") if keep_hosts else kwargs.pop("hosts_path", None)
        kwargs["target"] = CloudTarget(kwargs.pop("cloud"), hosts,
                                       kwargs.pop("uri_template"), kwargs.pop("nova_confs"))
        return func(*args, **kwargs)

    out: Any = wrapper
    out = click.option(
        "--nova-conf", "nova_confs", multiple=True, metavar="HOST=FILE",
        help="With --cloud: a compute's nova.conf; its [compute] CPU sets win over the "
        "inventory's (repeat per compute).")(out)
    out = click.option(
        "--uri-template", metavar="URI",
        help="With --cloud: libvirt URI of computes missing from the inventory, with {host} "
        "for Nova's compute host name, e.g. 'qemu+ssh://root@{host}/system'.")(out)
    out = click.option(
        "--cloud", "cloud", metavar="NAME",
        help="OpenStack mode: the cloud of clouds.yaml, as openstackclient's --os-cloud; "
        "--cloud '' takes $OS_CLOUD or the OS_* variables. Nova moves the guest; "
        "numa-migrate explains, drives and validates.")(out)
    return out  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------- explain


def explain_cloud(target: CloudTarget, server: str, *, pack: bool, as_json: bool) -> int:
    from numa_migrate.cloud.explain import explain_server

    result = explain_server(target.api(), server, target.computes(), packing=pack,
                            progress=_progress)
    ranked = result.ranked()
    if as_json:
        click.echo(json.dumps(explain_json(result), indent=2))
    else:
        _print_explain(result)
    return EXIT_OK if ranked else EXIT_NO_ROOM


def _progress(message: str) -> None:
    click.echo(f"... {message}", err=True)


def explain_json(result: Any) -> dict[str, Any]:
    from numa_migrate.cli import render

    ctx = result.context
    server = ctx.server
    doc = render.explanation_json(result.explanation)
    return doc | {
        "cloud": True,
        "server": {"id": server.id, "name": server.name, "status": server.status,
                   "host": server.host, "instance_name": server.instance_name,
                   "flavor": server.flavor.name, "extra_specs": server.flavor.extra_specs,
                   "image_properties": ctx.image_properties,
                   "pagesize_kib": ctx.topology.pagesize_kib if ctx.topology else None},
        "source": result.source,
        "ranked_destinations": result.ranked(),
        "computes": [{"host": c.host, "state": c.service.state, "status": c.service.status,
                      "source": c.host == result.source,
                      "nova_eligible": result.nova_eligible(c.host),
                      "nova_search": None if c.nova is None else {
                          "decided": c.nova.decided, "fits": c.nova.fits,
                          "host_cells": c.nova.host_cells, "defect": c.nova.defect,
                          "summary": c.nova.summary},
                      "libvirt_uri": c.live.uri if c.live else None,
                      "libvirt_error": c.error,
                      "placement": None if c.provider is None else {
                          "free_pcpu": c.provider.free("PCPU"),
                          "free_memory_mb": c.provider.free("MEMORY_MB"),
                          "inventories": c.provider.inventories,
                          "usages": c.provider.usages},
                      "notes": list(c.notes)} for c in result.computes],
        "notes": list(result.notes),
    }


def _print_explain(result: Any) -> None:
    from numa_migrate.cli import render
    from numa_migrate.cli.main import _stdout

    console = _stdout()
    ctx = result.context
    page = ctx.topology.pagesize_kib if ctx.topology else None
    shown = render.shown
    console.print(f"server {shown(ctx.server.name)} ({shown(ctx.server.id)}) on "
                  f"{shown(result.source or '-')}, flavor {shown(ctx.server.flavor.name or '?')}"
                  + (f", runs on {page} KiB pages (kept by a live migration)" if page else ""))
    render.print_explanation(console, result.explanation)
    for view in result.computes:
        for note in view.notes:
            console.print(f"[yellow]{shown(view.host)}[/]: {shown(note)}")
    for note in result.notes:
        console.print(f"[yellow]note[/]: {shown(str(note))}")
    ranked = result.ranked()
    if ranked:
        console.print(f"Nova can live-migrate it to: {shown(', '.join(ranked))} (best first)")
    else:
        console.print("[bold red]no compute can take it[/]: a live migration would end in "
                      "NoValidHost")


# --------------------------------------------------------------------------------- migrate


def migrate_cloud(target: CloudTarget, server: str, *, to: str | None, dry_run: bool,
                  timeout_s: float, as_json: bool) -> int:
    from rich.console import Console

    from numa_migrate.cli.migrate import _Bar
    from numa_migrate.cloud.migrate import CheckRefused, migrate_server

    console = Console(stderr=True, highlight=False)
    bar = _Bar(console, f"{server} → {to or 'best host'} (Nova)")

    def phase(name: str, message: str) -> None:
        from numa_migrate.cli.render import shown

        console.print(f"[dim]{name:>9}[/] {shown(message)}")

    try:
        result = migrate_server(target.api(), server, target.computes(), to=to,
                                dry_run=dry_run, timeout_s=timeout_s, on_phase=phase,
                                on_progress=bar)
    except CheckRefused as exc:
        bar.stop()
        if as_json:
            click.echo(json.dumps({"migrated": False, "outcome": "refused by our checks",
                                   "error": str(exc), "reasons": list(exc.reasons)}, indent=2))
        click.echo(f"error: {exc}", err=True)
        for reason in exc.reasons:
            click.echo(f"  - {reason}", err=True)
        return EXIT_NO_ROOM
    finally:
        bar.stop()
    if as_json:
        click.echo(json.dumps(migration_json(result), indent=2))
    else:
        _print_migration(result)
    if result.outcome == "planned":
        return EXIT_OK
    if result.outcome == "refused":
        return EXIT_NOVA_REFUSED
    if result.outcome != "completed":
        return EXIT_NOVA_FAILED
    assert result.validation is not None
    return EXIT_OK if result.validation.passed else EXIT_INVALID


def migration_json(result: Any) -> dict[str, Any]:
    m = result.migration
    return {
        "migrated": result.outcome == "completed", "outcome": result.outcome,
        "detail": result.detail, "server": result.server, "server_id": result.server_id,
        "source": result.source, "destination": result.destination,
        "seconds": round(result.seconds, 3), "checks": list(result.checks),
        "nova_migration": None if m is None else {
            "id": m.id, "status": m.status, "source_compute": m.source_compute,
            "dest_compute": m.dest_compute, "memory_total": m.memory_total,
            "memory_processed": m.memory_processed, "created_at": m.created_at,
            "updated_at": m.updated_at},
        "validation": None if result.validation is None else validation_json(result.validation),
    }


def _print_migration(result: Any) -> None:
    from numa_migrate.cli.main import _stdout

    console = _stdout()
    style = {"completed": "green", "planned": "green"}.get(result.outcome, "bold red")
    from numa_migrate.cli.render import shown

    console.print(f"[{style}]{result.outcome}[/]: {shown(str(result.server))} "
                  f"{shown(str(result.source))} → {shown(str(result.destination))}: "
                  f"{shown(str(result.detail))}")
    if result.validation is not None:
        _print_validation(result.validation)


# --------------------------------------------------------------------------------- validate


def validate_cloud(target: CloudTarget, server: str, *, host: str | None,
                   as_json: bool) -> int:
    from numa_migrate.cloud.validate import validate_server

    result = validate_server(target.api(), server, target.computes(), host=host)
    if as_json:
        click.echo(json.dumps(validation_json(result), indent=2))
    else:
        _print_validation(result)
    return EXIT_OK if result.passed else EXIT_NO_ROOM


def validation_json(result: Any) -> dict[str, Any]:
    checked = result.checked
    topology = result.context.topology
    doc: dict[str, Any] = checked.report.to_json()
    return doc | {
        "server": result.context.server.name, "server_id": result.context.server.id,
        "uri": checked.live.uri, "affinity_source": checked.affinity_source,
        "nova_topology": None if topology is None else {
            "pagesize_kib": topology.pagesize_kib,
            "cells": [{"host_node": c.host_node, "vcpus": sorted(c.vcpus),
                       "memory_mib": c.memory_mib,
                       "pins": {str(k): v for k, v in sorted(c.pinning.items())}}
                      for c in topology.cells]},
        "host_conflicts": list(checked.live.usage.conflicts),
        "notes": list(result.notes) + list(checked.live.notes),
    }


def _print_validation(result: Any) -> None:
    from numa_migrate.cli.validate import _console, _print

    console = _console()
    checked = result.checked
    _print(console, checked.report, checked.live, checked.affinity_source)
    from numa_migrate.cli.render import shown

    for note in result.notes:
        console.print(f"[yellow]note[/]: {shown(str(note))}")

"""The picture options of `drain` and `fleet` (``--picture``, ``--html FILE``) and what they do.

Kept apart from the drawing (:mod:`numa_migrate.cli.picture`) so that the commands import
rich, the occupancy model and the HTML writer only when a picture is asked for. The HTML file
is checked before the plan is made (its directory exists; if it exists it is a regular file:
never written through a FIFO, a device or a directory) and written whole or not at all (a
temporary file beside it, then renamed).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from numa_migrate.core.drain import Plan
    from numa_migrate.core.drain.state import FleetState

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["html_option", "picture_option", "show_drain_pictures", "show_fleet_picture",
           "write_html"]


def _html_path(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    if value is None:
        return None
    if "\0" in value or not value.strip():
        raise click.BadParameter("give a file name", param_hint="--html")
    path = Path(value)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.lexists(path):
            raise click.BadParameter(f"{value} is a broken symbolic link",
                                     param_hint="--html") from None
        mode = None
    except OSError as exc:
        raise click.BadParameter(f"{value}: {exc.strerror}", param_hint="--html") from None
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise click.BadParameter(f"{value} is {kind}; give a regular file to write",
                                 param_hint="--html")
    parent = path.parent
    if not parent.is_dir():
        raise click.BadParameter(f"directory {parent} does not exist", param_hint="--html")
    return path


picture_option = click.option(
    "--picture", is_flag=True,
    help="Also draw the cells the plan touches, before and after: a letter per CPU for its "
    "guest (coloured on a terminal), huge pages and memory as bars; then the waves. With "
    "--json it goes to stderr.")

html_option = click.option(
    "--html", "html_path", metavar="FILE", callback=_html_path,
    help="Also write the plan as one HTML page (no script, nothing fetched): every touched "
    "host's cells before and after, the waves, the guests that cannot move. An existing "
    "regular file is replaced.")


def write_html(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all; an existing file keeps its mode."""
    from numa_migrate.adapters.wholefile import write_whole

    try:
        write_whole(path, text.encode("utf-8"))
    except OSError as exc:
        raise click.BadParameter(f"cannot write {path}: {exc.strerror or exc}",
                                 param_hint="--html") from None


def show_drain_pictures(state: FleetState, plan: Plan, drained: tuple[str, ...], *,
                        picture: bool, html_path: Path | None, source: str,
                        as_json: bool) -> None:
    """The terminal picture (on stderr when stdout holds ``--json``) and the HTML page."""
    if not picture and html_path is None:
        return
    from numa_migrate.adapters.pictures import drain_picture

    pic = drain_picture(state, plan, drained, others=html_path is not None)
    if html_path is not None:
        from numa_migrate.adapters.picturehtml import render_drain_html

        write_html(html_path, render_drain_html(pic, source))
        click.echo(f"picture written: {html_path}", err=True)
    if picture:
        from dataclasses import replace

        from numa_migrate.cli.picture import print_picture

        print_picture(_console(err=as_json), replace(pic, others=()))


def show_fleet_picture(state: FleetState) -> None:
    from numa_migrate.adapters.pictures import fleet_picture
    from numa_migrate.cli.picture import print_picture

    print_picture(_console(err=False), fleet_picture(state))


def _console(err: bool) -> Any:
    from rich.console import Console

    if not err:
        from numa_migrate.cli.main import _stdout

        return _stdout()
    console = Console(highlight=False, stderr=True)
    return console if console.is_terminal else Console(highlight=False, stderr=True,
                                                       width=140)

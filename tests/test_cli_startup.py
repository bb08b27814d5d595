"""Start-up: the command line imports only what the command it runs uses.

``numa-migrate --help``, ``--version`` and ``fit`` must not load the claims store
(SQLAlchemy, alembic), libvirt, the lab or the matrix; the group's help lists every
command from the short helps registered next to the lazily loaded commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import numa_migrate
from numa_migrate.cli.lazy import LazyCommand, LazyGroup
from numa_migrate.cli.main import LAZY_COMMANDS, cli

SRC = str(Path(numa_migrate.__file__).resolve().parents[1])

# Never needed to print help or the version (measured: these were most of the start-up).
NOT_FOR_HELP = (
    "sqlalchemy", "alembic", "psycopg", "libvirt", "lxml", "yaml", "rich",
    "numa_migrate.claims", "numa_migrate.lab", "numa_migrate.matrix", "numa_migrate.migrate",
    "numa_migrate.adapters", "numa_migrate.preflight", "numa_migrate.core.fit",
)
# `fit` of a fleet host parses capabilities XML (lxml) and prints with rich; nothing else.
NOT_FOR_FIT = (
    "sqlalchemy", "alembic", "psycopg", "libvirt", "yaml",
    "numa_migrate.claims", "numa_migrate.lab", "numa_migrate.matrix", "numa_migrate.migrate",
    "numa_migrate.preflight", "numa_migrate.adapters.inventory", "numa_migrate.adapters.virt",
)
FIT = ["fit", "--host", "cmp-intel-01", "--flavor-vcpus", "4", "--flavor-ram", "4096",
       "--extra-spec", "hw:cpu_policy=dedicated", "--extra-spec", "hw:mem_page_size=large"]

PROBE = """
import json, sys
from numa_migrate.cli.main import cli
try:
    cli(args=sys.argv[1:], prog_name="numa-migrate")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def _modules_after(args: list[str]) -> tuple[int, str, set[str]]:
    """Run the command line in a fresh interpreter: exit code, stdout, modules loaded."""
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    marker = done.stderr.rindex("MODULES ")
    return done.returncode, done.stdout, set(json.loads(done.stderr[marker + 8:]))


def _loaded(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["fit", "--help"],
                                  ["explain", "--help"], ["fleet", "--help"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    code, out, modules = _modules_after(args)
    assert code == 0, out
    assert _loaded(modules, NOT_FOR_HELP) == []


def test_top_help_lists_every_command() -> None:
    _code, out, _modules = _modules_after(["--help"])
    for name in ("demo", "explain", "fit", "fleet", *LAZY_COMMANDS):
        assert f"\n  {name} " in out, name


def test_fit_imports_only_the_fitter_and_the_fleet() -> None:
    code, out, modules = _modules_after(FIT)
    assert code == 0, out
    assert "placement" in out.lower()
    assert _loaded(modules, NOT_FOR_FIT) == []


def test_lazy_short_helps_match_the_commands() -> None:
    for name, lazy in LAZY_COMMANDS.items():
        command = lazy.load()
        assert command.name == name
        assert command.get_short_help_str(limit=10_000) == lazy.short_help, name


def test_lazy_help_listing_is_what_click_prints_for_the_loaded_commands() -> None:
    """The group's help from the table equals click's own listing of the real commands."""
    eager = click.Group(
        name=cli.name, help=cli.help, params=cli.params, context_settings=cli.context_settings,
        commands={**cli.commands, **{n: c.load() for n, c in LAZY_COMMANDS.items()}},
    )
    fresh = LazyGroup(
        name=cli.name, help=cli.help, params=cli.params, context_settings=cli.context_settings,
        commands={n: c for n, c in cli.commands.items() if n not in LAZY_COMMANDS},
        lazy=LAZY_COMMANDS,
    )
    for width in (60, 100):
        runner = CliRunner()
        want = runner.invoke(eager, ["--help"], prog_name="numa-migrate", terminal_width=width)
        got = runner.invoke(fresh, ["--help"], prog_name="numa-migrate", terminal_width=width)
        assert got.output == want.output
        assert set(fresh.commands) == set(cli.commands) - set(LAZY_COMMANDS)


def test_lazy_commands_run_and_unknown_ones_are_refused() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["recover", "--help"], prog_name="numa-migrate")
    assert result.exit_code == 0 and "Repair migrations" in result.output
    result = runner.invoke(cli, ["no-such-command"], prog_name="numa-migrate")
    assert result.exit_code == 2 and "No such command" in result.output


def test_a_wrong_target_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="is not a click command"):
        LazyCommand("numa_migrate.cli.main:LAZY_COMMANDS", "x").load()


def test_version_is_the_package_version() -> None:
    result = CliRunner().invoke(cli, ["--version"], prog_name="numa-migrate")
    assert result.output == f"numa-migrate, version {metadata.version('numa-migrate')}\n"
    assert numa_migrate.__version__ == metadata.version("numa-migrate")


def test_package_names_load_on_first_use() -> None:
    from numa_migrate.core.fit.fitter import fit_guest

    assert numa_migrate.fit_guest is fit_guest
    assert set(numa_migrate.__all__) <= set(dir(numa_migrate))
    with pytest.raises(AttributeError, match="no_such_name"):
        numa_migrate.no_such_name  # type: ignore[attr-defined]  # noqa: B018


# A command's --help needs its options, not the claims store, libvirt, the lab or the runner.
NOT_FOR_COMMAND_HELP = (
    "sqlalchemy", "alembic", "psycopg", "libvirt", "numa_migrate.claims",
    "numa_migrate.migrate.run", "numa_migrate.migrate.recovery", "numa_migrate.matrix.runner",
    "numa_migrate.matrix.report",
)


@pytest.mark.parametrize("command", ["migrate", "recover", "validate", "validate-matrix",
                                     "preflight"])
def test_command_help_does_not_load_the_claims_store(command: str) -> None:
    code, out, modules = _modules_after([command, "--help"])
    assert code == 0, out
    assert _loaded(modules, NOT_FOR_COMMAND_HELP) == []
    assert command != "validate-matrix" or _loaded(modules, ("numa_migrate.lab",)) == []


def test_matrix_help_lists_the_scenarios_one_per_line_by_group() -> None:
    from numa_migrate.matrix.scenarios import SCENARIOS

    out = CliRunner().invoke(cli, ["validate-matrix", "--help"], prog_name="numa-migrate",
                             terminal_width=100).output
    lines = out.splitlines()
    start = lines.index("  Scenarios (ID for --only), by group:")
    listing = lines[start:]
    seen_groups: list[str] = []
    for scenario in SCENARIOS:
        header = f"  {scenario.group}:"
        assert header in listing, header
        if scenario.group not in seen_groups:
            seen_groups.append(scenario.group)
        row = next(line for line in listing if line.split()[:1] == [scenario.id])
        assert row.startswith(f"    {scenario.id} ")
        assert scenario.title.split()[0] in row
        # the row sits under its group's header
        assert listing.index(row) > listing.index(header)
    assert [line[2:-1] for line in listing if line.startswith("  ") and line.endswith(":")
            and not line.startswith("   ")][1:] == seen_groups
    assert max(len(line) for line in listing) <= 82


def test_fit_json_does_not_load_rich() -> None:
    code, out, modules = _modules_after([*FIT, "--json"])
    assert code == 0, out
    assert json.loads(out)["fits"] is True
    assert _loaded(modules, ("rich", *NOT_FOR_FIT)) == []


def _every_command() -> list[tuple[list[str], click.Command, list[click.Command]]]:
    """(words after numa-migrate, command, the groups above it below the top one)."""
    out: list[tuple[list[str], click.Command, list[click.Command]]] = []

    def walk(words: list[str], command: click.Command, above: list[click.Command]) -> None:
        out.append((words, command, above))
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk([*words, name], sub, [*above, command] if words else [])

    walk([], cli, [])
    return out


def test_every_help_reads_well() -> None:
    """Plain metavars, exit codes stated (by the command or its group), nothing run on."""
    runner = CliRunner()
    commands = _every_command()
    assert len(commands) > 15
    for words, command, above in commands:
        result = runner.invoke(cli, [*words, "--help"], prog_name="numa-migrate",
                               terminal_width=100)
        assert result.exit_code == 0, words
        text = result.output
        assert "INTEGER RANGE" not in text and "FLOAT RANGE" not in text, words
        if words and not isinstance(command, click.Group):
            told = "".join(c.help or "" for c in (command, *above))
            assert "Exit 0" in told, words
        # a paragraph click re-wrapped from an indented docstring keeps its indent inside
        # lines ("...sample) or a     capabilities"): never three spaces inside a sentence
        description = text.split("\nOptions:")[0]
        for line in description.splitlines():
            stripped = line.strip()
            if stripped.startswith(("numa-migrate ", "virsh ", "--")) or "#" in line:
                continue
            assert "   " not in stripped, (words, line)


@pytest.mark.parametrize("command", ["fit", "explain"])
def test_guest_help_keeps_its_layout(command: str) -> None:
    out = CliRunner().invoke(cli, [command, "--help"], prog_name="numa-migrate",
                             terminal_width=100).output
    assert "\n  The guest is given either as a Nova flavor:\n    --flavor-vcpus 8 " in out
    assert "\n  Examples:\n    numa-migrate " + command in out
    assert "\n  Exit 0 " in out


def test_where_help_and_json_import_nothing_heavy() -> None:
    code, out, modules = _modules_after(["where", "--help"])
    assert code == 0, out
    assert _loaded(modules, ("rich", "lxml", "numa_migrate.adapters", *NOT_FOR_COMMAND_HELP)) \
        == []
    code, out, modules = _modules_after(["where", "web-2", "--json"])
    assert code == 0, out
    assert json.loads(out)["destinations"]
    assert _loaded(modules, ("rich", *NOT_FOR_FIT)) == []

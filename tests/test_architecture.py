"""The layers hold: the core imports only the stdlib and itself; only the CLI imports the CLI.

Imports are read from the source by AST (every ``import`` statement, at module level or
inside a function, a class or an ``if TYPE_CHECKING:`` block), so an import the tests never
execute is caught too. One test also imports every core module in a fresh interpreter in
which the third-party packages and the outer layers cannot be imported at all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "numa_migrate"
CORE = "numa_migrate.core"
CLI = "numa_migrate.cli"
FORBIDDEN_THIRD_PARTY = (
    "lxml",
    "sqlalchemy",
    "alembic",
    "yaml",
    "libvirt",
    "click",
    "rich",
    "psycopg",
)
"""Named in the failure message: what the adapters, the store and the CLI use."""


@dataclass(frozen=True)
class Import:
    module: str
    """The module a source file imports (``numa_migrate.adapters.domain``, ``lxml.etree``)."""
    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file.relative_to(PACKAGE.parent)}:{self.line} imports {self.module}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[Import]:
    """Every module the file ``path`` imports, with relative imports resolved."""
    return imports_in(path.read_text(encoding="utf-8"), path)


def imports_in(source: str, path: Path) -> list[Import]:
    """Every module ``source`` imports, read as the file ``path`` of the package."""
    tree = ast.parse(source, filename=str(path))
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, path, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append(Import(module, path, node.lineno))
            # ``from numa_migrate import cli`` imports the subpackage numa_migrate.cli
            found.extend(
                Import(f"{module}.{alias.name}", path, node.lineno)
                for alias in node.names
                if module == "numa_migrate"
            )
    return found


def dynamic_imports_of(path: Path) -> list[str]:
    """``__import__()`` and ``importlib.import_module()`` calls (they escape the AST check)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    calls: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name in {"__import__", "import_module"}:
                calls.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} calls {name}()")
    return calls


def sources(under: Path) -> list[Path]:
    return sorted(under.rglob("*.py"))


def core_modules() -> list[str]:
    return [module_name(path) for path in sources(PACKAGE / "core")]


def allowed_in_core(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    if top == "numa_migrate":
        return module == CORE or module.startswith(CORE + ".")
    return top in sys.stdlib_module_names or top == "__future__"


def core_violations(files: list[Path]) -> list[str]:
    return [str(i) for path in files for i in imports_of(path) if not allowed_in_core(i.module)]


def cli_violations(files: list[Path]) -> list[str]:
    outside = [
        path
        for path in files
        if not path.is_relative_to(PACKAGE / "cli") and path != PACKAGE / "__main__.py"
    ]
    return [
        str(i)
        for path in outside
        for i in imports_of(path)
        if i.module == CLI or i.module.startswith(CLI + ".")
    ]


CORE_RULE = (
    "numa_migrate.core must import only the standard library and numa_migrate.core.* "
    f"(never {', '.join(FORBIDDEN_THIRD_PARTY)}, nor numa_migrate.adapters, claims, migrate, "
    "lab, matrix, preflight or cli): move the value or rule into the core, or the I/O out of it"
)


def test_the_core_imports_only_the_stdlib_and_itself() -> None:
    files = sources(PACKAGE / "core")
    assert len(files) > 10, f"no core modules found under {PACKAGE / 'core'}"
    violations = core_violations(files)
    assert not violations, CORE_RULE + ":\n" + "\n".join(violations)


def test_the_core_has_no_dynamic_imports() -> None:
    calls = [call for path in sources(PACKAGE / "core") for call in dynamic_imports_of(path)]
    assert not calls, "the core imports statically only (so this test sees it):\n" + "\n".join(
        calls
    )


def test_only_the_cli_imports_the_cli() -> None:
    violations = cli_violations(sources(PACKAGE))
    assert not violations, (
        "only numa_migrate.cli and numa_migrate.__main__ may import numa_migrate.cli; move "
        "what the others need out of the CLI:\n" + "\n".join(violations)
    )


# ------------------------------------------------------------------ the checks can fail


@pytest.mark.parametrize(
    "source",
    [
        *(f"import {name}\n" for name in FORBIDDEN_THIRD_PARTY),
        "from lxml import etree\n",
        "def f():\n    from sqlalchemy import select\n",
        "import typing\nif typing.TYPE_CHECKING:\n    import yaml\n",
        "class C:\n    def m(self):\n        import libvirt\n",
        "from numa_migrate.adapters.domain import domain_from_xml\n",
        "from numa_migrate import cli\n",
        "from ...adapters import virt\n",
        "from ... import claims\n",
    ],
)
def test_a_forbidden_import_in_the_core_is_caught(source: str) -> None:
    """The same check, on a core module (numa_migrate/core/model/probe.py) that imports
    what it must not."""
    target = PACKAGE / "core" / "model" / "probe.py"
    violations = [str(i) for i in imports_in(source, target) if not allowed_in_core(i.module)]
    assert violations, f"not caught: {source!r}"


def test_allowed_core_imports_pass() -> None:
    target = PACKAGE / "core" / "model" / "probe.py"
    source = (
        "from __future__ import annotations\nimport re, json\nfrom collections.abc import Mapping\n"
        "from numa_migrate.core.errors import ParseError\nfrom . import host\n"
        "from ..cpuset import CpuSet\ndef f():\n    import tomllib\n"
    )
    assert [str(i) for i in imports_in(source, target) if not allowed_in_core(i.module)] == []


def test_a_cli_import_outside_the_cli_is_caught() -> None:
    for name, source in (
        ("matrix/runner.py", "from numa_migrate.cli.hosts import Hosts\n"),
        ("migrate/run.py", "def f():\n    import numa_migrate.cli.main\n"),
        ("lab/state.py", "from ..cli import common\n"),
        ("adapters/virt.py", "from numa_migrate import cli\n"),
    ):
        found = [
            i.module
            for i in imports_in(source, PACKAGE / name)
            if i.module == CLI or i.module.startswith(CLI + ".")
        ]
        assert found, f"not caught in {name}: {source!r}"
    inside = imports_in("from numa_migrate.cli.common import db_option\n",
                        PACKAGE / "cli" / "matrix.py")
    assert [i.module for i in inside] == ["numa_migrate.cli.common"]


# ------------------------------------------------------------------ importing, blocked

BLOCKER = """
import importlib.abc
import sys

BLOCKED = {blocked!r}
OUTER = ("numa_migrate.adapters", "numa_migrate.claims", "numa_migrate.migrate",
         "numa_migrate.lab", "numa_migrate.matrix", "numa_migrate.preflight",
         "numa_migrate.cli", "numa_migrate.inputs", "numa_migrate.hypervisor")


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in BLOCKED or any(name == o or name.startswith(o + ".") for o in OUTER):
            raise ImportError(f"blocked by test_architecture: {{name}}")
        return None


sys.meta_path.insert(0, Blocker())
for module in {modules!r}:
    importlib.import_module(module)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not leaked, leaked
print("imported", len({modules!r}))
"""


def run_blocked(modules: list[str]) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(BLOCKER).format(
        blocked=(*FORBIDDEN_THIRD_PARTY, "psycopg2"),
        modules=modules,
    )
    return subprocess.run(
        [sys.executable, "-c", "import importlib\n" + code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_every_core_module_imports_with_the_outer_world_blocked() -> None:
    modules = core_modules()
    result = run_blocked(modules)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"imported {len(modules)}"


def test_the_blocker_blocks() -> None:
    result = run_blocked(["numa_migrate.core.errors", "numa_migrate.adapters.domain"])
    assert result.returncode != 0
    assert "blocked by test_architecture: numa_migrate.adapters" in result.stderr

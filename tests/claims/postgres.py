"""A throwaway PostgreSQL server for tests: installed if missing, run from a temp dir.

``postgres_server()`` finds ``initdb``/``pg_ctl`` under ``/usr/lib/postgresql/*/bin`` (installing
Debian's ``postgresql`` package with apt-get when it is missing and we are root), creates a
cluster in a temporary folder with trust authentication, starts it on 127.0.0.1 on a free
port (as the ``postgres`` user when running as root: PostgreSQL refuses to run as root),
and stops and removes it on exit. Anything that makes this impossible raises
:class:`PostgresUnavailable` with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


@dataclass(frozen=True)
class PostgresServer:
    bindir: Path
    datadir: Path
    port: int
    admin_url: str
    """libpq URL of the ``postgres`` maintenance database."""

    def sqlalchemy_url(self, database: str) -> str:
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create (or recreate) database ``name``; its SQLAlchemy URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"bad database name {name!r}")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        return self.sqlalchemy_url(name)


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl."""
    candidates = [
        b for b in PG_ROOT.glob("*/bin") if (b / "initdb").is_file() and (b / "pg_ctl").is_file()
    ]
    return max(candidates, key=_version) if candidates else None


def _run(cmd: list[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostgresUnavailable(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise PostgresUnavailable(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return proc


def ensure_installed() -> Path:
    """initdb/pg_ctl's folder, installing the ``postgresql`` package when missing."""
    found = find_bindir()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise PostgresUnavailable(
            "PostgreSQL server binaries are missing under /usr/lib/postgresql and we are not "
            "root, so 'apt-get install postgresql' is not possible"
        )
    if shutil.which("apt-get") is None:
        raise PostgresUnavailable("PostgreSQL is not installed and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd, timeout in (
        (["apt-get", "update"], 300.0),
        (["apt-get", "install", "-y", "--no-install-recommends", "postgresql"], 600.0),
    ):
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{' '.join(cmd)} failed: {exc}") from exc
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise PostgresUnavailable(f"{' '.join(cmd)} failed (exit {proc.returncode}): {tail}")
    found = find_bindir()
    if found is None:
        raise PostgresUnavailable(
            "apt-get install postgresql succeeded but no initdb/pg_ctl under /usr/lib/postgresql"
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", SERVER_USER, "--", *cmd]
    return ["su", SERVER_USER, "-s", "/bin/sh", "-c", " ".join(cmd)]


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        shutil.chown(path, user=SERVER_USER, group=None)
    except (LookupError, OSError) as exc:
        raise PostgresUnavailable(
            f"cannot hand {path} to the {SERVER_USER!r} user (PostgreSQL refuses to run as "
            f"root): {exc}"
        ) from exc


@contextmanager
def postgres_server(start_timeout_s: float = 60.0) -> Iterator[PostgresServer]:
    """Install if needed, start, yield, then stop and remove a throwaway cluster."""
    bindir = ensure_installed()
    root = Path(tempfile.mkdtemp(prefix="numa-migrate-pg-"))
    root.chmod(0o755)
    datadir = root / "data"
    sockdir = root / "sock"
    log = root / "server.log"
    started = False
    try:
        _chown_to_server_user(root)
        for d in (datadir, sockdir):
            d.mkdir()
            _chown_to_server_user(d)
        _run(
            _as_server_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(datadir),
                    "-U",
                    SERVER_USER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--no-instructions",
                ]
            ),
            timeout=120,
            what="initdb",
        )
        last: PostgresUnavailable | None = None
        for _ in range(3):
            port = _free_port()
            options = (
                f"-h 127.0.0.1 -p {port} -k {sockdir} -F -c max_connections=200 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                _run(
                    _as_server_user(
                        [
                            str(bindir / "pg_ctl"),
                            "-D",
                            str(datadir),
                            "-o",
                            options,
                            "-l",
                            str(log),
                            "-w",
                            "-t",
                            str(int(start_timeout_s)),
                            "start",
                        ]
                    ),
                    timeout=start_timeout_s + 10,
                    what="pg_ctl start",
                )
            except PostgresUnavailable as exc:
                last = exc
                with suppress(OSError):
                    last = PostgresUnavailable(f"{exc}; server log: {log.read_text()[-800:]}")
                continue
            started = True
            break
        if not started:
            assert last is not None
            raise last
        admin = f"postgresql://{SERVER_USER}@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                with psycopg.connect(admin, connect_timeout=5):
                    break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"server did not accept connections: {exc}") from exc
                time.sleep(0.1)
        yield PostgresServer(bindir, datadir, port, admin)
    finally:
        if started:
            with suppress(PostgresUnavailable):
                _run(
                    _as_server_user(
                        [
                            str(bindir / "pg_ctl"),
                            "-D",
                            str(datadir),
                            "-m",
                            "immediate",
                            "-w",
                            "stop",
                        ]
                    ),
                    timeout=60,
                    what="pg_ctl stop",
                )
        shutil.rmtree(root, ignore_errors=True)

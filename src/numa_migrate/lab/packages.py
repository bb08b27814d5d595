"""What the lab needs from the machine: root, Debian packages, QEMU's group/user, libvirt-python.

Missing Debian packages are installed with apt-get when running as root (``apt-get update``
first, only then); the ``kvm`` / ``libvirt-qemu`` groups and the ``libvirt-qemu`` user that
libvirt's QEMU driver looks up are created (without them the driver fails to initialise:
"Failed to parse group 'libvirt-qemu'").
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

from numa_migrate.lab.errors import LabUnavailableError

PACKAGES: tuple[str, ...] = (
    "libvirt-daemon",
    "libvirt-daemon-driver-qemu",
    "libvirt-clients",
    "qemu-system-x86",
)
# Programs the lab runs, and the package that provides each.
PROGRAMS: dict[str, str] = {
    "libvirtd": "libvirt-daemon",
    "qemu-system-x86_64": "qemu-system-x86",
    "unshare": "util-linux",
}
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    return None


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabUnavailableError(
            "the lab needs root (it mounts private directories in new mount namespaces, "
            "starts libvirtd and reserves huge pages): run it as root, e.g. with sudo"
        )


def find_program(name: str) -> str | None:
    """The path of ``name`` on PATH or in the sbin directories (root's PATH may lack them)."""
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH)


def installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.startswith("ii")


def missing_packages(packages: Sequence[str] = PACKAGES) -> list[str]:
    """Packages that are not installed (all of them when this is not a dpkg system)."""
    return [p for p in packages if not installed(p)]


def missing_programs(programs: Mapping[str, str] = PROGRAMS) -> list[str]:
    return [name for name in programs if find_program(name) is None]


def install_command(packages: list[str]) -> str:
    return (
        "apt-get update && apt-get install -y --no-install-recommends " + " ".join(packages)
    )


def ensure_packages(progress: Progress = _quiet, packages: Sequence[str] = PACKAGES,
                    programs: Mapping[str, str] = PROGRAMS) -> None:
    """Install missing packages (the lab's by default) with apt-get (root only), or say
    exactly what is missing. ``programs``: program -> the package that brings it."""
    missing = missing_packages(packages)
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        progress(f"installing {', '.join(missing)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        ):
            result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                raise LabUnavailableError(
                    f"`{' '.join(cmd)}` failed (exit {result.returncode}): {' | '.join(tail)}"
                )
        missing = missing_packages(packages)
    absent = missing_programs(programs)
    if absent:
        needed = sorted({programs[p] for p in absent} | set(missing))
        raise LabUnavailableError(
            f"the lab needs {', '.join(absent)}, not found; install with: "
            f"{install_command(needed)}"
        )


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def ensure_qemu_user(progress: Progress = _quiet) -> None:
    """Create the ``kvm`` and ``libvirt-qemu`` groups and the ``libvirt-qemu`` user if missing."""
    commands: list[list[str]] = []
    for group in ("kvm", "libvirt-qemu"):
        if not _group_exists(group):
            commands.append(["groupadd", "-r", group])
    if not _user_exists("libvirt-qemu"):
        commands.append(["useradd", "-r", "-g", "kvm", "libvirt-qemu"])
    for cmd in commands:
        progress(" ".join(cmd))
        tool = find_program(cmd[0])
        if tool is None:
            raise LabUnavailableError(f"{cmd[0]} not found; run as root: {' '.join(cmd)}")
        result = subprocess.run([tool, *cmd[1:]], capture_output=True, text=True, check=False)
        # exit 9 = "already exists" (a race with another set-up): fine
        if result.returncode not in (0, 9):
            raise LabUnavailableError(
                f"`{' '.join(cmd)}` failed: {result.stderr.strip() or result.returncode}"
            )


def libvirt_version() -> str | None:
    """The installed C library's version (``pkg-config --modversion libvirt``), if known."""
    if shutil.which("pkg-config") is None:
        return None
    result = subprocess.run(
        ["pkg-config", "--modversion", "libvirt"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None


def check_libvirt_python() -> None:
    """Fail with the exact command to run when ``import libvirt`` does not work."""
    from numa_migrate.hypervisor.base import HypervisorError
    from numa_migrate.hypervisor.libvirt import check_installed

    try:
        check_installed()
    except HypervisorError as exc:
        version = libvirt_version() or "<version of `pkg-config --modversion libvirt`>"
        raise LabUnavailableError(
            f"libvirt-python does not work in {sys.executable} ({exc.detail}); run: "
            f"apt-get install -y libvirt-dev pkg-config && "
            f"{sys.executable} -m pip install libvirt-python=={version} "
            f"(or: bash scripts/lab-deps.sh)"
        ) from None


def ensure_all(progress: Progress = _quiet) -> None:
    """Everything the lab needs before a daemon can start, in the order a fix would go."""
    require_root()
    ensure_packages(progress)
    ensure_qemu_user(progress)
    check_libvirt_python()

"""Where the lab keeps its files: one state directory, one sub-directory per host.

::

    <lab dir>/                      default /var/lib/numa-migrate/lab ($NUMA_MIGRATE_LAB_DIR)
      state.json                    what up() did (huge pages before, mount points made, ...)
      inventory.toml                [hosts.lab-src] uri = "qemu+unix:///system?socket=..."
      images/counter-floppy.img     the counter guest's boot floppy
      hosts/<name>/
        etc/ run/ lib/ log/ cache/  bind-mounted over /etc/libvirt, /run/libvirt, ...
        hugepages/ hugepages-1G/    private hugetlbfs mounts, 2 MiB and 1 GiB pages (inside
                                    the namespace only; 1 GiB when the kernel has them)
        libvirtd.pid  start.log

Inside a daemon's mount namespace ``/run/libvirt`` is ``<host>/run``, so from outside the
socket is ``<host>/run/libvirt-sock`` and QEMU's pid files are ``<host>/run/qemu/<domain>.pid``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from numa_migrate.lab.errors import LabError

LAB_DIR_ENV = "NUMA_MIGRATE_LAB_DIR"
DEFAULT_LAB_DIR = Path("/var/lib/numa-migrate/lab")
HUGETLBFS_SOURCE = "numa-migrate-lab"  # device name of the private hugetlbfs mounts
SRC = "lab-src"
DST = "lab-dst"
HOST_NAMES: tuple[str, str] = (SRC, DST)

# System directory -> name of the private directory that is bind-mounted over it.
PRIVATE_DIRS: tuple[tuple[str, str], ...] = (
    ("/etc/libvirt", "etc"),
    ("/run/libvirt", "run"),
    ("/var/lib/libvirt", "lib"),
    ("/var/log/libvirt", "log"),
    ("/var/cache/libvirt", "cache"),
)

# Non-overlapping QEMU migration port ranges, one per host.
MIGRATION_PORTS: dict[str, tuple[int, int]] = {SRC: (49152, 49199), DST: (49200, 49247)}


def default_lab_dir() -> Path:
    """``$NUMA_MIGRATE_LAB_DIR`` or ``/var/lib/numa-migrate/lab``, as an absolute path."""
    raw = os.environ.get(LAB_DIR_ENV, "").strip()
    path = Path(raw) if raw else DEFAULT_LAB_DIR
    return path.absolute()


@dataclass(frozen=True)
class HostPaths:
    """The files of one lab host, as seen from outside its mount namespace."""

    name: str
    root: Path

    @property
    def private_dirs(self) -> tuple[tuple[Path, Path], ...]:
        """(private directory, system directory it is mounted over) pairs."""
        return tuple((self.root / sub, Path(system)) for system, sub in PRIVATE_DIRS)

    @property
    def etc_dir(self) -> Path:
        return self.root / "etc"

    @property
    def run_dir(self) -> Path:
        """What the daemon sees as /run/libvirt."""
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def hugepages_dir(self) -> Path:
        """The private hugetlbfs of 2 MiB pages."""
        return self.root / "hugepages"

    @property
    def hugepages_1g_dir(self) -> Path:
        """The private hugetlbfs of 1 GiB pages (mounted when the kernel has them)."""
        return self.root / "hugepages-1G"

    @property
    def socket(self) -> Path:
        return self.run_dir / "libvirt-sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "libvirtd.pid"

    @property
    def daemon_log(self) -> Path:
        return self.log_dir / "libvirtd.log"

    @property
    def start_log(self) -> Path:
        """stdout/stderr of the unshare shell that mounts the directories and starts libvirtd."""
        return self.root / "start.log"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    def qemu_pid_file(self, domain: str) -> Path:
        return self.run_dir / "qemu" / f"{domain}.pid"

    def qemu_log(self, domain: str) -> Path:
        return self.log_dir / "qemu" / f"{domain}.log"


@dataclass(frozen=True)
class LabPaths:
    """The lab's state directory and everything in it."""

    root: Path

    def __post_init__(self) -> None:
        if not self.root.is_absolute():
            raise LabError(f"lab directory {self.root} must be an absolute path")
        for system, _sub in PRIVATE_DIRS:
            if self.root == Path(system) or Path(system) in self.root.parents:
                raise LabError(
                    f"lab directory {self.root} is inside {system}, which the lab daemons "
                    f"replace with a private directory; choose another (${LAB_DIR_ENV})"
                )

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.toml"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def counter_image(self) -> Path:
        return self.images_dir / "counter-floppy.img"

    @property
    def idle_counter_image(self) -> Path:
        """The counter that sleeps between timer interrupts (the multi-node lab's)."""
        return self.images_dir / "counter-idle-floppy.img"

    def host(self, name: str) -> HostPaths:
        if name not in HOST_NAMES:
            raise LabError(f"unknown lab host {name!r}; the lab hosts are {', '.join(HOST_NAMES)}")
        return HostPaths(name, self.root / "hosts" / name)

    @property
    def hosts(self) -> tuple[HostPaths, ...]:
        return tuple(self.host(n) for n in HOST_NAMES)

"""The kernel's 2 MiB huge page pool (``/proc/sys/vm/nr_hugepages``), shared by both daemons.

Reserving pages never fails the lab: the kernel may give fewer pages than asked (fragmented
memory) or refuse the write (read-only /proc/sys in a container); :func:`set_pool` reports
what the pool holds afterwards and why it is short.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PAGE_KIB = 2048
_PROC = Path("/proc/sys/vm/nr_hugepages")
_SYSFS = Path(f"/sys/kernel/mm/hugepages/hugepages-{PAGE_KIB}kB/nr_hugepages")


def default_page_kib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("Hugepagesize:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def pool_file() -> Path | None:
    """The file that sets the number of 2 MiB pages: /proc/sys/vm/nr_hugepages when 2 MiB is
    the default huge page size, else the sysfs file of the 2 MiB pool; None when there is none."""
    if default_page_kib() == PAGE_KIB and _PROC.exists():
        return _PROC
    if _SYSFS.exists():
        return _SYSFS
    return None


def read_pool() -> int | None:
    """The number of 2 MiB pages in the pool, or None when the kernel has no 2 MiB pool."""
    path = pool_file()
    if path is None:
        return None
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class PoolChange:
    """The result of setting the pool: what it holds now and, when short, why."""

    wanted: int
    now: int
    error: str | None

    @property
    def complete(self) -> bool:
        return self.error is None and self.now == self.wanted


def set_pool(pages: int) -> PoolChange:
    """Ask the kernel for a pool of ``pages`` 2 MiB pages; never raises."""
    path = pool_file()
    if path is None:
        return PoolChange(pages, 0, f"this kernel has no {PAGE_KIB} KiB huge page pool")
    error: str | None = None
    try:
        path.write_text(f"{pages}\n")
    except OSError as exc:
        error = f"cannot write {path}: {exc.strerror or exc}"
    now = read_pool()
    if now is None:
        return PoolChange(pages, 0, error or f"cannot read {path}")
    if error is None and now < pages:
        error = f"the kernel gave {now} pages, not {pages} (not enough free contiguous memory)"
    elif error is None and now > pages:
        error = f"the pool kept {now} pages, not {pages} (pages still in use)"
    return PoolChange(pages, now, error)

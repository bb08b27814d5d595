"""The lab as a whole: ``up`` (idempotent), ``down`` (removes everything), ``status``.

What ``up`` changed on the machine is recorded in ``<lab dir>/state.json`` (the huge pages
it added to the pool, the system mount-point directories it had to create), so that ``down``
-- even from another process -- can undo exactly that. A lab's processes are found by what
they see, not by what was recorded: every libvirtd or QEMU whose /run/libvirt is the lab
host's private run directory belongs to that host (see :func:`daemons.belongs_to`), which
also finds the guests of a daemon that crashed. Several labs (different lab directories)
can run at the same time; up/down of labs in one parent directory take turns.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from numa_migrate.adapters.xmlsafe import parse_xml
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import ParseError
from numa_migrate.hypervisor.base import HypervisorError
from numa_migrate.hypervisor.libvirt import connection
from numa_migrate.lab import daemons, hugepages, packages, processes
from numa_migrate.lab.affinity import DomainAffinity, domain_affinity
from numa_migrate.lab.errors import LabError
from numa_migrate.lab.guest import write_floppy_image
from numa_migrate.lab.kvm import Accelerator, choose_accelerator
from numa_migrate.lab.layout import (
    HOST_NAMES,
    HUGETLBFS_SOURCE,
    PRIVATE_DIRS,
    HostPaths,
    LabPaths,
    default_lab_dir,
)

Progress = Callable[[str], None]
STATE_VERSION = 1


def _silent(_msg: str) -> None:
    return None


# ---------------------------------------------------------------------------------------------
# status values


@dataclass(frozen=True)
class HugePageStatus:
    """The lab's share of the kernel's 2 MiB huge page pool (one pool for both daemons).

    ``reserved`` is what the lab added to the pool (and ``down`` takes back), ``requested``
    what was asked for, ``note`` why it got less (or None).
    """

    requested: int
    reserved: int
    pool_before: int | None  # the pool before the lab's first reservation
    pool_now: int | None
    note: str | None
    page_kib: int = hugepages.PAGE_KIB


@dataclass(frozen=True)
class HostStatus:
    """One lab host (libvirtd) as it answers right now."""

    name: str
    running: bool
    pid: int | None
    uri: str
    run_dir: Path
    host_uuid: str | None = None
    hostname: str | None = None
    domains: int | None = None
    running_domains: int | None = None
    virt_type: str | None = None  # "kvm" when the daemon offers KVM guests, else "qemu" (TCG)
    hugepages_total: int | None = None  # 2 MiB pages the daemon sees (the shared pool)
    hugepages_free: int | None = None
    error: str | None = None

    @property
    def accelerator(self) -> str | None:
        if self.virt_type is None:
            return None
        return "KVM" if self.virt_type == "kvm" else "TCG"


@dataclass(frozen=True)
class LabStatus:
    """Both hosts, the guests' accelerator and the huge page reservation."""

    lab_dir: Path
    inventory: Path
    hosts: tuple[HostStatus, ...]
    domain_type: str  # what guests should use: "kvm" or "qemu" (TCG)
    domain_type_reason: str
    hugepages: HugePageStatus

    @property
    def up(self) -> bool:
        return all(h.running for h in self.hosts)

    @property
    def uris(self) -> dict[str, str]:
        return {h.name: h.uri for h in self.hosts}

    def host(self, name: str) -> HostStatus:
        for status in self.hosts:
            if status.name == name:
                return status
        raise LabError(f"unknown lab host {name!r}; the lab hosts are {', '.join(HOST_NAMES)}")

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["up"] = self.up
        return json.loads(json.dumps(doc, default=str))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DownReport:
    """What ``down`` did."""

    lab_dir: Path
    stopped: tuple[int, ...]
    hugepages_restored_to: int | None
    removed: tuple[Path, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# persistent state


@dataclass
class _State:
    """Mutable record in state.json (only inside this module)."""

    hugepages_before: int | None = None  # the pool before the lab's first reservation
    hugepages_added: int = 0  # pages the lab added to the pool (given back by down)
    hugepages_requested: int = 0
    hugepages_note: str | None = None
    made_dirs: list[str] = field(default_factory=list)
    domain_type: str | None = None
    domain_type_reason: str = ""

    @classmethod
    def load(cls, path: Path) -> _State:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read the lab state {path}: {exc}") from None
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            raise LabError(f"{path} is not a lab state file of version {STATE_VERSION}")
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"version": STATE_VERSION, **asdict(self)}, indent=2) + "\n")
        tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# helpers


def _mkdirs(path: Path) -> list[str]:
    """``mkdir -p``; the directories it created, outermost first."""
    made: list[Path] = []
    current = path
    while not current.exists():
        made.append(current)
        current = current.parent
    for directory in reversed(made):
        directory.mkdir(exist_ok=True)
    return [str(d) for d in reversed(made)]


def _hugetlbfs_supported() -> bool:
    try:
        return any(
            line.split()[-1] == "hugetlbfs"
            for line in Path("/proc/filesystems").read_text().splitlines()
            if line.strip()
        )
    except OSError:
        return False


def lab_mounts(lab_dir: Path) -> list[str]:
    """Mount points in *this* mount namespace that belong to the lab (normally none: the
    lab's mounts live only in the daemons' namespaces)."""
    found: list[str] = []
    root = str(lab_dir)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) < 5:
            continue
        fs_root, mount_point = processes.unescape(parts[3]), processes.unescape(parts[4])
        source = parts[parts.index("-") + 2] if "-" in parts else ""
        if (
            mount_point == root
            or mount_point.startswith(root + "/")
            or fs_root.startswith(root + "/")
            or source == HUGETLBFS_SOURCE
        ):
            found.append(mount_point)
    return found


def _hand_over(directory: str, own: Path) -> Path | None:
    """Record ``directory`` in the state of another running lab that mounts on it, so that
    the last lab down removes it; that lab's directory (None when there is none)."""
    for pid in processes.all_pids():
        args = processes.cmdline(pid)
        if not args or Path(args[0]).name != "libvirtd" or "--pid-file" not in args:
            continue
        index = args.index("--pid-file") + 1
        if index >= len(args) or processes.mount_source(pid, directory) is None:
            continue
        other = Path(args[index]).parent.parent.parent  # <lab>/hosts/<name>/libvirtd.pid
        state_file = LabPaths(other).state_file if other != own else None
        if state_file is None or not state_file.exists():
            continue
        try:
            state = _State.load(state_file)
        except LabError:
            continue
        if directory not in state.made_dirs:
            state.made_dirs.insert(0, directory)
            state.save(state_file)
        return other
    return None


@contextlib.contextmanager
def _locked(lab_dir: Path) -> Iterator[list[str]]:
    """Serialise up/down of one lab directory (flock on its parent directory).

    Yields the parent directories that had to be created for it.
    """
    made = _mkdirs(lab_dir.parent)
    fd = os.open(lab_dir.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield made
    finally:
        os.close(fd)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def lab_cpu_sets(cpus: Sequence[int]) -> dict[str, tuple[str, str]]:
    """Nova-style (cpu_dedicated_set, cpu_shared_set) of each lab host.

    Both lab hosts are the same machine; what tells them apart is their configuration, as
    on two real computes: lab-src pins on the upper half of the CPUs and floats on the
    lower half, lab-dst the other way round. So every migration must re-choose the pins
    (on two CPUs: a guest pinned to CPU 1 on lab-src comes out pinned to CPU 0 on lab-dst).
    One CPU cannot be split: no sets (every CPU serves both kinds of guest).
    """
    ordered = sorted(set(cpus))
    if len(ordered) < 2:
        return {}
    half = len(ordered) // 2
    low, high = CpuSet.of(ordered[:half]).format(), CpuSet.of(ordered[half:]).format()
    return {"lab-src": (high, low), "lab-dst": (low, high)}


def inventory_text(uris: dict[str, str], cpus: Sequence[int] = (), *,
                   sets: dict[str, tuple[str, str]] | None = None,
                   machine: str = "this machine", command: str = "numa-migrate lab up") -> str:
    """The lab's inventory: each host's URI and its CPU sets (``sets``, or
    :func:`lab_cpu_sets` of ``cpus``)."""
    lines = [f"# numa-migrate lab inventory (written by `{command}`)"]
    sets = lab_cpu_sets(cpus) if sets is None else sets
    if sets:
        lines.append(f"# Both hosts are {machine}; their Nova-style CPU sets tell them apart.")
    for name, uri in uris.items():
        lines += ["", f"[hosts.{name}]", f"uri = {_toml_string(uri)}"]
        if name in sets:
            dedicated, shared = sets[name]
            lines += [f"cpu_dedicated_set = {_toml_string(dedicated)}",
                      f"cpu_shared_set = {_toml_string(shared)}"]
    return "\n".join(lines) + "\n"


def online_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on (the lab's guests run on them)."""
    return tuple(sorted(os.sched_getaffinity(0)))


def _probe(host: HostPaths) -> HostStatus:
    """Ask one daemon about itself (running or not, never raises)."""
    pid = daemons.running_pid(host)
    base = HostStatus(host.name, running=False, pid=pid, uri=host.uri, run_dir=host.run_dir)
    if pid is None:
        return base
    if not daemons.belongs_to(pid, host):
        # someone removed a mount point (e.g. /run/libvirt) the daemon's private directory
        # was mounted on: it now writes to the machine's own directories
        return HostStatus(
            host.name, False, pid, host.uri, host.run_dir,
            error=f"libvirtd {pid} lost its private /run/libvirt mount",
        )
    try:
        with connection(host.uri, host.name) as conn:
            caps = parse_xml(conn.capabilities(), source=f"{host.name} capabilities")
            hostname = conn.hostname()
            listed = conn.domains()
            domains = len(listed)
            running = sum(1 for d in listed if d.active)
            cells = max(1, len(caps.findall("./host/topology/cells/cell")))
            free: int | None
            try:
                free = sum(conn.free_pages(hugepages.PAGE_KIB, cell) or 0
                           for cell in range(cells))
            except HypervisorError:
                free = None
    except (LabError, HypervisorError, ParseError) as exc:
        return HostStatus(
            host.name, False, pid, host.uri, host.run_dir, error=str(exc).splitlines()[0]
        )
    kvm = caps.find("./guest/arch[@name='x86_64']/domain[@type='kvm']") is not None
    total_pages = [
        int(p.text or 0)
        for p in caps.iterfind("./host/topology/cells/cell/pages")
        if p.get("size") == str(hugepages.PAGE_KIB)
    ]
    return HostStatus(
        name=host.name,
        running=True,
        pid=pid,
        uri=host.uri,
        run_dir=host.run_dir,
        host_uuid=caps.findtext("./host/uuid"),
        hostname=hostname,
        domains=domains,
        running_domains=running,
        virt_type="kvm" if kvm else "qemu",
        hugepages_total=sum(total_pages) if total_pages else None,
        hugepages_free=free,
    )


# ---------------------------------------------------------------------------------------------
# the lab


@dataclass(frozen=True)
class Lab:
    """The two-daemon lab in one state directory (default: :func:`default_lab_dir`)."""

    paths: LabPaths

    @classmethod
    def at(cls, lab_dir: Path | str | None = None) -> Lab:
        return cls(LabPaths(Path(lab_dir).absolute() if lab_dir else default_lab_dir()))

    # -- addresses ----------------------------------------------------------------------------

    @property
    def lab_dir(self) -> Path:
        return self.paths.root

    @property
    def inventory_path(self) -> Path:
        return self.paths.inventory

    @property
    def uris(self) -> dict[str, str]:
        """Host name -> libvirt URI, for both hosts (whether running or not)."""
        return {h.name: h.uri for h in self.paths.hosts}

    def uri(self, host: str) -> str:
        return self.paths.host(host).uri

    def host(self, name: str) -> HostPaths:
        return self.paths.host(name)

    @property
    def counter_image(self) -> Path:
        return self.paths.counter_image

    def domain_type(self) -> str:
        """"kvm" or "qemu" (TCG): what ``up`` chose for guests (probed again if not up)."""
        state = _State.load(self.paths.state_file)
        return state.domain_type or choose_accelerator().domain_type

    def affinity(self, host: str, domain: str) -> DomainAffinity:
        """Real /proc affinity of ``domain``'s QEMU threads on lab host ``host``."""
        return domain_affinity(self.paths.host(host).run_dir, domain)

    # -- up -----------------------------------------------------------------------------------

    def up(self, hugepages: int | None = None, progress: Progress = _silent) -> LabStatus:
        """Bring both daemons up (reusing running ones) and write the inventory.

        ``hugepages``: 2 MiB pages to reserve for the lab's guests (None keeps the current
        reservation, 0 gives it back). A short or refused reservation does not fail the lab:
        the status says what was reserved and why not more.
        """
        if hugepages is not None and hugepages < 0:
            raise LabError(f"hugepages must be 0 or more, not {hugepages}")
        packages.ensure_all(progress)
        with _locked(self.lab_dir) as made_parents:
            state = _State.load(self.paths.state_file)
            state.made_dirs += [d for d in made_parents if d not in state.made_dirs]
            self.lab_dir.mkdir(parents=True, exist_ok=True)
            state.save(self.paths.state_file)
            for system, _sub in PRIVATE_DIRS:
                state.made_dirs += _mkdirs(Path(system))
            state.save(self.paths.state_file)
            accel = choose_accelerator()
            if state.domain_type is None or state.domain_type != accel.domain_type:
                progress(f"guests use {accel.label}: {accel.reason}")
            state.domain_type, state.domain_type_reason = accel.domain_type, accel.reason
            write_floppy_image(self.paths.counter_image)
            write_floppy_image(self.paths.idle_counter_image, idle=True)
            hugetlbfs = _hugetlbfs_supported()
            for host in self.paths.hosts:
                self._host_up(host, state, hugetlbfs=hugetlbfs, progress=progress)
                state.save(self.paths.state_file)
            self._check_distinct_uuids()
            if hugepages is not None:
                self._reserve(state, hugepages, progress)
            state.save(self.paths.state_file)
            self.paths.inventory.write_text(inventory_text(self.uris, online_cpus()))
        return self.status()

    def _host_up(
        self, host: HostPaths, state: _State, *, hugetlbfs: bool, progress: Progress
    ) -> None:
        pid = daemons.running_pid(host)
        if pid is not None:
            probe = _probe(host)
            if probe.running:
                progress(f"{host.name}: libvirtd {pid} already running, reused ({host.uri})")
                return
            progress(f"{host.name}: libvirtd {pid} does not answer ({probe.error}); restarting")
        elif host.pid_file.exists():
            progress(f"{host.name}: libvirtd is gone; removing its stale pid file")
        # only daemons are stopped: guests of a crashed daemon keep running and the new
        # daemon reconnects to them, as libvirtd does after a crash on a real host
        strays = daemons.stray_daemons(host)
        if strays and processes.terminate(strays):
            raise LabError(f"{host.name}: cannot stop the old libvirtd {strays}")
        host.pid_file.unlink(missing_ok=True)
        daemons.write_config(host, hugetlbfs=hugetlbfs)
        others = [h for h in self.paths.hosts if h != host]
        if daemons.seed_capabilities_cache(host, others):
            progress(f"{host.name}: QEMU capabilities cache copied from {others[0].name}")
        started = daemons.start(host, hugetlbfs=hugetlbfs)
        progress(f"{host.name}: libvirtd {started.pid} started ({host.uri})")
        took = daemons.probe_qemu(host)
        if took > 1:
            progress(f"{host.name}: QEMU capabilities probed in {took:.1f} s")

    def _check_distinct_uuids(self) -> None:
        uuids = [daemons.configured_host_uuid(h) for h in self.paths.hosts]
        if len(set(uuids)) != len(uuids):
            raise LabError(
                f"the lab hosts share the host UUID {uuids[0]} (migration needs distinct ones); "
                "run `numa-migrate lab down` and `up` again"
            )

    def _reserve(self, state: _State, pages: int, progress: Progress) -> None:
        """Make the lab's share of the pool ``pages`` (grow or shrink it by the difference).

        The lab adds to whatever the pool holds and ``down`` takes back only what it added,
        so that two labs (or anyone else) changing the pool do not undo each other.
        """
        state.hugepages_requested = pages
        current = hugepages.read_pool()
        if current is None:
            state.hugepages_note = f"this kernel has no {hugepages.PAGE_KIB} KiB huge page pool"
            progress(f"huge pages: {state.hugepages_note}")
            return
        base = max(0, current - state.hugepages_added)  # the pool without the lab's share
        if state.hugepages_before is None:
            state.hugepages_before = base
        if base + pages == current:
            return  # already so
        change = hugepages.set_pool(base + pages)
        state.hugepages_added = max(0, change.now - base)
        state.hugepages_note = change.error
        got = state.hugepages_added
        if change.error:
            progress(f"huge pages: reserved {got} of {pages} ({change.error})")
        else:
            progress(f"huge pages: reserved {got} x {hugepages.PAGE_KIB} KiB (pool {change.now})")

    # -- status -------------------------------------------------------------------------------

    def status(self) -> LabStatus:
        """What runs now (asks both daemons; works without root)."""
        try:
            state = _State.load(self.paths.state_file)
        except LabError:
            state = _State()
        hosts = tuple(_probe(h) for h in self.paths.hosts)
        if state.domain_type is not None:
            accel = Accelerator(state.domain_type, state.domain_type_reason)
        else:
            accel = choose_accelerator()
        pool = hugepages.read_pool()
        pages = HugePageStatus(
            requested=state.hugepages_requested,
            reserved=state.hugepages_added,
            pool_before=state.hugepages_before,
            pool_now=pool,
            note=state.hugepages_note,
        )
        return LabStatus(
            self.lab_dir, self.paths.inventory, hosts, accel.domain_type, accel.reason, pages
        )

    # -- down ---------------------------------------------------------------------------------

    def down(self, progress: Progress = _silent) -> DownReport:
        """Stop both daemons and their guests, give the huge pages back, remove the lab dir
        and every directory ``up`` created. Does nothing harmful when the lab is not up."""
        packages.require_root()
        notes: list[str] = []
        stopped: list[int] = []
        removed: list[Path] = []
        restored: int | None = None
        if not self.lab_dir.exists():
            # nothing recorded; still stop daemons that were started with this lab dir
            stopped = self._stop_hosts(notes)
            if notes:
                raise LabError("; ".join(notes))
            return DownReport(self.lab_dir, tuple(stopped), None, (), ())
        with _locked(self.lab_dir):
            try:
                state = _State.load(self.paths.state_file)
            except LabError as exc:
                notes.append(str(exc))
                state = _State()
            stopped = self._stop_hosts(notes)
            progress(f"stopped {', '.join(HOST_NAMES)} ({len(stopped)} processes)")
            if notes:
                raise LabError("; ".join(notes) + f" (state kept in {self.lab_dir})")
            for mount_point in lab_mounts(self.lab_dir):
                subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
                notes.append(f"unmounted a stray lab mount {mount_point}")
            current = hugepages.read_pool()
            if state.hugepages_added and current is not None:
                change = hugepages.set_pool(max(0, current - state.hugepages_added))
                restored = change.now
                if change.error:
                    notes.append(f"huge pages: {change.error}")
                progress(f"huge pages: gave back {state.hugepages_added}, pool now {change.now}")
            shutil.rmtree(self.lab_dir)
            removed.append(self.lab_dir)
            for directory in reversed(state.made_dirs):
                # never remove a directory another lab's daemons have a mount on: removing
                # a mount point detaches its mounts in every namespace
                if processes.mounted_anywhere(directory):
                    heir = _hand_over(directory, self.lab_dir)
                    notes.append(f"kept {directory}: lab {heir or '?'} still mounts on it")
                    continue
                with contextlib.suppress(OSError):
                    os.rmdir(directory)  # only when empty
                    removed.append(Path(directory))
            progress(f"removed {self.lab_dir}")
        return DownReport(self.lab_dir, tuple(stopped), restored, tuple(removed), tuple(notes))

    def _stop_hosts(self, notes: list[str]) -> list[int]:
        """Stop both daemons and their QEMUs at once; the pids stopped."""
        targets: set[int] = set()
        for host in self.paths.hosts:
            targets |= daemons.lab_processes(host)
        survivors = processes.terminate(sorted(targets)) if targets else []
        if survivors:
            notes.append(f"processes {survivors} would not die")
        else:
            for host in self.paths.hosts:
                host.pid_file.unlink(missing_ok=True)
        return sorted(targets - set(survivors))


def default_lab() -> Lab:
    """The lab in ``$NUMA_MIGRATE_LAB_DIR`` or /var/lib/numa-migrate/lab."""
    return Lab.at()

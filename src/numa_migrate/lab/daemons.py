"""One libvirtd per lab host, each in its own mount (and UTS) namespace.

The namespace is made with ``unshare --mount --uts --propagation private``; inside it a
small shell bind-mounts the host's private directories over /etc/libvirt, /run/libvirt,
/var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt, mounts a private hugetlbfs, sets
the host name (lab-src / lab-dst) and execs ``libvirtd --daemon --pid-file ...``. The mounts
exist only in that namespace: they never show in the machine's /proc/mounts, and they go
away with the last process of the namespace (the daemon and its QEMU guests).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from numa_migrate.hypervisor.base import HypervisorError
from numa_migrate.hypervisor.libvirt import connection
from numa_migrate.lab import processes
from numa_migrate.lab.errors import LabError
from numa_migrate.lab.layout import HUGETLBFS_SOURCE, MIGRATION_PORTS, HostPaths
from numa_migrate.lab.packages import SBIN_PATH, find_program

START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class DaemonConfig:
    """What makes one lab daemon different from the other."""

    host_uuid: str
    migration_ports: tuple[int, int]
    hugetlbfs: bool
    gigantic: bool = False
    """A second private hugetlbfs for 1 GiB pages (when the kernel has them)."""


GIGANTIC_POOL = Path("/sys/kernel/mm/hugepages/hugepages-1048576kB")


def gigantic_pages() -> bool:
    """The kernel has a 1 GiB huge page pool (the CPU has pdpe1gb)."""
    return GIGANTIC_POOL.is_dir()


def libvirtd_conf(config: DaemonConfig) -> str:
    return "\n".join(
        [
            "# numa-migrate lab daemon (generated; the lab's `down` removes it)",
            f'host_uuid = "{config.host_uuid}"',
            'unix_sock_dir = "/run/libvirt"',
            'unix_sock_group = "root"',
            'unix_sock_ro_perms = "0777"',
            'unix_sock_rw_perms = "0777"',
            'auth_unix_ro = "none"',
            'auth_unix_rw = "none"',
            # no --listen is given, so there is no TCP/TLS listener; say so explicitly too
            "listen_tcp = 0",
            "listen_tls = 0",
            "log_level = 3",
            'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"',
            "",
        ]
    )


def qemu_conf(config: DaemonConfig, host: HostPaths) -> str:
    low, high = config.migration_ports
    lines = [
        "# numa-migrate lab daemon (generated; the lab's `down` removes it)",
        'user = "root"',
        'group = "root"',
        'security_driver = "none"',
        "cgroup_controllers = [ ]",
        "dynamic_ownership = 0",
        # no per-guest /dev namespace: QEMU stays in the daemon's mount namespace, where
        # `down` finds it (QEMU daemonises away from libvirtd)
        "namespaces = [ ]",
        'stdio_handler = "file"',
        f"migration_port_min = {low}",
        f"migration_port_max = {high}",
    ]
    if config.hugetlbfs and config.gigantic:
        lines.append(f'hugetlbfs_mount = [ "{host.hugepages_dir}", "{host.hugepages_1g_dir}" ]')
    elif config.hugetlbfs:
        lines.append(f'hugetlbfs_mount = "{host.hugepages_dir}"')
    return "\n".join([*lines, ""])


_UUID_RE = re.compile(r'^\s*host_uuid\s*=\s*"([0-9a-fA-F-]{36})"', re.MULTILINE)


def configured_host_uuid(host: HostPaths) -> str | None:
    try:
        text = (host.etc_dir / "libvirtd.conf").read_text()
    except OSError:
        return None
    match = _UUID_RE.search(text)
    return match.group(1).lower() if match else None


def write_config(host: HostPaths, *, hugetlbfs: bool) -> DaemonConfig:
    """Create the host's private directories and its libvirtd.conf / qemu.conf.

    The host UUID is random, but kept from an earlier ``up`` (the other host's must differ:
    libvirt refuses to migrate between hosts with the same UUID).
    """
    for private, _system in host.private_dirs:
        private.mkdir(parents=True, exist_ok=True)
    host.hugepages_dir.mkdir(parents=True, exist_ok=True)
    host.hugepages_1g_dir.mkdir(parents=True, exist_ok=True)
    config = DaemonConfig(
        host_uuid=configured_host_uuid(host) or str(uuid.uuid4()),
        migration_ports=MIGRATION_PORTS[host.name],
        hugetlbfs=hugetlbfs,
        gigantic=hugetlbfs and gigantic_pages(),
    )
    (host.etc_dir / "libvirtd.conf").write_text(libvirtd_conf(config))
    (host.etc_dir / "qemu.conf").write_text(qemu_conf(config, host))
    return config


def running_pid(host: HostPaths) -> int | None:
    """The pid of this host's libvirtd if it runs (pid file, process alive, really ours)."""
    try:
        pid = int(host.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if is_lab_daemon(pid, host):
        return pid
    return None


def is_lab_daemon(pid: int, host: HostPaths) -> bool:
    """True when ``pid`` is a live libvirtd started with this host's pid file."""
    if not processes.is_alive(pid):
        return False
    args = processes.cmdline(pid)
    return (
        bool(args)
        and Path(args[0]).name == "libvirtd"
        and str(host.pid_file) in args
    )


def stray_daemons(host: HostPaths) -> list[int]:
    """Every live libvirtd started with this host's pid file (whatever the pid file says)."""
    return [pid for pid in processes.all_pids() if is_lab_daemon(pid, host)]


def _start_script(host: HostPaths, libvirtd: str, *, hugetlbfs: bool) -> str:
    q = shlex.quote
    lines = ["set -eu"]
    for private, system in host.private_dirs:
        lines.append(f"mount --bind {q(str(private))} {q(str(system))}")
    if hugetlbfs:
        target = q(str(host.hugepages_dir))
        lines.append(f"mount -t hugetlbfs -o pagesize=2M {HUGETLBFS_SOURCE} {target}")
        if gigantic_pages():
            target = q(str(host.hugepages_1g_dir))
            lines.append(f"mount -t hugetlbfs -o pagesize=1G {HUGETLBFS_SOURCE} {target}")
    lines.append(f"hostname {q(host.name)}")
    lines.append(f"exec {q(libvirtd)} --daemon --pid-file {q(str(host.pid_file))}")
    return "\n".join(lines)


@dataclass(frozen=True)
class StartedDaemon:
    pid: int
    mount_ns: int


def start(host: HostPaths, *, hugetlbfs: bool) -> StartedDaemon:
    """Start this host's libvirtd in a new namespace and wait until its socket answers."""
    libvirtd = find_program("libvirtd")
    unshare = find_program("unshare")
    if libvirtd is None or unshare is None:
        raise LabError("libvirtd or unshare not found (run `numa-migrate lab up` as root)")
    host.pid_file.unlink(missing_ok=True)
    host.socket.unlink(missing_ok=True)
    script = _start_script(host, libvirtd, hugetlbfs=hugetlbfs)
    env = {"PATH": SBIN_PATH, "LC_ALL": "C", "HOME": "/root"}
    with host.start_log.open("ab") as log:
        try:
            result = subprocess.run(
                [unshare, "--mount", "--uts", "--propagation", "private", "--", "sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                timeout=START_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            what = f"libvirtd did not daemonise in {START_TIMEOUT_S:.0f} s"
            raise _start_error(host, what) from None
    if result.returncode != 0:
        raise _start_error(host, f"the start shell exited with {result.returncode}")
    pid = _wait_for(host)
    ns = processes.mount_ns(pid)
    if ns is None or ns == processes.mount_ns("self"):
        processes.terminate([pid])
        raise _start_error(host, "libvirtd is not in a private mount namespace")
    return StartedDaemon(pid, ns)


def _wait_for(host: HostPaths) -> int:
    """Wait for the pid file and for the socket to answer a libvirt call; the daemon's pid."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last_error = "no pid file"
    while time.monotonic() < deadline:
        pid = running_pid(host)
        if pid is None:
            if host.pid_file.exists():
                last_error = "libvirtd exited"
                try:
                    if not processes.is_alive(int(host.pid_file.read_text().strip())):
                        break
                except (OSError, ValueError):
                    pass
        elif host.socket.exists():
            try:
                with connection(host.uri, host.name) as conn:
                    conn.versions()
                return pid
            except HypervisorError as exc:
                last_error = str(exc)
        else:
            last_error = f"no socket {host.socket}"
        time.sleep(0.1)
    raise _start_error(host, f"libvirtd did not come up ({last_error})")


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _start_error(host: HostPaths, what: str) -> LabError:
    parts = [f"{host.name}: {what}"]
    for path in (host.start_log, host.daemon_log):
        tail = _tail(path, 5)
        if tail:
            parts.append(f"{path}: ... {tail}")
    if len(parts) == 1:
        parts.append(f"see {host.start_log} and {host.daemon_log}")
    parts.append("`numa-migrate lab down` cleans up")
    return LabError("; ".join(parts))


def probe_qemu(host: HostPaths) -> float:
    """Make the daemon probe its QEMU binaries now (seconds it took).

    A fresh daemon runs QEMU to learn its capabilities on the first request that needs them
    (about 8 s here); ``up`` pays that once, not the first guest start.
    """
    started = time.monotonic()
    with connection(host.uri, host.name) as conn:
        conn.capabilities()
    return time.monotonic() - started


def _capabilities_cache(host: HostPaths) -> Path:
    return host.root / "cache" / "qemu" / "capabilities"


def seed_capabilities_cache(host: HostPaths, others: list[HostPaths]) -> bool:
    """Copy another lab host's QEMU capabilities cache into this host's empty one.

    Both daemons run the same QEMU and libvirt on the same kernel, so the cached probe of
    one is valid for the other (libvirt checks the binaries' times and versions and
    probes again when they differ). True when a cache was copied.
    """
    target = _capabilities_cache(host)
    if target.exists() and any(target.iterdir()):
        return False
    for other in others:
        source = _capabilities_cache(other)
        files = sorted(source.glob("*.xml")) if source.is_dir() else []
        if files:
            target.mkdir(parents=True, exist_ok=True)
            for file in files:
                shutil.copy2(file, target / file.name)
            return True
    return False


def belongs_to(pid: int, host: HostPaths) -> bool:
    """True when ``pid`` lives in a mount namespace of this lab host: its /run/libvirt is
    the host's private run directory (a mount only the host's namespaces have)."""
    source = processes.mount_source(pid, "/run/libvirt")
    # the source is relative to its file system's root: /var/lib/.../run on /, or
    # /lab/hosts/x/run for a lab directory /tmp/lab on a tmpfs mounted at /tmp
    return bool(source) and source != "/" and str(host.run_dir).endswith(str(source))


def lab_processes(host: HostPaths) -> set[int]:
    """This host's libvirtd and the QEMUs of its guests: every live libvirtd or QEMU process
    whose mount namespace is one of this host's (see :func:`belongs_to`).

    QEMU daemonises away from libvirtd, so killing the daemon alone would leave the guests
    running; guests of a daemon that crashed are found the same way. Only libvirtd and
    QEMU processes are taken.
    """
    targets = set(stray_daemons(host))
    for pid in processes.all_pids():
        name = processes.exe_name(pid)
        if (
            (name == "libvirtd" or name.startswith("qemu-system-"))
            and processes.is_alive(pid)
            and belongs_to(pid, host)
        ):
            targets.add(pid)
    return targets


def stop(host: HostPaths) -> list[int]:
    """Kill this host's libvirtd and its guests' QEMUs; the pids that would not die."""
    targets = lab_processes(host)
    survivors = processes.terminate(sorted(targets)) if targets else []
    if not survivors:
        host.pid_file.unlink(missing_ok=True)
    return survivors

"""``numa-migrate lab openstack up|status|down``: a real OpenStack (Debian 12's Zed packages) on
the two-daemon libvirt lab, with one nova-compute per lab host.

There is no systemd here: every daemon is started directly, tracked by pid (``state.json``)
and stopped by pid. ``up`` is idempotent: it reuses what runs, and does each one-time step
(database creation and syncs, Keystone's bootstrap and catalog, the image, cell mapping) once.
``down`` stops everything it started, drops every file it wrote (the whole ``openstack``
directory, the computes' instance directories), the /etc/hosts lines it added and the domains
Nova defined on the lab hosts; the libvirt lab itself stays up.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets as secrets_mod
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numa_migrate.lab import processes
from numa_migrate.lab.errors import LabError, LabUnavailableError
from numa_migrate.lab.guest import boot_sector
from numa_migrate.lab.layout import HOST_NAMES
from numa_migrate.lab.openstack import configs, rest
from numa_migrate.lab.openstack.configs import ComputeSettings, Secrets
from numa_migrate.lab.openstack.layout import PORTS, SERVICES, StackPaths, compute_service
from numa_migrate.lab.packages import SBIN_PATH, find_program, installed, require_root
from numa_migrate.lab.state import Lab, lab_cpu_sets, online_cpus

Progress = Callable[[str], None]

PACKAGES: tuple[str, ...] = (
    "mariadb-server", "rabbitmq-server", "keystone", "glance-api", "glance-common",
    "placement-api", "nova-api", "nova-conductor", "nova-scheduler", "nova-compute",
    "nova-compute-kvm", "neutron-server", "python3-openstackclient", "python3-osc-placement",
    "qemu-utils",
)
DATABASES: tuple[tuple[str, str], ...] = (
    ("keystone", "keystone"), ("glance", "glance"), ("placement", "placement"),
    ("nova_api", "nova"), ("nova", "nova"), ("nova_cell0", "nova"), ("neutron", "neutron"),
)
SERVICE_USERS = ("glance", "nova", "placement", "neutron")
CATALOG: tuple[tuple[str, str, str], ...] = (
    ("image", "glance", f"http://127.0.0.1:{PORTS['glance']}"),
    ("placement", "placement", f"http://127.0.0.1:{PORTS['placement']}"),
    ("compute", "nova", f"http://127.0.0.1:{PORTS['nova-api']}/v2.1"),
    ("network", "neutron", f"http://127.0.0.1:{PORTS['neutron']}"),
)
IMAGE_NAME = "numa-migrate-counter"
IMAGE_SIZE = 1 << 20
DEFAULT_HUGEPAGES = 96
HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARK = "# numa-migrate lab openstack"
START_TIMEOUT_S = 180.0
# services that stop slowly or not at all on SIGTERM (neutron-server: ~15 s, then SIGKILL)
STOP_TIMEOUT_S = 20.0


def _quiet(_msg: str) -> None:
    return None


@dataclass
class _State:
    pids: dict[str, int] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    hosts_lines: list[str] = field(default_factory=list)
    epmd_pids: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> _State:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        return cls(pids={str(k): int(v) for k, v in raw.get("pids", {}).items()},
                   done=[str(d) for d in raw.get("done", [])],
                   hosts_lines=[str(x) for x in raw.get("hosts_lines", [])],
                   epmd_pids=[int(p) for p in raw.get("epmd_pids", [])])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"pids": self.pids, "done": self.done,
                                   "hosts_lines": self.hosts_lines,
                                   "epmd_pids": self.epmd_pids}, indent=2))
        tmp.replace(path)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    answers: bool | None  # None: no port to ask

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "running": self.running,
                "answers": self.answers}


@dataclass(frozen=True)
class StackStatus:
    root: Path
    services: tuple[ServiceStatus, ...]
    computes: dict[str, str]  # host -> Nova's state ("up"/"down"), when the API answers
    clouds_yaml: Path | None
    cloud: str = configs.CLOUD_NAME

    @property
    def up(self) -> bool:
        return (all(s.running and s.answers is not False for s in self.services)
                and all(self.computes.get(h) == "up" for h in HOST_NAMES))

    def to_json(self) -> dict[str, Any]:
        return {"up": self.up, "dir": str(self.root), "cloud": self.cloud,
                "clouds_yaml": str(self.clouds_yaml) if self.clouds_yaml else None,
                "services": [s.to_json() for s in self.services],
                "computes": self.computes}


@dataclass(frozen=True)
class StackDownReport:
    stopped: dict[str, int]
    removed: list[str]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"stopped": self.stopped, "removed": self.removed, "notes": self.notes}


class OpenStackLab:
    """The OpenStack of the lab in ``<lab dir>/openstack``."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.paths = StackPaths(lab.lab_dir / "openstack")

    # -- up -----------------------------------------------------------------------------------

    def up(self, hugepages: int | None = DEFAULT_HUGEPAGES,
           progress: Progress = _quiet) -> StackStatus:
        require_root()
        step = _Steps(progress)
        with step("packages"):
            self._packages(progress)
        with step("libvirt lab"):
            self.lab.up(hugepages=hugepages, progress=progress)
        self.paths.root.mkdir(parents=True, exist_ok=True)
        state = _State.load(self.paths.state_file)
        secrets = self._secrets()
        with step("/etc/hosts"):
            self._hosts_file(state)
            state.save(self.paths.state_file)
        with step("configuration files"):
            self._write_configs(secrets)
        with step("mariadb"):
            self._mariadb(state, secrets)
        with step("rabbitmq"):
            self._rabbitmq(state)
        with step("keystone"):
            self._keystone(state, secrets)
        with step("glance"):
            self._glance(state, secrets)
        with step("placement"):
            self._placement(state)
        with step("neutron"):
            self._neutron(state, secrets)
        with step("nova controller"):
            self._nova(state)
        with step("image"):
            self._image(state, secrets)
        for host in HOST_NAMES:
            with step(f"nova-compute {host}"):
                self._compute(state, host)
        with step("computes up, cells discovered"):
            self._discover(state, secrets)
        self.paths.clouds_yaml.write_text(configs.clouds_yaml(secrets))
        self.paths.openrc.write_text(configs.openrc(secrets))
        for path in (self.paths.clouds_yaml, self.paths.openrc):
            path.chmod(0o600)
        progress(f"up in {step.total:.0f} s; credentials: OS_CLIENT_CONFIG_FILE="
                 f"{self.paths.clouds_yaml} OS_CLOUD={configs.CLOUD_NAME}")
        return self.status()

    def _packages(self, progress: Progress) -> None:
        missing = [p for p in PACKAGES if not installed(p)]
        if not missing:
            return
        if shutil.which("apt-get") is None:
            raise LabUnavailableError("the OpenStack lab needs Debian 12's packages: "
                                      + " ".join(missing))
        if not Path("/usr/sbin/policy-rc.d").exists():
            progress("note: no /usr/sbin/policy-rc.d: the packages' scripts may start "
                     "services; the lab stops none of them and checks its ports first")
        progress(f"installing {len(missing)} packages with apt-get (a few minutes)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
            result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                raise LabUnavailableError(
                    f"`{' '.join(cmd[:3])} ...` failed (exit {result.returncode}): "
                    + " | ".join(tail))

    def _secrets(self) -> Secrets:
        path = self.paths.secrets_file
        try:
            return Secrets(str(json.loads(path.read_text())["password"]))
        except (OSError, ValueError, KeyError):
            pass
        value = secrets_mod.token_hex(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"password": value}, out)
        return Secrets(value)

    def _hosts_file(self, state: _State) -> None:
        """One line per name: with both names on one line, libvirt canonicalises lab-dst's
        hostname to lab-src and both computes claim one resource provider."""
        lines = HOSTS_FILE.read_text().splitlines() if HOSTS_FILE.exists() else []
        added = hosts_lines_to_add(lines, HOST_NAMES, where=str(HOSTS_FILE))
        if added:
            state.hosts_lines += added
            HOSTS_FILE.write_text("\n".join([*lines, *added]) + "\n")

    def _write_configs(self, secrets: Secrets) -> None:
        p = self.paths
        for directory in (p.etc, p.run, p.data, p.root / "log", p.data / "locks"):
            directory.mkdir(parents=True, exist_ok=True)
        files = {
            "keystone.conf": configs.keystone_conf(p, secrets),
            "keystone-uwsgi.ini": configs.uwsgi_ini(
                p, "keystone", "/usr/bin/keystone-wsgi-public",
                {"OS_KEYSTONE_CONFIG_FILES": str(p.conf("keystone.conf"))}),
            "glance-api.conf": configs.glance_conf(p, secrets),
            "placement.conf": configs.placement_conf(p, secrets),
            "placement-uwsgi.ini": configs.uwsgi_ini(
                p, "placement", "/usr/bin/placement-api",
                {"OS_PLACEMENT_CONFIG_DIR": str(p.etc)}),
            "neutron.conf": configs.neutron_conf(p, secrets),
            "ml2_conf.ini": configs.ml2_conf(),
            "nova.conf": configs.nova_conf(p, secrets),
        }
        cpu_sets = lab_cpu_sets(online_cpus())
        for host in HOST_NAMES:
            dedicated, shared = cpu_sets.get(host, ("", ""))
            if not dedicated:
                raise LabUnavailableError("the OpenStack lab needs 2 CPUs or more: each lab "
                                          "host dedicates one half and shares the other")
            socket_path = self.lab.host(host).socket
            files[f"compute-{host}.conf"] = configs.compute_conf(p, ComputeSettings(
                host=host, libvirt_uri=self.lab.uri(host),
                live_migration_uri=f"qemu+unix:///system?socket="
                f"{socket_path.parent.parent.parent}/%s/run/libvirt-sock",
                cpu_dedicated_set=dedicated, cpu_shared_set=shared))
            p.compute_state(host).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            p.conf(name).write_text(text)
        for name in ("keystone.conf", "glance-api.conf", "placement.conf", "neutron.conf",
                     "nova.conf"):
            p.conf(name).chmod(0o640)
        for sub in ("glance/images", "glance/staging", "glance/tasks", "nova", "neutron"):
            (p.data / sub).mkdir(parents=True, exist_ok=True)

    # -- processes ----------------------------------------------------------------------------

    def _running(self, state: _State, name: str) -> int | None:
        pid = state.pids.get(name)
        return pid if pid is not None and processes.is_alive(pid) else None

    def _spawn(self, state: _State, name: str, argv: list[str],
               env: dict[str, str] | None = None) -> int:
        log = self.paths.log(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        full_env = {"PATH": SBIN_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root",
                    **(env or {})}
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=full_env, start_new_session=True)
        state.pids[name] = proc.pid
        state.save(self.paths.state_file)
        return proc.pid

    def _wait(self, state: _State, name: str, ready: Callable[[], bool],
              timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            pid = state.pids.get(name)
            if pid is not None and not processes.is_alive(pid):
                raise LabError(f"{name} exited while starting; last lines of "
                               f"{self.paths.log(name)}: {_tail(self.paths.log(name))}")
            time.sleep(0.5)
        raise LabError(f"{name} not ready after {timeout:.0f} s; see {self.paths.log(name)}: "
                       f"{_tail(self.paths.log(name))}")

    def _port_free_or_ours(self, state: _State, name: str, port: int) -> None:
        if _port_open(port) and self._running(state, name) is None:
            raise LabError(f"port {port} (for {name}) is taken by a process the lab did not "
                           f"start; stop it first (e.g. `ss -ltnp 'sport = :{port}'`)")

    def _manage_log(self) -> list[str]:
        """nova-manage logs to /var/log/nova by default: keep it in the lab's log directory."""
        return ["--log-file", str(self.paths.log("nova-manage"))]

    def _manage(self, argv: list[str], what: str) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False,
                                env={"PATH": SBIN_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root"})
        if result.returncode != 0:
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-4:])
            raise LabError(f"{what} failed (exit {result.returncode}): {tail}")

    def _once(self, state: _State, key: str, action: Callable[[], None]) -> None:
        if key in state.done:
            return
        action()
        state.done.append(key)
        state.save(self.paths.state_file)

    # -- the services -------------------------------------------------------------------------

    def _mariadb(self, state: _State, secrets: Secrets) -> None:
        p = self.paths
        if self._running(state, "mariadb") is None:
            self._port_free_or_ours(state, "mariadb", PORTS["mariadb"])
            if not (p.mysql_dir / "mysql").is_dir():
                p.mysql_dir.mkdir(parents=True, exist_ok=True)
                shutil.chown(p.mysql_dir, "mysql", "mysql")
                self._manage(["mariadb-install-db", "--no-defaults", "--user=mysql",
                              f"--datadir={p.mysql_dir}", "--skip-test-db",
                              "--auth-root-authentication-method=socket"],
                             "mariadb-install-db")
            shutil.chown(p.run, "mysql", "mysql")
            self._spawn(state, "mariadb", [
                "/usr/sbin/mariadbd", "--no-defaults", "--user=mysql",
                f"--datadir={p.mysql_dir}", f"--socket={p.mysql_socket}",
                f"--pid-file={p.pid_file('mariadb')}", "--bind-address=127.0.0.1",
                f"--port={PORTS['mariadb']}", "--innodb-buffer-pool-size=64M",
                "--max-connections=500", "--skip-name-resolve"])
            self._wait(state, "mariadb", lambda: _port_open(PORTS["mariadb"]))

        def create() -> None:
            sql = []
            users = sorted({user for _db, user in DATABASES})
            for user in users:
                sql.append(f"CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' "
                           f"IDENTIFIED BY '{secrets.password}';")
                sql.append(f"ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY '{secrets.password}';")
            for database, user in DATABASES:
                sql.append(f"CREATE DATABASE IF NOT EXISTS {database};")
                sql.append(f"GRANT ALL PRIVILEGES ON {database}.* TO '{user}'@'127.0.0.1';")
            self._manage(["mariadb", "--no-defaults", f"--socket={p.mysql_socket}", "-uroot",
                          "-e", " ".join(sql)], "creating the databases")

        self._once(state, "databases", create)

    def _rabbitmq(self, state: _State) -> None:
        p = self.paths
        env = {"RABBITMQ_NODENAME": "rabbit@localhost", "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
               "RABBITMQ_NODE_PORT": str(PORTS["rabbitmq"]), "ERL_EPMD_ADDRESS": "127.0.0.1",
               "RABBITMQ_MNESIA_BASE": str(p.rabbit_dir / "mnesia"),
               "RABBITMQ_LOG_BASE": str(p.rabbit_dir / "log"),
               "RABBITMQ_PID_FILE": str(p.pid_file("rabbitmq")),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(p.rabbit_dir / "enabled_plugins"),
               "HOME": str(p.rabbit_dir)}
        if self._running(state, "rabbitmq") is not None:
            return
        self._port_free_or_ours(state, "rabbitmq", PORTS["rabbitmq"])
        p.rabbit_dir.mkdir(parents=True, exist_ok=True)
        (p.rabbit_dir / "enabled_plugins").write_text("[].\n")
        epmd_before = set(_pids_named("epmd"))
        self._spawn(state, "rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env)
        self._wait(state, "rabbitmq", lambda: _port_open(PORTS["rabbitmq"]))
        new_epmd = [pid for pid in _pids_named("epmd") if pid not in epmd_before]
        state.epmd_pids = sorted(set(state.epmd_pids) | set(new_epmd))
        state.save(p.state_file)

    def _uwsgi(self, state: _State, name: str) -> None:
        if self._running(state, name) is not None:
            return
        self._port_free_or_ours(state, name, PORTS[name])
        self._spawn(state, name, ["/usr/bin/uwsgi_python311", "--ini",
                                  str(self.paths.conf(f"{name}-uwsgi.ini"))])
        self._wait(state, name, lambda: rest.answers(f"http://127.0.0.1:{PORTS[name]}/"))

    def _keystone(self, state: _State, secrets: Secrets) -> None:
        p = self.paths
        conf = ["--config-file", str(p.conf("keystone.conf"))]
        for sub in ("fernet-keys", "credential-keys"):
            (p.data / sub).mkdir(mode=0o700, exist_ok=True)
        self._once(state, "keystone-db", lambda: self._manage(
            ["keystone-manage", *conf, "db_sync"], "keystone-manage db_sync"))

        def keys() -> None:
            for what in ("fernet_setup", "credential_setup"):
                self._manage(["keystone-manage", *conf, what, "--keystone-user", "root",
                              "--keystone-group", "root"], f"keystone-manage {what}")

        self._once(state, "keystone-keys", keys)
        url = f"http://127.0.0.1:{PORTS['keystone']}/v3/"
        self._once(state, "keystone-bootstrap", lambda: self._manage(
            ["keystone-manage", *conf, "bootstrap", "--bootstrap-password", secrets.password,
             "--bootstrap-admin-url", url, "--bootstrap-internal-url", url,
             "--bootstrap-public-url", url, "--bootstrap-region-id", configs.REGION],
            "keystone-manage bootstrap"))
        self._uwsgi(state, "keystone")
        self._once(state, "keystone-catalog", lambda: _catalog(secrets))

    def _glance(self, state: _State, secrets: Secrets) -> None:
        conf = ["--config-file", str(self.paths.conf("glance-api.conf"))]
        self._once(state, "glance-db", lambda: self._manage(
            ["glance-manage", *conf, "db_sync"], "glance-manage db_sync"))
        if self._running(state, "glance") is None:
            self._port_free_or_ours(state, "glance", PORTS["glance"])
            self._spawn(state, "glance", ["/usr/bin/glance-api", *conf])
            self._wait(state, "glance",
                       lambda: rest.answers(f"http://127.0.0.1:{PORTS['glance']}/"))

    def _placement(self, state: _State) -> None:
        conf = ["--config-file", str(self.paths.conf("placement.conf"))]
        self._once(state, "placement-db", lambda: self._manage(
            ["placement-manage", *conf, "db", "sync"], "placement-manage db sync"))
        self._uwsgi(state, "placement")

    def _neutron(self, state: _State, secrets: Secrets) -> None:
        conf = ["--config-file", str(self.paths.conf("neutron.conf")),
                "--config-file", str(self.paths.conf("ml2_conf.ini"))]
        self._once(state, "neutron-db", lambda: self._manage(
            ["neutron-db-manage", *conf, "upgrade", "heads"], "neutron-db-manage upgrade"))
        if self._running(state, "neutron") is None:
            self._port_free_or_ours(state, "neutron", PORTS["neutron"])
            self._spawn(state, "neutron", ["/usr/bin/neutron-server", *conf])
            self._wait(state, "neutron",
                       lambda: rest.answers(f"http://127.0.0.1:{PORTS['neutron']}/"))
            # Neutron 21 answers its first port list with HTTP 500 after each start
            tok = _admin_token(secrets)
            for _ in range(2):
                with contextlib.suppress(rest.RestError):
                    rest.call("GET", f"http://127.0.0.1:{PORTS['neutron']}/v2.0/networks",
                              token=tok)
                with contextlib.suppress(rest.RestError):
                    rest.call("GET", f"http://127.0.0.1:{PORTS['neutron']}/v2.0/ports",
                              token=tok)

    def _nova(self, state: _State) -> None:
        conf = ["--config-file", str(self.paths.conf("nova.conf"))]
        manage = ["nova-manage", *conf, *self._manage_log()]

        def cells() -> None:
            self._manage([*manage, "api_db", "sync"], "nova-manage api_db sync")
            self._manage([*manage, "cell_v2", "map_cell0"], "nova-manage cell_v2 map_cell0")
            listed = subprocess.run([*manage, "cell_v2", "list_cells"],
                                    capture_output=True, text=True, check=False)
            if " cell1 " not in listed.stdout:
                self._manage([*manage, "cell_v2", "create_cell", "--name", "cell1"],
                             "nova-manage cell_v2 create_cell")
            self._manage([*manage, "db", "sync"], "nova-manage db sync")

        self._once(state, "nova-db", cells)
        # the nova-api binary itself: under uwsgi its RPC casts to the conductor never left
        for name in ("nova-conductor", "nova-scheduler", "nova-api"):
            if self._running(state, name) is None:
                if name == "nova-api":
                    self._port_free_or_ours(state, name, PORTS[name])
                self._spawn(state, name, [f"/usr/bin/{name}", *conf])
        self._wait(state, "nova-api",
                   lambda: rest.answers(f"http://127.0.0.1:{PORTS['nova-api']}/"))

    def _image(self, state: _State, secrets: Secrets) -> None:
        def upload() -> None:
            tok = _admin_token(secrets)
            base = f"http://127.0.0.1:{PORTS['glance']}/v2/images"
            _s, _h, listed = rest.call("GET", f"{base}?name={IMAGE_NAME}", token=tok)
            for image in (listed or {}).get("images", []):
                if image.get("status") == "active":
                    return
                rest.call("DELETE", f"{base}/{image['id']}", token=tok)
            _s, _h, made = rest.call("POST", base, token=tok, body={
                "name": IMAGE_NAME, "disk_format": "raw", "container_format": "bare",
                "visibility": "public"})
            data = boot_sector() + bytes(IMAGE_SIZE - 512)
            rest.call("PUT", f"{base}/{made['id']}/file", token=tok, data=data,
                      headers={"Content-Type": "application/octet-stream"})

        self._once(state, "image", upload)

    def _compute(self, state: _State, host: str) -> None:
        name = compute_service(host)
        if self._running(state, name) is not None:
            return
        lib = self.lab.host(host).root / "lib"
        (lib / "nova-instances").mkdir(parents=True, exist_ok=True)
        nova_compute = find_program("nova-compute") or "/usr/bin/nova-compute"
        script = (f"mount --bind {shlex.quote(str(lib))} /var/lib/libvirt && exec "
                  f"{shlex.quote(nova_compute)} --config-file "
                  f"{shlex.quote(str(self.paths.conf('nova.conf')))} --config-file "
                  f"{shlex.quote(str(self.paths.conf(f'compute-{host}.conf')))}")
        unshare = find_program("unshare") or "unshare"
        self._spawn(state, name, [unshare, "--mount", "--propagation", "private", "--",
                                  "sh", "-c", script])

    def _discover(self, state: _State, secrets: Secrets) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            for host in HOST_NAMES:
                pid = state.pids.get(compute_service(host))
                if pid is None or not processes.is_alive(pid):
                    log = self.paths.log(compute_service(host))
                    raise LabError(f"nova-compute on {host} exited; {log}: {_tail(log)}")
            states = _compute_states(secrets)
            if all(states.get(h) == "up" for h in HOST_NAMES):
                break
            time.sleep(1.0)
        else:
            raise LabError(f"the computes did not report up in {START_TIMEOUT_S:.0f} s "
                           f"({states or 'none listed'}); see {self.paths.root / 'log'}")
        conf = ["--config-file", str(self.paths.conf("nova.conf")), *self._manage_log()]
        self._manage(["nova-manage", *conf, "cell_v2", "discover_hosts"],
                     "nova-manage cell_v2 discover_hosts")
        # the computes report their resource providers once they run; wait for both
        tok = _admin_token(secrets)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            _s, _h, body = rest.call("GET", f"http://127.0.0.1:{PORTS['nova-api']}/v2.1/"
                                     "os-hypervisors", token=tok)
            names = {h.get("hypervisor_hostname") for h in (body or {}).get("hypervisors", [])}
            if set(HOST_NAMES) <= names:
                return
            time.sleep(1.0)
        raise LabError("the computes run but Nova lists no hypervisor for both lab hosts; "
                       f"see {self.paths.root / 'log'}")

    # -- status -------------------------------------------------------------------------------

    def status(self) -> StackStatus:
        state = _State.load(self.paths.state_file)
        out = []
        for name in (*SERVICES, *(compute_service(h) for h in HOST_NAMES)):
            pid = state.pids.get(name)
            running = pid is not None and processes.is_alive(pid)
            port = PORTS.get(name)
            answers = None if port is None else _port_open(port)
            out.append(ServiceStatus(name, pid, running, answers))
        computes: dict[str, str] = {}
        try:
            secrets = Secrets(str(json.loads(self.paths.secrets_file.read_text())["password"]))
            computes = _compute_states(secrets)
        except (OSError, ValueError, KeyError, LabError):
            pass
        clouds = self.paths.clouds_yaml if self.paths.clouds_yaml.exists() else None
        return StackStatus(self.paths.root, tuple(out), computes, clouds)

    # -- down ---------------------------------------------------------------------------------

    def down(self, progress: Progress = _quiet) -> StackDownReport:
        require_root()
        state = _State.load(self.paths.state_file)
        stopped: dict[str, int] = {}
        notes: list[str] = []
        order = [*(compute_service(h) for h in HOST_NAMES), *reversed(SERVICES)]
        for name in order:
            pid = state.pids.get(name)
            if pid is None or not processes.is_alive(pid):
                continue
            progress(f"stopping {name} ({pid})")
            survivors = _stop_tree(pid)
            if survivors:
                notes.append(f"{name}: {survivors} did not stop")
            stopped[name] = pid
        for pid in state.epmd_pids:
            if processes.is_alive(pid) and processes.exe_name(pid) == "epmd":
                processes.terminate([pid])
                stopped.setdefault("epmd", pid)
        removed = self._undefine_nova_domains(progress, notes)
        for host in HOST_NAMES:
            instances = self.lab.host(host).root / "lib" / "nova-instances"
            if instances.exists():
                shutil.rmtree(instances, ignore_errors=True)
                removed.append(str(instances))
        if HOSTS_FILE.exists() and state.hosts_lines:
            lines = HOSTS_FILE.read_text().splitlines()
            kept = [ln for ln in lines if ln not in state.hosts_lines]
            HOSTS_FILE.write_text("\n".join(kept) + ("\n" if kept else ""))
            removed += [f"{HOSTS_FILE}: {ln}" for ln in state.hosts_lines if ln in lines]
        if self.paths.root.exists():
            shutil.rmtree(self.paths.root, ignore_errors=True)
            removed.append(str(self.paths.root))
        return StackDownReport(stopped, removed, notes)

    def _undefine_nova_domains(self, progress: Progress, notes: list[str]) -> list[str]:
        from numa_migrate.hypervisor.base import HypervisorError
        from numa_migrate.hypervisor.libvirt import connect

        removed: list[str] = []
        status = self.lab.status()
        for host in status.hosts:
            if not host.running:
                continue
            try:
                hyp = connect(host.uri, host.name)
            except HypervisorError as exc:
                notes.append(f"{host.name}: cannot list Nova's domains: {exc}")
                continue
            try:
                for summary in hyp.domains():
                    if not summary.name.startswith("instance-"):
                        continue
                    dom = hyp.lookup(summary.name)
                    if dom is None:
                        continue
                    progress(f"{host.name}: removing Nova's domain {summary.name}")
                    if dom.is_active():
                        dom.destroy()
                    if dom.is_persistent():
                        dom.undefine()
                    removed.append(f"{host.name}: domain {summary.name}")
            except HypervisorError as exc:
                notes.append(f"{host.name}: {exc}")
            finally:
                hyp.close()
        return removed


# --------------------------------------------------------------------------------- helpers


class _Steps:
    """Times each step of ``up`` and reports it on the progress callback."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.total = 0.0

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        self.progress(f"{name} ...")
        yield
        took = time.monotonic() - start
        self.total += took
        self.progress(f"{name}: done in {took:.1f} s")


def hosts_lines_to_add(lines: list[str], hosts: tuple[str, ...], *, where: str) -> list[str]:
    """The /etc/hosts lines to add so that each host has a line of its own; a line that
    names a host together with other names is refused (libvirt would canonicalise one lab
    host's name to the other's)."""
    added = []
    for host in hosts:
        holders = [ln for ln in lines if host in ln.split("#", 1)[0].split()[1:]]
        wrong = [ln for ln in holders if len(ln.split("#", 1)[0].split()) != 2]
        if wrong:
            raise LabError(f"{where} names {host} on a line with other names "
                           f"({wrong[0]!r}); libvirt would then take one lab host for the "
                           "other: give each lab host a line of its own")
        if not holders:
            added.append(f"127.0.0.1 {host} {HOSTS_MARK}")
    return added


def _tail(path: Path, lines: int = 4) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip()[:200] for line in text[-lines:]) or "(empty log)"


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pids_named(name: str) -> list[int]:
    return [pid for pid in processes.all_pids() if processes.exe_name(pid) == name]


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (uwsgi workers, neutron's API workers...)."""
    parents: dict[int, list[int]] = {}
    for child in processes.all_pids():
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        parents.setdefault(ppid, []).append(child)
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _stop_tree(pid: int) -> list[int]:
    tree = [pid, *_children(pid)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    return processes.terminate(tree, timeout=STOP_TIMEOUT_S)


def _admin_token(secrets: Secrets) -> str:
    return rest.token(configs.auth_url(), "admin", secrets.password, configs.ADMIN_PROJECT)


def _compute_states(secrets: Secrets) -> dict[str, str]:
    tok = _admin_token(secrets)
    _s, _h, body = rest.call(
        "GET", f"http://127.0.0.1:{PORTS['nova-api']}/v2.1/os-services?binary=nova-compute",
        token=tok, timeout=10.0)
    return {s["host"]: s["state"] for s in (body or {}).get("services", [])}


def _catalog(secrets: Secrets) -> None:
    """The service project, the service users (admin role) and the catalog: looked up first,
    created only when missing."""
    base = configs.auth_url()
    tok = _admin_token(secrets)

    def first(path: str, key: str) -> dict[str, Any] | None:
        _s, _h, body = rest.call("GET", f"{base}/{path}", token=tok)
        found = (body or {}).get(key, [])
        return found[0] if found else None

    project = first(f"projects?name={configs.SERVICE_PROJECT}", "projects")
    if project is None:
        _s, _h, made = rest.call("POST", f"{base}/projects", token=tok, body={"project": {
            "name": configs.SERVICE_PROJECT, "domain_id": "default"}})
        project = made["project"]
    role = first("roles?name=admin", "roles")
    if role is None:
        raise LabError("Keystone has no admin role after its bootstrap")
    for user_name in SERVICE_USERS:
        user = first(f"users?name={user_name}", "users")
        if user is None:
            _s, _h, made = rest.call("POST", f"{base}/users", token=tok, body={"user": {
                "name": user_name, "domain_id": "default", "password": secrets.password}})
            user = made["user"]
        rest.call("PUT", f"{base}/projects/{project['id']}/users/{user['id']}/roles/"
                  f"{role['id']}", token=tok)
    for kind, name, url in CATALOG:
        service = first(f"services?type={kind}", "services")
        if service is None:
            _s, _h, made = rest.call("POST", f"{base}/services", token=tok, body={
                "service": {"type": kind, "name": name}})
            service = made["service"]
        for interface in ("public", "internal", "admin"):
            if first(f"endpoints?service_id={service['id']}&interface={interface}",
                     "endpoints") is None:
                rest.call("POST", f"{base}/endpoints", token=tok, body={"endpoint": {
                    "service_id": service["id"], "interface": interface, "url": url,
                    "region_id": configs.REGION}})

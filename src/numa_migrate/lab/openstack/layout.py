"""Where the OpenStack lab keeps its files: everything under ``<lab dir>/openstack``.

::

    <lab dir>/openstack/
      state.json            the steps done once (databases, db syncs, catalog) and the pids
      secrets.json          the lab's password (mode 600)
      clouds.yaml openrc    the admin's credentials (cloud "numa-migrate-lab")
      etc/                  every service's configuration
      log/<service>.log     every service's log (and its stdout/stderr)
      run/<service>.pid     pids of the services started by pid file (uwsgi, MariaDB)
      data/mysql            MariaDB's private data directory (port 3306, 127.0.0.1)
      data/rabbitmq         RabbitMQ's private node directory (port 5672, 127.0.0.1)
      data/glance data/nova data/neutron data/locks data/compute-<host>
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# every port the lab listens on (all on 127.0.0.1)
PORTS: dict[str, int] = {
    "mariadb": 3306,
    "rabbitmq": 5672,
    "keystone": 5000,
    "glance": 9292,
    "placement": 8778,
    "nova-api": 8774,
    "neutron": 9696,
}

# the services in start order; a nova-compute per lab host comes last
SERVICES: tuple[str, ...] = (
    "mariadb", "rabbitmq", "keystone", "glance", "placement", "neutron",
    "nova-api", "nova-conductor", "nova-scheduler",
)


def compute_service(host: str) -> str:
    return f"nova-compute-{host}"


@dataclass(frozen=True)
class StackPaths:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    @property
    def openrc(self) -> Path:
        return self.root / "openrc"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def run(self) -> Path:
        return self.root / "run"

    def conf(self, name: str) -> Path:
        return self.etc / name

    def log(self, service: str) -> Path:
        return self.root / "log" / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.run / f"{service}.pid"

    def compute_state(self, host: str) -> Path:
        return self.data / f"compute-{host}"

    @property
    def mysql_dir(self) -> Path:
        return self.data / "mysql"

    @property
    def mysql_socket(self) -> Path:
        return self.run / "mysqld.sock"

    @property
    def rabbit_dir(self) -> Path:
        return self.data / "rabbitmq"

"""The OpenStack lab's configuration files, as text (pure: no file is read or written here).

Every service listens on 127.0.0.1 only and keeps its state under the lab's ``openstack``
directory; see ``../shared/openstack-lab.md`` for why each unusual line is there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from numa_migrate.lab.openstack.layout import PORTS, StackPaths

REGION = "RegionOne"
ADMIN_PROJECT = "admin"
SERVICE_PROJECT = "service"
CLOUD_NAME = "numa-migrate-lab"
# the scheduler filters: Nova's default list plus NUMATopologyFilter, without which a NUMA,
# pinned or huge-page guest is placed on any host and fails later in the compute's claim
SCHEDULER_FILTERS = (
    "ComputeFilter",
    "ComputeCapabilitiesFilter",
    "ImagePropertiesFilter",
    "ServerGroupAntiAffinityFilter",
    "ServerGroupAffinityFilter",
    "NUMATopologyFilter",
)

Sections = Mapping[str, Mapping[str, str | int | bool]]


@dataclass(frozen=True)
class Secrets:
    """The lab's one password (databases, service users, the admin)."""

    password: str


def ini(sections: Sections) -> str:
    """oslo.config / uwsgi INI text: ``[section]`` then ``key = value`` lines."""
    out: list[str] = ["# written by numa-migrate lab openstack; rewritten by every `up`"]
    for name, values in sections.items():
        out.append(f"\n[{name}]")
        for key, value in values.items():
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            out.append(f"{key} = {text}")
    return "\n".join(out) + "\n"


def db_url(user: str, secrets: Secrets, database: str | None = None) -> str:
    return (f"mysql+pymysql://{user}:{secrets.password}@127.0.0.1:{PORTS['mariadb']}/"
            f"{database or user}")


def auth_url() -> str:
    return f"http://127.0.0.1:{PORTS['keystone']}/v3"


def _service_auth(user: str, secrets: Secrets) -> dict[str, str]:
    return {
        "auth_type": "password",
        "auth_url": auth_url(),
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "project_name": SERVICE_PROJECT,
        "username": user,
        "password": secrets.password,
        "region_name": REGION,
    }


def _authtoken(user: str, secrets: Secrets) -> dict[str, str]:
    return {"www_authenticate_uri": f"http://127.0.0.1:{PORTS['keystone']}",
            **_service_auth(user, secrets)}


def transport_url() -> str:
    return f"rabbit://guest:guest@127.0.0.1:{PORTS['rabbitmq']}/"


def keystone_conf(paths: StackPaths, secrets: Secrets) -> str:
    return ini({
        "DEFAULT": {"log_file": str(paths.log("keystone"))},
        "database": {"connection": db_url("keystone", secrets)},
        "token": {"provider": "fernet"},
        "fernet_tokens": {"key_repository": str(paths.data / "fernet-keys")},
        "credential": {"key_repository": str(paths.data / "credential-keys")},
    })


def uwsgi_ini(paths: StackPaths, service: str, wsgi_file: str, env: Mapping[str, str]) -> str:
    """A uwsgi application; ``Connection: close`` because keystone/placement under uwsgi reset
    reused client connections ("connection reset by peer") without it."""
    values: dict[str, str | int | bool] = {
        "wsgi-file": wsgi_file,
        "http-socket": f"127.0.0.1:{PORTS[service]}",
        "processes": 1,
        "threads": 4,
        "master": True,
        "lazy-apps": True,
        "die-on-term": True,
        "add-header": "Connection: close",
        "logto": str(paths.log(service)),
        "pidfile": str(paths.pid_file(service)),
    }
    text = ini({"uwsgi": values})
    return text + "".join(f"env = {key}={value}\n" for key, value in env.items())


def glance_conf(paths: StackPaths, secrets: Secrets) -> str:
    images = paths.data / "glance"
    return ini({
        "DEFAULT": {"bind_host": "127.0.0.1", "bind_port": PORTS["glance"], "workers": 1,
                    "log_file": str(paths.log("glance")), "enabled_backends": "file:file",
                    "image_cache_dir": str(images / "cache")},
        "database": {"connection": db_url("glance", secrets)},
        "keystone_authtoken": _authtoken("glance", secrets),
        "paste_deploy": {"flavor": "keystone",
                         "config_file": "/etc/glance/glance-api-paste.ini"},
        "glance_store": {"default_backend": "file"},
        "file": {"filesystem_store_datadir": str(images / "images")},
        "os_glance_staging_store": {"filesystem_store_datadir": str(images / "staging")},
        "os_glance_tasks_store": {"filesystem_store_datadir": str(images / "tasks")},
        "oslo_concurrency": {"lock_path": str(paths.data / "locks" / "glance")},
    })


def placement_conf(paths: StackPaths, secrets: Secrets) -> str:
    return ini({
        "DEFAULT": {"log_file": str(paths.log("placement"))},
        "placement_database": {"connection": db_url("placement", secrets)},
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": _authtoken("placement", secrets),
    })


def neutron_conf(paths: StackPaths, secrets: Secrets) -> str:
    # port_forwarding: Neutron 21 answers GET /v2.0/ports with HTTP 500 without it
    return ini({
        "DEFAULT": {"core_plugin": "ml2", "service_plugins": "router,port_forwarding",
                    "bind_host": "127.0.0.1", "bind_port": PORTS["neutron"],
                    "auth_strategy": "keystone", "transport_url": transport_url(),
                    "api_workers": 1, "rpc_workers": 0, "rpc_state_report_workers": 0,
                    "notify_nova_on_port_status_changes": False,
                    "notify_nova_on_port_data_changes": False,
                    "log_file": str(paths.log("neutron")),
                    "state_path": str(paths.data / "neutron")},
        "database": {"connection": db_url("neutron", secrets)},
        "keystone_authtoken": _authtoken("neutron", secrets),
        "nova": _service_auth("nova", secrets),
        "oslo_concurrency": {"lock_path": str(paths.data / "locks" / "neutron")},
        "agent": {"root_helper": "sudo"},
    })


def ml2_conf() -> str:
    return ini({
        "ml2": {"type_drivers": "flat,local", "tenant_network_types": "",
                "mechanism_drivers": "", "extension_drivers": ""},
    })


def nova_conf(paths: StackPaths, secrets: Secrets) -> str:
    """The controller's nova.conf, which the computes read too (their own file comes after)."""
    return ini({
        "DEFAULT": {"transport_url": transport_url(), "my_ip": "127.0.0.1",
                    "enabled_apis": "osapi_compute", "osapi_compute_listen": "127.0.0.1",
                    "osapi_compute_listen_port": PORTS["nova-api"],
                    "osapi_compute_workers": 1, "state_path": str(paths.data / "nova"),
                    "compute_driver": "libvirt.LibvirtDriver",
                    "use_rootwrap_daemon": False},
        "api": {"auth_strategy": "keystone"},
        "api_database": {"connection": db_url("nova", secrets, "nova_api")},
        "database": {"connection": db_url("nova", secrets, "nova")},
        "keystone_authtoken": _authtoken("nova", secrets),
        "placement": _service_auth("placement", secrets),
        "neutron": _service_auth("neutron", secrets),
        "glance": {"region_name": REGION},
        "conductor": {"workers": 1},
        "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": -1},
        "filter_scheduler": {"enabled_filters": ",".join(SCHEDULER_FILTERS)},
        "oslo_concurrency": {"lock_path": str(paths.data / "locks" / "nova")},
        "vnc": {"enabled": False},
        "spice": {"enabled": False},
        "wsgi": {"api_paste_config": "/etc/nova/api-paste.ini"},
        "oslo_messaging_rabbit": {"heartbeat_timeout_threshold": 0},
    })


@dataclass(frozen=True)
class ComputeSettings:
    host: str
    libvirt_uri: str
    live_migration_uri: str
    cpu_dedicated_set: str
    cpu_shared_set: str
    reserved_huge_pages: str = ""


def compute_conf(paths: StackPaths, compute: ComputeSettings) -> str:
    """One nova-compute's own file. instances_path is inside /var/lib/libvirt, which this
    compute's mount namespace binds to its lab host's private directory: the two computes then
    share no storage, as libvirt 9 demands for a migration without the unsafe flag."""
    default: dict[str, str | int | bool] = {
        "host": compute.host,
        "instances_path": "/var/lib/libvirt/nova-instances",
        "state_path": str(paths.compute_state(compute.host)),
        "log_file": str(paths.log(f"nova-compute-{compute.host}")),
        "reserved_host_memory_mb": 0,
        # the resource tracker's periodic update (default 60 s) is what frees the pins of a
        # deleted server that was live-migrated to this compute; sooner in the lab
        "update_resources_interval": 10,
    }
    compute_section: dict[str, str | int | bool] = {
        "cpu_dedicated_set": compute.cpu_dedicated_set,
        "cpu_shared_set": compute.cpu_shared_set,
    }
    if compute.reserved_huge_pages:
        default["reserved_huge_pages"] = compute.reserved_huge_pages
    return ini({
        "DEFAULT": default,
        "libvirt": {"connection_uri": compute.libvirt_uri, "virt_type": "kvm",
                    "cpu_mode": "none", "live_migration_uri": compute.live_migration_uri,
                    "live_migration_completion_timeout": 120},
        "compute": compute_section,
        "oslo_concurrency": {"lock_path": str(paths.compute_state(compute.host) / "locks")},
    })


def clouds_yaml(secrets: Secrets) -> str:
    """The admin's clouds.yaml (openstacksdk / openstackclient), cloud ``numa-migrate-lab``."""
    return (
        "# written by numa-migrate lab openstack up\n"
        "clouds:\n"
        f"  {CLOUD_NAME}:\n"
        "    auth:\n"
        f"      auth_url: {auth_url()}\n"
        "      username: admin\n"
        f"      password: {secrets.password}\n"
        f"      project_name: {ADMIN_PROJECT}\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
        f"    region_name: {REGION}\n"
        "    identity_api_version: 3\n"
    )


def openrc(secrets: Secrets) -> str:
    return (
        "# written by numa-migrate lab openstack up: source it for the openstack CLI\n"
        f"export OS_AUTH_URL={auth_url()}\n"
        "export OS_USERNAME=admin\n"
        f"export OS_PASSWORD={secrets.password}\n"
        f"export OS_PROJECT_NAME={ADMIN_PROJECT}\n"
        "export OS_USER_DOMAIN_NAME=Default\n"
        "export OS_PROJECT_DOMAIN_NAME=Default\n"
        f"export OS_REGION_NAME={REGION}\n"
        "export OS_IDENTITY_API_VERSION=3\n"
        "export OS_COMPUTE_API_VERSION=2.79\n"
    )

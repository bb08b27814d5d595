"""The OpenStack lab's pure parts: its configuration files and its /etc/hosts lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from numa_migrate.lab.errors import LabError
from numa_migrate.lab.openstack import configs
from numa_migrate.lab.openstack.configs import ComputeSettings, Secrets
from numa_migrate.lab.openstack.layout import StackPaths
from numa_migrate.lab.openstack.stack import HOSTS_MARK, hosts_lines_to_add

PATHS = StackPaths(Path("/var/lib/numa-migrate/lab/openstack"))
SECRETS = Secrets("s3cret")


def test_nova_conf_has_the_numa_filter_and_private_state() -> None:
    text = configs.nova_conf(PATHS, SECRETS)
    assert "NUMATopologyFilter" in text
    assert "mysql+pymysql://nova:s3cret@127.0.0.1:3306/nova_api" in text
    assert "osapi_compute_listen = 127.0.0.1" in text
    assert "state_path = /var/lib/numa-migrate/lab/openstack/data/nova" in text


def test_compute_conf_is_the_lab_host_with_its_cpu_sets() -> None:
    text = configs.compute_conf(PATHS, ComputeSettings(
        "lab-src", "qemu+unix:///system?socket=/x/lab-src/run/libvirt-sock",
        "qemu+unix:///system?socket=/x/%s/run/libvirt-sock", "1", "0"))
    assert "host = lab-src" in text
    assert "cpu_dedicated_set = 1" in text and "cpu_shared_set = 0" in text
    assert "instances_path = /var/lib/libvirt/nova-instances" in text
    assert "cpu_mode = none" in text and "virt_type = kvm" in text
    assert "live_migration_uri = qemu+unix:///system?socket=/x/%s/run/libvirt-sock" in text


def test_uwsgi_closes_connections() -> None:
    text = configs.uwsgi_ini(PATHS, "keystone", "/usr/bin/keystone-wsgi-public",
                             {"OS_KEYSTONE_CONFIG_FILES": "/k.conf"})
    assert "add-header = Connection: close" in text
    assert "http-socket = 127.0.0.1:5000" in text
    assert "env = OS_KEYSTONE_CONFIG_FILES=/k.conf" in text


def test_neutron_has_the_port_forwarding_plugin() -> None:
    assert "service_plugins = router,port_forwarding" in configs.neutron_conf(PATHS, SECRETS)


def test_clouds_yaml_and_openrc_name_the_lab_cloud() -> None:
    assert "numa-migrate-lab:" in configs.clouds_yaml(SECRETS)
    assert "export OS_COMPUTE_API_VERSION=2.79" in configs.openrc(SECRETS)


def test_hosts_lines_one_per_name() -> None:
    assert hosts_lines_to_add(["127.0.0.1 localhost"], ("lab-src", "lab-dst"), where="h") == [
        f"127.0.0.1 lab-src {HOSTS_MARK}", f"127.0.0.1 lab-dst {HOSTS_MARK}"]
    assert hosts_lines_to_add(["127.0.0.1 lab-src", "127.0.0.1 lab-dst  # mine"],
                              ("lab-src", "lab-dst"), where="h") == []
    with pytest.raises(LabError, match="line of its own"):
        hosts_lines_to_add(["127.0.0.1 lab-src lab-dst"], ("lab-src", "lab-dst"), where="h")

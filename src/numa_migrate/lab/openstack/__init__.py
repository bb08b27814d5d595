"""A real OpenStack (Debian 12's Zed packages) on the two-daemon libvirt lab."""

from numa_migrate.lab.openstack.configs import CLOUD_NAME
from numa_migrate.lab.openstack.stack import OpenStackLab, StackDownReport, StackStatus

__all__ = ["CLOUD_NAME", "OpenStackLab", "StackDownReport", "StackStatus"]

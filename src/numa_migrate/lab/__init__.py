"""The real libvirt lab: two libvirtd daemons on this machine acting as two hosts.

``lab-src`` and ``lab-dst`` each run their own libvirtd in a private mount namespace (their own
/etc/libvirt, /run/libvirt, /var/lib/libvirt, ...; a distinct host UUID; distinct migration
ports), so that a real live migration can go from one to the other. The counter guest (a
512-byte boot sector that counts in guest memory) proves that a guest keeps running.

Typical use::

    from numa_migrate.lab import Lab, SRC, DST
    lab = Lab.at()                      # $NUMA_MIGRATE_LAB_DIR or /var/lib/numa-migrate/lab
    status = lab.up(hugepages=64)       # idempotent; needs root
    src_uri, dst_uri = lab.uri(SRC), lab.uri(DST)
    xml = counter_guest_xml("g1", image=lab.counter_image, vcpus=2, memory_mib=64,
                            vcpu_pins={0: 0, 1: 1}, domain_type=lab.domain_type())
    ...
    lab.down()
"""

from numa_migrate.hypervisor.procaffinity import ThreadAffinity
from numa_migrate.lab.affinity import (
    DomainAffinity,
    domain_affinity,
    process_affinity,
    qemu_pid,
)
from numa_migrate.lab.errors import LabError, LabUnavailableError
from numa_migrate.lab.guest import (
    boot_sector,
    counter_advances,
    counter_delta,
    counter_guest_xml,
    floppy_image,
    read_counter,
    wait_until_counting,
    write_floppy_image,
)
from numa_migrate.lab.layout import DST, HOST_NAMES, SRC, HostPaths, LabPaths, default_lab_dir
from numa_migrate.lab.state import (
    DownReport,
    HostStatus,
    HugePageStatus,
    Lab,
    LabStatus,
    default_lab,
    lab_mounts,
)

__all__ = [
    "DST",
    "HOST_NAMES",
    "SRC",
    "DomainAffinity",
    "DownReport",
    "HostPaths",
    "HostStatus",
    "HugePageStatus",
    "Lab",
    "LabError",
    "LabPaths",
    "LabStatus",
    "LabUnavailableError",
    "ThreadAffinity",
    "boot_sector",
    "counter_advances",
    "counter_delta",
    "counter_guest_xml",
    "default_lab",
    "default_lab_dir",
    "domain_affinity",
    "floppy_image",
    "lab_mounts",
    "process_affinity",
    "qemu_pid",
    "read_counter",
    "wait_until_counting",
    "write_floppy_image",
]

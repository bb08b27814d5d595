"""KVM or TCG: guests use KVM when /dev/kvm can really be used, else QEMU's emulator (TCG).

``NUMA_MIGRATE_LAB_VIRT=qemu`` forces TCG (domain type ``qemu``) even when KVM works.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass

VIRT_ENV = "NUMA_MIGRATE_LAB_VIRT"
KVM_DEVICE = "/dev/kvm"
_KVM_GET_API_VERSION = 0xAE00
_KVM_API_VERSION = 12
_PVM = "/sys/module/kvm_pvm"


@dataclass(frozen=True)
class Accelerator:
    """The domain type guests get ("kvm" or "qemu" = TCG) and why."""

    domain_type: str
    reason: str

    @property
    def label(self) -> str:
        return "KVM" if self.domain_type == "kvm" else "TCG"


def probe_kvm() -> str | None:
    """None when /dev/kvm answers KVM_GET_API_VERSION with 12; else why it cannot be used."""
    try:
        fd = os.open(KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open {KVM_DEVICE}: {exc.strerror or exc}"
    try:
        version = fcntl.ioctl(fd, _KVM_GET_API_VERSION)
    except OSError as exc:
        return f"{KVM_DEVICE} does not answer KVM_GET_API_VERSION: {exc.strerror or exc}"
    finally:
        os.close(fd)
    if version != _KVM_API_VERSION:
        return f"{KVM_DEVICE} has KVM API version {version}, not {_KVM_API_VERSION}"
    return None


def choose_accelerator() -> Accelerator:
    forced = os.environ.get(VIRT_ENV, "").strip().lower()
    if forced in ("qemu", "tcg"):
        return Accelerator("qemu", f"TCG forced by {VIRT_ENV}={forced}")
    problem = probe_kvm()
    if problem is None:
        how = " (nested KVM through the PVM hypervisor)" if os.path.exists(_PVM) else ""
        return Accelerator("kvm", f"{KVM_DEVICE} is usable{how}")
    return Accelerator("qemu", f"TCG (software emulation, slow) because {problem}")

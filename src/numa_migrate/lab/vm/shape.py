"""The multi-node lab VM's shape and how QEMU is asked for it (pure: no I/O).

The VM gives a real kernel what this machine lacks: two NUMA nodes, SMT sibling threads and
1 GiB huge pages. Everything here is computed from a :class:`VmShape`, so the command line
can be unit-tested and shown by ``lab status --multi-node``.

Facts this rests on (found on these machines, re-checked by the multi-node tests):

- the KVM here is a software one without nested virtualisation: an unmodified kernel crawls
  under it, so the VM runs on TCG (``-accel tcg,thread=multi``);
- SMT siblings appear only with ``-cpu max,vendor=GenuineIntel`` (under TCG the default AMD
  vendor shows one thread per core); ``-cpu max`` also has ``pdpe1gb`` for 1 GiB pages;
- 1 GiB pages must be reserved at boot with the per-node syntax (``hugepages=0:1,1:1``) and
  ``nokaslr``; with ``max-ram-below-4g=1G`` on q35 each node's memory is contiguous enough for
  one 1 GiB page per node at 3 GiB per node (otherwise the kernel puts both on one node).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.lab.errors import LabError

VM_NAME = "numa-migrate-lab-vm"
"""QEMU's ``-name``: how a lab VM is recognised in /proc before it is signalled."""


@dataclass(frozen=True)
class VmShape:
    """Sockets (one NUMA node each), cores per socket, threads per core, memory per node and
    the huge pages reserved per node at boot."""

    sockets: int = 2
    cores: int = 2
    threads: int = 2
    node_memory_mib: int = 3072
    pages_1g_per_node: int = 1
    pages_2m_per_node: int = 160

    def __post_init__(self) -> None:
        limits = {"sockets": (2, 4), "cores": (2, 8), "threads": (1, 2),
                  "node_memory_mib": (1536, 16384), "pages_1g_per_node": (0, 4),
                  "pages_2m_per_node": (0, 4096)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise LabError(f"multi-node VM {name} must be an integer from {low} to {high}, "
                               f"not {value!r}")
        held = self.pages_1g_per_node * 1024 + self.pages_2m_per_node * 2
        if held > self.node_memory_mib - 1024:
            raise LabError(
                f"multi-node VM: {held} MiB of huge pages per node leave less than 1 GiB of the "
                f"node's {self.node_memory_mib} MiB for the system; reserve fewer pages")

    @property
    def cpus(self) -> int:
        return self.sockets * self.cores * self.threads

    @property
    def memory_mib(self) -> int:
        return self.sockets * self.node_memory_mib

    def node_cpus(self, node: int) -> CpuSet:
        """The CPU numbers QEMU gives node ``node`` (one socket per node, in order)."""
        per = self.cores * self.threads
        return CpuSet.of(range(node * per, (node + 1) * per))

    def kernel_cmdline(self) -> str:
        """The VM kernel's command line: root on the virtio disk, serial console, and the
        huge pages reserved per node at boot (the only reliable time for 1 GiB pages)."""
        per_node = ",".join
        nodes = range(self.sockets)
        parts = ["root=/dev/vda", "rw", "console=ttyS0", "nokaslr", "quiet",
                 "systemd.show_status=0", "net.ifnames=0"]
        if self.pages_1g_per_node:
            parts += ["hugepagesz=1G",
                      "hugepages=" + per_node(f"{n}:{self.pages_1g_per_node}" for n in nodes)]
        if self.pages_2m_per_node:
            parts += ["hugepagesz=2M",
                      "hugepages=" + per_node(f"{n}:{self.pages_2m_per_node}" for n in nodes)]
        parts.append("default_hugepagesz=2M")
        return " ".join(parts)


@dataclass(frozen=True)
class BootFiles:
    """What QEMU boots: the kernel, its initrd and the VM's disk (a qcow2 overlay on the
    cached image, so the cache is never written)."""

    kernel: Path
    initrd: Path
    disk: Path
    console_log: Path
    pid_file: Path


def qemu_argv(qemu: str, shape: VmShape, files: BootFiles, ssh_port: int) -> list[str]:
    """QEMU's command line for the lab VM. Its only network is user-mode networking that
    lets nothing out (``restrict=on``) and forwards ``127.0.0.1:<ssh_port>`` of this machine
    to the VM's sshd; nothing listens on any other address."""
    if not 1024 <= ssh_port <= 65535:
        raise LabError(f"the VM's ssh port must be from 1024 to 65535, not {ssh_port}")
    argv = [
        qemu, "-name", VM_NAME, "-nodefaults", "-no-user-config",
        "-machine", "q35,max-ram-below-4g=1G", "-accel", "tcg,thread=multi",
        "-cpu", "max,vendor=GenuineIntel",
        "-smp", f"{shape.cpus},sockets={shape.sockets},cores={shape.cores},"
                f"threads={shape.threads}",
        "-m", f"{shape.memory_mib}M",
    ]
    for node in range(shape.sockets):
        argv += ["-object", f"memory-backend-ram,id=mem{node},size={shape.node_memory_mib}M",
                 "-numa", f"node,nodeid={node},cpus={shape.node_cpus(node).format()},"
                          f"memdev=mem{node}"]
    argv += [
        "-kernel", str(files.kernel), "-initrd", str(files.initrd),
        "-append", shape.kernel_cmdline(),
        "-drive", f"file={files.disk},if=virtio,format=qcow2,cache=unsafe",
        "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        "-device", "virtio-net-pci,netdev=net0",
        "-device", "virtio-rng-pci",
        "-display", "none", "-monitor", "none",
        "-serial", f"file:{files.console_log}",
        "-pidfile", str(files.pid_file), "-daemonize",
    ]
    return argv


def split_cores(node_siblings: Mapping[int, Sequence[frozenset[int]]]
                ) -> dict[str, tuple[CpuSet, CpuSet]]:
    """(cpu_dedicated_set, cpu_shared_set) of lab-src and lab-dst on the VM.

    Both lab hosts are the one VM; like the single-node lab they are told apart by their
    Nova-style CPU sets, now per node and by whole cores: on every node lab-src pins on the
    first half of the cores (both threads of each) and lab-dst on the second half, and each
    floats on the other's. So each host has at least one whole core per node for
    ``require``/``isolate``, a two-cell guest can be pinned on both nodes on both sides, and
    every migration re-chooses the pins. ``node_siblings``: per node, its cores as sets of
    sibling threads.
    """
    src: set[int] = set()
    dst: set[int] = set()
    for node, cores in sorted(node_siblings.items()):
        ordered = sorted((frozenset(c) for c in cores), key=min)
        if len(ordered) < 2:
            raise LabError(f"VM node {node} has {len(ordered)} core(s): the two lab hosts need "
                           "at least one whole core each on every node")
        half = len(ordered) // 2
        for core in ordered[:half]:
            src |= core
        for core in ordered[half:]:
            dst |= core
    return {"lab-src": (CpuSet.of(src), CpuSet.of(dst)),
            "lab-dst": (CpuSet.of(dst), CpuSet.of(src))}


__all__ = ["VM_NAME", "BootFiles", "VmShape", "qemu_argv", "split_cores"]

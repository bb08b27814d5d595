"""The bounds every input is held to, in one place.

A value beyond one of these is refused with an error naming the field, the value and the
bound: never expanded, allocated or looped over. They are generous for real hardware (the
largest Linux build, ``CONFIG_NR_CPUS=8192`` with ``MAXSMP``, 1024 NUMA nodes) and small
enough that the worst input is read in well under a second and a few MiB.
"""

from __future__ import annotations

from typing import Final

MAX_CPUS: Final = 16384
"""Host CPU ids are ``0 .. MAX_CPUS - 1`` (twice Linux's largest ``NR_CPUS``)."""
MAX_NUMA_NODES: Final = 1024
"""Host NUMA node (cell) ids are ``0 .. MAX_NUMA_NODES - 1`` (Linux's ``NODES_SHIFT=10``)."""
MAX_GUEST_VCPUS: Final = 4096
"""vCPUs of one guest (QEMU's largest ``maxcpus`` on x86_64 q35 with x2APIC)."""
MAX_GUEST_CELLS: Final = 128
"""Guest NUMA cells (``hw:numa_nodes``); QEMU accepts at most 128 NUMA nodes (``MAX_NODES``)."""
MAX_MEMORY_MIB: Final = 1 << 32
"""Memory of one host cell or one guest, in MiB (4 PiB)."""
MAX_PAGE_SIZE_KIB: Final = 16 * 1024 * 1024
"""The largest page size (16 GiB, POWER's largest huge page)."""
MAX_PAGE_COUNT: Final = 1 << 40
"""Pages in one pool (4 KiB pages of 4 PiB)."""
MAX_HOSTS: Final = 100_000
"""Hosts in one fleet or inventory."""
MAX_GUESTS_PER_HOST: Final = 10_000
"""Guests placed on one host of a fleet file."""
MAX_PCI_DEVICES: Final = 65_536
"""PCI functions of one host."""
MAX_ALLOCATION_RATIO: Final = 1000.0
"""The largest CPU or RAM over-commit ratio (a case's ``limits`` or ``--*-allocation-ratio``)."""

"""The counter guest: a 512-byte boot sector whose liveness can be proven from outside.

The boot sector (real mode, loaded by the BIOS at 0x7c00) is::

    31 C0           xor  ax, ax
    8E D8           mov  ds, ax
    66 FF 06 00 05  inc  dword [0x0500]
    EB F9           jmp  short -7        ; back to the inc

padded with zeros to 510 bytes and ended by the boot signature ``55 AA``. It sits at the start
of a 1.44 MB floppy image attached *read-only* (a read-only disk also lets libvirt migrate
without shared storage). Once it runs, the 32-bit word at guest-physical 0x500 changes all
the time; :func:`read_counter` reads it with the HMP command ``xp /1wx 0x500``. Under KVM it
counts fast enough to wrap around every few seconds: compare readings with
:func:`counter_delta`, which is modulo 2**32.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from numa_migrate.hypervisor.base import Domain, Hypervisor, HypervisorError
from numa_migrate.lab.errors import LabError

BOOT_CODE = bytes.fromhex("31C08ED866FF060005EBF9")
IDLE_BOOT_CODE = bytes.fromhex("31C08ED8FBF466FF060005EBF8")
"""The idle counter: ``sti``, then a loop of ``hlt`` / ``inc dword [0x500]``: the vCPU sleeps
until the next interrupt (the BIOS timer, 18.2 Hz), so the counter moves ~18 times a second
while the guest costs next to nothing. The multi-node lab uses it: its guests are emulated
inside an emulated VM, where a spinning guest takes a whole CPU of this machine (measured
there: 11 % of a CPU idle, against 83 % with the PIT at 1 kHz and 100 % spinning)."""
COUNTER_ADDRESS = 0x500
BOOT_ADDRESS = 0x7C00
FLOPPY_SIZE = 1_474_560  # 1.44 MB: 80 tracks x 2 heads x 18 sectors x 512 bytes
DOMAIN_TYPES = ("kvm", "qemu")


def boot_sector(*, idle: bool = False) -> bytes:
    """The 512-byte boot sector: the counting loop (the spinning one, or the idle one that
    counts timer interrupts), zeros, and ``55 AA`` at offset 510."""
    code = IDLE_BOOT_CODE if idle else BOOT_CODE
    return code + bytes(510 - len(code)) + b"\x55\xaa"


def floppy_image(*, idle: bool = False) -> bytes:
    """A 1.44 MB floppy image whose first sector is :func:`boot_sector`."""
    return boot_sector(idle=idle) + bytes(FLOPPY_SIZE - 512)


def write_floppy_image(path: Path, *, idle: bool = False) -> Path:
    """Write the floppy image to ``path`` (only when it is missing or different)."""
    data = floppy_image(idle=idle)
    try:
        if path.read_bytes() == data:
            return path
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


Cell = tuple[str | int, int]


def counter_guest_xml(
    name: str,
    *,
    image: Path | str,
    vcpus: int = 1,
    memory_mib: int = 64,
    vcpu_pins: Mapping[int, int | str] | None = None,
    emulator_pin: str | None = None,
    cells: Sequence[Cell] = (),
    nodeset: str | None = None,
    memnodes: Mapping[int, str] | None = None,
    hugepage_kib: int | None = None,
    domain_type: str = "kvm",
    vcpu_cpuset: str | None = None,
) -> str:
    """The domain XML of a counter guest.

    ``vcpu_pins`` maps vCPU ids to a host CPU or CPU list (``{0: 0, 1: "1"}``);
    ``emulator_pin`` is a CPU list for QEMU's other threads; ``cells`` are guest NUMA cells
    as (vCPU list, memory MiB), in cell-id order, whose memory must add up to
    ``memory_mib``; ``nodeset`` is the host NUMA nodes of ``<numatune><memory mode='strict'>``
    and ``memnodes`` maps guest cell ids to host nodes (``<memnode mode='strict'>``);
    ``hugepage_kib`` backs the guest with huge pages of that size; ``domain_type`` is
    ``"kvm"`` or ``"qemu"`` (TCG, when /dev/kvm cannot be used); ``vcpu_cpuset`` is the
    ``<vcpu cpuset>`` of a floating guest (the host CPUs its vCPUs may run on).
    """
    _check(
        name,
        vcpus=vcpus,
        memory_mib=memory_mib,
        vcpu_pins=vcpu_pins,
        cells=cells,
        memnodes=memnodes,
        hugepage_kib=hugepage_kib,
        domain_type=domain_type,
    )
    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(memory_mib)
    if hugepage_kib is not None:
        backing = ET.SubElement(dom, "memoryBacking")
        pages = ET.SubElement(backing, "hugepages")
        ET.SubElement(pages, "page", size=str(hugepage_kib), unit="KiB")
    vcpu_el = ET.SubElement(dom, "vcpu", placement="static")
    if vcpu_cpuset is not None:
        vcpu_el.set("cpuset", vcpu_cpuset)
    vcpu_el.text = str(vcpus)
    if vcpu_pins or emulator_pin:
        tune = ET.SubElement(dom, "cputune")
        for vcpu, cpus in sorted((vcpu_pins or {}).items()):
            ET.SubElement(tune, "vcpupin", vcpu=str(vcpu), cpuset=str(cpus))
        if emulator_pin:
            ET.SubElement(tune, "emulatorpin", cpuset=emulator_pin)
    if nodeset is not None or memnodes:
        numatune = ET.SubElement(dom, "numatune")
        if nodeset is not None:
            ET.SubElement(numatune, "memory", mode="strict", nodeset=nodeset)
        for cell_id, nodes in sorted((memnodes or {}).items()):
            ET.SubElement(numatune, "memnode", cellid=str(cell_id), mode="strict", nodeset=nodes)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "boot", dev="fd")
    if cells:
        # no CPU model: a custom model (qemu64) or host-passthrough is refused on nested KVM
        numa = ET.SubElement(ET.SubElement(dom, "cpu"), "numa")
        for cell_id, (cpus, mem) in enumerate(cells):
            ET.SubElement(
                numa, "cell", id=str(cell_id), cpus=str(cpus), memory=str(mem), unit="MiB"
            )
    clock = ET.SubElement(dom, "clock", offset="utc")
    # KVM's in-kernel PIT re-injects lost ticks by default, waiting for each tick's ack; on
    # nested KVM (PVM) an ack gets lost when the CPUs are busy and the BIOS then waits for a
    # timer tick forever. Dropping late ticks instead lets guests boot next to busy ones.
    ET.SubElement(clock, "timer", name="pit", tickpolicy="discard")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    disk = ET.SubElement(devices, "disk", type="file", device="floppy")
    ET.SubElement(disk, "driver", name="qemu", type="raw")
    ET.SubElement(disk, "source", file=str(image))
    ET.SubElement(disk, "target", dev="fda", bus="fdc")
    ET.SubElement(disk, "readonly")
    ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")
    ET.indent(dom, space="  ")
    return ET.tostring(dom, encoding="unicode") + "\n"


def _check(
    name: str,
    *,
    vcpus: int,
    memory_mib: int,
    vcpu_pins: Mapping[int, int | str] | None,
    cells: Sequence[Cell],
    memnodes: Mapping[int, str] | None,
    hugepage_kib: int | None,
    domain_type: str,
) -> None:
    def fail(message: str) -> LabError:
        return LabError(f"counter guest {name!r}: {message}")

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
        raise fail("the name may only use letters, digits and _ . + - (not first)")
    if domain_type not in DOMAIN_TYPES:
        raise fail(f"domain type {domain_type!r} is not 'kvm' or 'qemu' (TCG)")
    if vcpus < 1:
        raise fail(f"vcpus must be at least 1, not {vcpus}")
    if memory_mib < 1:
        raise fail(f"memory must be at least 1 MiB, not {memory_mib}")
    bad = sorted(v for v in (vcpu_pins or {}) if not 0 <= v < vcpus)
    if bad:
        raise fail(f"vcpu_pins names vCPU {bad[0]}, but the guest has vCPUs 0-{vcpus - 1}")
    if cells and sum(mem for _cpus, mem in cells) != memory_mib:
        total = sum(mem for _cpus, mem in cells)
        raise fail(f"the NUMA cells hold {total} MiB, the guest has {memory_mib} MiB")
    bad = sorted(c for c in (memnodes or {}) if not 0 <= c < len(cells))
    if bad:
        raise fail(f"memnodes names guest cell {bad[0]}, but the guest has {len(cells)} cells")
    if hugepage_kib is not None:
        if hugepage_kib <= 0:
            raise fail(f"hugepage size must be positive, not {hugepage_kib} KiB")
        for size in [memory_mib, *(mem for _cpus, mem in cells)]:
            if size * 1024 % hugepage_kib:
                raise fail(f"{size} MiB is not a whole number of {hugepage_kib} KiB pages")


_XP_RE = re.compile(r":\s*0x([0-9a-fA-F]+)")


def _hmp(dom: Domain, command: str) -> str:
    try:
        return dom.monitor_command(command)
    except HypervisorError as exc:
        raise LabError(f"HMP {command!r} on {dom.name()}: {exc.detail}") from None


def read_counter(dom: Domain) -> int:
    """The guest's counter: the 32-bit word at guest-physical 0x500 (``xp /1wx 0x500``)."""
    out = _hmp(dom, f"xp /1wx {COUNTER_ADDRESS:#x}")
    match = _XP_RE.search(out)
    if match is None:
        raise LabError(f"unexpected answer to 'xp /1wx 0x500' from {dom.name()}: {out!r}")
    return int(match.group(1), 16)


def boot_sector_loaded(dom: Domain) -> bool:
    """True once the BIOS has loaded a counter boot sector (either kind) at 0x7c00."""
    out = _hmp(dom, f"xp /{len(IDLE_BOOT_CODE)}xb {BOOT_ADDRESS:#x}")
    found = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})\b", out))
    return found == IDLE_BOOT_CODE or found[:len(BOOT_CODE)] == BOOT_CODE


def counter_delta(before: int, after: int) -> int:
    """How far the counter moved from ``before`` to ``after`` (it wraps at 2**32)."""
    return (after - before) % (1 << 32)


def wait_until_counting(dom: Domain, *, timeout: float = 60.0, interval: float = 0.1) -> int:
    """Wait until the boot sector runs and the counter moves; its latest value.

    A guest normally reaches the boot sector within about 4 s under KVM (nested) and 0.2 s
    under TCG; guests that spin next to it make that longer (they share two CPUs).
    Raises :class:`LabError` when it does not count within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    previous: int | None = None
    while True:
        if boot_sector_loaded(dom):
            value = read_counter(dom)
            if previous is not None and counter_delta(previous, value):
                return value
            previous = value
        if time.monotonic() >= deadline:
            state = "boot sector loaded" if previous is not None else "boot sector not loaded"
            raise LabError(
                f"the counter of {dom.name()} did not move within {timeout:.0f} s ({state})"
            )
        time.sleep(interval)


def remove_guest(conn: Hypervisor, name: str) -> bool:
    """Destroy and undefine ``name`` on ``conn`` if it is there; whether it was."""
    dom = conn.lookup(name)
    if dom is None:
        return False
    if dom.is_active():
        dom.destroy()
    if dom.is_persistent():
        dom.undefine()
    return True


def counter_advances(dom: Domain, *, samples: int = 3, interval: float = 0.5) -> bool:
    """True when every one of ``samples`` successive readings differs from the one before
    (0.5 s apart: the idle counter moves ~9 times in that time, the spinning one millions)."""
    value = read_counter(dom)
    for _ in range(samples):
        time.sleep(interval)
        nxt = read_counter(dom)
        if not counter_delta(value, nxt):
            return False
        value = nxt
    return True


def pinned_numa_guest_xml(name: str, *, image: Path | str, cpu: int = 0,
                          hugepage_kib: int | None = None, domain_type: str = "kvm") -> str:
    """The migration tests' guest: 1 vCPU and its emulator threads pinned to ``cpu``, one
    64 MiB guest NUMA cell bound strictly to host node 0, on huge pages when given."""
    return counter_guest_xml(name, image=image, vcpus=1, memory_mib=64,
                             vcpu_pins={0: cpu}, emulator_pin=str(cpu), cells=[("0", 64)],
                             nodeset="0", memnodes={0: "0"}, hugepage_kib=hugepage_kib,
                             domain_type=domain_type)


"""The real lab: two libvirtd daemons, a counter guest, a real live migration, a clean ``down``.

Everything here runs against real daemons and a real QEMU (KVM, or TCG without /dev/kvm);
nothing is simulated. The tests run in file order; the last one takes the lab down and
checks that nothing is left (it brings the lab back up if later tests need it).
"""

from __future__ import annotations

import json
import os
import signal
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from numa_migrate.cli.main import cli
from numa_migrate.hypervisor.libvirt import LibvirtHypervisor, connection, lv
from numa_migrate.lab import (
    DST,
    HOST_NAMES,
    SRC,
    Lab,
    counter_advances,
    counter_guest_xml,
    lab_mounts,
    processes,
    read_counter,
    wait_until_counting,
)
from numa_migrate.lab import daemons as daemons_module
from numa_migrate.lab import hugepages as pool
from numa_migrate.lab.daemons import configured_host_uuid, running_pid
from numa_migrate.lab.kvm import choose_accelerator, probe_kvm
from numa_migrate.lab.layout import HUGETLBFS_SOURCE
from tests.e2e.conftest import LAB_HUGEPAGES, LabSession, require_lab

pytestmark = pytest.mark.lab

GUEST = "e2e-counter"
GUEST_MIB = 64
SRC_PINS = {0: 0, 1: 1}
SRC_EMULATOR = "0-1"
DST_PINS = {0: 1, 1: 0}
DST_EMULATOR = "1"


def _lv() -> Any:
    return lv()


def _caps_uuid(conn: LibvirtHypervisor) -> str:
    return str(ET.fromstring(conn.capabilities()).findtext("./host/uuid"))


def test_up_is_idempotent(lab_env: LabSession, lab: Lab) -> None:
    first = lab_env.first_status
    assert first.up, first
    again = lab.up(hugepages=LAB_HUGEPAGES)
    assert again.up
    for name in HOST_NAMES:
        assert again.host(name).pid == first.host(name).pid, "a second up must reuse the daemon"
        assert again.host(name).host_uuid == first.host(name).host_uuid
    assert again.hugepages.pool_before == first.hugepages.pool_before
    assert again.hugepages.reserved == first.hugepages.reserved
    assert lab_env.up_seconds < 40, f"up took {lab_env.up_seconds:.1f} s"


def test_up_replaces_a_crashed_daemon(lab: Lab) -> None:
    """A daemon killed with SIGKILL leaves a stale pid file; up starts a new daemon, which
    reconnects to the guest the old one left running (as after a crash on a real host)."""
    host = lab.host(DST)
    old = running_pid(host)
    assert old is not None
    uuid_before = configured_host_uuid(host)
    with connection(lab.uri(DST)) as conn:
        xml = counter_guest_xml("e2e-survivor", image=lab.counter_image,
                                domain_type=lab.domain_type())
        conn.conn.createXML(xml, 0)
    qemu = int(host.qemu_pid_file("e2e-survivor").read_text())
    os.kill(old, signal.SIGKILL)
    assert _wait_dead(old)
    assert host.pid_file.exists(), "the killed daemon's pid file stays behind (stale)"
    assert not lab.status().host(DST).running
    assert processes.is_alive(qemu), "killing libvirtd does not kill its guests"

    status = lab.up()

    new = status.host(DST)
    assert new.running and new.pid not in (None, old)
    assert new.host_uuid == uuid_before, "the host keeps its UUID across a restart"
    assert status.host(SRC).pid == running_pid(lab.host(SRC))
    with connection(lab.uri(DST)) as conn:
        dom = conn.lookup("e2e-survivor")
        assert dom is not None and dom.is_active()
        assert int(host.qemu_pid_file("e2e-survivor").read_text()) == qemu
        read_counter(dom)  # the new daemon talks to the old QEMU's monitor
        dom.destroy()
    assert _wait_dead(qemu)


def test_hosts_are_distinct_daemons(lab: Lab) -> None:
    with connection(lab.uri(SRC)) as src, connection(lab.uri(DST)) as dst:
        src_uuid, dst_uuid = _caps_uuid(src), _caps_uuid(dst)
        assert src_uuid != dst_uuid
        assert src_uuid == configured_host_uuid(lab.host(SRC))
        assert dst_uuid == configured_host_uuid(lab.host(DST))
        assert src.hostname() == SRC and dst.hostname() == DST
        # private state: a domain defined on one daemon does not exist on the other
        probe = counter_guest_xml(
            "e2e-private", image=lab.counter_image, domain_type=lab.domain_type()
        )
        dom = src.define(probe)
        try:
            assert "e2e-private" not in [d.name for d in dst.domains()]
        finally:
            dom.undefine()
    src_pid, dst_pid = running_pid(lab.host(SRC)), running_pid(lab.host(DST))
    assert src_pid and dst_pid
    own = processes.mount_ns("self")
    namespaces = {processes.mount_ns(src_pid), processes.mount_ns(dst_pid)}
    assert own not in namespaces and len(namespaces) == 2


def test_status_is_correct(lab_env: LabSession, lab: Lab) -> None:
    status = lab.status()
    assert status.up
    inventory = tomllib.loads(lab.inventory_path.read_text())
    assert {n: h["uri"] for n, h in inventory["hosts"].items()} == lab.uris == status.uris
    # guests use KVM when /dev/kvm works (unless NUMA_MIGRATE_LAB_VIRT=qemu forces TCG) ...
    assert status.domain_type == choose_accelerator().domain_type
    offered = "kvm" if probe_kvm() is None else "qemu"
    for host in status.hosts:
        assert host.pid == running_pid(lab.host(host.name))
        assert host.uri == f"qemu+unix:///system?socket={lab.host(host.name).socket}"
        assert host.virt_type == offered  # ... and each daemon offers KVM exactly then
        with connection(host.uri) as conn:
            assert host.domains == len(conn.conn.listAllDomains(0))
            assert host.running_domains == conn.conn.numOfDomains()
    now = pool.read_pool()
    assert status.hugepages.requested == LAB_HUGEPAGES
    if now is not None and lab_env.pool_before is not None:
        if status.hugepages.note is None:
            assert status.hugepages.reserved == LAB_HUGEPAGES
        if not _other_labs_running(lab):  # else they may change the shared pool meanwhile
            assert status.hugepages.pool_now == now
            assert status.hugepages.pool_before == lab_env.pool_before
            assert status.hugepages.reserved == now - lab_env.pool_before
            for host in status.hosts:  # both daemons see the one kernel pool
                assert host.hugepages_total == now
    # the command line reports the same, as JSON on stdout
    result = CliRunner().invoke(cli, ["lab", "status", "--json"], env={
        "NUMA_MIGRATE_LAB_DIR": str(lab.lab_dir)})
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["up"] is True
    assert [(h["name"], h["pid"], h["uri"]) for h in doc["hosts"]] == [
        (h.name, h.pid, h.uri) for h in status.hosts
    ]


@dataclass(frozen=True)
class BootedGuest:
    name: str
    hugepage_kib: int | None
    boot_seconds: float


def _uses_hugepages(lab: Lab) -> bool:
    """Huge pages for the guest when the pool can hold it on both sides of a migration."""
    free = lab.status().host(SRC).hugepages_free
    return free is not None and free * 2 >= 2 * GUEST_MIB


@pytest.fixture(scope="module")
def booted_guest(lab_session: LabSession | str) -> Iterator[BootedGuest]:
    """The counter guest, pinned and with two guest NUMA cells, counting on lab-src."""
    lab = require_lab(lab_session).lab
    page = 2048 if _uses_hugepages(lab) else None
    xml = counter_guest_xml(
        GUEST,
        image=lab.counter_image,
        vcpus=2,
        memory_mib=GUEST_MIB,
        vcpu_pins=SRC_PINS,
        emulator_pin=SRC_EMULATOR,
        cells=[("0", GUEST_MIB // 2), ("1", GUEST_MIB // 2)],
        nodeset="0",
        memnodes={0: "0", 1: "0"},
        hugepage_kib=page,
        domain_type=lab.domain_type(),
    )
    with connection(lab.uri(SRC)) as conn:
        dom = conn.define(xml)
        started = time.monotonic()
        dom.start()
        wait_until_counting(dom, timeout=45)
        took = time.monotonic() - started
    yield BootedGuest(GUEST, page, took)
    for host in HOST_NAMES:  # wherever it ended up
        if not lab.status().host(host).running:
            continue
        with connection(lab.uri(host)) as conn:
            left = conn.lookup(GUEST)
            if left is not None:
                if left.is_active():
                    left.destroy()
                if left.is_persistent():
                    left.undefine()


def test_counter_guest_boots_pinned_on_src(lab: Lab, booted_guest: BootedGuest) -> None:
    with connection(lab.uri(SRC)) as conn:
        dom = conn.lookup(booted_guest.name)
        assert dom is not None and counter_advances(dom)
        live = ET.fromstring(dom.xml())
    assert [c.get("cpus") for c in live.iterfind("./cpu/numa/cell")] == ["0", "1"]
    assert live.find("./numatune/memory").get("nodeset") == "0"  # type: ignore[union-attr]
    if booted_guest.hugepage_kib:
        assert live.find("./memoryBacking/hugepages/page") is not None
    affinity = lab.affinity(SRC, booted_guest.name)
    assert affinity.vcpus == {v: frozenset({c}) for v, c in SRC_PINS.items()}
    assert affinity.main.cpus == frozenset({0, 1})
    assert affinity.accelerator == ("KVM" if lab.domain_type() == "kvm" else "TCG")


def _repin(xml: str, pins: dict[int, int], emulator: str) -> str:
    root = ET.fromstring(xml)
    tune = root.find("cputune")
    assert tune is not None
    for pin in tune.findall("vcpupin"):
        pin.set("cpuset", str(pins[int(pin.get("vcpu", "-1"))]))
    emulatorpin = tune.find("emulatorpin")
    assert emulatorpin is not None
    emulatorpin.set("cpuset", emulator)
    return ET.tostring(root, encoding="unicode")


def _pins_of(xml: str) -> tuple[dict[int, str], str | None]:
    tune = ET.fromstring(xml).find("cputune")
    assert tune is not None
    pins = {int(p.get("vcpu", "-1")): p.get("cpuset", "") for p in tune.iterfind("vcpupin")}
    emulator = tune.find("emulatorpin")
    return pins, None if emulator is None else emulator.get("cpuset")


def test_migrate3_to_dst_with_new_pins(lab: Lab, booted_guest: BootedGuest) -> None:
    lv = _lv()
    with connection(lab.uri(SRC)) as src, connection(lab.uri(DST)) as dst:
        # libvirt's own migrate3 on the raw handles: the lab works without numa-migrate
        dom = src.conn.lookupByName(booted_guest.name)
        src_qemu = int(lab.host(SRC).qemu_pid_file(booted_guest.name).read_text())
        counted = src.lookup(booted_guest.name)
        assert counted is not None
        before = read_counter(counted)
        flags = lv.VIR_DOMAIN_XML_MIGRATABLE | lv.VIR_DOMAIN_XML_SECURE
        params = {
            lv.VIR_MIGRATE_PARAM_DEST_XML: _repin(dom.XMLDesc(flags), DST_PINS, DST_EMULATOR),
            lv.VIR_MIGRATE_PARAM_PERSIST_XML: _repin(
                dom.XMLDesc(flags | lv.VIR_DOMAIN_XML_INACTIVE), DST_PINS, DST_EMULATOR
            ),
            lv.VIR_MIGRATE_PARAM_URI: "tcp://127.0.0.1",
            lv.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: "127.0.0.1",
        }
        started = time.monotonic()
        moved = dom.migrate3(
            dst.conn,
            params,
            lv.VIR_MIGRATE_LIVE | lv.VIR_MIGRATE_PERSIST_DEST | lv.VIR_MIGRATE_UNDEFINE_SOURCE,
        )
        took = time.monotonic() - started
        assert took < 30
        # the guest lives on, on the destination only
        assert moved.isActive() and moved.isPersistent()
        arrived = dst.lookup(booted_guest.name)
        assert arrived is not None
        after = read_counter(arrived)
        assert after != before
        assert counter_advances(arrived)
        assert booted_guest.name not in [d.name() for d in src.conn.listAllDomains(0)]
        assert _wait_dead(src_qemu)
        # the new pins are in the live and the persistent XML ...
        want = ({v: str(c) for v, c in DST_PINS.items()}, DST_EMULATOR)
        assert _pins_of(moved.XMLDesc(0)) == want
        assert _pins_of(moved.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE)) == want
    # ... and in the real affinity of the destination QEMU's threads
    affinity = lab.affinity(DST, booted_guest.name)
    assert affinity.pid != src_qemu
    assert affinity.vcpus == {v: frozenset({c}) for v, c in DST_PINS.items()}
    assert affinity.main.cpus == frozenset({1})


def _wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while processes.is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _other_labs_running(lab: Lab) -> bool:
    """True when libvirtd daemons of other labs (other test sessions) run on this machine."""
    for pid in processes.all_pids():
        args = processes.cmdline(pid)
        if (
            args
            and Path(args[0]).name == "libvirtd"
            and processes.is_alive(pid)
            and not any(a.startswith(f"{lab.lab_dir}/") for a in args)
        ):
            return True
    return False


def _lab_processes(lab_dir: Path) -> list[tuple[int, str]]:
    """Live processes whose command line names the lab directory (daemons, QEMUs)."""
    found = []
    for pid in processes.all_pids():
        args = processes.cmdline(pid)
        if processes.is_alive(pid) and any(f"{lab_dir}/" in a for a in args):
            found.append((pid, " ".join(args)[:120]))
    return found


def test_down_cleans_everything(lab_env: LabSession, lab: Lab) -> None:
    # a guest left running on each host: down must stop their QEMUs too
    for host in HOST_NAMES:
        with connection(lab.uri(host)) as conn:
            xml = counter_guest_xml(
                f"e2e-left-{host}", image=lab.counter_image, domain_type=lab.domain_type()
            )
            conn.conn.createXML(xml, 0)
    daemons = [running_pid(lab.host(h)) for h in HOST_NAMES]
    qemus = [int(lab.host(h).qemu_pid_file(f"e2e-left-{h}").read_text()) for h in HOST_NAMES]
    assert all(daemons) and all(map(processes.is_alive, qemus))
    for host, qemu in zip(HOST_NAMES, qemus, strict=True):  # what down will look for
        assert {running_pid(lab.host(host)), qemu} <= daemons_module.lab_processes(lab.host(host))

    reserved = lab.status().hugepages.reserved
    pool_before_down = pool.read_pool()
    others = _other_labs_running(lab)

    report = lab.down()

    assert set(daemons) | set(qemus) <= set(report.stopped)
    assert not [p for p in [*daemons, *qemus] if p and processes.is_alive(p)]
    assert _lab_processes(lab.lab_dir) == []
    # no process is left in a namespace of the lab (none sees its private /run/libvirt)
    assert [
        pid
        for pid in processes.all_pids()
        for h in HOST_NAMES
        if processes.is_alive(pid) and daemons_module.belongs_to(pid, lab.host(h))
    ] == []
    mount_points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    assert not [m for m in mount_points if m.startswith(f"{lab.lab_dir}/")]
    assert HUGETLBFS_SOURCE not in Path("/proc/mounts").read_text()
    assert lab_mounts(lab.lab_dir) == []
    # down gives back exactly what the lab added: the pool is as before the lab's up
    # (when other labs run meanwhile, they may have changed the pool too)
    if pool_before_down is not None and reserved:
        if others:
            assert report.hugepages_restored_to == pool_before_down - reserved
        else:
            assert pool.read_pool() == report.hugepages_restored_to == lab_env.pool_before
    elif not others:
        assert pool.read_pool() == lab_env.pool_before
    assert not lab.lab_dir.exists()
    assert not lab.status().up
    assert lab.down().stopped == ()  # a second down finds nothing to do

    # normally the last test of the session (see conftest); if not, later tests bring the
    # lab back up through the lab_env fixture

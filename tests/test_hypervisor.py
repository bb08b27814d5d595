"""The hypervisor seam: the in-memory implementation, the libvirt one against libvirt's
test:///default driver, the migration engine's paths on in-memory hosts, and a guard that no
module but hypervisor/libvirt.py calls libvirt-python."""

from __future__ import annotations

import getpass
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.claims import ClaimStore
from numa_migrate.core.request import Flavor
from numa_migrate.hypervisor.base import (
    DomainState,
    Hypervisor,
    HypervisorError,
    JobProgress,
    JobStats,
    MigrateOptions,
    NoDomainError,
)
from numa_migrate.hypervisor.memory import MemoryHost
from numa_migrate.lab.flavored import FlavoredGuest, flavored_guest
from numa_migrate.migrate.recovery import recover
from numa_migrate.migrate.run import (
    HostRef,
    Migration,
    MigrationFailed,
    Outcome,
    cleanup_after_failed_migration,
)

ROOT = Path(__file__).resolve().parent.parent
XML = Path(__file__).parent / "fixtures" / "xml"
CAPS = (XML / "caps-2s-intel-smt.xml").read_text()

# --------------------------------------------------------------------------- the guard

RAW_LIBVIRT = re.compile(
    r"^\s*(import\s+libvirt\b|from\s+libvirt\b|import\s+libvirt_qemu\b)"
    r"|\blibvirt\.open\w*\(|import_module\(\s*['\"]libvirt|\blibvirtError\b",
    re.MULTILINE,
)


def test_only_the_libvirt_implementation_calls_libvirt() -> None:
    the_one = ROOT / "src" / "numa_migrate" / "hypervisor" / "libvirt.py"
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for folder in (ROOT / "src", ROOT / "bench")
        for path in sorted(folder.rglob("*.py")) if path != the_one
        for match in RAW_LIBVIRT.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    assert RAW_LIBVIRT.search(the_one.read_text(encoding="utf-8")), "the guard sees imports"


def test_the_guard_catches_raw_calls() -> None:
    for line in ("import libvirt", "    import libvirt_qemu", "from libvirt import open",
                 "conn = libvirt.open(uri)", 'importlib.import_module("libvirt")',
                 "except lib.libvirtError:"):
        assert RAW_LIBVIRT.search(line), line
    for line in ("# libvirt's driver", "from numa_migrate.hypervisor.libvirt import connect"):
        assert not RAW_LIBVIRT.search(line), line


# --------------------------------------------------------------------------- in-memory


def guest_xml(name: str = "g1") -> str:
    host = host_from_capabilities(CAPS, name="src")
    guest = flavored_guest(name, Flavor(2, 128, {"hw:cpu_policy": "dedicated"}), host,
                           image="/x.img")
    assert isinstance(guest, FlavoredGuest)
    return guest.xml


def pair() -> tuple[MemoryHost, MemoryHost]:
    return MemoryHost("src", CAPS), MemoryHost("dst", CAPS)


def test_memory_domain_life_cycle() -> None:
    host = MemoryHost("h", CAPS)
    dom = host.define(guest_xml())
    assert dom.status().state is DomainState.SHUTOFF and not dom.is_active()
    dom.start()
    assert str(dom.status()) == "running (reason 1)" and dom.is_persistent()
    uuid = dom.uuid()
    assert host.lookup("g1") is not None and host.lookup(uuid) is not None
    assert host.lookup("nope") is None
    assert [(d.name, d.active) for d in host.domains()] == [("g1", True)]
    with pytest.raises(HypervisorError, match="cannot resume g1: domain is running"):
        dom.resume()
    dom.destroy()
    assert dom.status().state is DomainState.SHUTOFF
    dom.undefine()
    assert host.lookup("g1") is None
    with pytest.raises(NoDomainError, match=f"host h: no domain {uuid}"):
        dom.xml()


def test_memory_transient_domain_goes_when_destroyed() -> None:
    host = MemoryHost("h", CAPS)
    dom = host.add(guest_xml(), persistent=False)
    assert dom.persistent_xml() is None
    dom.destroy()
    assert host.domains() == []


def test_memory_migrate_moves_the_domain_with_the_given_xml() -> None:
    src, dst = pair()
    dom = src.add(guest_xml())
    live = dom.xml().replace("<vcpupin vcpu=\"0\" cpuset=\"", "<vcpupin vcpu=\"0\" cpuset=\"3")
    moved, result = src.migrate(dom, dst, live_xml=live, persistent_xml=None,
                                options=MigrateOptions())
    assert src.domains() == [] and moved.host == "dst"
    assert moved.xml() == live and moved.persistent_xml() == live
    assert moved.status().state is DomainState.RUNNING
    assert result.downtime_ms == 1 and result.data_transferred == len(live)
    assert not result.post_copy


def test_memory_injected_failure_happens_once_and_names_the_host() -> None:
    src, dst = pair()
    dom = src.add(guest_xml())
    src.fail("migrate", "connection reset")
    with pytest.raises(HypervisorError) as info:
        src.migrate(dom, dst, live_xml=dom.xml(), persistent_xml=None, options=MigrateOptions())
    assert str(info.value) == "host src: migration of g1 to dst failed: connection reset"
    assert not info.value.post_copy_started
    assert [d.name for d in src.domains()] == ["g1"] and dst.domains() == []
    moved, _ = src.migrate(dom, dst, live_xml=dom.xml(), persistent_xml=None,
                           options=MigrateOptions())
    assert moved.name() == "g1" and src.domains() == []


def test_memory_failure_only_for_the_domain_named() -> None:
    host = MemoryHost("h", CAPS)
    one, two = host.add(guest_xml("one")), host.add(guest_xml("two"))
    host.fail("destroy", "busy", domain="two", times=2)
    one.destroy()
    for _ in range(2):
        with pytest.raises(HypervisorError, match="host h: destroy failed: busy"):
            two.destroy()
    two.destroy()
    assert host.calls.count("destroy two") == 3


def test_progress_and_the_post_copy_switch_are_reported() -> None:
    src, dst = pair()
    dom = src.add(guest_xml())
    src.job = JobStats(True, {"data_total": 100, "data_processed": 40, "memory_iteration": 2})
    src.on_transfer = lambda: time.sleep(0.2)  # the poller sees the job meanwhile
    seen: list[JobProgress] = []
    switched: list[bool] = []
    _moved, result = src.migrate(
        dom, dst, live_xml=dom.xml(), persistent_xml=None,
        options=MigrateOptions(post_copy=True), on_progress=seen.append, poll_s=0.01,
        on_post_copy=lambda: switched.append(True))
    assert seen and seen[0].data_total == 100 and seen[0].data_processed == 40
    assert switched == [True] and result.post_copy
    assert src.calls.count("start_post_copy g1") == 1


def test_a_failure_after_the_post_copy_switch_says_so() -> None:
    src, dst = pair()
    dom = src.add(guest_xml())
    src.job = JobStats(True, {"data_processed": 1, "memory_iteration": 3})
    src.on_transfer = lambda: time.sleep(0.2)
    src.fail("migrate", "link down")
    with pytest.raises(HypervisorError, match="failed after the switch to post-copy: link "
                       "down") as info:
        src.migrate(dom, dst, live_xml=dom.xml(), persistent_xml=None,
                    options=MigrateOptions(post_copy=True), poll_s=0.01)
    assert info.value.post_copy_started


def test_no_switch_without_post_copy_or_before_ram_moves() -> None:
    src, dst = pair()
    dom = src.add(guest_xml())
    src.job = JobStats(True, {"data_processed": 0, "memory_iteration": 5})
    src.on_transfer = lambda: time.sleep(0.1)
    _m, result = src.migrate(dom, dst, live_xml=dom.xml(), persistent_xml=None,
                             options=MigrateOptions(post_copy=True), poll_s=0.01)
    assert not result.post_copy and "start_post_copy g1" not in src.calls


# --------------------------------------------------------------------------- the engine


def migration(tmp_path: Path, src: MemoryHost, dst: MemoryHost, **kw: Any) -> Migration:
    hosts = {"src": src, "dst": dst}
    store = ClaimStore.open(f"sqlite:///{tmp_path / 'claims.db'}")
    return Migration(store=store, source=HostRef("src", src.uri),
                     destination=HostRef("dst", dst.uri), domain="g1",
                     read_host=lambda _c, ref: host_from_capabilities(CAPS, name=ref.name),
                     connect=lambda ref: hosts[ref.name], **kw)


def pins(xml: str | None) -> dict[int, frozenset[int]]:
    assert xml is not None
    return dict(domain_from_xml(xml).vcpupin)


def test_engine_migrates_through_the_seam(tmp_path: Path) -> None:
    src, dst = pair()
    src.add(guest_xml())
    job = migration(tmp_path, src, dst)
    outcome = job.run()
    assert isinstance(outcome, Outcome)
    assert src.domains() == []
    [moved] = dst.domains()
    assert moved.name == "g1" and moved.active
    # the destination got the plan's XML, live and persistent
    plan = outcome.plan
    assert pins(moved.xml) == pins(plan.live_xml)
    assert pins(moved.persistent_xml) == pins(plan.persistent_xml)
    phases = [e.phase for e in job.store.journal_entries(outcome.migration_id)]
    assert phases == ["planned", "claimed", "migrating", "migrated", "done"]
    assert [c for c in job.store.list_claims() if c.state.live] == []
    job.store.close()


def test_engine_rolls_back_a_failed_migration(tmp_path: Path) -> None:
    src, dst = pair()
    src.add(guest_xml())
    src.fail("migrate", "connection reset")
    job = migration(tmp_path, src, dst)
    with pytest.raises(MigrationFailed, match=r"g1 was not migrated to dst: host src: migration "
                       r"of g1 to dst failed: connection reset\. The guest on src is running"):
        job.run()
    [guest] = src.domains()
    assert guest.active and dst.domains() == []
    assert [c for c in job.store.list_claims() if c.state.live] == []
    [entry] = [e for e in job.store.journal_entries(job.migration_id)
               if e.phase == "rolled_back"]
    assert "connection reset" in entry.payload["error"]
    job.store.close()


def test_engine_refuses_a_guest_that_is_not_running(tmp_path: Path) -> None:
    src, dst = pair()
    src.add(guest_xml(), state=DomainState.PAUSED)
    job = migration(tmp_path, src, dst)
    with pytest.raises(MigrationFailed, match=r"not running on src \(paused \(reason 1\)\)"):
        job.run()
    assert dst.domains() == [] and "migrate g1" not in src.calls
    job.store.close()


def test_engine_refuses_a_stale_copy_on_the_destination(tmp_path: Path) -> None:
    src, dst = pair()
    xml = guest_xml()
    src.add(xml)
    dst.add(xml, state=DomainState.SHUTOFF)
    job = migration(tmp_path, src, dst)
    with pytest.raises(MigrationFailed, match=r"dst already has a domain with the UUID of g1 "
                       r"\(shut off \(reason 0\)\)"):
        job.run()
    job.store.close()


def test_cleanup_resumes_the_source_and_removes_the_leftover() -> None:
    src, dst = pair()
    xml = guest_xml()
    uuid = src.add(xml, state=DomainState.PAUSED).uuid()
    dst.add(xml, state=DomainState.PAUSED)  # the half-migrated incoming copy
    notes = cleanup_after_failed_migration(src, dst, uuid, "src", "dst")
    assert notes == ["resumed the paused guest on src",
                     "destroyed the half-migrated copy on dst",
                     "removed the stale definition on dst"]
    assert src.domains()[0].active and dst.domains() == []


def test_cleanup_says_what_it_could_not_do() -> None:
    src, dst = pair()
    uuid = src.add(guest_xml(), state=DomainState.PAUSED).uuid()
    src.fail("resume", "device busy")
    assert cleanup_after_failed_migration(src, dst, uuid, "src", "dst") == [
        "could not resume the guest on src: device busy"]


class Killed(BaseException):
    """Stands for kill -9 of the migrating process (nothing after it runs)."""


def _interrupted(tmp_path: Path, *, moved: bool) -> tuple[Migration, MemoryHost, MemoryHost]:
    """A migration whose process 'died' in the transfer, before (or after) the guest moved;
    its owner is a process that no longer exists."""
    src, dst = pair()
    src.add(guest_xml())

    def dying_transfer(dom: Any, dest: Hypervisor, **kw: Any) -> Any:
        if moved:
            src.migrate(dom, dest, **kw)
        raise Killed

    job = migration(tmp_path, src, dst, transfer=dying_transfer,
                    owner=f"{getpass.getuser()}@{socket.gethostname()}/999999999")
    with pytest.raises(Killed):
        job.run()
    return job, src, dst


def test_recovery_completes_a_migration_whose_guest_moved(tmp_path: Path) -> None:
    job, src, dst = _interrupted(tmp_path, moved=True)
    hosts = {"src": src, "dst": dst}
    [report] = recover(job.store, connect=lambda ref: hosts[ref.name])
    assert report.outcome == "completed", report
    assert src.domains() == [] and [d.name for d in dst.domains()] == ["g1"]
    assert [c for c in job.store.list_claims() if c.state.live] == []
    job.store.close()


def test_recovery_rolls_back_a_migration_whose_guest_stayed(tmp_path: Path) -> None:
    job, src, dst = _interrupted(tmp_path, moved=False)
    hosts = {"src": src, "dst": dst}
    [report] = recover(job.store, connect=lambda ref: hosts[ref.name])
    assert report.outcome == "rolled back", report
    assert [d.name for d in src.domains()] == ["g1"] and dst.domains() == []
    assert [c for c in job.store.list_claims() if c.state.live] == []
    job.store.close()


def test_recovery_waits_when_a_host_cannot_be_reached(tmp_path: Path) -> None:
    job, src, _dst = _interrupted(tmp_path, moved=False)

    def unreachable(ref: HostRef) -> Hypervisor:
        if ref.name == "dst":
            raise HypervisorError(f"host dst: cannot connect to {ref.uri}: refused")
        return src

    [report] = recover(job.store, connect=unreachable)
    assert report.outcome == "skipped" and "cannot connect" in report.detail
    assert [c for c in job.store.list_claims() if c.state.live] != []  # left for later
    job.store.close()


# --------------------------------------------------------------------------- libvirt

URI = "test:///default"


@pytest.fixture
def hv() -> Any:
    pytest.importorskip("libvirt")
    from numa_migrate.hypervisor.libvirt import connect

    conn = connect(URI, "t")
    yield conn
    for name in ("nm-seam", "nm-seam-2"):
        dom = conn.lookup(name)
        if dom is not None:
            if dom.is_active():
                dom.destroy()
            if dom.is_persistent():
                dom.undefine()
    conn.close()


def seam_xml(name: str = "nm-seam") -> str:
    return (f"<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory>"
            "<vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' "
            "cpuset='3'/></cputune><os><type>hvm</type></os></domain>")


def test_libvirt_reads_the_host(hv: Any) -> None:
    assert hv.name == "t" and hv.uri == URI and hv.driver() == "TEST"
    topology = host_from_capabilities(hv.capabilities(), name="t")
    assert len(topology.cells) == 2
    versions = hv.versions()
    assert versions.libvirt >= (6, 0, 0) and all(isinstance(v, int) for v in versions.hypervisor)
    assert hv.hostname()
    assert hv.pci_devices() == []
    assert hv.free_pages(2048, 0) is None  # the test driver gives no counts


def test_libvirt_domain_life_cycle(hv: Any) -> None:
    dom = hv.define(seam_xml())
    assert dom.status().state is DomainState.SHUTOFF and dom.is_persistent()
    dom.start()
    assert dom.status().state is DomainState.RUNNING and dom.is_active()
    assert hv.lookup(dom.uuid()).name() == "nm-seam"
    assert dom.vcpu_affinity() == {0: frozenset({2}), 1: frozenset({3})}
    assert "<name>nm-seam</name>" in dom.migratable_xml()
    assert "<name>nm-seam</name>" in (dom.persistent_xml() or "")
    listed = {d.name: d for d in hv.domains()}
    assert listed["nm-seam"].active and listed["nm-seam"].persistent_xml is not None
    dom.destroy()
    assert dom.status().state is DomainState.SHUTOFF
    dom.undefine()
    assert hv.lookup("nm-seam") is None
    with pytest.raises(NoDomainError, match=r"^host t: cannot read the XML of "):
        dom.xml()


def test_libvirt_errors_are_one_line_naming_host_and_step(hv: Any) -> None:
    dom = hv.define(seam_xml())
    dom.start()
    with pytest.raises(HypervisorError) as info:
        dom.monitor_command("info status")
    message = str(info.value)
    assert message.startswith("host t: cannot run the monitor command 'info status' on nm-seam:")
    assert "\n" not in message
    with pytest.raises(HypervisorError, match=r"^host t: cannot start nm-seam: "):
        dom.start()  # already running


def test_libvirt_migrate_failure_is_our_error(hv: Any) -> None:
    from numa_migrate.hypervisor.libvirt import connect

    dom = hv.define(seam_xml())
    dom.start()
    other = connect(URI, "t2")
    try:
        with pytest.raises(HypervisorError, match=r"^host t: migration of nm-seam to t2 failed: "):
            hv.migrate(dom, other, live_xml=dom.migratable_xml(), persistent_xml=None,
                       options=MigrateOptions())
    finally:
        other.close()
    assert dom.is_active()


def test_libvirt_thread_affinity_needs_qemu(hv: Any) -> None:
    dom = hv.define(seam_xml())
    affinity, reason = hv.thread_affinity(dom)
    assert affinity is None and "TEST driver" in reason


@pytest.mark.parametrize("uri", ["test:///nonexistent/numa-migrate.xml",
                                 "qemu+unix:///system?socket=/nonexistent/numa-migrate-sock"])
def test_libvirt_unreachable_host_is_one_clear_line(uri: str) -> None:
    pytest.importorskip("libvirt")
    from numa_migrate.hypervisor.libvirt import connect

    with pytest.raises(HypervisorError) as info:
        connect(uri, "cmp-9")
    assert str(info.value).startswith(f"host cmp-9: cannot connect to {uri}: ")
    assert "\n" not in str(info.value)


def test_missing_libvirt_python_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from numa_migrate.hypervisor import libvirt as impl

    def refuse(name: str) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(impl.importlib, "import_module", refuse)
    with pytest.raises(HypervisorError) as info:
        impl.connect(URI, "t")
    message = str(info.value)
    assert message.startswith("`import libvirt` failed (No module named 'libvirt'): "
                              "libvirt-python is not installed; run ")
    assert "\n" not in message and info.value.detail.startswith("`import libvirt` failed")

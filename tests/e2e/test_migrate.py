"""`numa-migrate migrate` and `recover` on the real two-daemon lab, with a real QEMU guest.

Everything here runs for real: two libvirtd daemons, a KVM (or TCG) counter guest whose
counter must keep advancing, libvirt migrate3, the SQLite claims store, /proc affinity.
The lab machine has one host NUMA node and two CPUs, so the hosts are told apart by their
Nova-style CPU sets: lab-src may pin on CPUs 0-1, lab-dst only on CPU 1 (CPU 0 shared):
a guest pinned to CPU 0 must come out pinned to CPU 1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.claims import ClaimStore
from numa_migrate.claims.journal import Journal
from numa_migrate.core.migration.journal import PostCopyEntry
from numa_migrate.core.model.host import HostTopology
from numa_migrate.hypervisor.base import MigrateOptions
from numa_migrate.hypervisor.libvirt import LibvirtHypervisor, connect
from numa_migrate.lab import Lab, counter_advances, counter_guest_xml, wait_until_counting
from numa_migrate.lab.guest import pinned_numa_guest_xml, remove_guest
from numa_migrate.migrate.run import HostRef, Migration, MigrationFailed
from tests.e2e.conftest import LabSession

pytestmark = pytest.mark.lab
GUEST = "nm-e2e"
SRC, DST = "lab-src", "lab-dst"
ROOT = Path(__file__).parent.parent.parent
RESULTS = ROOT / "bench" / "results"


def _free_hugepages() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("HugePages_Free:"):
            return int(line.split()[1])
    return 0


@pytest.fixture
def world(lab_env: LabSession, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fresh counter guest running on lab-src, an inventory, an empty claims store."""
    lab = lab_env.lab
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[hosts.{SRC}]\nuri = "{lab.uri(SRC)}"\ncpu_dedicated_set = "0-1"\n'
        f'[hosts.{DST}]\nuri = "{lab.uri(DST)}"\ncpu_dedicated_set = "1"\n'
        'cpu_shared_set = "0"\n'
    )
    conns = {h: connect(lab.uri(h), h) for h in (SRC, DST)}
    _remove_guest(conns)
    huge = 2048 if _free_hugepages() >= 64 else None
    xml = pinned_numa_guest_xml(GUEST, image=lab.counter_image, hugepage_kib=huge,
                                domain_type=lab.domain_type())
    dom = conns[SRC].define(xml)
    dom.start()
    wait_until_counting(dom)
    db = tmp_path / "claims.db"
    env = {**os.environ, "NUMA_MIGRATE_INVENTORY": str(inventory),
           "NUMA_MIGRATE_DB": f"sqlite:///{db}"}
    yield {"lab": lab, "conns": conns, "inventory": inventory, "db": f"sqlite:///{db}",
           "env": env, "huge": huge}
    _remove_guest(conns)
    for conn in conns.values():
        conn.close()


def _remove_guest(conns: dict[str, LibvirtHypervisor]) -> None:
    for conn in conns.values():
        remove_guest(conn, GUEST)


def cli(world: dict[str, Any], *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "numa_migrate", *args], env=world["env"],
                          capture_output=True, text=True, timeout=180, check=False, **kw)


def paused_migrate(world: dict[str, Any], phase: str, marker: Path,
                   *args: str) -> subprocess.Popen[str]:
    """``numa-migrate migrate GUEST --to lab-dst ARGS`` run by the test-only launcher
    (tests/e2e/pause_at.py) that stops it at ``phase`` and writes ``marker`` there."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.pause_at", phase, str(marker), "--",
         "migrate", GUEST, "--to", DST, *args],
        env=world["env"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def where_running(world: dict[str, Any]) -> list[str]:
    out = []
    for host, conn in world["conns"].items():
        dom = conn.lookup(GUEST)
        if dom is not None and dom.is_active():
            out.append(host)
    return out


def live_claims(world: dict[str, Any]) -> list[Any]:
    with ClaimStore.open(world["db"]) as store:
        return [c for c in store.list_claims() if c.state.live]


def assert_consistent_on(world: dict[str, Any], host: str) -> None:
    """Runs on ``host`` only, counter advancing, no definition elsewhere, no live claim."""
    assert where_running(world) == [host]
    dom = world["conns"][host].lookup(GUEST)
    assert dom is not None and dom.is_persistent()
    assert counter_advances(dom)
    other = DST if host == SRC else SRC
    assert world["conns"][other].lookup(GUEST) is None, f"stale definition on {other}"
    assert live_claims(world) == []


def test_round_trip_with_new_pins_everywhere(world: dict[str, Any]) -> None:
    lab: Lab = world["lab"]
    timings = {}
    for source, dest, cpus in ((SRC, DST, [1]), (DST, SRC, None)):
        started = time.monotonic()
        done = cli(world, "migrate", GUEST, "--to", dest, "--json")
        timings[f"{source}->{dest}"] = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        pins = report["pins"]
        assert pins["destination_live"] == pins["destination_persistent"]
        if cpus is not None:
            assert pins["source"] == {"0": [0]}
            assert pins["destination_live"] == {"0": cpus}
        live_cpus = pins["destination_live"]["0"]
        assert set(live_cpus) <= ({1} if dest == DST else {0, 1})
        assert_consistent_on(world, dest)
        affinity = lab.affinity(dest, GUEST)
        assert affinity.vcpus == {0: frozenset(live_cpus)}, "real vCPU thread affinity"
        assert affinity.main.cpus == frozenset(live_cpus), "emulator threads follow the pins"
        checked = cli(world, "validate", GUEST, "--host", dest, "--json")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        timings[f"{source}->{dest} libvirt"] = report["seconds"]
        timings[f"{source}->{dest} downtime_ms"] = report["downtime_ms"] or -1
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "e2e-roundtrip.json").write_text(json.dumps(timings, indent=2) + "\n")


def test_dry_run_changes_nothing(world: dict[str, Any], tmp_path: Path) -> None:
    done = cli(world, "migrate", GUEST, "--to", DST, "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["vcpu_pins"] == {"0": [1]}
    assert '-    <vcpupin vcpu="0" cpuset="0"/>' in plan["diff"]
    assert_consistent_on(world, SRC)
    # the dry run's document is a plan `validate --plan` reads: it names the destination,
    # so checking the guest (still on the source) against it is refused for that reason
    document = tmp_path / "dry-run.json"
    document.write_text(done.stdout)
    checked = cli(world, "validate", GUEST, "--host", SRC, "--plan", str(document))
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert f"the plan is for host {DST}, not {SRC}" in checked.stderr


def test_no_room_is_refused_before_anything_moves(world: dict[str, Any]) -> None:
    # a second guest pinned on CPU 1 of lab-dst takes the only dedicated CPU there
    lab: Lab = world["lab"]
    blocker = counter_guest_xml("nm-blocker", image=lab.counter_image, vcpus=1, memory_mib=16,
                                vcpu_pins={0: 1}, domain_type=lab.domain_type())
    dom = world["conns"][DST].conn.createXML(blocker)  # transient: gone once destroyed
    try:
        done = cli(world, "migrate", GUEST, "--to", DST)
        assert done.returncode == 1, done.stderr + done.stdout
        assert "does not fit on lab-dst" in done.stdout
        assert "dedicated" in done.stdout
        assert_consistent_on(world, SRC)
    finally:
        dom.destroy()


def test_unknown_domain_and_host_are_clear_errors(world: dict[str, Any]) -> None:
    done = cli(world, "migrate", "no-such-guest", "--to", DST)
    assert done.returncode == 2 and "runs on no host" in done.stderr
    assert "Traceback" not in done.stderr
    done = cli(world, "migrate", GUEST, "--to", "cmp-99")
    assert done.returncode == 2 and "no host 'cmp-99'" in done.stderr
    bad = world["inventory"].parent / "bad.toml"
    bad.write_text('[hosts.x]\nuri = "qemu+unix:///system?socket=/nonexistent/sock"\n'
                   f'[hosts.{SRC}]\nuri = "{world["lab"].uri(SRC)}"\n')
    done = cli(world, "migrate", GUEST, "--to", "x", "--hosts", str(bad))
    assert done.returncode == 2 and "cannot connect" in done.stderr
    assert_consistent_on(world, SRC)


def _migration(world: dict[str, Any], store: ClaimStore, **kw: Any) -> Migration:
    from numa_migrate.migrate.hosts import load_hosts

    hosts = load_hosts(world["inventory"])
    return Migration(store=store, source=hosts.ref(SRC), destination=hosts.ref(DST),
                     domain=GUEST, read_host=kw.pop("read_host", hosts.read_host), **kw)


def test_destination_pin_that_cannot_be_honoured_rolls_back(world: dict[str, Any]) -> None:
    """Our model says CPU 7 is free on lab-dst; the real host has no CPU 7: libvirt refuses."""
    from numa_migrate.migrate.hosts import load_hosts

    hosts = load_hosts(world["inventory"])

    def lying_reader(conn: Any, ref: HostRef) -> HostTopology:
        real = hosts.read_host(conn, ref)
        cell = real.cells[0]
        fake = replace(cell, pcpuset=frozenset({7}), siblings=(*cell.siblings, frozenset({7})))
        return replace(real, cells=(fake,))

    with ClaimStore.open(world["db"]) as store:
        job = _migration(world, store, read_host=lying_reader)
        with pytest.raises(MigrationFailed, match=r"was not migrated.*claim was rolled back"):
            job.run()
    assert_consistent_on(world, SRC)


def _fail_mid_migration(world: dict[str, Any], action: str) -> str:
    """Start a slow migration, then ``abort`` it or kill the destination daemon."""
    lab: Lab = world["lab"]
    started = threading.Event()
    acted: list[str] = []

    def on_progress(p: Any) -> None:
        if (p.data_processed or 0) > 0 and not started.is_set():
            started.set()

    def act() -> None:
        if not started.wait(60):
            return
        if action == "abort":
            conn = connect(lab.uri(SRC), SRC)
            running = conn.lookup(GUEST)
            assert running is not None
            running.abort_job()
            conn.close()
        else:
            pid = lab.status().host(DST).pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        acted.append(action)

    actor = threading.Thread(target=act)
    actor.start()
    with ClaimStore.open(world["db"]) as store:
        job = _migration(world, store, on_progress=on_progress,
                         options=MigrateOptions(bandwidth_mib_s=1))
        try:
            with pytest.raises(MigrationFailed) as info:
                job.run()
        finally:
            started.set()
            actor.join()
    assert acted == [action], "the migration ended before the fault could be injected"
    return str(info.value)


def test_aborted_migration_leaves_guest_on_source(world: dict[str, Any]) -> None:
    message = _fail_mid_migration(world, "abort")
    assert "cancel" in message.lower() or "abort" in message.lower()
    assert_consistent_on(world, SRC)


def test_destination_daemon_killed_mid_migration(world: dict[str, Any]) -> None:
    lab: Lab = world["lab"]
    try:
        message = _fail_mid_migration(world, "kill-destination")
        assert "was not migrated" in message
        still = world["conns"][SRC].lookup(GUEST)
        assert where_running(world) == [SRC] or (still is not None and still.is_active())
    finally:
        lab.up()
    world["conns"][DST] = connect(lab.uri(DST), DST)  # the old connection died with libvirtd
    assert_consistent_on(world, SRC)


@pytest.mark.parametrize("phase", ["planned", "claimed", "migrating", "transferring",
                                   "migrated"])
def test_kill_9_at_each_phase_then_recover(world: dict[str, Any], phase: str,
                                           tmp_path: Path) -> None:
    marker = tmp_path / "paused"
    proc = paused_migrate(world, phase, marker,
                          *(["--bandwidth", "1"] if phase == "transferring" else []))
    deadline = time.monotonic() + 90
    while not marker.exists():
        assert proc.poll() is None, f"migrate ended before {phase}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"never reached {phase}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # let libvirt notice the client is gone
    done = cli(world, "recover", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(done.stdout)["recovered"]
    expected_host = DST if phase == "migrated" else SRC
    if phase != "planned":  # a claim existed: recovery must have handled it
        assert [r["outcome"] for r in report] == [
            "completed" if expected_host == DST else "rolled back"]
    if phase == "transferring" and where_running(world) == [DST]:
        expected_host = DST  # the migration won the race with the kill
    assert_consistent_on(world, expected_host)


def test_post_copy_switch_on_the_lab(world: dict[str, Any]) -> None:
    """--post-copy-after 0: numa-migrate switches the running migration to post-copy.

    The guest is 256 MiB here and the bandwidth 1 MiB/s, so that its RAM (zero pages, a
    few bytes each on the wire) is still moving when the switch is asked for: QEMU refuses
    it before RAM moves, and an unthrottled guest crosses loopback between two polls."""
    lab: Lab = world["lab"]
    _remove_guest(world["conns"])
    xml = counter_guest_xml(GUEST, image=lab.counter_image, vcpus=1, memory_mib=256,
                            vcpu_pins={0: 0}, emulator_pin="0", cells=[("0", 256)],
                            nodeset="0", memnodes={0: "0"}, domain_type=lab.domain_type())
    dom = world["conns"][SRC].define(xml)
    dom.start()
    wait_until_counting(dom)
    done = cli(world, "migrate", GUEST, "--to", DST, "--post-copy", "--post-copy-after", "0",
               "--bandwidth", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["post_copy"] is True
    assert report["pins"]["destination_live"] == {"0": [1]}
    assert_consistent_on(world, DST)
    with ClaimStore.open(world["db"]) as store:
        phases = [e.phase for e in Journal(store).entries(report["migration_id"])]
    assert phases.index("migrating") < phases.index("post_copy") < phases.index("migrated")
    checked = cli(world, "validate", GUEST, "--host", DST, "--json")
    assert checked.returncode == 0, checked.stdout


def test_recover_never_rolls_back_after_a_post_copy_switch(world: dict[str, Any],
                                                           tmp_path: Path) -> None:
    """Killed with the guest still on the source, but the journal says post-copy had started:
    the source copy would be stale, so recover must leave both hosts alone and say how to
    resume (the journal entry is written by hand: the real switch window is too short to
    kill the command inside it reliably)."""
    marker = tmp_path / "paused"
    proc = paused_migrate(world, "migrating", marker)
    deadline = time.monotonic() + 90
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with ClaimStore.open(world["db"]) as store:
        [claim] = [c for c in store.list_claims() if c.state.live]
        assert claim.migration_id is not None
        Journal(store).append(claim.migration_id, PostCopyEntry(claim.id))
    done = cli(world, "recover", "--json")
    assert done.returncode == 3, done.stderr  # 3: something needs a person
    [report] = json.loads(done.stdout)["recovered"]
    assert report["outcome"] == "needs attention"
    assert "--postcopy-resume" in report["detail"] and "stale" in report["detail"]
    assert where_running(world) == [SRC]  # nothing was destroyed or resumed
    assert len(live_claims(world)) == 1  # and the claim is kept for the person to decide

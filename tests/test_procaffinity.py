"""Real thread affinities from /proc: this test process's own threads, named and pinned for
real with /proc/self/task/<tid>/comm and os.sched_setaffinity (no fakes)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from numa_migrate.hypervisor.procaffinity import (
    AffinityError,
    find_qemu_pid,
    is_local_qemu,
    local_run_dir,
    process_affinity,
    thread_affinity,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")


@contextmanager
def named_pinned_thread(name: str, cpus: set[int]) -> Iterator[int]:
    """A live thread of this process named ``name`` (its comm) and pinned to ``cpus``."""
    ready = threading.Event()
    stop = threading.Event()
    tid: list[int] = []
    errors: list[BaseException] = []

    def body() -> None:
        try:
            me = threading.get_native_id()
            Path(f"/proc/self/task/{me}/comm").write_text(name)
            os.sched_setaffinity(0, cpus)  # 0: the calling thread
            tid.append(me)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            ready.set()
        stop.wait(30)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        if errors:
            raise errors[0]
        yield tid[0]
    finally:
        stop.set()
        thread.join(10)


def allowed() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def test_vcpu_iothread_and_emulator_threads_of_this_process() -> None:
    cpus = allowed()
    first, last = cpus[0], cpus[-1]
    with named_pinned_thread("CPU 3/KVM", {first}) as vcpu_tid, \
            named_pinned_thread("CPU 0/TCG", {last}) as tcg_tid, \
            named_pinned_thread("IO iothread1", {first, last}) as io_tid, \
            named_pinned_thread("worker", {last}) as worker_tid:
        proc = process_affinity(os.getpid())
        assert proc.pid == os.getpid()
        assert dict(proc.vcpus) == {3: frozenset({first}), 0: frozenset({last})}
        assert dict(proc.iothreads) == {1: frozenset({first, last})}
        by_tid = {t.tid: t for t in proc.threads}
        assert by_tid[vcpu_tid].name == "CPU 3/KVM" and by_tid[vcpu_tid].vcpu == 3
        assert by_tid[tcg_tid].vcpu == 0
        assert by_tid[io_tid].iothread == 1 and by_tid[io_tid].vcpu is None
        emulator = proc.emulator_threads
        assert emulator[0].tid == os.getpid()  # the main thread comes first
        assert emulator[0] == proc.main
        assert worker_tid in {t.tid for t in emulator}
        assert vcpu_tid not in {t.tid for t in emulator}
        assert by_tid[worker_tid].cpus == frozenset({last})
        # the main thread keeps the process's affinity
        assert proc.main is not None and proc.main.cpus == frozenset(cpus)
        assert thread_affinity(os.getpid(), vcpu_tid) == by_tid[vcpu_tid]


def test_a_thread_that_ended_is_left_out() -> None:
    with named_pinned_thread("short", set(allowed())) as tid:
        pass
    task = Path(f"/proc/self/task/{tid}")
    deadline = time.monotonic() + 10
    while task.exists() and time.monotonic() < deadline:  # join() returns a bit before exit
        time.sleep(0.01)
    assert thread_affinity(os.getpid(), tid) is None
    assert tid not in {t.tid for t in process_affinity(os.getpid()).threads}


def test_missing_process() -> None:
    with pytest.raises(AffinityError, match=r"no process 0|pid 0 is not a process id"):
        process_affinity(0)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    with pytest.raises(AffinityError, match=f"no process {pid}"):
        process_affinity(pid)


@pytest.mark.parametrize(("uri", "run_dir", "local"), [
    ("qemu:///system", Path("/run/libvirt"), True),
    ("qemu+unix:///system?socket=/run/lab/a/libvirt/virtqemud-sock",
     Path("/run/lab/a/libvirt"), True),
    ("qemu:///session", None, True),
    ("qemu+ssh://root@cmp-01/system", None, False),
    ("qemu+tcp://cmp-01/system", None, False),
    ("test:///default", None, False),
])
def test_local_run_dir(uri: str, run_dir: Path | None, local: bool) -> None:
    assert local_run_dir(uri) == run_dir
    assert is_local_qemu(uri) is local


def test_find_qemu_pid_checks_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "qemu").mkdir()
    # a real process whose command line carries QEMU's "-name guest=NAME,..." argument
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                              "-name", "guest=db,,1,debug-threads=on"])
    try:
        # QEMU writes its pid file once it runs; wait likewise until the exec is complete
        cmdline = Path(f"/proc/{child.pid}/cmdline")
        deadline = time.monotonic() + 10
        while b"-name" not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "qemu" / "db,1.pid").write_text(f"{child.pid}\n")
        assert find_qemu_pid(tmp_path, "db,1") == child.pid
        (tmp_path / "qemu" / "db.pid").write_text(f"{child.pid}\n")
        with pytest.raises(AffinityError, match=r"is not the QEMU of db \(its command line"):
            find_qemu_pid(tmp_path, "db")
    finally:
        child.kill()
        child.wait()
    with pytest.raises(AffinityError, match=r"not running \(stale pid file\)"):
        find_qemu_pid(tmp_path, "db,1")
    with pytest.raises(AffinityError, match=r"no pid file .*other\.pid"):
        find_qemu_pid(tmp_path, "other")
    (tmp_path / "qemu" / "junk.pid").write_text("abc")
    with pytest.raises(AffinityError, match=r"junk\.pid does not hold a pid"):
        find_qemu_pid(tmp_path, "junk")

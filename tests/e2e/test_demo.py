"""The README's main-job command, `numa-migrate demo`, on the real lab (as root)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from numa_migrate.hypervisor.libvirt import connection
from tests.e2e.conftest import LabSession

pytestmark = pytest.mark.lab


def test_demo_migrates_a_pinned_guest_there_and_back_then_drains(lab_env: LabSession,
                                                     tmp_path: Path) -> None:
    env = {**os.environ, "NUMA_MIGRATE_LAB_DIR": str(lab_env.lab.lab_dir),
           "NUMA_MIGRATE_DB": f"sqlite:///{tmp_path / 'claims.db'}", "COLUMNS": "160"}
    done = subprocess.run([sys.executable, "-m", "numa_migrate", "demo"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          check=False)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    assert "1. The sample fleet" in out and "4. A real live migration" in out
    # lab-src pins on its upper half of the CPUs, lab-dst on its lower half: pins change
    assert "nm-demo: lab-src → lab-dst" in out and "nm-demo: lab-dst → lab-src" in out
    assert "validate nm-demo on lab-dst: passed" in out
    assert "validate nm-demo on lab-src: passed" in out
    # the drain of lab-src: a second guest (floating on the two-CPU lab: lab-src's one
    # dedicated CPU holds nm-demo) next to nm-demo, planned from the live hosts, both moved
    # to lab-dst in one wave and validated there
    assert "nm-demo-2 boots on lab-src next to nm-demo, for the drain at the end (floating" \
        in out
    drain = out[out.index("Drain lab-src"):]
    assert "lab-src runs nm-demo-2 next to the tour's guest" in drain
    assert "drain lab-src: 2 moves in 1 wave" in drain, drain[:3000]
    assert "every guest has a destination" in drain
    assert "2 moves in" in drain and "2 done" in drain, drain[:3000]
    assert "validate nm-demo on lab-dst: passed" in drain
    assert "validate nm-demo-2 on lab-dst: passed" in drain
    assert "lab-src is empty: 2 guests drained onto lab-dst" in drain
    assert out.count("keeps running") == 4 and "STOPPED" not in out
    for name in ("nm-demo", "nm-demo-2"):
        for host in ("lab-src", "lab-dst"):
            with connection(lab_env.lab.uri(host), host) as conn:
                assert conn.lookup(name) is None, f"the demo left {name} on {host}"
    assert lab_env.lab.status().up, "the demo leaves a lab it found up"


def test_a_failed_drain_says_why_and_leaves_no_guest(lab_env: LabSession, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The drain's second guest stops after the plan is made (a real stopped domain): its
    move fails (it runs neither on lab-src nor on lab-dst), so the lab part says "failed"
    with that reason, and both demo guests are gone from both hosts afterwards."""
    from rich.console import Console

    from numa_migrate.cli import demo_drain
    from numa_migrate.cli.demo_lab import GUEST, _run_tour, demo_flavor
    from numa_migrate.migrate import drainrun

    monkeypatch.setenv("NUMA_MIGRATE_DB", f"sqlite:///{tmp_path / 'claims.db'}")
    lab = lab_env.lab
    real_run_plan = drainrun.run_plan

    def stop_second_then_run(*args: Any, **kwargs: Any) -> Any:
        with connection(lab.uri("lab-src"), "lab-src") as conn:
            dom = conn.lookup(demo_drain.SECOND)
            assert dom is not None
            dom.destroy()
        return real_run_plan(*args, **kwargs)

    monkeypatch.setattr(drainrun, "run_plan", stop_second_then_run)
    console = Console(record=True, width=160, force_terminal=False)
    outcome = _run_tour(console, lab, demo_flavor, brought_up=False, down=lambda: None,
                        failed="the lab demo failed", down_note="")
    out = console.export_text()
    assert outcome == "failed", out[-3000:]
    assert "the lab demo failed: the drain of lab-src did not move every guest: " \
           "nm-demo-2: failed (nm-demo-2 runs neither on lab-src nor on lab-dst" in out, \
        out[-3000:]
    for name in (GUEST, demo_drain.SECOND):
        for host in ("lab-src", "lab-dst"):
            with connection(lab.uri(host), host) as conn:
                assert conn.lookup(name) is None, f"{name} left on {host}"

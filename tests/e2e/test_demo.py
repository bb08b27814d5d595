"""The README's main-job command, `numa-migrate demo`, on the real lab (as root)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import LabSession

pytestmark = pytest.mark.lab


def test_demo_migrates_a_pinned_guest_there_and_back(lab_env: LabSession,
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
    assert "validate on lab-dst: passed" in out and "validate on lab-src: passed" in out
    assert out.count("keeps running") == 2
    assert lab_env.lab.status().up, "the demo leaves a lab it found up"

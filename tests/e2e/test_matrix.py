"""`numa-migrate validate-matrix` on the real lab, as an operator runs it (a subprocess).

Every scenario must be in the report with a status; no scenario may fail; the scenarios the
one-node, two-CPU lab can express must have run for real (passed, with both legs timed and
validate's checks), and the others must be skipped with a reason. SR-IOV is fixtures-only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from numa_migrate.matrix.report import MatrixReport, Status
from numa_migrate.matrix.scenarios import SCENARIOS
from tests.e2e.conftest import LabSession

pytestmark = pytest.mark.lab
MUST_RUN_ON_THE_LAB = ("numa-1", "pin-prefer", "pin-isolate", "pin-emulator-isolate",
                       "pin-mixed", "shared-beside-pinned", "pages-large", "pages-2m",
                       "refuse-no-room", "refuse-no-page-size")


def test_matrix_on_the_lab(lab_env: LabSession, tmp_path: Path) -> None:
    env = {**os.environ, "NUMA_MIGRATE_LAB_DIR": str(lab_env.lab.lab_dir),
           "NUMA_MIGRATE_DB": f"sqlite:///{tmp_path / 'claims.db'}"}
    env.pop("NUMA_MIGRATE_INVENTORY", None)
    html = tmp_path / "matrix.html"
    done = subprocess.run(
        [sys.executable, "-m", "numa_migrate", "validate-matrix", "--json",
         "--report", str(html), "--markdown", str(tmp_path / "matrix.md")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    report = MatrixReport.from_json(json.loads(done.stdout))
    by_id = {r.id: r for r in report.scenarios}
    assert set(by_id) == {s.id for s in SCENARIOS}
    failed = {r.id: r.reason for r in report.scenarios if r.status is Status.FAILED}
    assert not failed, failed
    assert done.returncode == 0, done.stderr[-2000:]
    for scenario_id in MUST_RUN_ON_THE_LAB:
        result = by_id[scenario_id]
        assert result.status is Status.PASSED, (scenario_id, result.reason)
        assert result.ran_on == "lab"
        assert result.checks and all(c.outcome != "fail" for c in result.checks)
        if not scenario_id.startswith("refuse-"):
            assert len(result.legs) == 2 and all(leg.seconds for leg in result.legs)
            assert any(c.name.endswith("vcpu_affinity") and c.outcome == "pass"
                       for c in result.checks), "real /proc affinity checked"
        else:
            assert result.legs[0].refused_reasons
    for result in report.scenarios:
        if result.status is Status.SKIPPED:
            assert result.reason, result.id
    assert by_id["pages-2m"].page_size_kib == 2048
    assert by_id["sriov-direct"].status is Status.FIXTURES
    assert by_id["sriov-direct"].ran_on == "fixtures"
    assert by_id["numa-2"].status is Status.SKIPPED and "NUMA node" in by_id["numa-2"].reason
    page = html.read_text()
    for result in report.scenarios:
        assert f'id="{result.id}"' in page
    assert (tmp_path / "matrix.md").read_text().count("### ") == len(SCENARIOS)

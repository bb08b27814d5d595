"""Differential tests against Nova 34 (a test-only oracle in its own venv).

Same feasibility and error type on a few thousand generated cases; every disagreement must
be proven to be Nova's fault (see tests/differential.py). The figures are written to
``bench/results/differential.json`` for docs/performance.md.
"""

from __future__ import annotations

import os

import pytest

from tests.casegen import generate_cases
from tests.differential import Report, judge, require_oracle, run_oracle, save_report

pytestmark = pytest.mark.oracle
CASES = int(os.environ.get("NUMA_MIGRATE_DIFF_CASES", "3000"))
SEED = 20261124


@pytest.fixture(scope="module")
def oracle() -> None:
    require_oracle()


def _report(name: str, cases: list[dict[str, object]]) -> Report:
    nova = run_oracle(cases, timeout_s=20)
    report = Report()
    for case, answer in zip(cases, nova, strict=True):
        assert answer["id"] == case["id"]
        judge(case, answer, report)
    return save_report(name, report)


def test_same_decisions_as_nova_or_proven_nova_fault(oracle: None) -> None:
    report = _report("differential", generate_cases(CASES, SEED))
    assert report.bugs == []
    assert report.total == CASES
    # the corpus must exercise both answers and the error path, or it proves little
    assert report.outcomes["same decision"] > CASES // 2
    assert report.outcomes["same error type"] > 0


def test_multi_cell_guests_on_many_cells(oracle: None) -> None:
    cases = generate_cases(600, SEED + 1, min_host_cells=3, max_host_cells=6,
                           min_guest_nodes=2, max_guest_nodes=4, invalid_fraction=0.0)
    report = _report("differential-multicell", cases)
    assert report.bugs == []

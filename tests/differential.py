"""Compare numa-migrate's answers with Nova 34's on the same cases, and judge disagreements.

Nova runs as a test-only oracle in its own venv (tests/oracle/nova_driver.py), never in the
same process as numa-migrate. A disagreement is Nova's fault only when it is proven so:
- Nova refuses, we fit: our placement passes the independent validity checker and, on cases
  small enough, the exhaustive search confirms a fit exists (Nova's fit-cache defect), or the
  case is a live-migration refit where Nova refuses a page size we keep on purpose;
- Nova fits, we refuse: Nova's placement breaks the validity rules (the same defect yields
  invalid placements) and the exhaustive search confirms no fit exists.
Anything else is our bug.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numa_migrate.adapters.casefmt import answer_case
from tests.validity import exhaustive_fits, violations

ORACLE_DRIVER = Path(__file__).parent / "oracle" / "nova_driver.py"
EXHAUSTIVE_MAX_HOST_CELLS = 6


def oracle_python() -> str | None:
    explicit = os.environ.get("NOVA_ORACLE_PYTHON")
    if explicit:
        return explicit
    local = Path(__file__).parent.parent / ".oracle-venv" / "bin" / "python"
    return str(local) if local.exists() else None


def run_oracle(cases: list[dict[str, Any]], *, timeout_s: float = 30.0,
               repeat: int = 1) -> list[dict[str, Any]]:
    python = oracle_python()
    if python is None:
        raise RuntimeError("no Nova oracle: run tests/oracle/setup_oracle.sh")
    proc = subprocess.run(
        [python, str(ORACLE_DRIVER), "--timeout", str(timeout_s), "--repeat", str(repeat)],
        input="".join(json.dumps(c) + "\n" for c in cases),
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"Nova oracle failed with exit code {proc.returncode}")
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _nova_answer(nova: dict[str, Any]) -> dict[str, Any]:
    placement = nova.get("placement") or {"cells": [], "emulator_pins": None}
    return {"fits": True, **placement}


def _small(case: dict[str, Any]) -> bool:
    return len(case["host"]["cells"]) <= EXHAUSTIVE_MAX_HOST_CELLS


@dataclass
class Report:
    total: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    bugs: list[str] = field(default_factory=list)

    def add(self, outcome: str, bug: str | None = None) -> None:
        self.outcomes[outcome] += 1
        if bug:
            self.bugs.append(bug)

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "outcomes": dict(sorted(self.outcomes.items())),
                "bugs": self.bugs[:20]}


def judge(case: dict[str, Any], nova: dict[str, Any], report: Report) -> None:
    report.total += 1
    cid = case["id"]
    ours = answer_case(case)
    if nova.get("timed_out"):
        report.add("nova timed out")
        return
    if "error" in ours or nova["error_type"]:
        our_type = ours["error"]["type"] if "error" in ours else None
        if our_type == nova["error_type"]:
            report.add("same error type")
        else:
            report.add("error type differs",
                       f"{cid}: ours {our_type} vs Nova {nova['error_type']} "
                       f"({nova.get('error_message')})")
        return
    our_valid = not ours["fits"] or violations(case, ours) == []
    if not our_valid:
        report.add("our placement invalid", f"{cid}: {violations(case, ours)}")
        return
    if ours["fits"] == nova["fits"]:
        if ours["fits"] and violations(case, _nova_answer(nova)):
            report.add("both fit, Nova's placement invalid")
        else:
            report.add("same decision")
        return
    if ours["fits"]:  # Nova refused
        if case.get("current_pagesize_kib") is not None:
            report.add("Nova refuses a kept page size (documented difference)")
        elif not _small(case) or exhaustive_fits(case):
            report.add("Nova refuses a valid fit (fit-cache defect)")
        else:
            report.add("we fit, exhaustive search says no", f"{cid}: {ours}")
        return
    nova_problems = violations(case, _nova_answer(nova))
    if nova_problems and (not _small(case) or not exhaustive_fits(case)):
        report.add("Nova's placement invalid, no valid fit exists")
    else:
        report.add("we refuse, Nova fits validly", f"{cid}: Nova {nova.get('placement')}; "
                   f"ours: {ours.get('reason')}")

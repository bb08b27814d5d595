"""Compare numa-migrate's answers with Nova 34's on the same cases, and judge disagreements.

Nova runs as a test-only oracle in its own venv (tests/oracle/nova_driver.py), never in the
same process as numa-migrate. A disagreement is Nova's fault only when it is proven so:
- Nova refuses, we fit: our placement passes the independent validity checker and, on cases
  small enough, the exhaustive search confirms a fit exists (Nova's fit-cache defect), or the
  case is a live-migration refit where Nova refuses a page size we keep on purpose;
- Nova fits, we refuse: Nova's placement breaks the validity rules (the same defect yields
  invalid placements) and the exhaustive search confirms no fit exists.
Anything else is our bug.

Cases with PCI devices are judged with Nova itself (:func:`judge_pci`): Nova's answer for
each assignment of guest cells to host cells taken alone (``nova_driver.py --permutations``)
is free of the fit-cache defect, so it tells the defect from a real difference; and the one
documented difference (Nova counts PFs a request did not ask for when it decides whether the
devices on the guest's cells are enough) is proven by removing those PFs from the host: Nova
must then agree with us.
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


def require_oracle() -> None:
    """Skip (or fail, with NUMA_MIGRATE_REQUIRE_ORACLE=1) when the Nova oracle is missing."""
    import pytest

    if oracle_python() is None:
        if os.environ.get("NUMA_MIGRATE_REQUIRE_ORACLE") == "1":
            pytest.fail("the Nova oracle is required but missing: tests/oracle/setup_oracle.sh")
        pytest.skip("no Nova oracle venv (run tests/oracle/setup_oracle.sh)")


def save_report(name: str, report: Report) -> Report:
    """Write the report to bench/results/NAME.json and print its outcomes."""
    out = Path(__file__).parent.parent / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    print(name, json.dumps(report.as_dict()["outcomes"]))
    return report


def run_oracle(cases: list[dict[str, Any]], *, timeout_s: float = 30.0,
               repeat: int = 1, permutations: bool = False) -> list[dict[str, Any]]:
    """Nova's answer per case (``permutations``: the assignments it accepts one at a time)."""
    python = oracle_python()
    if python is None:
        raise RuntimeError("no Nova oracle: run tests/oracle/setup_oracle.sh")
    proc = subprocess.run(
        [python, str(ORACLE_DRIVER), "--timeout", str(timeout_s), "--repeat", str(repeat),
         *(["--permutations"] if permutations else [])],
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


# --- PCI --------------------------------------------------------------------------------

PF = "type-PF"


def _spec_matches(alt: dict[str, str], device: dict[str, Any]) -> bool:
    """Nova's attribute match (case-insensitive; ``address`` is the PF's for a VF)."""
    for key, want in alt.items():
        have = (device.get("parent_addr") or device["address"]) if key == "address" \
            else device.get(key)
        if have is None or str(have).lower() != str(want).lower():
            return False
    return True


def strip_unrequested_pfs(case: dict[str, Any]) -> dict[str, Any]:
    """The case with the PFs no request asks for (``dev_type: type-PF``) removed."""
    pf_specs = [alt for r in case.get("pci_requests") or [] for alt in r["spec"]
                if any(a.get("dev_type") == PF for a in r["spec"])]
    devices = [d for d in case["host"].get("pci_devices") or []
               if d.get("dev_type") != PF or any(_spec_matches(a, d) for a in pf_specs)]
    return {**case, "id": f"{case['id']}/no-unrequested-pf",
            "host": {**case["host"], "pci_devices": devices}}


def _search_defect(case: dict[str, Any], guest_cells: int) -> str | None:
    """Why Nova's search may answer otherwise than its tries of each assignment alone, or None.

    Its search keeps state from one try to the next: the fit cache keyed on guest cell ids it
    overwrites (bug 1978372; needs two guest cells: with one, no entry is looked up twice), and
    the page size a try picks is written into the guest cell even when the try then fails, so
    the next host cells are tried with that size instead of ``any``/``large``/``small`` (needs a
    page size request).
    """
    pagesize = ("hw:mem_page_size" in case["flavor"].get("extra_specs", {})
                or "hw_mem_page_size" in (case.get("image_properties") or {}))
    causes = [*(["fit-cache defect"] if guest_cells >= 2 else []),
              *(["page size left by a failed try"] if pagesize else [])]
    return " or ".join(causes) or None


def _our_cells(answer: dict[str, Any]) -> list[int]:
    return [c["host_cell"] for c in answer["cells"]]


def judge_pci(cases: list[dict[str, Any]], nova: list[dict[str, Any]],
              report: Report) -> None:
    """Judge PCI cases against Nova, with Nova's one-assignment-at-a-time answers (fetched
    here, in one oracle run) for the cases that need them:
    - every placement we give: Nova must accept its assignment of host cells alone;
    - every disagreement on the decision: explained by a defect of Nova's search (it keeps
      state between tries, see :func:`_search_defect`, and Nova's answers one assignment at a
      time agree with us) or by the
      PF-counting difference (Nova refuses every assignment alone; with the unrequested PFs
      removed it accepts one, and we still fit), else it is our bug.
    """
    ours = [answer_case(c) for c in cases]
    queries: list[dict[str, Any]] = []
    index: dict[tuple[int, str], int] = {}

    def ask(i: int, kind: str, query: dict[str, Any]) -> None:
        index[(i, kind)] = len(queries)
        queries.append(query)

    for i, (case, mine, theirs) in enumerate(zip(cases, ours, nova, strict=True)):
        if theirs.get("timed_out") or "error" in mine or theirs["error_type"]:
            continue
        stripped = strip_unrequested_pfs(case)
        if mine["fits"] and mine["cells"]:
            ask(i, "ours", {**case, "check_cells": _our_cells(mine)})
            ask(i, "ours-stripped", {**stripped, "check_cells": _our_cells(mine)})
        if mine["fits"] != theirs["fits"]:
            ask(i, "all", case)
            ask(i, "all-stripped", stripped)
    alone = run_oracle(queries, permutations=True) if queries else []

    def accepted(i: int, kind: str) -> bool:
        return bool(alone[index[(i, kind)]]["fits_any"])

    for i, (case, mine, theirs) in enumerate(zip(cases, ours, nova, strict=True)):
        report.total += 1
        cid = case["id"]
        if theirs.get("timed_out"):
            report.add("nova timed out")
            continue
        if "error" in mine or theirs["error_type"]:
            our_type = mine["error"]["type"] if "error" in mine else None
            if our_type == theirs["error_type"]:
                report.add("same error type")
            else:
                report.add("error type differs", f"{cid}: ours {our_type} vs Nova "
                           f"{theirs['error_type']} ({theirs.get('error_message')})")
            continue
        if mine["fits"] and violations(case, mine):
            report.add("our placement invalid", f"{cid}: {violations(case, mine)}")
            continue
        note = ""
        if mine["fits"] and mine["cells"] and not accepted(i, "ours"):
            if not accepted(i, "ours-stripped"):
                report.add("Nova refuses our host cells", f"{cid}: cells {_our_cells(mine)}; "
                           f"Nova: {theirs.get('placement')}")
                continue
            note = " (our host cells: Nova refuses them only by counting unrequested PFs)"
        if mine["fits"] == theirs["fits"]:
            if mine["fits"] and violations(case, _nova_answer(theirs)):
                report.add("both fit, Nova's placement invalid" + note)
            else:
                report.add("same decision" + note)
            continue
        nova_any = accepted(i, "all")
        placed = mine["cells"] if mine["fits"] else (theirs.get("placement") or {})["cells"]
        cause = _search_defect(case, len(placed))
        if nova_any == mine["fits"] and cause:
            report.add(f"Nova refuses a fit it accepts alone ({cause})" if mine["fits"]
                       else f"Nova fits with an assignment it refuses alone ({cause})")
            continue
        if (mine["fits"] and not nova_any and accepted(i, "all-stripped")
                and answer_case(strip_unrequested_pfs(case))["fits"]):
            report.add("Nova refuses: it counts unrequested PFs (documented difference)")
            continue
        if mine["fits"]:
            report.add("we fit, Nova refuses", f"{cid}: ours {_our_cells(mine)}; Nova refuses "
                       f"every assignment alone, with the unrequested PFs removed too")
        else:
            report.add("we refuse, Nova fits", f"{cid}: Nova {theirs.get('placement')}; "
                       f"ours: {mine.get('reason')}")

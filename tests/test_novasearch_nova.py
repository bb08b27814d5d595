"""nova_search against Nova 34 itself: the replay must give Nova's exact answer.

Over the corpora of tests/test_differential_nova.py (the mixed corpus and the multi-cell
one), on every case both sides can answer, the replayed search fits or refuses as Nova does
and picks the same host cell for every guest cell, including the cases tests/differential.py
classifies as Nova's fit-cache defects and invalid Nova placements. Beyond that:

- a case the judge proves to be Nova's fault gets a ``defect`` from the replay;
- when the replay accepts an assignment we refuse, Nova's placement breaks the rules;
- when it sees no defect and both fit, Nova's CPU and emulator pins are ours.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import pytest

from numa_migrate.adapters.casefmt import answer_case, case_from_json
from numa_migrate.core.errors import InvalidCaseError, InvalidRequestError
from numa_migrate.core.fit.novasearch import NovaSearch, nova_search
from numa_migrate.core.request import guest_from_flavor
from tests.casegen import generate_cases
from tests.differential import (
    Report,
    _nova_answer,
    judge,
    require_oracle,
    run_oracle,
)
from tests.validity import violations

pytestmark = pytest.mark.oracle
CASES = int(os.environ.get("NUMA_MIGRATE_DIFF_CASES", "3000"))
SEED = 20261124
NOVA_FAULTS = (
    "Nova refuses a valid fit (fit-cache defect)",
    "Nova's placement invalid, no valid fit exists",
)


@pytest.fixture(scope="module")
def oracle() -> None:
    require_oracle()


def _replay(case: dict[str, Any]) -> NovaSearch | str:
    try:
        parsed = case_from_json(case)
        guest = guest_from_flavor(parsed.flavor, parsed.image_properties)
    except (InvalidCaseError, InvalidRequestError):
        return "our error"
    if guest.numa is None:
        return "no NUMA request"
    return nova_search(parsed.host, guest.numa, parsed.options)


def _pins(answer: dict[str, Any]) -> tuple[list[object], object]:
    return [c["cpu_pinning"] for c in answer["cells"]], answer["emulator_pins"]


def _compare(name: str, cases: list[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    problems: list[str] = []
    for case, nova in zip(cases, run_oracle(cases, timeout_s=20), strict=True):
        assert nova["id"] == case["id"]
        cid = case["id"]
        if nova["timed_out"] or nova["error_type"]:
            counts["skipped: Nova timed out" if nova["timed_out"] else "skipped: Nova raised"] += 1
            continue
        search = _replay(case)
        if isinstance(search, str):
            counts[f"skipped: {search}"] += 1
            continue
        if not search.decided:
            counts["not simulated"] += 1
            continue
        counts["compared"] += 1
        nova_cells = None
        if nova["fits"]:
            nova_cells = tuple(c["host_cell"] for c in nova["placement"]["cells"])
        if (search.fits, search.host_cells) != (nova["fits"], nova_cells):
            problems.append(f"{cid}: Nova {nova['fits']} {nova_cells}, replay {search}")
            continue
        counts["agree"] += 1
        report = Report()
        judge(case, nova, report)
        outcome = next(iter(report.outcomes))
        if search.defect is not None:
            counts["defects predicted"] += 1
            counts[f"defect: {search.defect.split(' (')[0].split(':')[0]}"] += 1
        elif outcome in NOVA_FAULTS:
            problems.append(f"{cid}: judged '{outcome}' but no defect predicted")
        if outcome in NOVA_FAULTS:
            counts[f"judged: {outcome}"] += 1
        accepts_invalid = bool(search.defect and search.defect.startswith("Nova would accept"))
        if search.fits and accepts_invalid and not violations(case, _nova_answer(nova)):
            problems.append(f"{cid}: {search.defect}, yet Nova's placement is valid")
        if search.fits and search.defect is None:
            ours = answer_case(case)
            if _pins(ours) != _pins(nova["placement"]):
                problems.append(f"{cid}: no defect predicted, but Nova pins differently")
    print(name, json.dumps(dict(sorted(counts.items())), indent=1))
    assert problems == []
    return counts


def test_replay_gives_novas_answer_on_the_mixed_corpus(oracle: None) -> None:
    counts = _compare("mixed", generate_cases(CASES, SEED))
    assert counts["compared"] > CASES // 2
    assert counts["defects predicted"] > 0


def test_replay_gives_novas_answer_on_multi_cell_guests(oracle: None) -> None:
    cases = generate_cases(600, SEED + 1, min_host_cells=3, max_host_cells=6,
                           min_guest_nodes=2, max_guest_nodes=4, invalid_fraction=0.0)
    counts = _compare("multi-cell", cases)
    assert counts["compared"] > 500
    assert counts["judged: Nova refuses a valid fit (fit-cache defect)"] > 0

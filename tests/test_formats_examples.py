"""The shared fit-case examples give Nova's decisions, through the real CLI (`fit --batch`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.validity import violations

HERE = Path(__file__).parent
VENDORED = HERE / "fixtures" / "shared-formats"
SHARED = HERE.parent.parent / "shared" / "formats" / "examples"


def _read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside this checkout")
def test_vendored_examples_match_shared() -> None:
    for name in ("cases.jsonl", "expected.jsonl", "pci-cases.jsonl", "pci-expected.jsonl"):
        assert (VENDORED / name).read_text() == (SHARED / name).read_text(), (
            f"tests/fixtures/shared-formats/{name} is stale: copy it from ../shared"
        )


@pytest.mark.parametrize("prefix", ["", "pci-"])
def test_examples_give_expected_answers(prefix: str) -> None:
    cases = _read(VENDORED / f"{prefix}cases.jsonl")
    expected = {e["id"]: e for e in _read(VENDORED / f"{prefix}expected.jsonl")}
    proc = subprocess.run(
        [sys.executable, "-m", "numa_migrate", "fit", "--batch"],
        input=(VENDORED / f"{prefix}cases.jsonl").read_text(), capture_output=True, text=True,
        check=True,
    )
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [a["id"] for a in answers] == [c["id"] for c in cases]
    for case, answer in zip(cases, answers, strict=True):
        want = expected[case["id"]]
        if want["error_type"]:
            assert answer["error"]["type"] == want["error_type"], answer
            continue
        assert answer["fits"] is want["fits"], (case["id"], answer)
        if answer["fits"]:
            assert violations(case, answer) == [], case["id"]
        else:
            assert answer["reason"], case["id"]

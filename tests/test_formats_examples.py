"""The shared fit-case examples give Nova's decisions, through the real CLI (`fit --batch`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.validity import exhaustive_fits, violations

HERE = Path(__file__).parent
VENDORED = HERE / "fixtures" / "shared-formats"


def _shared_examples() -> Path:
    """../shared/formats/examples beside the checkout (or beside a parent of a worktree)."""
    for parent in HERE.parents[1:]:
        candidate = parent / "shared" / "formats" / "examples"
        if candidate.is_dir():
            return candidate
    return HERE.parent.parent / "shared" / "formats" / "examples"


SHARED = _shared_examples()


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


def _batch(cases_file: Path) -> list[dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-m", "numa_migrate", "fit", "--batch"],
        input=cases_file.read_text(), capture_output=True, text=True, check=True,
    )
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_pci_examples_give_expected_answers() -> None:
    """The 24 SR-IOV / PCI examples: Nova's decision and error type, valid placements (the
    judge checks that the chosen host cells serve the PCI requests), and the judge's own
    exhaustive decision agrees with Nova's."""
    cases = _read(VENDORED / "pci-cases.jsonl")
    expected = {e["id"]: e for e in _read(VENDORED / "pci-expected.jsonl")}
    assert len(cases) == 24 and set(expected) == {c["id"] for c in cases}
    answers = _batch(VENDORED / "pci-cases.jsonl")
    assert [a["id"] for a in answers] == [c["id"] for c in cases]
    for case, answer in zip(cases, answers, strict=True):
        want = expected[case["id"]]
        if want["error_type"]:
            assert "error" in answer, (case["id"], answer)
            assert answer["error"]["type"] == want["error_type"], answer  # type: ignore[index]
            continue
        assert "error" not in answer, (case["id"], answer)
        assert answer["fits"] is want["fits"], (case["id"], answer)
        assert exhaustive_fits(case) is want["fits"], case["id"]
        if answer["fits"]:
            assert violations(case, answer) == [], case["id"]
        else:
            assert answer["reason"], case["id"]
        if want["nova_placement"] is not None:
            nova = {"fits": True, **want["nova_placement"]}  # type: ignore[dict-item]
            assert violations(case, nova) == [], ("Nova's own placement", case["id"])

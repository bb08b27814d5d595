"""Plan files (``validate --plan``, written by ``migrate --dry-run --json``)."""

from __future__ import annotations

from pathlib import Path

from numa_migrate.core.planjson import PlanDocument, PlanFormatError, plan_from_json
from numa_migrate.inputs.bounds import DocBounds
from numa_migrate.inputs.documents import parse_json
from numa_migrate.inputs.files import read_bytes

MAX_PLAN_BYTES = 4 * 1024 * 1024
"""A plan names a few thousand vCPUs at most; a dry-run document adds the XML diff."""


def load_plan(path: Path | str) -> PlanDocument:
    """Read a plan file; every problem is a :class:`PlanFormatError` naming the file."""
    path = Path(path)
    data = read_bytes(path, what="plan file", max_bytes=MAX_PLAN_BYTES, error=PlanFormatError)
    doc = parse_json(data, source=str(path), bounds=DocBounds(max_bytes=MAX_PLAN_BYTES),
                     error=PlanFormatError)
    return plan_from_json(doc, source=str(path))

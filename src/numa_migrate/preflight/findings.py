"""What every preflight check returns: a :class:`Finding` with a :class:`Severity`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    OK = "ok"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    host: str
    message: str
    fix: str = ""
    where: str = ""

    def to_json(self) -> dict[str, str]:
        return {"severity": self.severity.value, "code": self.code, "host": self.host,
                "where": self.where, "message": self.message, "fix": self.fix}

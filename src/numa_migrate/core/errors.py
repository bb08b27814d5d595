"""Error types. Every error a user can cause names the field and the allowed values."""

from __future__ import annotations


class NumaMigrateError(Exception):
    """Base class for every error numa-migrate raises on purpose."""


class InvalidRequestError(NumaMigrateError):
    """A guest request (flavor extra specs / image properties) that Nova would refuse.

    ``nova_type`` is the name of the Nova 34 exception class raised for the same request,
    so that tools built on Nova's behaviour can rely on it; the message is our own.
    """

    def __init__(self, nova_type: str, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.nova_type = nova_type
        self.key = key

    @property
    def message(self) -> str:
        return str(self.args[0])


class ParseError(NumaMigrateError):
    """Input (XML, JSON, a CPU list) that cannot be read; says where and what was expected."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.source = source


class InvalidCaseError(ParseError):
    """A fit-case document that does not follow the fit-case format."""


class UnknownHostError(NumaMigrateError):
    """A host name that is not in the inventory."""

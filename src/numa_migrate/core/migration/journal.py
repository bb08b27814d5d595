"""Typed journal entries: one frozen value per phase, to and from the JSON the journal
stores (pure).

Writing: ``entry.to_json()`` gives the payload stored next to ``entry.PHASE``. Reading:
:func:`entry_from_json` checks the phase and every field of the payload and names the bad
one (:class:`JournalError`), so that recovery never acts on a half-understood journal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, NoReturn, TypeVar

from numa_migrate.core.errors import ParseError
from numa_migrate.core.migration.phases import Phase, UnknownPhaseError


class JournalError(ParseError):
    """A stored journal entry whose phase or payload is not what this version writes."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Fields:
    """A JSON object being read: every field is checked, extra fields are refused."""

    def __init__(self, data: object, path: str, source: str) -> None:
        self.path, self.source = path, source
        if not isinstance(data, Mapping):
            self.fail(path or "payload", data, "a JSON object")
        self.data: Mapping[str, Any] = data
        self.read: set[str] = set()

    def fail(self, field: str, value: object, wanted: str) -> NoReturn:
        raise JournalError(f"field {field!r} is {_show(value)}: expected {wanted}",
                           source=self.source)

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, *, required: bool) -> Any:
        self.read.add(key)
        if key not in self.data:
            if required:
                raise JournalError(f"field {self._name(key)!r} is missing", source=self.source)
            return None
        return self.data[key]

    def text(self, key: str) -> str:
        value = self._get(key, required=True)
        if not isinstance(value, str):
            self.fail(self._name(key), value, "a string")
        return value

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, required=False)
        if value is not None and not isinstance(value, str):
            self.fail(self._name(key), value, "a string or null")
        return value

    def opt_integer(self, key: str, *, required: bool = True) -> int | None:
        value = self._get(key, required=required)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(self._name(key), value, "an integer or null")
        return value

    def integer(self, key: str) -> int:
        value = self.opt_integer(key)
        if value is None:
            self.fail(self._name(key), value, "an integer")
        return value

    def number(self, key: str) -> float:
        value = self._get(key, required=True)
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value)):
            self.fail(self._name(key), value, "a finite number")
        return float(value)

    def flag(self, key: str, *, default: bool | None = None) -> bool:
        value = self._get(key, required=default is None)
        if value is None and default is not None:
            return default
        if not isinstance(value, bool):
            self.fail(self._name(key), value, "true or false")
        return value

    def texts(self, key: str, *, required: bool = True) -> tuple[str, ...]:
        value = self._get(key, required=required)
        if value is None and not required:
            return ()
        if not isinstance(value, list):
            self.fail(self._name(key), value, "a list of strings")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{self._name(key)}[{i}]", item, "a string")
        return tuple(value)

    def pairs(self, key: str) -> tuple[tuple[str, str], ...]:
        value = self._get(key, required=True)
        if not isinstance(value, list):
            self.fail(self._name(key), value, "a list of [source, destination] pairs")
        out = []
        for i, item in enumerate(value):
            if (not isinstance(item, list) or len(item) != 2
                    or not all(isinstance(x, str) for x in item)):
                self.fail(f"{self._name(key)}[{i}]", item, "a [source, destination] pair")
            out.append((item[0], item[1]))
        return tuple(out)

    def obj(self, key: str) -> _Fields:
        return _Fields(self._get(key, required=True), self._name(key), self.source)

    def done(self) -> None:
        extra = sorted(set(self.data) - self.read)
        if extra:
            raise JournalError(f"field {self._name(extra[0])!r} is not part of this entry",
                               source=self.source)


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class HostEndpoint:
    """A host as the journal names it: inventory name and libvirt URI."""

    name: str
    uri: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "uri": self.uri}

    @classmethod
    def read(cls, f: _Fields) -> HostEndpoint:
        out = cls(f.text("name"), f.text("uri"))
        f.done()
        return out


@dataclass(frozen=True)
class PlannedEntry:
    """The plan, written before anything changes: enough for recovery to find both hosts
    and the guest, and to make it persistent on the destination."""

    PHASE: ClassVar[Phase] = Phase.PLANNED
    domain: str
    uuid: str
    source: HostEndpoint
    destination: HostEndpoint
    owner: str
    summary: str
    persistent_xml: str | None

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "uuid": self.uuid, "source": self.source.to_json(),
                "destination": self.destination.to_json(), "owner": self.owner,
                "summary": self.summary, "persistent_xml": self.persistent_xml}

    @classmethod
    def read(cls, f: _Fields) -> PlannedEntry:
        return cls(f.text("domain"), f.text("uuid"), HostEndpoint.read(f.obj("source")),
                   HostEndpoint.read(f.obj("destination")), f.text("owner"), f.text("summary"),
                   f.opt_text("persistent_xml"))


@dataclass(frozen=True)
class ClaimedEntry:
    PHASE: ClassVar[Phase] = Phase.CLAIMED
    claim_id: int

    def to_json(self) -> dict[str, Any]:
        return {"claim_id": self.claim_id}

    @classmethod
    def read(cls, f: _Fields) -> ClaimedEntry:
        return cls(f.integer("claim_id"))


@dataclass(frozen=True)
class MigratingEntry:
    PHASE: ClassVar[Phase] = Phase.MIGRATING
    claim_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {"claim_id": self.claim_id}

    @classmethod
    def read(cls, f: _Fields) -> MigratingEntry:
        return cls(f.opt_integer("claim_id"))


@dataclass(frozen=True)
class VfDetachingEntry:
    """The SR-IOV ports about to be detached on the source: (source VF, destination VF)
    pairs with the device XML of each side, so that recovery can attach them again."""

    PHASE: ClassVar[Phase] = Phase.VF_DETACHING
    moves: tuple[tuple[str, str], ...]
    source_xml: tuple[str, ...]
    dest_xml: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"moves": [list(m) for m in self.moves], "source_xml": list(self.source_xml),
                "dest_xml": list(self.dest_xml)}

    @classmethod
    def read(cls, f: _Fields) -> VfDetachingEntry:
        out = cls(f.pairs("moves"), f.texts("source_xml"), f.texts("dest_xml"))
        for key in ("source_xml", "dest_xml"):
            if len(getattr(out, key)) != len(out.moves):
                f.fail(key, f"{len(getattr(out, key))} devices",
                       f"one device per move ({len(out.moves)})")
        return out


@dataclass(frozen=True)
class VfDetachedEntry:
    PHASE: ClassVar[Phase] = Phase.VF_DETACHED

    def to_json(self) -> dict[str, Any]:
        return {}

    @classmethod
    def read(cls, f: _Fields) -> VfDetachedEntry:
        return cls()


@dataclass(frozen=True)
class PostCopyEntry:
    PHASE: ClassVar[Phase] = Phase.POST_COPY
    claim_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {"claim_id": self.claim_id}

    @classmethod
    def read(cls, f: _Fields) -> PostCopyEntry:
        return cls(f.opt_integer("claim_id"))


@dataclass(frozen=True)
class PostCopyFailedEntry:
    PHASE: ClassVar[Phase] = Phase.POST_COPY_FAILED
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error}

    @classmethod
    def read(cls, f: _Fields) -> PostCopyFailedEntry:
        return cls(f.text("error"))


@dataclass(frozen=True)
class MigratedEntry:
    """libvirt's job statistics of the finished migration."""

    PHASE: ClassVar[Phase] = Phase.MIGRATED
    seconds: float
    downtime_ms: int | None
    data_transferred: int | None
    post_copy: bool

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "downtime_ms": self.downtime_ms,
                "data_transferred": self.data_transferred, "post_copy": self.post_copy}

    @classmethod
    def read(cls, f: _Fields) -> MigratedEntry:
        return cls(f.number("seconds"), f.opt_integer("downtime_ms"),
                   f.opt_integer("data_transferred"), f.flag("post_copy"))


@dataclass(frozen=True)
class VfAttachedEntry:
    PHASE: ClassVar[Phase] = Phase.VF_ATTACHED
    failed: tuple[str, ...] = ()
    """Why a chosen VF could not be attached (empty: all were)."""

    def to_json(self) -> dict[str, Any]:
        return {"failed": list(self.failed)}

    @classmethod
    def read(cls, f: _Fields) -> VfAttachedEntry:
        return cls(f.texts("failed"))


@dataclass(frozen=True)
class DoneEntry:
    PHASE: ClassVar[Phase] = Phase.DONE
    claim_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {"claim_id": self.claim_id}

    @classmethod
    def read(cls, f: _Fields) -> DoneEntry:
        return cls(f.opt_integer("claim_id"))


@dataclass(frozen=True)
class RolledBackEntry:
    PHASE: ClassVar[Phase] = Phase.ROLLED_BACK
    error: str
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "notes": list(self.notes)}

    @classmethod
    def read(cls, f: _Fields) -> RolledBackEntry:
        return cls(f.text("error"), f.texts("notes", required=False))


@dataclass(frozen=True)
class AttentionEntry:
    """Recovery left the migration for a person: what it found on both hosts."""

    PHASE: ClassVar[Phase] = Phase.ATTENTION
    found: str
    post_copy: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"found": self.found, "post_copy": self.post_copy}

    @classmethod
    def read(cls, f: _Fields) -> AttentionEntry:
        return cls(f.text("found"), f.flag("post_copy", default=False))


@dataclass(frozen=True)
class RecoveredEntry:
    """Recovery made claims and domains consistent: the outcome, as ``recover`` reports it,
    what was done and what was found (or why nothing needed inspecting)."""

    PHASE: ClassVar[Phase] = Phase.RECOVERED
    outcome: str
    actions: tuple[str, ...] = ()
    found: str | None = None
    why: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome, "actions": list(self.actions)}
        if self.found is not None:
            out["found"] = self.found
        if self.why is not None:
            out["why"] = self.why
        return out

    @classmethod
    def read(cls, f: _Fields) -> RecoveredEntry:
        return cls(f.text("outcome"), f.texts("actions", required=False), f.opt_text("found"),
                   f.opt_text("why"))


Entry = (PlannedEntry | ClaimedEntry | MigratingEntry | VfDetachingEntry | VfDetachedEntry
         | PostCopyEntry | PostCopyFailedEntry | MigratedEntry | VfAttachedEntry | DoneEntry
         | RolledBackEntry | AttentionEntry | RecoveredEntry)
"""Any journal entry."""

ENTRY_TYPES: Mapping[Phase, type[Entry]] = {
    t.PHASE: t for t in (
        PlannedEntry, ClaimedEntry, MigratingEntry, VfDetachingEntry, VfDetachedEntry,
        PostCopyEntry, PostCopyFailedEntry, MigratedEntry, VfAttachedEntry, DoneEntry,
        RolledBackEntry, AttentionEntry, RecoveredEntry)
}
"""phase -> the type of its entry (one per phase)."""


def entry_from_json(phase: str, payload: object, *, source: str = "journal entry") -> Entry:
    """The typed entry of a stored (phase, payload); :class:`JournalError` names the bad
    field (``source`` says which entry, e.g. ``journal entry 7 of migration ab12``)."""
    try:
        kind = ENTRY_TYPES[Phase.parse(phase)]
    except UnknownPhaseError as exc:
        raise JournalError(str(exc), source=source) from None
    fields = _Fields(payload, "", f"{source} ({phase})")
    entry = kind.read(fields)
    fields.done()
    return entry


@dataclass(frozen=True)
class JournalRecord:
    """One stored entry of a migration's journal."""

    id: int
    migration_id: str
    at: datetime
    entry: Entry

    @property
    def phase(self) -> Phase:
        return self.entry.PHASE


def last_phase(records: Sequence[JournalRecord]) -> Phase | None:
    """The phase of the newest entry (None for an empty journal)."""
    return records[-1].phase if records else None


_E = TypeVar("_E")


def first(records: Sequence[JournalRecord], kind: type[_E]) -> _E | None:
    """The first entry of type ``kind`` (None when there is none)."""
    for record in records:
        if isinstance(record.entry, kind):
            return record.entry
    return None

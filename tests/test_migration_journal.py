"""Typed journal entries (core/migration/journal.py): each round-trips through JSON, what
today's engine stores reads back, and a bad stored entry is refused naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from numa_migrate.core.errors import ParseError
from numa_migrate.core.migration.journal import (
    ENTRY_TYPES,
    AttentionEntry,
    ClaimedEntry,
    DoneEntry,
    Entry,
    HostEndpoint,
    JournalError,
    MigratedEntry,
    MigratingEntry,
    PlannedEntry,
    PostCopyEntry,
    PostCopyFailedEntry,
    RecoveredEntry,
    RolledBackEntry,
    VfAttachedEntry,
    VfDetachedEntry,
    VfDetachingEntry,
    entry_from_json,
)
from numa_migrate.core.migration.phases import Phase

PLANNED = PlannedEntry(
    domain="vnf", uuid="6f1c8d52-2f7e-4d5e-9a43-0c6a3b6c1f20",
    source=HostEndpoint("cmp-01", "qemu+ssh://cmp-01/system"),
    destination=HostEndpoint("cmp-02", "qemu+ssh://cmp-02/system"),
    owner="alice@ops/4242", summary="vnf -> cmp-02: cell 0 on node 1",
    persistent_xml="<domain type='kvm'/>")

EXAMPLES: list[Entry] = [
    PLANNED,
    PlannedEntry(**{**PLANNED.__dict__, "persistent_xml": None}),
    ClaimedEntry(17),
    MigratingEntry(17), MigratingEntry(None),
    VfDetachingEntry((("0000:3b:02.1", "0000:5e:02.3"),), ("<hostdev a/>",), ("<hostdev b/>",)),
    VfDetachedEntry(),
    PostCopyEntry(17),
    PostCopyFailedEntry("migration failed after the switch to post-copy: link down"),
    MigratedEntry(3.25, 41, 123456789, False), MigratedEntry(1.0, None, None, True),
    VfAttachedEntry(()), VfAttachedEntry(("cannot attach PCI device 0000:5e:02.3",)),
    DoneEntry(17), DoneEntry(None),
    RolledBackEntry("libvirt said no", ("resumed the paused guest on cmp-01",)),
    AttentionEntry("on cmp-01: running; on cmp-02: running"),
    AttentionEntry("on cmp-01: paused; on cmp-02: paused", post_copy=True),
    RecoveredEntry("completed", ("released the claim",), found="on cmp-01: absent"),
    RecoveredEntry("rolled back", ("freed the claim",), why="no plan journalled"),
]


@pytest.mark.parametrize("entry", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_entry_round_trips_through_json(entry: Entry) -> None:
    stored = json.loads(json.dumps(entry.to_json(), allow_nan=False))
    assert entry_from_json(entry.PHASE.value, stored) == entry
    assert ENTRY_TYPES[entry.PHASE] is type(entry)


@pytest.mark.parametrize(("phase", "payload", "entry"), [
    # payloads as the engine wrote them before the entries were typed
    ("planned", {"domain": "vnf", "uuid": PLANNED.uuid,
                 "source": {"name": "cmp-01", "uri": "qemu+ssh://cmp-01/system"},
                 "destination": {"name": "cmp-02", "uri": "qemu+ssh://cmp-02/system"},
                 "owner": "alice@ops/4242", "summary": "vnf -> cmp-02: cell 0 on node 1",
                 "persistent_xml": "<domain type='kvm'/>"}, PLANNED),
    ("rolled_back", {"error": "claimed first"}, RolledBackEntry("claimed first")),
    ("vf_detaching", {"moves": [["a", "b"]], "source_xml": ["x"], "dest_xml": ["y"]},
     VfDetachingEntry((("a", "b"),), ("x",), ("y",))),
    ("vf_detached", {}, VfDetachedEntry()),
    ("attention", {"found": "f"}, AttentionEntry("f")),
    ("attention", {"found": "f", "post_copy": True}, AttentionEntry("f", post_copy=True)),
    ("recovered", {"outcome": "rolled back", "why": "no plan journalled"},
     RecoveredEntry("rolled back", why="no plan journalled")),
    ("recovered", {"outcome": "completed", "actions": ["a"], "found": "f"},
     RecoveredEntry("completed", ("a",), found="f")),
])
def test_what_the_engine_stored_before_reads_back(phase: str, payload: Any,
                                                   entry: Entry) -> None:
    assert entry_from_json(phase, payload) == entry


def _planned(**changes: Any) -> dict[str, Any]:
    return PLANNED.to_json() | changes


@pytest.mark.parametrize(("phase", "payload", "message"), [
    ("plan", {}, "unknown migration phase 'plan'"),
    ("planned", [], "field 'payload' is []: expected a JSON object"),
    ("planned", {k: v for k, v in _planned().items() if k != "uuid"}, "field 'uuid' is missing"),
    ("planned", _planned(domain=7), "field 'domain' is 7: expected a string"),
    ("planned", _planned(source={"name": "cmp-01"}), "field 'source.uri' is missing"),
    ("planned", _planned(destination={"name": "x", "uri": 1}),
     "field 'destination.uri' is 1: expected a string"),
    ("planned", _planned(source="cmp-01"), "field 'source' is 'cmp-01': expected a JSON object"),
    ("planned", _planned(destination={"name": "x", "uri": "y", "port": 1}),
     "field 'destination.port' is not part of this entry"),
    ("planned", _planned(persistent_xml=["<domain/>"]),
     "field 'persistent_xml' is ['<domain/>']: expected a string or null"),
    ("planned", _planned(extra=1), "field 'extra' is not part of this entry"),
    ("claimed", {"claim_id": "17"}, "field 'claim_id' is '17': expected an integer"),
    ("claimed", {"claim_id": True}, "field 'claim_id' is True: expected an integer"),
    ("claimed", {"claim_id": None}, "field 'claim_id' is None: expected an integer"),
    ("migrating", {}, "field 'claim_id' is missing"),
    ("migrated", {"seconds": "NaN", "downtime_ms": 1, "data_transferred": 1,
                  "post_copy": False}, "field 'seconds' is 'NaN': expected a finite number"),
    ("migrated", {"seconds": float("inf"), "downtime_ms": 1, "data_transferred": 1,
                  "post_copy": False}, "field 'seconds' is inf: expected a finite number"),
    ("migrated", {"seconds": 1, "downtime_ms": 1.5, "data_transferred": 1,
                  "post_copy": False}, "field 'downtime_ms' is 1.5: expected an integer"),
    ("migrated", {"seconds": 1, "downtime_ms": 1, "data_transferred": 1,
                  "post_copy": "yes"}, "field 'post_copy' is 'yes': expected true or false"),
    ("vf_detaching", {"moves": [["a"]], "source_xml": [], "dest_xml": []},
     "field 'moves[0]' is ['a']: expected a [source, destination] pair"),
    ("vf_detaching", {"moves": [["a", "b"]], "source_xml": [], "dest_xml": ["y"]},
     "field 'source_xml' is '0 devices': expected one device per move (1)"),
    ("vf_attached", {"failed": ["ok", 3]}, "field 'failed[1]' is 3: expected a string"),
    ("vf_attached", {"failed": "all"}, "field 'failed' is 'all': expected a list of strings"),
    ("rolled_back", {"error": "x", "notes": [None]},
     "field 'notes[0]' is None: expected a string"),
    ("recovered", {"outcome": "completed", "actions": [], "found": 3},
     "field 'found' is 3: expected a string or null"),
    ("done", {"claim_id": 1, "why": "x"}, "field 'why' is not part of this entry"),
])
def test_a_bad_stored_entry_is_refused_naming_the_field(phase: str, payload: Any,
                                                        message: str) -> None:
    with pytest.raises(JournalError) as info:
        entry_from_json(phase, payload, source="journal entry 9 of migration ab12")
    assert isinstance(info.value, ParseError)
    assert str(info.value).startswith("journal entry 9 of migration ab12")
    assert message in str(info.value)


def test_long_values_are_shortened_in_the_message() -> None:
    with pytest.raises(JournalError) as info:
        entry_from_json("planned", _planned(domain=["x" * 10_000]))
    assert len(str(info.value)) < 200


def test_every_phase_has_exactly_one_entry_type() -> None:
    assert sorted(ENTRY_TYPES) == sorted(Phase)
    assert {t.PHASE for t in ENTRY_TYPES.values()} == set(Phase)

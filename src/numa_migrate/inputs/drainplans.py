"""Drain plan files (written by ``drain --save``, run by ``plan run``): bounded, checked.

Every problem is one :class:`DrainPlanError` line naming the file and the field, e.g.
``plan.json: waves[0].moves[1].destination: expected a string, got 3``.
"""

from __future__ import annotations

from pathlib import Path

from numa_migrate.core.drain.planfile import (
    FORMAT,
    VERSION,
    DrainPlanFile,
    PlannedMove,
    plan_id,
)
from numa_migrate.core.errors import ParseError
from numa_migrate.core.limits import MAX_GUEST_VCPUS, MAX_NUMA_NODES
from numa_migrate.inputs.bounds import DocBounds
from numa_migrate.inputs.documents import parse_json
from numa_migrate.inputs.fields import Node, Obj, root
from numa_migrate.inputs.files import read_bytes

__all__ = ["DrainPlanError", "load_drain_plan", "read_drain_plan"]

MAX_PLAN_BYTES = 16 * 1024 * 1024
MAX_MOVES = 100_000
MAX_NAME = 255
MAX_HOST_CPU = 1 << 16

_TOP = ("plan_id", "format", "version", "planned_from", "planned_at", "drain", "solver",
        "gap", "lower_bound_waves", "notes", "complete", "waves", "unplaceable",
        "suggestions", "suggestion_note", "stats", "fleet_notes")
_MOVE = ("guest", "kind", "source", "destination", "cells", "emulator_pins", "pci_devices")
MOVE_KINDS = ("drain", "relocate")
_CELL = ("guest_cell", "host_cell", "vcpus", "memory_mib", "pagesize_kib", "cpu_pinning")


class DrainPlanError(ParseError):
    """A drain plan file that cannot be run as it is."""


def _name(node: Node) -> str:
    return node.text(max_chars=MAX_NAME, non_empty=True)


def _cells(move: Obj) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    pins: dict[int, int] = {}
    host_cells: list[int] = []
    for item in move.list("cells", max_items=MAX_NUMA_NODES):
        cell = item.obj(known=_CELL)
        host_cells.append(cell.req("host_cell").integer(
            maximum=MAX_NUMA_NODES - 1, why=f"NUMA node ids are below {MAX_NUMA_NODES}"))
        pinning = cell.opt("cpu_pinning")
        if pinning is not None:
            for vcpu, cpu in pinning.int_key_map(
                    lambda n: n.integer(maximum=MAX_HOST_CPU), maximum=MAX_GUEST_VCPUS - 1,
                    why="QEMU's maximum vCPUs").items():
                pins[vcpu] = cpu
    return tuple(sorted(pins.items())), tuple(host_cells)


def _waves(doc: Obj) -> tuple[tuple[PlannedMove, ...], ...]:
    waves: list[tuple[PlannedMove, ...]] = []
    seen: dict[str, str] = {}
    index = 0
    for number, item in enumerate(doc.list("waves", max_items=MAX_MOVES), 1):
        wave = item.obj(known=("wave", "moves"))
        given = wave.req("wave")
        if given.integer(minimum=1, maximum=MAX_MOVES) != number:
            given.fail(f"waves are numbered 1, 2, ... in order: expected {number}")
        moves = []
        for entry in wave.list("moves", max_items=MAX_MOVES):
            move = entry.obj(known=_MOVE)
            guest = _name(move.req("guest"))
            if guest in seen:
                move.req("guest").fail(f"{guest} is moved twice (also {seen[guest]})")
            index += 1
            if index > MAX_MOVES:
                entry.fail(f"more than {MAX_MOVES} moves")
            source, dest = _name(move.req("source")), _name(move.req("destination"))
            if source == dest:
                move.req("destination").fail(f"the same host as the source ({source})")
            pins, cells = _cells(move)
            kind = move.get("kind", lambda n: n.choice(MOVE_KINDS), "drain")
            seen[guest] = entry.path
            moves.append(PlannedMove(index, number, guest, source, dest, pins, cells, kind))
        if not moves:
            wave.req("moves").fail("a wave without moves")
        waves.append(tuple(moves))
    return tuple(waves)


def read_drain_plan(raw: object, *, source: str = "plan") -> DrainPlanFile:
    """A parsed plan document, checked (format, version, id, every move)."""
    node = root(raw, source=source, error=DrainPlanError)
    if not isinstance(node.value, dict):
        node.expected("a drain plan object (numa-migrate drain --save FILE writes one)")
    doc = node.obj(known=_TOP)
    fmt = doc.req("format")
    if fmt.value != FORMAT:
        fmt.fail(f"expected {FORMAT!r}: write the file with `numa-migrate drain HOST --save "
                 "FILE` (a `migrate --dry-run` plan is for `validate --plan`)")
    version = doc.req("version").integer(minimum=0)
    if version != VERSION:
        doc.req("version").fail(f"version {version} is not known; this numa-migrate reads "
                                f"version {VERSION}")
    given = doc.req("plan_id").text(max_chars=64, non_empty=True)
    if given != plan_id(node.value):
        doc.req("plan_id").fail("does not match the plan's content (the file was edited); "
                                "plan the drain again")
    origin = doc.req("planned_from").obj(known=("kind", "source"))
    origin.req("kind").choice(("fleet", "inventory"))
    drained = tuple(_name(n) for n in doc.list("drain", max_items=MAX_MOVES))
    unplaceable = []
    for item in doc.list("unplaceable", max_items=MAX_MOVES):
        entry = item.obj(known=("guest", "source", "reason", "host"))
        unplaceable.append((_name(entry.req("guest")),
                            entry.req("reason").text(max_chars=4096)))
    return DrainPlanFile(
        plan_id=given, drained=drained, waves=_waves(doc), unplaceable=tuple(unplaceable),
        planned_from=origin.req("source").text(max_chars=4096),
        planned_at=doc.req("planned_at").text(max_chars=64), source=source)


def load_drain_plan(path: Path | str) -> DrainPlanFile:
    """Read and check a drain plan file."""
    path = Path(path)
    data = read_bytes(path, what="drain plan file", max_bytes=MAX_PLAN_BYTES,
                      error=DrainPlanError)
    raw = parse_json(data, source=str(path), bounds=DocBounds(max_bytes=MAX_PLAN_BYTES),
                     error=DrainPlanError)
    return read_drain_plan(raw, source=str(path))

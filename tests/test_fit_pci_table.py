"""Table tests of the fitter with SR-IOV / PCI devices (fit-case.md, "SR-IOV / PCI devices").

Each row is a fit case in the JSON format over a small named topology; it goes through the
case parser and :func:`fit_guest`, and is checked for the decision, the host cells chosen, the
devices taken per request (``FitResult.pci``) and, when refused, the per-host-cell reasons.
The independent judge (tests/validity.py) must agree on every row.

Most rows use a host whose cell 0 is the only one with room for the guest (the others have
too little memory), so that where the devices are, relative to the guest's cell, is what the
row is about. Coupling rows use hosts where every cell has room.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from numa_migrate.adapters.casefmt import answer_case, case_from_json
from numa_migrate.core.fit.fitter import FitResult, fit_guest
from numa_migrate.core.fit.reasons import Code
from numa_migrate.core.request import Flavor, guest_from_flavor
from tests.validity import exhaustive_fits, pci_policy, pci_support, violations

Json = dict[str, Any]

# --- named topologies -------------------------------------------------------------------

ROOMY, SMALL = 4096, 512
"""Cell memory: the test guest (1024 MiB) fits a roomy cell, never a small one."""


def cell(cell_id: int, memory_mib: int = ROOMY, socket: int | None = None) -> Json:
    """A cell of 4 shared CPUs (no pinning: only memory and devices decide)."""
    out: Json = {"id": cell_id, "cpuset": list(range(4 * cell_id, 4 * cell_id + 4)),
                 "pcpuset": [], "memory_mib": memory_mib}
    if socket is not None:
        out["socket"] = socket
    return out


TWO_SOCKETS = [cell(0, socket=0), cell(1, SMALL, socket=1)]
"""2 cells on 2 sockets; the guest can only go to cell 0."""
TWO_NO_SOCKET = [cell(0), cell(1, SMALL)]
"""2 cells, no socket known; the guest can only go to cell 0."""
FOUR_SOCKETS = [cell(0, socket=0), cell(1, SMALL, socket=0), cell(2, SMALL, socket=1),
                cell(3, SMALL, socket=1)]
"""4 cells, 2 per socket (0,1 | 2,3); the guest can only go to cell 0."""
FOUR_ONE_UNKNOWN = [cell(0, socket=0), cell(1, SMALL, socket=0), cell(2, SMALL, socket=1),
                    cell(3, SMALL)]
"""4 cells, cell 3's socket unknown; the guest can only go to cell 0."""
TWO_ROOMY = [cell(0, 8192, socket=0), cell(1, ROOMY, socket=0)]
"""2 cells with room; cell 0 has more memory, so it is the first choice (spread)."""
FOUR_ROOMY = [cell(0, 8192), cell(1, 8192), cell(2), cell(3)]
"""4 cells with room; cells 0 and 1 have more memory (first choices)."""

# --- devices ------------------------------------------------------------------------------

PF1, PF2, PF3 = "0000:81:00.0", "0000:82:00.0", "0000:8a:00.0"


def vf(address: str, node: int | None, net: str | None = "physnet1", *, parent: str = PF1,
       vendor: str = "8086", product: str = "154c", status: str = "available") -> Json:
    return {"address": address, "vendor_id": vendor, "product_id": product, "numa_node": node,
            "dev_type": "type-VF", "physical_network": net, "parent_addr": parent,
            "status": status}


def pf(address: str, node: int | None, net: str | None = "physnet1") -> Json:
    return {"address": address, "vendor_id": "8086", "product_id": "1572", "numa_node": node,
            "dev_type": "type-PF", "physical_network": net, "parent_addr": None}


def gpu(address: str, node: int | None) -> Json:
    return {"address": address, "vendor_id": "10de", "product_id": "1eb8", "numa_node": node,
            "dev_type": "type-PCI"}


A, B, C, D = "0000:81:02.0", "0000:81:02.1", "0000:81:02.2", "0000:81:02.3"
NET1 = [{"physical_network": "physnet1"}]


def req(count: int = 1, spec: list[Json] | None = None, policy: str | None = None) -> Json:
    out: Json = {"count": count, "spec": NET1 if spec is None else spec}
    if policy is not None:
        out["numa_policy"] = policy
    return out


DECOYS = [vf(f"0000:84:02.{i}", i // 3, "physnet9", parent="0000:84:00.0") for i in range(6)]
"""Devices nobody asks for: 3 on cell 0, 3 on cell 1, so those cells come first in Nova's
order when a guest requests devices (the most free devices first)."""

ONE_CELL = {"hw:numa_nodes": "1"}
TWO_CELLS = {"hw:numa_nodes": "2"}


@dataclass
class Row:
    description: str
    cells: list[Json]
    devices: list[Json]
    requests: list[Json]
    fits: bool
    host_cells: list[int] | None = None
    """The host cell of each guest cell; compared as a set when ``any_order``."""
    taken: list[list[str]] | None = None
    """Device addresses taken per request (order within a request not compared)."""
    free: dict[int, int] | None = None
    """Refusal: free matching devices the reason gives for each host cell."""
    short_request: int = 1
    specs: dict[str, str] = field(default_factory=lambda: dict(ONE_CELL))
    image: dict[str, str] = field(default_factory=dict)
    vcpus: int = 2
    ram: int = 1024
    any_order: bool = False
    contains: list[int] | None = None
    """Host cells the placement must include (the others are free)."""


def case_json(row: Row) -> Json:
    return {
        "id": row.description,
        "host": {"cells": copy.deepcopy(row.cells), "pci_devices": copy.deepcopy(row.devices)},
        "flavor": {"vcpus": row.vcpus, "memory_mib": row.ram, "extra_specs": dict(row.specs)},
        "image_properties": dict(row.image),
        "limits": None,
        "pci_requests": copy.deepcopy(row.requests),
    }


def run(raw: Json) -> FitResult:
    case = case_from_json(raw)
    guest = guest_from_flavor(case.flavor, case.image_properties, case.pci_requests)
    return fit_guest(case.host, guest, case.options)


ROWS = [
    # required
    Row("required: a VF on the guest's cell", TWO_SOCKETS, [vf(A, 0)], [req(policy="required")],
        True, [0], [[A]]),
    Row("required: a VF on another cell does not count", TWO_SOCKETS, [vf(A, 1)],
        [req(policy="required")], False, free={0: 0, 1: 1}),
    Row("required: a VF with no NUMA node does not count", TWO_SOCKETS, [vf(A, None)],
        [req(policy="required")], False, free={0: 0, 1: 0}),
    Row("required: only the guest's cell's VFs, even when more are elsewhere", TWO_SOCKETS,
        [vf(A, 0), vf(B, 1), vf(C, 1)], [req(2, policy="required")], False, free={0: 1, 1: 2}),
    # legacy
    Row("legacy: a VF on the guest's cell", TWO_SOCKETS, [vf(A, 0)], [req(policy="legacy")],
        True, [0], [[A]]),
    Row("legacy: a VF with no NUMA node", TWO_SOCKETS, [vf(A, None)], [req(policy="legacy")],
        True, [0], [[A]]),
    Row("legacy: a VF on another cell does not count", TWO_SOCKETS, [vf(A, 1)],
        [req(policy="legacy")], False, free={0: 0, 1: 1}),
    Row("legacy: the guest's cell first, then no node", TWO_SOCKETS,
        [vf(A, None), vf(B, 0), vf(C, 1)], [req(2, policy="legacy")], True, [0], [[A, B]]),
    Row("legacy: nearest first (the cell's VF before the no-node one)", TWO_SOCKETS,
        [vf(A, None), vf(B, 0)], [req(1, policy="legacy")], True, [0], [[B]]),
    Row("legacy is the default policy", TWO_SOCKETS, [vf(A, None)], [req()], True, [0], [[A]]),
    # preferred
    Row("preferred: a VF on another cell is used when nothing is nearer", TWO_SOCKETS,
        [vf(A, 1)], [req(policy="preferred")], True, [0], [[A]]),
    Row("preferred: nearest first: the cell, then no node, then elsewhere", TWO_SOCKETS,
        [vf(A, 1), vf(B, None), vf(C, 0)], [req(2, policy="preferred")], True, [0], [[C, B]]),
    Row("preferred: still needs matching devices somewhere", TWO_SOCKETS,
        [vf(A, 1, "physnet2"), vf(B, 0, "physnet2")], [req(policy="preferred")], False,
        free={0: 0, 1: 0}),
    # socket
    Row("socket: a VF on the guest's cell", TWO_SOCKETS, [vf(A, 0)], [req(policy="socket")],
        True, [0], [[A]]),
    Row("socket: a VF on another cell of the same socket", FOUR_SOCKETS, [vf(A, 1)],
        [req(policy="socket")], True, [0], [[A]]),
    Row("socket: a VF on another socket does not count", FOUR_SOCKETS, [vf(A, 2), vf(B, 3)],
        [req(policy="socket")], False, free={0: 0, 1: 0, 2: 1, 3: 1}),
    Row("socket: a VF with no NUMA node does not count", FOUR_SOCKETS, [vf(A, None)],
        [req(policy="socket")], False, free={0: 0, 1: 0, 2: 0, 3: 0}),
    # not enough on the guest's cell: the socket's devices in Nova's pool order (node 1's pool
    # is listed first)
    Row("socket: not enough on the guest's cell, then the socket", FOUR_SOCKETS,
        [vf(A, 1), vf(B, 0), vf(C, 1)], [req(2, policy="socket")], True, [0], [[A, C]]),
    Row("socket: enough on the guest's cell: those", FOUR_SOCKETS,
        [vf(A, 1), vf(B, 0), vf(C, 1)], [req(1, policy="socket")], True, [0], [[B]]),
    Row("socket: on another socket of a two-socket host", TWO_SOCKETS, [vf(A, 1)],
        [req(policy="socket")], False, free={0: 0, 1: 1}),
    Row("socket: no socket known: only the guest's cell counts", TWO_NO_SOCKET, [vf(A, 1)],
        [req(policy="socket")], False, free={0: 0, 1: 1}),
    Row("socket: no socket known, a VF on the guest's cell is fine", TWO_NO_SOCKET, [vf(A, 0)],
        [req(policy="socket")], True, [0], [[A]]),
    Row("socket: one host cell without a socket disables the socket rule", FOUR_ONE_UNKNOWN,
        [vf(A, 1)], [req(policy="socket")], False, free={0: 0, 1: 1, 2: 0, 3: 0}),
    # allocated devices, PFs
    Row("an allocated VF never counts", TWO_SOCKETS, [vf(A, 0, status="allocated")],
        [req(policy="preferred")], False, free={0: 0, 1: 0}),
    Row("the free VF is taken, not the allocated one", TWO_SOCKETS,
        [vf(A, 0, status="allocated"), vf(B, 0)], [req(policy="required")], True, [0], [[B]]),
    Row("a PF serves a request that asks for type-PF", TWO_SOCKETS, [pf(PF1, 0), vf(A, 0)],
        [req(spec=[{"dev_type": "type-PF", "physical_network": "physnet1"}],
             policy="required")], True, [0], [[PF1]]),
    Row("a PF never serves a request that does not ask for PFs", TWO_SOCKETS, [pf(PF1, 0)],
        [req(spec=[{"vendor_id": "8086", "product_id": "1572"}], policy="preferred")], False,
        free={0: 0, 1: 0}),
    Row("an unrequested PF on the guest's cell is not counted: the no-node VF serves "
        "(Nova would count the PF and refuse)", TWO_SOCKETS, [pf(PF1, 0), vf(A, None)],
        [req(policy="legacy")], True, [0], [[A]]),
    Row("a PF is allocated: it does not serve a type-PF request", TWO_SOCKETS,
        [{**pf(PF1, 0), "status": "allocated"}],
        [req(spec=[{"dev_type": "type-PF"}], policy="preferred")], False, free={0: 0, 1: 0}),
    # requests in order
    Row("requests in order: the first (legacy) takes the cell's VF, the second (required) "
        "finds none", TWO_SOCKETS, [vf(A, 0), vf(B, None)],
        [req(policy="legacy"), req(policy="required")], False, free={0: 0, 1: 0},
        short_request=2),
    Row("requests in order: required first, then legacy takes the no-node VF", TWO_SOCKETS,
        [vf(A, 0), vf(B, None)], [req(policy="required"), req(policy="legacy")], True, [0],
        [[A], [B]]),
    Row("two requests need 3 VFs, the host has 2", TWO_SOCKETS, [vf(A, 0), vf(B, 0)],
        [req(2, policy="required"), req(1, policy="required")], False, free={0: 0, 1: 0},
        short_request=2),
    Row("two requests get distinct VFs", TWO_SOCKETS, [vf(A, 0), vf(B, 0), vf(C, 0)],
        [req(2, policy="required"), req(1, policy="required")], True, [0], [[A, B], [C]]),
    # spec matching
    Row("spec alternatives: the first alternative matches", TWO_SOCKETS,
        [vf(A, 0, "physnet2", vendor="15b3", product="1018", parent=PF2)],
        [req(spec=[{"vendor_id": "15b3"}, {"physical_network": "physnet1"}],
             policy="required")], True, [0], [[A]]),
    Row("spec alternatives: the second alternative matches", TWO_SOCKETS, [vf(A, 0)],
        [req(spec=[{"vendor_id": "15b3"}, {"physical_network": "physnet1"}],
             policy="required")], True, [0], [[A]]),
    Row("spec alternatives: every attribute of an alternative must match", TWO_SOCKETS,
        [vf(A, 0, "physnet2"), vf(B, 0, "physnet1", vendor="15b3", parent=PF2)],
        [req(spec=[{"vendor_id": "15b3", "physical_network": "physnet2"},
                   {"vendor_id": "8086", "physical_network": "physnet1"}],
             policy="required")], False, free={0: 0, 1: 0}),
    Row("spec alternatives together serve one request", TWO_SOCKETS,
        [vf(A, 0, "physnet2"), vf(B, 0, "physnet3", parent=PF2)],
        [req(2, spec=[{"physical_network": "physnet2"}, {"physical_network": "physnet3"}],
             policy="required")], True, [0], [[A, B]]),
    Row("case-insensitive: physical network", TWO_SOCKETS, [vf(A, 0, "PhysNet1")],
        [req(spec=[{"physical_network": "PHYSNET1"}], policy="required")], True, [0], [[A]]),
    Row("case-insensitive: vendor and product ids", TWO_SOCKETS,
        [vf(A, 0, vendor="15b3", product="101e")],
        [req(spec=[{"vendor_id": "15B3", "product_id": "101E"}], policy="required")], True,
        [0], [[A]]),
    Row("case-insensitive: the PF address", TWO_SOCKETS, [vf(A, 0, parent=PF3)],
        [req(spec=[{"address": "0000:8A:00.0"}], policy="required")], True, [0], [[A]]),
    Row("address: a VF matches by its PF's address", TWO_SOCKETS,
        [vf(A, 0), vf(B, 0, parent=PF2)], [req(spec=[{"address": PF2}], policy="required")],
        True, [0], [[B]]),
    Row("address: a VF does not match by its own address", TWO_SOCKETS, [vf(A, 0)],
        [req(spec=[{"address": A}], policy="required")], False, free={0: 0, 1: 0}),
    Row("address: a whole PCI device matches by its own address", TWO_SOCKETS,
        [gpu("0000:3b:00.0", 0)], [req(spec=[{"address": "0000:3b:00.0"}],
                                        policy="required")], True, [0], [["0000:3b:00.0"]]),
    Row("address: short spellings are the same address", TWO_SOCKETS, [vf(A, 0)],
        [req(spec=[{"address": "0:81:0.0"}], policy="required")], True, [0], [[A]]),
    Row("type-PCI devices by vendor and dev_type", TWO_SOCKETS,
        [gpu("0000:3b:00.0", 1), gpu("0000:3c:00.0", 0)],
        [req(spec=[{"vendor_id": "10de", "dev_type": "type-PCI"}], policy="required")], True,
        [0], [["0000:3c:00.0"]]),
    # the policy from the flavor / image
    Row("flavor policy applies to requests without their own", TWO_SOCKETS, [vf(A, None)],
        [req()], False, free={0: 0, 1: 0},
        specs={**ONE_CELL, "hw:pci_numa_affinity_policy": "required"}),
    Row("image policy applies to requests without their own", TWO_SOCKETS, [vf(A, None)],
        [req()], False, free={0: 0, 1: 0}, image={"hw_pci_numa_affinity_policy": "required"}),
    Row("a request's own policy wins over the flavor's", TWO_SOCKETS, [vf(A, None)],
        [req(policy="legacy")], True, [0], [[A]],
        specs={**ONE_CELL, "hw:pci_numa_affinity_policy": "required"}),
    Row("flavor preferred policy reaches another cell", TWO_SOCKETS, [vf(A, 1)], [req()],
        True, [0], [[A]], specs={**ONE_CELL, "hw:pci_numa_affinity_policy": "preferred"}),
    # a guest without NUMA topology
    Row("no NUMA topology: devices are not filtered by node", TWO_SOCKETS, [vf(A, 1)],
        [req(policy="required")], True, [], [[A]], specs={}),
    Row("no NUMA topology: devices must exist", TWO_SOCKETS, [vf(A, 1, "physnet2")],
        [req(policy="required")], False, specs={}),
    Row("no NUMA topology: allocated devices do not count", TWO_SOCKETS,
        [vf(A, 1, status="allocated"), vf(B, None)], [req(2, policy="legacy")], False,
        specs={}),
    Row("no NUMA topology: PFs only when asked for", TWO_SOCKETS, [pf(PF1, 1), vf(A, 0)],
        [req(2, policy="preferred")], False, specs={}),
    # coupling: the devices choose the host cells
    Row("coupling: the cell with the device is chosen (cells with devices come first)",
        TWO_ROOMY, [vf(A, 1)], [req(policy="required")], True, [1], [[A]]),
    Row("coupling: the first-choice cell (most devices) lacks the device: the other cell",
        TWO_ROOMY,
        [vf(B, 0, "physnet2"), vf(C, 0, "physnet2"), vf(D, 0, "physnet2"), vf(A, 1)],
        [req(policy="required")], True, [1], [[A]]),
    Row("coupling: legacy: the first-choice cell lacks the device, the other cell has it",
        TWO_ROOMY, [vf(B, 0, "physnet2"), vf(C, 0, "physnet2"), vf(A, 1)],
        [req(policy="legacy")], True, [1], [[A]]),
    Row("coupling: with devices requested, the cell holding them is tried first (Nova's "
        "order), even under preferred", TWO_ROOMY, [vf(A, 1)], [req(policy="preferred")],
        True, [1], [[A]]),
    Row("coupling: two guest cells go where the two devices are, not to the first choices",
        FOUR_ROOMY, [*DECOYS, vf(A, 2), vf(B, 3)], [req(2, policy="required")], True, [2, 3],
        [[A, B]],
        specs=dict(TWO_CELLS), vcpus=4, ram=2048, any_order=True),
    Row("coupling: one device per request, on different cells", FOUR_ROOMY,
        [*DECOYS, vf(A, 1), vf(B, 3, "physnet2", parent=PF2)],
        [req(policy="required"), req(spec=[{"physical_network": "physnet2"}],
                                     policy="required")],
        True, [1, 3], [[A], [B]], specs=dict(TWO_CELLS), vcpus=4, ram=2048, any_order=True),
    Row("coupling: the cells with devices cannot take the guest", FOUR_SOCKETS,
        [vf(A, 1), vf(B, 2)], [req(policy="required")], False, free={0: 0, 1: 1, 2: 1, 3: 0}),
    Row("coupling: two devices on one cell cannot serve a two-cell guest's required request "
        "unless it takes that cell", FOUR_ROOMY, [*DECOYS, vf(A, 3), vf(B, 3)],
        [req(2, policy="required")], True, None, [[A, B]], specs=dict(TWO_CELLS), vcpus=4,
        ram=2048, contains=[3]),
]


def _host_cells(result: FitResult) -> list[int]:
    assert result.placement is not None
    return [c.host_cell for c in result.placement.cells]


@pytest.mark.parametrize("row", ROWS, ids=[r.description for r in ROWS])
def test_fit_pci_table(row: Row) -> None:
    raw = case_json(row)
    result = run(raw)
    assert result.fits is row.fits, result.summary
    assert exhaustive_fits(raw) is row.fits, "the judge disagrees with the table"
    if row.fits:
        assert violations(raw, answer_case(raw)) == []
        if row.host_cells is not None:
            got = _host_cells(result)
            if row.any_order:
                assert sorted(got) == sorted(row.host_cells), got
            else:
                assert got == row.host_cells, got
        if row.contains is not None:
            assert set(row.contains) <= set(_host_cells(result))
        assert result.pci is not None
        if row.taken is not None:
            assert [sorted(t) for t in result.pci.taken] == [sorted(t) for t in row.taken]
        flat = [a for t in result.pci.taken for a in t]
        assert len(flat) == len(set(flat)), "a device is taken twice"
        assert [len(t) for t in result.pci.taken] == [r["count"] for r in row.requests]
        return
    assert result.pci is None
    codes = {r.code for r in result.reasons}
    assert codes == {Code.PCI_DEVICES_SHORT}, result.reasons
    assert f"PCI request {row.short_request} needs" in result.summary
    if row.free is None:  # no NUMA topology: one reason for the whole host
        return
    per_cell = {r.host_cell: r for r in result.reasons if r.host_cell is not None}
    assert sorted(per_cell) == [c["id"] for c in row.cells], "a reason per host cell"
    for cell_id, free in row.free.items():
        reason = per_cell[cell_id]
        assert reason.have == free, (cell_id, reason)
        assert f"{free} free here" in reason.message, reason.message
        assert dict(reason.details)["pci_request"] == row.short_request
    request = row.requests[row.short_request - 1]
    policy = request.get("numa_policy") or row.specs.get("hw:pci_numa_affinity_policy") \
        or row.image.get("hw_pci_numa_affinity_policy") or "legacy"
    assert f"({policy})" in result.summary, result.summary
    assert "free matching devices:" in result.summary, result.summary


def test_the_row_pins_the_guest_where_the_topology_says() -> None:
    """The single-room topologies really leave the guest only cell 0 (without PCI)."""
    for cells in (TWO_SOCKETS, TWO_NO_SOCKET, FOUR_SOCKETS, FOUR_ONE_UNKNOWN):
        row = Row("no pci", cells, [], [], True)
        result = run(case_json(row))
        assert _host_cells(result) == [0]
    assert _host_cells(run(case_json(Row("no pci", TWO_ROOMY, [], [], True)))) == [0]


def test_without_pci_requests_cells_with_devices_go_last() -> None:
    """Nova's order: a guest that asks for no device is kept off the cells holding some."""
    row = Row("no request", TWO_ROOMY, [vf(A, 0)], [], True)
    result = run(case_json(row))
    assert _host_cells(result) == [1]
    assert result.pci is None


def test_refusal_text_for_a_required_request() -> None:
    row = Row("text", TWO_SOCKETS, [vf(A, 1), vf(B, None)], [req(policy="required")], False)
    result = run(case_json(row))
    assert result.summary == (
        "PCI request 1 needs 1 device matching physical_network=physnet1 on host cell(s) 0 "
        "(required); 0 free there (free matching devices: node 1: 1, no node: 1); "
        "nor does any other choice of 1 host cell that can take the guest"
    )
    messages = sorted((r.host_cell, r.message) for r in result.reasons
                      if r.host_cell is not None)
    assert messages == [
        (0, "needs 1 device matching physical_network=physnet1 on this cell (required); "
            "0 free here"),
        (1, "needs 1 device matching physical_network=physnet1 on this cell (required); "
            "1 free here"),
    ]


def test_refusal_text_for_a_legacy_request_counts_no_node_devices() -> None:
    row = Row("text", TWO_SOCKETS, [vf(A, 1), vf(B, 1)], [req(2, policy="legacy")], False)
    result = run(case_json(row))
    assert "on host cell(s) 0 or with no NUMA node (legacy); 0 free there" in result.summary
    per_cell = {r.host_cell: r.message for r in result.reasons if r.host_cell is not None}
    assert per_cell[1].endswith("2 free here, 0 with no NUMA node")


def test_refusal_names_the_request() -> None:
    named = {**req(policy="required"), "name": "port-sriov-1"}
    row = Row("named", TWO_SOCKETS, [vf(A, 1)], [named], False)
    assert "PCI request 1 (port-sriov-1) needs" in run(case_json(row)).summary


def test_the_answer_document_refuses_with_the_reason() -> None:
    row = ROWS[1]
    answer = answer_case(case_json(row))
    assert answer["fits"] is False and answer["cells"] == []
    assert str(answer["reason"]).startswith("PCI request 1 needs 1 device")


def test_no_numa_refusal_counts_per_node() -> None:
    row = Row("no numa", TWO_SOCKETS, [vf(A, 1), vf(B, None)], [req(3)], False, specs={})
    result = run(case_json(row))
    assert result.summary == (
        "PCI request 1 needs 3 devices matching physical_network=physnet1 anywhere on the "
        "host (legacy); 2 free there (free matching devices: node 1: 1, no node: 1)"
    )


def test_judge_undecided_when_an_earlier_request_has_a_choice() -> None:
    """The format does not say which VF request 1 takes on the guest's cell: A leaves B for
    request 2, B leaves nothing it matches. The judge says so (None); the fitter is checked
    only not to fit where no choice serves."""
    row = Row("choice", TWO_SOCKETS, [vf(A, 0), vf(B, 0, "physnet2", parent=PF2)],
              [req(spec=[{"vendor_id": "8086"}], policy="required"),
               req(spec=[{"physical_network": "physnet2"}], policy="required")], True)
    raw = case_json(row)
    assert pci_support(raw, [0]) is None
    assert pci_support(raw, [1]) is False
    assert exhaustive_fits(raw) is None
    result = run(raw)
    assert result.fits  # nearest first, in device order: A for request 1, B for request 2
    assert result.pci is not None and result.pci.taken == ((A,), (B,))


# --- bad input: the JSON part ---------------------------------------------------------------

BASE = case_json(Row("bad", TWO_SOCKETS, [vf(A, 0)], [req(policy="required")], True))


def _dev(c: Json) -> Json:
    dev: Json = c["host"]["pci_devices"][0]
    return dev


def _req(c: Json) -> Json:
    request: Json = c["pci_requests"][0]
    return request


def _alt(c: Json) -> Json:
    alt: Json = c["pci_requests"][0]["spec"][0]
    return alt


BAD = [
    ("unknown spec key", lambda c: _alt(c).update(colour="red"),
     "case.pci_requests[0].spec[0].colour",
     ["vendor_id", "product_id", "dev_type", "physical_network", "address"]),
    ("bad device vendor id", lambda c: _dev(c).update(vendor_id="80861"),
     "host.pci_devices[0].vendor_id", ["four hex digits"]),
    ("bad spec product id", lambda c: _alt(c).update(product_id="xyz1"),
     "case.pci_requests[0].spec[0].product_id", ["four hex digits"]),
    ("bad device address", lambda c: _dev(c).update(address="81:02"),
     "host.pci_devices[0].address", ["dddd:bb:ss.f"]),
    ("bad parent address", lambda c: _dev(c).update(parent_addr="0000:81:20.0"),
     "host.pci_devices[0].parent_addr", ["dddd:bb:ss.f", "slot at most 1f"]),
    ("bad spec address", lambda c: _alt(c).update(address="0000:81:00"),
     "case.pci_requests[0].spec[0].address", ["dddd:bb:ss.f"]),
    ("bad device dev_type", lambda c: _dev(c).update(dev_type="VF"),
     "host.pci_devices[0].dev_type", ["type-VF", "type-PF", "type-PCI"]),
    ("bad spec dev_type", lambda c: _alt(c).update(dev_type="type-SF"),
     "case.pci_requests[0].spec[0].dev_type", ["type-VF", "type-PF", "type-PCI"]),
    ("bad status", lambda c: _dev(c).update(status="busy"),
     "host.pci_devices[0].status", ["available", "allocated"]),
    ("bad numa_policy", lambda c: _req(c).update(numa_policy="strict"),
     "case.pci_requests[0].numa_policy", ["required", "socket", "legacy", "preferred"]),
    ("numa_policy not a string", lambda c: _req(c).update(numa_policy=1),
     "case.pci_requests[0].numa_policy", ["required", "socket", "legacy", "preferred"]),
    ("duplicate device address", lambda c: c["host"]["pci_devices"].append(vf(A, 1)),
     "host.pci_devices[1].address", ["listed twice"]),
    ("duplicate device address, another spelling",
     lambda c: c["host"]["pci_devices"].append(vf("0:81:2.0", 1)),
     "host.pci_devices[1].address", ["0000:81:02.0", "listed twice"]),
    ("count 0", lambda c: _req(c).update(count=0), "case.pci_requests[0].count",
     ["less than 1"]),
    ("huge count", lambda c: _req(c).update(count=10**12), "case.pci_requests[0].count",
     ["more than 65536"]),
    ("count not an integer", lambda c: _req(c).update(count="2"), "case.pci_requests[0].count",
     ["expected an integer"]),
    ("count a boolean", lambda c: _req(c).update(count=True), "case.pci_requests[0].count",
     ["expected an integer"]),
    ("count a fraction", lambda c: _req(c).update(count=1.5), "case.pci_requests[0].count",
     ["expected an integer"]),
    ("count missing", lambda c: _req(c).pop("count"), "case.pci_requests[0].count",
     ["missing"]),
    ("empty spec", lambda c: _req(c).update(spec=[]), "case.pci_requests[0].spec",
     ["at least one alternative"]),
    ("spec not a list", lambda c: _req(c).update(spec={"physical_network": "physnet1"}),
     "case.pci_requests[0].spec", ["expected a list"]),
    ("spec alternative not an object", lambda c: _req(c).update(spec=["physnet1"]),
     "case.pci_requests[0].spec[0]", ["expected an object"]),
    ("spec value not a string", lambda c: _alt(c).update(physical_network=1),
     "case.pci_requests[0].spec[0].physical_network", ["expected a string"]),
    ("socket out of range", lambda c: c["host"]["cells"][0].update(socket=5000),
     "host.cells[0].socket", ["4095"]),
    ("negative socket", lambda c: c["host"]["cells"][0].update(socket=-1),
     "host.cells[0].socket", ["less than 0"]),
    ("socket a string", lambda c: c["host"]["cells"][0].update(socket="0"),
     "host.cells[0].socket", ["expected an integer"]),
    ("numa_node out of range", lambda c: _dev(c).update(numa_node=100000),
     "host.pci_devices[0].numa_node", ["1023"]),
    ("numa_node a string", lambda c: _dev(c).update(numa_node="0"),
     "host.pci_devices[0].numa_node", ["expected an integer"]),
    ("pci_devices not a list", lambda c: c["host"].update(pci_devices={}),
     "host.pci_devices", ["expected a list"]),
    ("device not an object", lambda c: c["host"].update(pci_devices=["0000:81:02.0"]),
     "host.pci_devices[0]", ["expected an object"]),
    ("device vendor missing", lambda c: _dev(c).pop("vendor_id"),
     "host.pci_devices[0].vendor_id", ["missing"]),
    ("physical network empty", lambda c: _dev(c).update(physical_network=""),
     "host.pci_devices[0].physical_network", ["must not be empty"]),
    ("pci_requests not a list", lambda c: c.update(pci_requests={"count": 1}),
     "case.pci_requests", ["expected a list"]),
    ("request not an object", lambda c: c.update(pci_requests=[1]),
     "case.pci_requests[0]", ["expected an object"]),
    ("request name not a string", lambda c: _req(c).update(name=7),
     "case.pci_requests[0].name", ["expected a string"]),
]


@pytest.mark.parametrize(("what", "mutate", "path", "allowed"), BAD,
                         ids=[b[0] for b in BAD])
def test_bad_pci_input_is_an_invalid_case(what: str, mutate: Any, path: str,
                                          allowed: list[str]) -> None:
    raw = copy.deepcopy(BASE)
    mutate(raw)
    answer = answer_case(raw)
    assert set(answer) == {"id", "error"}, answer
    error = answer["error"]
    assert isinstance(error, dict)
    assert error["type"] == "InvalidCase", error
    message = error["message"]
    assert message.startswith(path + ":") or message.startswith(path + " "), message
    for word in allowed:
        assert word in message, (word, message)
    assert "Traceback" not in message


def test_unknown_device_and_request_fields_are_ignored() -> None:
    """The format: unknown fields are ignored (only spec keys are a closed list)."""
    raw = copy.deepcopy(BASE)
    _dev(raw)["colour"] = "red"
    _req(raw)["colour"] = "red"
    assert answer_case(raw)["fits"] is True


# --- error types: the flavor's / image's PCI NUMA affinity policy ----------------------------


def _with(specs: dict[str, str], image: dict[str, str] | None = None) -> Json:
    raw = copy.deepcopy(BASE)
    raw["flavor"]["extra_specs"] = specs
    raw["image_properties"] = image or {}
    return raw


def _error_type(raw: Json) -> str | None:
    error = answer_case(raw).get("error")
    return None if error is None else str(error["type"])  # type: ignore[index]


POLICY = "hw:pci_numa_affinity_policy"
IMAGE_POLICY = "hw_pci_numa_affinity_policy"


@pytest.mark.parametrize(("specs", "image", "error"), [
    ({**ONE_CELL, POLICY: "required"}, {IMAGE_POLICY: "legacy"}, "ImagePCINUMAPolicyForbidden"),
    ({**ONE_CELL, POLICY: "socket"}, {IMAGE_POLICY: "preferred"},
     "ImagePCINUMAPolicyForbidden"),
    ({**ONE_CELL, POLICY: "strict"}, {}, "InvalidPCINUMAAffinity"),
    ({**ONE_CELL, POLICY: "Required"}, {}, "InvalidPCINUMAAffinity"),
    ({POLICY: "strict"}, {}, "InvalidPCINUMAAffinity"),  # no NUMA topology: still checked
    ({**ONE_CELL}, {IMAGE_POLICY: "strict"}, "ValueError"),
    ({**ONE_CELL, POLICY: "required"}, {IMAGE_POLICY: "strict"}, "ValueError"),
    ({**ONE_CELL, POLICY: "strict"}, {IMAGE_POLICY: "legacy"}, "ImagePCINUMAPolicyForbidden"),
    ({"hw:numa_nodes": "0", POLICY: "strict"}, {}, "InvalidNUMANodesNumber"),
    ({**ONE_CELL, "hw:cpu_policy": "bogus", POLICY: "strict"}, {},
     "InvalidCPUAllocationPolicy"),
    ({"hw:numa_nodes": "2", "hw:numa_cpus.0": "0", POLICY: "strict"}, {},
     "ImageNUMATopologyIncomplete"),
    ({"hw:numa_nodes": "2", "hw:numa_cpus.0": "0", POLICY: "required"},
     {IMAGE_POLICY: "legacy"}, "ImageNUMATopologyIncomplete"),
    ({**ONE_CELL, "hw:mem_page_size": "2M", POLICY: "strict"}, {}, "MemoryPageSizeInvalid"),
    ({**ONE_CELL, POLICY: "required"}, {IMAGE_POLICY: "required"}, None),
    ({**ONE_CELL}, {IMAGE_POLICY: "socket"}, None),
])
def test_policy_error_types(specs: dict[str, str], image: dict[str, str],
                            error: str | None) -> None:
    assert _error_type(_with(specs, image)) == error


def test_policy_error_names_the_key_and_the_allowed_values() -> None:
    answer = answer_case(_with({**ONE_CELL, POLICY: "strict"}))
    message = str(answer["error"]["message"])  # type: ignore[index]
    assert POLICY in message and "required, socket, legacy, preferred" in message
    answer = answer_case(_with({**ONE_CELL}, {IMAGE_POLICY: "strict"}))
    message = str(answer["error"]["message"])  # type: ignore[index]
    assert IMAGE_POLICY in message and "required, socket, legacy, preferred" in message


def test_bad_flavor_policy_is_refused_without_pci_requests() -> None:
    raw = _with({**ONE_CELL, POLICY: "strict"})
    raw["pci_requests"] = []
    assert _error_type(raw) == "InvalidPCINUMAAffinity"


def test_guest_from_flavor_gives_requests_without_one_the_flavor_or_image_policy() -> None:
    bare = case_from_json({**BASE, "pci_requests": [req(), req(policy="required")]})
    guest = guest_from_flavor(Flavor(2, 1024, {**ONE_CELL, POLICY: "socket"}), {},
                              bare.pci_requests)
    assert [r.policy.value for r in guest.pci_requests] == ["socket", "required"]
    guest = guest_from_flavor(bare.flavor, {IMAGE_POLICY: "preferred"}, bare.pci_requests)
    assert [r.policy.value for r in guest.pci_requests] == ["preferred", "required"]
    guest = guest_from_flavor(bare.flavor, {}, bare.pci_requests)
    assert [r.policy.value for r in guest.pci_requests] == ["legacy", "required"]


# --- the judge itself -----------------------------------------------------------------------


def test_judge_reports_cells_that_cannot_serve_the_requests() -> None:
    """violations() refuses a placement whose host cells cannot serve the PCI requests."""
    row = Row("judge", TWO_ROOMY, [vf(A, 1)], [req(policy="required")], True)
    raw = case_json(row)
    answer = answer_case(raw)
    assert [c["host_cell"] for c in answer["cells"]] == [1]  # type: ignore[union-attr]
    assert violations(raw, answer) == []
    moved = copy.deepcopy(answer)
    moved["cells"][0]["host_cell"] = 0  # type: ignore[index]
    assert violations(raw, moved) == ["the PCI requests cannot be served on host cells [0]"]
    assert pci_support(raw, [0]) is False and pci_support(raw, [1]) is True
    assert pci_support(raw, None) is True  # no NUMA topology: no node filtering


def test_judge_checks_a_guest_without_numa_topology_anywhere() -> None:
    row = Row("judge", TWO_SOCKETS, [vf(A, 1, status="allocated")], [req()], False, specs={})
    raw = case_json(row)
    fake = {"id": raw["id"], "fits": True, "cells": [], "emulator_pins": None, "reason": None}
    assert violations(raw, fake) == [
        "the PCI requests cannot be served anywhere (no NUMA topology)"]
    assert exhaustive_fits(raw) is False


def test_judge_reads_the_policy_like_the_format() -> None:
    raw = case_json(Row("judge", TWO_SOCKETS, [vf(A, None)], [req(), req(policy="socket")],
                        True, specs={**ONE_CELL, POLICY: "preferred"}))
    assert [pci_policy(raw, r) for r in raw["pci_requests"]] == ["preferred", "socket"]
    raw["flavor"]["extra_specs"].pop(POLICY)
    raw["image_properties"] = {IMAGE_POLICY: "required"}
    assert [pci_policy(raw, r) for r in raw["pci_requests"]] == ["required", "socket"]
    raw["image_properties"] = {}
    assert [pci_policy(raw, r) for r in raw["pci_requests"]] == ["legacy", "socket"]

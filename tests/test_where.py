"""`numa-migrate where GUEST`: every other host of the fleet for a placed guest, ranked; the
score and the capacity bounds of :mod:`numa_migrate.core.rank`."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, assume, given, settings

from numa_migrate.adapters.casefmt import case_from_json
from numa_migrate.adapters.fleet import load_fleet
from numa_migrate.cli.main import cli
from numa_migrate.core.fit.fitter import FitOptions, fit_guest
from numa_migrate.core.model.guest import CPUPolicy, Guest, GuestCell, GuestRequest
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.placement import CellPlacement, Placement
from numa_migrate.core.rank import (
    SCORE_PARTS,
    Score,
    capacity_bound,
    partly_pinned_cores,
    score,
    score_slow,
)
from numa_migrate.core.request import Flavor, guest_from_flavor
from numa_migrate.core.usage import UsageConflictError
from numa_migrate.core.where import where_guest
from tests.strategies import fit_cases, pci_fit_cases

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLEET_DIR = resources.files("numa_migrate") / "data" / "fleet"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["where", *args], catch_exceptions=False)


def where_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = run(*args, "--json")
    return result.exit_code, json.loads(result.output)


def write_fleet(tmp_path: Path, hosts: list[dict[str, Any]]) -> Path:
    for name in ("caps-cmp-small-01.xml", "caps-cmp-intel-01.xml"):
        with resources.as_file(FLEET_DIR / name) as src:
            shutil.copy(src, tmp_path / name)
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"hosts": hosts}), encoding="utf-8")
    return path


def small(name: str, guests: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "capabilities": "caps-cmp-small-01.xml", "guests": guests}


def pinned(name: str, vcpus: int) -> dict[str, Any]:
    return {"name": name, "vcpus": vcpus, "memory_mib": 1024,
            "extra_specs": {"hw:cpu_policy": "dedicated"}}


# --- the command on the sample fleet ------------------------------------------------------


def test_sriov_guest_sees_its_vf_needs() -> None:
    code, doc = where_json("vnf-2")
    assert code == 1
    assert doc["guest"]["pci_requests"][0]["spec"] == [{"physical_network": "physnet1"}]
    assert doc["guest"]["pci_requests"][0]["numa_policy"] == "required"
    assert doc["source"]["host"] == "cmp-intel-01"
    assert doc["source"]["pagesize_kib"] == 1048576  # it keeps its 1 GiB pages
    refused = {r["host"]: r for r in doc["refused"]}
    assert set(refused) == {"cmp-epyc-01", "cmp-small-01"}  # never its own host
    # the small host has no VF at all: the PCI need refuses it before the fit
    assert refused["cmp-small-01"]["stage"] == "bound"
    assert refused["cmp-small-01"]["reasons"][0]["code"] == "pci_devices_short"
    # the EPYC host: per host cell the free VFs on physnet1, and why each cell refuses
    epyc = refused["cmp-epyc-01"]
    assert [p["per_request"] for p in epyc["pci_free"]] == [[1], [1], [1], [1]]
    assert {c["host_cell"] for c in epyc["cells"]} == {0, 1, 2, 3}
    assert all(c["reasons"] for c in epyc["cells"])


def test_sriov_guest_finds_a_host_with_free_vfs(tmp_path: Path) -> None:
    intel = json.loads((FLEET_DIR / "sample-fleet.json").read_text())["hosts"][0]
    vnf = next(g for g in intel["guests"] if g["name"] == "vnf-2")
    no_vfs = {k: v for k, v in intel.items() if k != "pci_devices"}
    path = write_fleet(tmp_path, [
        {**intel, "name": "src", "guests": [vnf]},
        {**intel, "name": "with-vfs", "guests": []},
        {**no_vfs, "name": "no-vfs", "guests": []},
    ])
    code, doc = where_json("vnf-2", "--fleet", str(path))
    assert code == 0
    assert [d["host"] for d in doc["destinations"]] == ["with-vfs"]
    best = doc["destinations"][0]
    (taken,) = best["pci_devices"]
    assert len(taken) == 1 and taken[0].startswith(("0000:3b:02", "0000:d8:02"))
    (no_vfs_doc,) = doc["refused"]
    assert no_vfs_doc["host"] == "no-vfs" and no_vfs_doc["reasons"][0]["code"] == \
        "pci_devices_short"


def test_json_shape_and_ranking() -> None:
    code, doc = where_json("web-2")
    assert code == 0
    assert set(doc) == {"guest", "source", "summary", "score", "destinations", "refused",
                        "notes", "fleet_notes"}
    assert doc["score"]["parts"] == list(SCORE_PARTS)
    assert doc["source"]["host"] == "cmp-small-01"
    hosts = [d["host"] for d in doc["destinations"]]
    assert "cmp-small-01" not in hosts and sorted(hosts) == ["cmp-epyc-01", "cmp-intel-01"]
    assert [d["rank"] for d in doc["destinations"]] == [1, 2]
    keys = [Score(**d["score"]).key for d in doc["destinations"]]
    assert keys == sorted(keys)
    for d in doc["destinations"]:
        assert set(d["score"]) == set(SCORE_PARTS)
        assert d["fits"] is True and d["placement"]["cells"]
    assert doc["summary"].startswith("2/2 other hosts can take web-2 (best: ")


def test_human_output_lists_source_destinations_and_refusals() -> None:
    result = run("cache-1")
    assert result.exit_code == 0
    out = result.output
    assert "source: cmp-epyc-01" in out and "2 MiB pages kept" in out
    assert "Destinations, best first" in out and "cores_split" in out
    assert "✘ cmp-small-01" in out and "cell 0:" in out


def test_unknown_guest_is_one_line_naming_the_known_guests() -> None:
    result = CliRunner().invoke(cli, ["where", "no-such-vm"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "'no-such-vm'" in lines[0] and "vnf-2" in lines[0] and "web-1" in lines[0]


def test_help_documents_the_score_and_exit_codes() -> None:
    out = CliRunner().invoke(cli, ["where", "--help"], terminal_width=100).output
    for part in SCORE_PARTS:
        assert part in out
    assert "Exit 0" in out and "--fleet" in out


def test_a_guest_that_fits_nowhere(tmp_path: Path) -> None:
    path = write_fleet(tmp_path, [
        small("a", [pinned("big", 6)]),
        small("b", [pinned("filler", 4)]),
        small("c", [pinned("f2", 3), pinned("f3", 2)]),
    ])
    code, doc = where_json("big", "--fleet", str(path))
    assert code == 1
    assert doc["destinations"] == []
    assert [r["host"] for r in doc["refused"]] == ["b", "c"]
    for r in doc["refused"]:
        assert r["reasons"][0]["code"] == "dedicated_cpus_busy"
        assert r["cells"] and r["cells"][0]["host_cell"] == 0
    human = run("big", "--fleet", str(path))
    assert human.exit_code == 1 and "0/2 other hosts can take big" in human.output


def test_ranking_prefers_filling_a_used_cell_over_more_free_cpus(tmp_path: Path) -> None:
    # two-cell hosts: "busy" has a guest on cell 0, so a 1-cell guest there opens no cell
    intel = json.loads((FLEET_DIR / "sample-fleet.json").read_text())["hosts"][0]
    base = {k: v for k, v in intel.items() if k not in ("pci_devices", "guests")}
    two = {"name": "two", "vcpus": 2, "memory_mib": 2048,
           "extra_specs": {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "2"}}
    path = write_fleet(tmp_path, [
        {**base, "name": "src", "guests": [pinned("mover", 2)]},
        {**base, "name": "empty", "guests": []},
        {**base, "name": "busy", "guests": [two]},
    ])
    code, doc = where_json("mover", "--fleet", str(path))
    assert code == 0
    order = [(d["host"], d["score"]["cells_opened"]) for d in doc["destinations"]]
    assert order == [("busy", 0), ("empty", 1)]
    assert doc["destinations"][0]["score"]["free_dedicated_cpus"] < \
        doc["destinations"][1]["score"]["free_dedicated_cpus"]


# --- core: where_guest, the score, the bounds ---------------------------------------------


def test_where_guest_never_offers_the_source_and_ranks_by_the_score() -> None:
    fleet = load_fleet()
    for placed in fleet.guests:
        answer = where_guest(fleet.hosts, placed.host, placed.guest, placed.placement)
        names = [d.host for d in answer.destinations] + [r.host for r in answer.refused]
        assert placed.host not in names
        assert sorted(names) == sorted(h.name for h in fleet.hosts if h.name != placed.host)
        keys = [(*d.score.key, d.host) for d in answer.destinations]
        assert keys == sorted(keys)


def _cell(pinned: frozenset[int] = frozenset(), memory_used: int = 0) -> HostCell:
    # 4 cores of 2 threads: (0,4) (1,5) (2,6) (3,7)
    return HostCell(0, frozenset(), frozenset(range(8)), 8192,
                    siblings=tuple(frozenset({i, i + 4}) for i in range(4)),
                    pinned_cpus=pinned, memory_usage_mib=memory_used)


def _pinned_request(n: int) -> GuestRequest:
    return GuestRequest((GuestCell(0, frozenset(), frozenset(range(n)), 1024),),
                        CPUPolicy.DEDICATED)


def _placement(pins: list[int]) -> Placement:
    return Placement((CellPlacement(0, 0, frozenset(range(len(pins))), 1024, None,
                                    tuple(enumerate(pins))),))


def test_partly_pinned_cores() -> None:
    assert partly_pinned_cores(_cell()) == 0
    assert partly_pinned_cores(_cell(frozenset({0}))) == 1
    assert partly_pinned_cores(_cell(frozenset({0, 4}))) == 0
    assert partly_pinned_cores(_cell(frozenset({0, 1, 5}))) == 1


def test_score_counts_opened_cells_and_split_cores() -> None:
    empty = HostTopology("empty", (_cell(),))
    half = HostTopology("half", (_cell(frozenset({0}), memory_used=512),))
    request = _pinned_request(1)
    # one vCPU on an empty cell: opens the cell and splits a core
    s = score(empty, request, _placement([1]))
    assert s == Score(1, 1, 7, 8192 - 1024)
    # on the sibling of a half-pinned core: no cell opened, one split core fewer
    s = score(half, request, _placement([4]))
    assert s == Score(0, -1, 6, 8192 - 512 - 1024)
    assert s.key < score(empty, request, _placement([1])).key
    assert s.as_dict() == dict(zip(SCORE_PARTS, (0, -1, 6, 6656), strict=True))


@SETTINGS
@given(fit_cases())
def test_score_equals_the_apply_placement_reference(case: dict[str, Any]) -> None:
    fc = case_from_json(case)
    guest = guest_from_flavor(fc.flavor, fc.image_properties)
    result = fit_guest(fc.host, guest, fc.options)
    if result.placement is None:
        return
    try:
        slow = score_slow(fc.host, guest.numa, result.placement)
    except UsageConflictError:
        # isolate + isolated emulator threads with no whole free core left for the emulator
        # CPU: the fit (as Nova's) puts it beside a pinned sibling, which apply_placement
        # (whole cores, as Nova's claim) refuses
        assume(False)
    assert score(fc.host, guest.numa, result.placement) == slow


def _check_bound(case: dict[str, Any]) -> None:
    fc = case_from_json(case)
    guest = guest_from_flavor(fc.flavor, fc.image_properties, fc.pci_requests)
    bound = capacity_bound(fc.host, guest, fc.options.current_pagesize_kib)
    if fit_guest(fc.host, guest, fc.options).fits:
        assert bound == (), bound


@SETTINGS
@given(fit_cases())
def test_bound_never_refuses_a_host_the_fit_accepts(case: dict[str, Any]) -> None:
    _check_bound(case)


@SETTINGS
@given(pci_fit_cases())
def test_bound_never_refuses_a_host_the_fit_accepts_with_pci(case: dict[str, Any]) -> None:
    _check_bound(case)


def test_bound_refusals_name_each_short_host_cell() -> None:
    host = HostTopology("h", (_cell(frozenset(range(6))), HostCell(
        1, frozenset(), frozenset(range(8, 12)), 8192)))
    guest = Guest(5, 1024, _pinned_request(5), "g")
    reasons = capacity_bound(host, guest)
    assert reasons[0].host_cell is None and "per cell: 0: 2, 1: 4" in reasons[0].message
    assert [(r.host_cell, r.need, r.have) for r in reasons[1:]] == [(0, 5, 2), (1, 5, 4)]
    assert not fit_guest(host, guest, FitOptions()).fits
    assert capacity_bound(host, Guest(4, 1024, _pinned_request(4), "g")) == ()


@pytest.mark.parametrize("name", ["vnf-2", "cache-1", "nfv-1"])
def test_guests_keep_their_page_size(name: str) -> None:
    fleet = load_fleet()
    placed = next(g for g in fleet.guests if g.name == name)
    answer = where_guest(fleet.hosts, placed.host, placed.guest, placed.placement)
    assert answer.current_pagesize_kib == placed.placement.cells[0].pagesize_kib
    for d in answer.destinations:
        assert d.result.placement is not None
        assert {c.pagesize_kib for c in d.result.placement.cells} == \
            {answer.current_pagesize_kib}


def test_flavor_guest_without_numa_fits_with_a_neutral_score() -> None:
    host = HostTopology("h", (_cell(),))
    guest = guest_from_flavor(Flavor(2, 1024, {}, "plain"), {})
    assert guest.numa is None
    answer = where_guest([host], "elsewhere", guest, Placement(()))
    (d,) = answer.destinations
    assert d.score == Score(0, 0, 8, 8192)


def test_a_guest_name_on_several_hosts_is_refused(tmp_path: Path) -> None:
    unnamed = {"vcpus": 1, "memory_mib": 512}  # both become "guest-0"
    path = write_fleet(tmp_path, [small("a", [unnamed]), small("b", [unnamed])])
    result = CliRunner().invoke(cli, ["where", "guest-0", "--fleet", str(path)])
    assert result.exit_code == 2
    assert "several hosts" in result.output and "(a, b)" in result.output

"""Reason wording: counts in their number, no negative free counts, nothing said twice."""

from __future__ import annotations

from numa_migrate.core.fit.fitter import fit_guest
from numa_migrate.core.fit.reasons import describe_pool, plural, unique
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool
from numa_migrate.core.request import Flavor, guest_from_flavor
from tests.topologies import host, smt_cell

DED = {"hw:cpu_policy": "dedicated"}


def test_plural() -> None:
    assert plural(1, "dedicated CPU") == "1 dedicated CPU"
    assert plural(0, "dedicated CPU") == "0 dedicated CPUs"
    assert plural(2, "2 MiB page") == "2 2 MiB pages"
    assert plural(3, "child", "children") == "3 children"


def test_describe_pool_never_says_a_negative_count() -> None:
    assert describe_pool(80, 0, 0) == "80 free of 80"
    assert describe_pool(80, 8, 0) == "72 free of 80 (8 in use)"
    assert describe_pool(80, 48, 64) == (
        "0 free of 80 (48 in use, 64 reserved; 32 pages in use are counted against the "
        "reservation)")
    assert describe_pool(80, 17, 64) == (
        "0 free of 80 (17 in use, 64 reserved; 1 page in use is counted against the "
        "reservation)")
    assert unique(["a", "b", "a"]) == ("a", "b")


def _paged_host(used: int, reserved: int) -> HostTopology:
    return HostTopology("h", (HostCell(
        0, frozenset({0, 1}), frozenset({0, 1}), 4096,
        mempages=(PagePool(4, 100_000), PagePool(2048, 80, used=used, reserved=reserved))),))


def test_page_shortfall_reads_well_when_reserved_and_used_overlap() -> None:
    guest = guest_from_flavor(Flavor(1, 64, {"hw:mem_page_size": "2048"}))
    result = fit_guest(_paged_host(48, 64), guest)
    assert not result.fits
    assert "-" not in result.summary.replace("0/1", "")
    assert result.summary.endswith(
        "cell 0: needs 32 2 MiB pages, 0 free of 80 (48 in use, 64 reserved; 32 pages in use "
        "are counted against the reservation)")
    guest = guest_from_flavor(Flavor(1, 2, {"hw:mem_page_size": "2048"}))
    result = fit_guest(_paged_host(80, 0), guest)
    assert "needs 1 2 MiB page, 0 free of 80 (80 in use)" in result.summary


def test_one_dedicated_cpu_is_singular() -> None:
    h = host(smt_cell(0, 2, pinned=frozenset({0, 1, 2, 3})))
    result = fit_guest(h, guest_from_flavor(Flavor(1, 1024, DED)))
    assert "needs 1 dedicated CPU, 0 free of 4 (4 pinned)" in result.summary
    h = host(HostCell(0, frozenset(), frozenset(), 4096))
    result = fit_guest(h, guest_from_flavor(Flavor(1, 1024, DED)))
    assert "needs 1 dedicated CPU, cell has 0" in result.summary
    result = fit_guest(h, guest_from_flavor(Flavor(1, 1024, {**DED,
                                                             "hw:emulator_threads_policy":
                                                             "isolate"})))
    assert "needs 1 dedicated CPU + 1 for emulator threads, cell has 0" in result.summary


def test_no_message_only_repeats_the_summary() -> None:
    one_cell = host(smt_cell(0, 2))
    result = fit_guest(one_cell, guest_from_flavor(Flavor(2, 2048, {**DED,
                                                                    "hw:numa_nodes": "2"})))
    assert result.summary == "guest needs 2 NUMA cells, host has 1"
    assert result.messages == ()
    two = host(smt_cell(0, 1), smt_cell(1, 1, first_cpu=2))
    result = fit_guest(two, guest_from_flavor(Flavor(4, 2048, DED)))
    assert result.messages == ("needs 4 dedicated CPUs, cell has 2",)
    assert result.summary.count("needs 4 dedicated CPUs") == 2  # once per host cell

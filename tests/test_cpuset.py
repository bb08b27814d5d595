"""CpuSet: Nova's and libvirt's CPU list syntax, bounded, and the HostTopology queries."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import ParseError
from numa_migrate.core.limits import MAX_CPUS
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool

ACCEPTED = [
    ("0", {0}),
    ("0-3", {0, 1, 2, 3}),
    ("0-3,^2,8", {0, 1, 3, 8}),
    ("1-4,^3", {1, 2, 4}),
    ("^3,1-4", {1, 2, 4}),  # exclusions apply after every inclusion, as in Nova
    ("0-7,^2-5", {0, 1, 6, 7}),
    ("1,,2", {1, 2}),
    (" 1 , 2 - 3 ", {1, 2, 3}),
    ("", set()),
    (",", set()),
    ("^1", set()),
    ("3-3", {3}),
    ("0-2,1-5,4", {0, 1, 2, 3, 4, 5}),
    (f"{MAX_CPUS - 1}", {MAX_CPUS - 1}),
    ("+3", {3}),  # Nova reads ids with int()
]


@pytest.mark.parametrize(("spec", "cpus"), ACCEPTED)
def test_accepted_lists(spec: str, cpus: set[int]) -> None:
    got = CpuSet.parse(spec)
    assert got == frozenset(cpus) and isinstance(got, CpuSet)


REFUSED = [
    ("a", r"'a' is not a CPU id"),
    ("1-", r"'1-' is not a CPU id"),
    ("-1", r"'-1' is not a CPU id"),
    ("3-1", r"invalid range '3-1'"),
    ("1-2-3", r"'1-2-3' is not a CPU id"),
    ("^", r"'\^' is not a CPU id"),
    ("1.5", r"'1.5' is not a CPU id"),
    ("\u0661", r"is not a CPU id"),  # Arabic-Indic digit one: int() would read it
    ("1" * 30, r"is not a CPU id"),
    (f"{MAX_CPUS}", rf"CPU id {MAX_CPUS} .* beyond the bound \(ids are 0-{MAX_CPUS - 1}\)"),
    ("0-4000000000", r"CPU id 4000000000 in '0-4000000000' is beyond the bound"),
    ("^0-99999999999999", r"beyond the bound"),
    ("1" * 10000, r"is not a CPU id"),
    ("1," * 200_000, r"longer than"),
]


@pytest.mark.parametrize(("spec", "message"), REFUSED)
def test_refused_lists_name_the_field(spec: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^--dedicated-set: .*" + message):
        CpuSet.parse(spec, field="--dedicated-set")


def test_a_huge_range_is_refused_at_once_without_expanding() -> None:
    start = time.perf_counter()
    for _ in range(100):
        with pytest.raises(ParseError, match="beyond the bound"):
            CpuSet.parse("0-4000000000", field="x")
    assert time.perf_counter() - start < 0.1


def test_many_overlapping_ranges_are_merged_before_expanding() -> None:
    start = time.perf_counter()
    got = CpuSet.parse(",".join([f"0-{MAX_CPUS - 1}"] * 20_000))
    assert len(got) == MAX_CPUS
    assert time.perf_counter() - start < 1.0


def test_the_host_sets_the_bound() -> None:
    assert CpuSet.parse("0-7", bound=8) == frozenset(range(8))
    with pytest.raises(ParseError, match=r"cpu_dedicated_set: CPU id 8 in '0-8' is beyond the "
                                         r"bound \(ids are 0-7\)"):
        CpuSet.parse("0-8", field="cpu_dedicated_set", bound=8)
    with pytest.raises(ParseError, match="no CPU id is allowed"):
        CpuSet.parse("0", field="x", bound=0)


def test_long_values_are_shortened_in_the_message() -> None:
    with pytest.raises(ParseError) as info:
        CpuSet.parse("0," * 1000 + "x")
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(("cpus", "text"), [
    ((), ""), ((3,), "3"), ((0, 1, 2, 3), "0-3"), ((0, 1, 2, 3, 8, 10, 11), "0-3,8,10-11"),
    ((5, 1, 2), "1-2,5"),
])
def test_format(cpus: tuple[int, ...], text: str) -> None:
    assert CpuSet.of(list(cpus)).format() == text
    assert CpuSet(cpus).format() == text == str(CpuSet(cpus))
    assert CpuSet.parse(text) == frozenset(cpus)
    assert repr(CpuSet(cpus)) == f"CpuSet({text!r})"


def test_set_algebra_keeps_the_type_and_equals_frozensets() -> None:
    a = CpuSet.parse("0-3")
    for value in (a | {7}, a - {1}, a & {1, 9}, a ^ {3, 4}, frozenset({9}) | a):
        assert isinstance(value, CpuSet)
    assert a == frozenset({0, 1, 2, 3}) and hash(a) == hash(frozenset({0, 1, 2, 3}))
    assert {a: 1}[frozenset({0, 1, 2, 3})] == 1
    assert CpuSet.of(a) is a
    with pytest.raises(TypeError):
        a | [1]  # type: ignore[operator]


# --------------------------------------------------------------------------- host queries


def _host() -> HostTopology:
    return HostTopology("h", (
        HostCell(0, frozenset({0, 1}), frozenset({2, 3}), 4096,
                 siblings=(frozenset({0, 2}), frozenset({1, 3})), pinned_cpus=frozenset({2}),
                 mempages=(PagePool(4, 1000), PagePool(2048, 80, used=48, reserved=64))),
        HostCell(1, frozenset({4, 5}), frozenset({6, 7}), 4096,
                 mempages=(PagePool(4, 1000), PagePool(2048, 80, used=8))),
    ))


def test_model_cpu_sets_are_cpusets() -> None:
    cell = _host().cell(0)
    for value in (cell.cpuset, cell.pcpuset, cell.pinned_cpus, *cell.siblings):
        assert isinstance(value, CpuSet)


def test_host_queries() -> None:
    h = _host()
    assert h.cpus == frozenset(range(8)) and isinstance(h.cpus, CpuSet)
    assert h.shared_cpus == {0, 1, 4, 5} and h.dedicated_cpus == {2, 3, 6, 7}
    assert h.pinned_cpus == {2}
    assert h.cell_of(3) is h.cells[0] and h.cell_of(6) is h.cells[1] and h.cell_of(99) is None
    assert h.cells_of([0, 6, 99]) == {0, 1}
    assert h.siblings_of(2) == {0, 2} and h.siblings_of(5) == {5} and h.siblings_of(99) == {99}
    assert h.find_cell(1) is h.cells[1] and h.find_cell(5) is None and h.cell_ids == {0, 1}
    with pytest.raises(KeyError):
        h.cell(5)
    assert h.page_pool(1, 2048) == PagePool(2048, 80, used=8) and h.page_pool(1, 1) is None
    assert h.page_pool(9, 2048) is None
    assert h.free_pages(2048) == {0: 0, 1: 72}
    assert h.cells[1].free_pages(2048) == 72 and h.cells[1].free_pages(1048576) == 0
    assert h.cells[0].has_cpu(3) and not h.cells[0].has_cpu(4)


def test_free_pages_never_go_below_zero() -> None:
    pool = PagePool(2048, 80, used=48, reserved=64)
    assert pool.free == 0 and pool.free_kib == 0 and pool.overcommitted == 32
    assert PagePool(2048, 80, used=8).overcommitted == 0


def test_guest_and_placement_cpu_sets_are_cpusets() -> None:
    from numa_migrate.core.fit.fitter import fit_guest
    from numa_migrate.core.request import Flavor, guest_from_flavor

    guest = guest_from_flavor(Flavor(2, 2, {"hw:cpu_policy": "dedicated"}))
    assert guest.numa is not None
    cell = guest.numa.cells[0]
    assert isinstance(cell.dedicated_vcpus, CpuSet) and isinstance(cell.shared_vcpus, CpuSet)
    result = fit_guest(_host(), guest)
    assert result.placement is not None
    assert isinstance(result.placement.cells[0].vcpus, CpuSet)
    assert str(result.placement.pinned_host_cpus()) == "6-7"


@given(st.frozensets(st.integers(0, MAX_CPUS - 1), max_size=200))
def test_format_then_parse_round_trips(cpus: frozenset[int]) -> None:
    text = CpuSet(cpus).format()
    assert CpuSet.parse(text) == cpus
    assert CpuSet.parse(text).format() == text


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 300), st.integers(0, 40)), max_size=12))
def test_parse_agrees_with_expanding_every_range(rules: list[tuple[bool, int, int]]) -> None:
    spec = ",".join(f"{'^' if excl else ''}{a}-{a + n}" for excl, a, n in rules)
    include = {c for excl, a, n in rules if not excl for c in range(a, a + n + 1)}
    exclude = {c for excl, a, n in rules if excl for c in range(a, a + n + 1)}
    assert CpuSet.parse(spec) == include - exclude

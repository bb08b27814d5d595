"""Table tests of the fitter over named topologies: every policy and the reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from numa_migrate.core.fit.cellfit import Limits
from numa_migrate.core.fit.fitter import FitOptions, fit_guest
from numa_migrate.core.fit.reasons import Code
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.request import Flavor, guest_from_flavor
from tests.topologies import host, smt_cell, two_socket_smt


@dataclass
class Case:
    description: str
    host: HostTopology
    vcpus: int
    ram: int
    specs: dict[str, str]
    fits: bool
    host_cells: list[int] | None = None
    codes: set[Code] = field(default_factory=set)
    pins: dict[int, int] | None = None
    pagesizes: list[int | None] | None = None
    emulator: list[int] | None = None
    options: FitOptions = field(default_factory=FitOptions)


DED = {"hw:cpu_policy": "dedicated"}
CASES = [
    Case("prefer packs whole free cores first", host(smt_cell(0, 4)), 4, 1024, DED, True,
         [0], pins={0: 0, 1: 1, 2: 2, 3: 3}),
    Case("prefer falls back to lone threads when cores are half pinned",
         host(smt_cell(0, 4, pinned=frozenset({0, 2, 4, 6}))), 4, 1024, DED, True, [0],
         pins={0: 1, 1: 3, 2: 5, 3: 7}),
    Case("isolate on a legacy SMT host: one thread per core",
         host(smt_cell(0, 4, legacy=True)), 2, 1024,
         {**DED, "hw:cpu_thread_policy": "isolate"}, True, [0], pins={0: 0, 1: 2}),
    Case("isolate on an SMT host with cpu_dedicated_set is impossible in Nova 34",
         host(smt_cell(0, 4)), 2, 1024, {**DED, "hw:cpu_thread_policy": "isolate"}, False,
         codes={Code.ISOLATE_SMT_DEDICATED_SET}),
    Case("isolate without SMT behaves like prefer", host(smt_cell(0, 4, threads=1)), 3, 1024,
         {**DED, "hw:cpu_thread_policy": "isolate"}, True, [0], pins={0: 0, 1: 1, 2: 2}),
    Case("isolate needs whole free cores",
         host(smt_cell(0, 4, legacy=True, pinned=frozenset({0, 2, 4}))), 2, 1024,
         {**DED, "hw:cpu_thread_policy": "isolate"}, False, codes={Code.ISOLATE_NO_FREE_CORES}),
    Case("isolate with emulator threads: emulator CPU off the isolated cores",
         host(smt_cell(0, 4, legacy=True)), 2, 1024,
         {**DED, "hw:cpu_thread_policy": "isolate", "hw:emulator_threads_policy": "isolate"},
         True, [0], pins={0: 0, 1: 2}, emulator=[4]),
    Case("require without SMT", host(smt_cell(0, 4, threads=1)), 2, 1024,
         {**DED, "hw:cpu_thread_policy": "require"}, False, codes={Code.REQUIRE_NO_SMT}),
    Case("require with only lone free threads",
         host(smt_cell(0, 4, pinned=frozenset({0, 2, 4, 6}))), 2, 1024,
         {**DED, "hw:cpu_thread_policy": "require"}, False, codes={Code.REQUIRE_NO_SIBLINGS}),
    Case("require uses sibling pairs", host(smt_cell(0, 4, pinned=frozenset({0}))), 4, 1024,
         {**DED, "hw:cpu_thread_policy": "require"}, True, [0],
         pins={0: 2, 1: 3, 2: 4, 3: 5}),
    Case("emulator isolate needs one more free CPU",
         host(smt_cell(0, 2, pinned=frozenset({0}))), 3, 1024,
         {**DED, "hw:emulator_threads_policy": "isolate"}, False,
         codes={Code.DEDICATED_CPUS_BUSY}),
    Case("dedicated CPUs busy: says how many are pinned",
         host(smt_cell(0, 4, pinned=frozenset(range(6)))), 4, 1024, DED, False,
         codes={Code.DEDICATED_CPUS_BUSY}),
    Case("mixed needs shared CPUs in the cell", host(smt_cell(0, 4)), 4, 1024,
         {"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "^0"}, False,
         codes={Code.SHARED_CPUS_TOO_FEW}),
    Case("mixed pins only the dedicated vCPUs", host(smt_cell(0, 4, shared_cores=1)), 4, 1024,
         {"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "^0"}, True, [0],
         pins={1: 2, 2: 3, 3: 4}),
    Case("large picks the largest size with room, per cell",
         host(smt_cell(0, 4, shared_cores=2, pages_2m=1024, pages_1g=4)), 2, 2048,
         {"hw:mem_page_size": "large"}, True, [0], pagesizes=[1048576]),
    Case("large skips a full 1G pool",
         host(smt_cell(0, 4, shared_cores=2, pages_2m=1024, pages_1g=1)), 2, 2048,
         {"hw:mem_page_size": "large"}, True, [0], pagesizes=[2048]),
    Case("large never uses the small pages", host(smt_cell(0, 4)), 2, 2048,
         {"hw:mem_page_size": "large"}, False, codes={Code.PAGE_SIZE_MISSING}),
    Case("explicit size missing on the host", host(smt_cell(0, 4, pages_2m=1024)), 2, 2048,
         {"hw:mem_page_size": "1GB"}, False, codes={Code.PAGE_SIZE_MISSING}),
    Case("memory must be whole pages", host(smt_cell(0, 4, pages_1g=4)), 2, 1536,
         {"hw:mem_page_size": "1GB"}, False, codes={Code.PAGES_NOT_DIVISIBLE}),
    Case("not enough free 2M pages counts used pages",
         host(smt_cell(0, 4, pages_2m=1024, used_2m=1000)), 2, 1024,
         {"hw:mem_page_size": "2048"}, False, codes={Code.PAGES_SHORT}),
    Case("live-migration refit keeps the running page size",
         host(smt_cell(0, 4, shared_cores=2, pages_2m=1024, pages_1g=4)), 2, 2048,
         {"hw:mem_page_size": "large"}, True, [0], pagesizes=[2048],
         options=FitOptions(current_pagesize_kib=2048)),
    Case("pinned guest needs free memory, not total",
         host(smt_cell(0, 4, memory_mib=4096, memory_usage_mib=3072, small_pages=False)), 2, 2048,
         DED, False,
         codes={Code.MEMORY_SHORT}),
    Case("with page pools, a pinned guest needs free small pages (usage is not consulted)",
         host(smt_cell(0, 4, memory_mib=4096, memory_usage_mib=3072)), 2, 2048, DED, True, [0]),
    Case("shared guest over-commits memory without limits",
         host(smt_cell(0, 4, shared_cores=2, memory_mib=4096, memory_usage_mib=3072,
                       small_pages=False)), 2, 2048,
         {"hw:numa_nodes": "1"}, True, [0]),
    Case("cpu allocation ratio refuses shared over-commit",
         host(smt_cell(0, 4, shared_cores=1, cpu_usage=3)), 2, 1024, {"hw:numa_nodes": "1"},
         False, codes={Code.CPU_LIMIT}, options=FitOptions(limits=Limits(2.0, 1.0))),
    Case("too few host cells", host(smt_cell(0, 4)), 4, 2048,
         {**DED, "hw:numa_nodes": "2"}, False, codes={Code.TOO_FEW_HOST_CELLS}),
    Case("spread: the emptiest cell first", host(
        smt_cell(0, 4, pinned=frozenset({0, 1})), smt_cell(1, 4, first_cpu=8)), 2, 1024, DED,
        True, [1]),
    Case("pack: the fullest cell first", host(
        smt_cell(0, 4, pinned=frozenset({0, 1})), smt_cell(1, 4, first_cpu=8)), 2, 1024, DED,
        True, [0], options=FitOptions(packing=True)),
    Case("guest cells take the only host cells that can hold them (Nova's cache misses this)",
         host(smt_cell(0, 4), smt_cell(1, 4, first_cpu=8, pinned=frozenset(range(8, 14)))),
         8, 4096, {**DED, "hw:numa_nodes": "2", "hw:numa_cpus.0": "0-1",
                   "hw:numa_cpus.1": "2-7", "hw:numa_mem.0": "2048", "hw:numa_mem.1": "2048"},
         True, [1, 0]),
    Case("two guest cells compete for one host cell",
         host(smt_cell(0, 4), smt_cell(1, 4, first_cpu=8, pinned=frozenset(range(8, 14))),
              smt_cell(2, 4, first_cpu=16, pinned=frozenset(range(16, 22)))),
         8, 4096, {**DED, "hw:numa_nodes": "3", "hw:numa_cpus.0": "0-1",
                   "hw:numa_cpus.1": "2-4", "hw:numa_cpus.2": "5-7", "hw:numa_mem.0": "1024",
                   "hw:numa_mem.1": "1024", "hw:numa_mem.2": "2048"},
         False, codes={Code.NO_CELL_ASSIGNMENT}),
    Case("no NUMA need fits anywhere", two_socket_smt(), 64, 999999, {}, True, []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.description for c in CASES])
def test_fit_table(case: Case) -> None:
    guest = guest_from_flavor(Flavor(case.vcpus, case.ram, case.specs))
    result = fit_guest(case.host, guest, case.options)
    assert result.fits is case.fits, result.summary
    if not case.fits:
        assert case.codes <= {r.code for r in result.reasons}, result.reasons
        return
    assert result.placement is not None
    if case.host_cells is not None:
        assert [c.host_cell for c in result.placement.cells] == case.host_cells
    if case.pins is not None:
        assert result.placement.cells[0].pinning_map() == case.pins
    if case.pagesizes is not None:
        assert [c.pagesize_kib for c in result.placement.cells] == case.pagesizes
    if case.emulator is not None:
        assert sorted(result.placement.emulator_pins or ()) == case.emulator


def test_reason_text_names_each_host_cell_and_the_numbers() -> None:
    h = host(smt_cell(0, 2, pinned=frozenset({0, 1, 2})), smt_cell(1, 2, first_cpu=4,
                                                                     memory_mib=1536))
    guest = guest_from_flavor(Flavor(2, 2048, DED))
    result = fit_guest(h, guest)
    assert result.summary == (
        "0/2 host cells can take guest cell 0: "
        "cell 0: needs 2 dedicated CPUs, 1 free of 4 (3 pinned); "
        "cell 1: needs 2048 MiB, 1536 MiB free in 4 KiB pages"
    )


def test_competition_reason_names_the_cells() -> None:
    result = fit_guest(CASES[-2].host, guest_from_flavor(
        Flavor(CASES[-2].vcpus, CASES[-2].ram, CASES[-2].specs)))
    assert result.summary == (
        "guest cells 1, 2 (2) can only use host cells 0 (1): "
        "each guest cell needs its own host cell"
    )


def test_inputs_are_not_mutated_and_results_repeat() -> None:
    h = two_socket_smt(pages_2m=512)
    guest = guest_from_flavor(Flavor(4, 2048, {**DED, "hw:numa_nodes": "2",
                                               "hw:mem_page_size": "large"}))
    before = (h, guest)
    first, second = fit_guest(h, guest), fit_guest(h, guest)
    assert (h, guest) == before
    assert first.placement == second.placement

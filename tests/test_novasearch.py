"""Replaying Nova's permutation search (core/fit/novasearch.py): its fit-cache defects.

The topologies are small enough to follow by hand; each defect shown here was also checked
against Nova 34 itself (tests/test_novasearch_nova.py runs the corpora).
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings

from numa_migrate.adapters.casefmt import case_from_json
from numa_migrate.core.errors import InvalidCaseError, InvalidRequestError
from numa_migrate.core.fit.cellfit import Limits
from numa_migrate.core.fit.fitter import FitOptions, Verdicts, fit_request, order_host_cells
from numa_migrate.core.fit.novasearch import nova_search
from numa_migrate.core.model.guest import (
    CPUPolicy,
    GuestCell,
    GuestRequest,
    PageSizeKind,
    PageSizeRequest,
    ThreadPolicy,
)
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool
from numa_migrate.core.request import guest_from_flavor
from tests.strategies import fit_cases
from tests.topologies import host, smt_cell


def cell(cell_id: int, free: int, *, cpus: int = 4, pages: tuple[PagePool, ...] = ()) -> HostCell:
    """A cell of ``cpus`` dedicated CPUs without SMT, ``free`` of them not pinned."""
    first = cell_id * cpus
    pcpus = frozenset(range(first, first + cpus))
    return HostCell(
        id=cell_id,
        cpuset=frozenset(),
        pcpuset=pcpus,
        memory_mib=4096,
        pinned_cpus=frozenset(range(first + free, first + cpus)),
        mempages=pages,
    )


def dedicated(*sizes: int, **kw: object) -> GuestRequest:
    """A pinned guest whose cell i has ``sizes[i]`` dedicated vCPUs and 512 MiB."""
    cells, vcpu = [], 0
    for index, size in enumerate(sizes):
        cells.append(GuestCell(index, frozenset(), frozenset(range(vcpu, vcpu + size)), 512))
        vcpu += size
    return GuestRequest(tuple(cells), cpu_policy=CPUPolicy.DEDICATED, **kw)  # type: ignore[arg-type]


def our_host_cells(topology: HostTopology, request: GuestRequest) -> tuple[int, ...] | None:
    placement = fit_request(topology, request).placement
    return None if placement is None else tuple(c.host_cell for c in placement.cells)


def test_agrees_with_our_fit_on_an_idle_host() -> None:
    topology = host(cell(0, 4), cell(1, 4))
    request = dedicated(2, 2)
    search = nova_search(topology, request)
    assert search.decided and search.fits
    assert search.host_cells == our_host_cells(topology, request) == (0, 1)
    assert search.defect is None
    assert search.tried == 1
    assert search.summary == (
        "Nova fits after 1 permutations: guest cell 0 -> host cell 0, guest cell 1 -> host cell 1"
    )


def test_agrees_when_no_assignment_exists() -> None:
    topology = host(cell(0, 1), cell(1, 1), cell(2, 4))
    search = nova_search(topology, dedicated(2, 2))
    assert search.decided and not search.fits and search.host_cells is None
    assert search.defect is None
    assert search.tried == 6  # every permutation of 2 of the 3 host cells


def test_fit_cache_refuses_a_host_that_fits() -> None:
    # Nova orders the cells by free pCPUs: 1 (3 free), 0 (1 free), 2 (none).
    # (1, 0): guest cell 0 fits host cell 1 and takes id 1; guest cell 1 (2 vCPUs) fails on
    #         host cell 0, and not_fit_cache records (host 0, id 1).
    # (0, ...): guest cell 0 now has id 1, finds (host 0, id 1) and is refused unchecked,
    #         although its single vCPU fits host cell 0, and guest cell 1 fits host cell 1.
    topology = host(cell(0, 1), cell(1, 3), cell(2, 0))
    request = dedicated(1, 2)
    assert our_host_cells(topology, request) == (0, 1)
    search = nova_search(topology, request)
    assert search.decided and not search.fits and search.host_cells is None
    assert search.tried == 6
    assert search.defect == (
        "Nova's fit cache would refuse this host, which fits (guest cell 0 -> host cell 0, "
        "guest cell 1 -> host cell 1): guest cell 1's check on host cell 0 (2 vCPUs, 512 MiB) "
        "failed (needs 2 dedicated CPUs, 1 free of 4 (3 pinned)) and was cached under id 1, "
        "which guest cell 0 carries since Nova tried it on host cell 1, so Nova refuses guest "
        "cell 0 on host cell 0 from the cache without checking it"
    )


def test_fit_cache_accepts_a_cell_it_never_checked() -> None:
    # Each cell has one free pCPU: guest cell 2 (2 vCPUs) fits nowhere. Guest cell 1 fits
    # host cell 0 while it carries id 2 (it took it on host cell 2), so fit_cache holds
    # (host 0, id 2); once guest cell 2 takes id 2 itself, that entry lets it onto host cell 0.
    topology = host(cell(0, 1), cell(1, 1), cell(2, 1))
    request = dedicated(1, 1, 2)
    assert our_host_cells(topology, request) is None
    search = nova_search(topology, request)
    assert search.decided and search.fits
    assert search.host_cells == (1, 2, 0)
    assert search.defect == (
        "Nova would accept an assignment we refuse (guest cell 0 -> host cell 1, guest cell 1 "
        "-> host cell 2, guest cell 2 -> host cell 0): Nova's fit cache lets guest cell 2 onto "
        "host cell 0 unchecked (guest cell 1's check on host cell 0 (1 vCPU, 512 MiB) fitted, "
        "cached under id 2), but guest cell 2 does not fit there: needs 2 dedicated CPUs, 1 "
        "free of 4 (3 pinned)"
    )


def test_fit_cache_returns_a_cell_without_its_pins() -> None:
    # Same walk with two free pCPUs on host cell 0: the assignment is ours, but guest cell 2
    # reaches host cell 0 through guest cell 1's cached check and is never pinned.
    topology = host(cell(0, 2), cell(1, 1), cell(2, 1))
    request = dedicated(1, 1, 2)
    search = nova_search(topology, request)
    assert search.fits and search.host_cells == our_host_cells(topology, request) == (1, 2, 0)
    assert search.defect is not None
    assert search.defect.startswith("Nova would accept an invalid assignment")
    assert search.defect.endswith(
        "guest cell 2 onto host cell 0 unchecked (guest cell 1's check on host cell 0 (1 vCPU, "
        "512 MiB) fitted), so Nova returns it with no CPU pins (it was never checked itself)"
    )


def test_page_size_fixed_on_a_cell_that_then_fails() -> None:
    # One guest cell, 'large' pages, 'require' threads. Nova tries host cell 0 first (more
    # free pCPUs): its 1 GiB pages pass, so the cell now asks for 1 GiB pages, but the cell
    # has no thread siblings. Host cell 1 has siblings and 2 MiB pages only.
    no_smt = smt_cell(0, 8, threads=1, pages_1g=2)
    smt = smt_cell(1, 2, first_cpu=8, pages_2m=1024)
    topology = host(no_smt, smt)
    request = GuestRequest(
        (GuestCell(0, frozenset(), frozenset({0, 1}), 1024),),
        cpu_policy=CPUPolicy.DEDICATED,
        thread_policy=ThreadPolicy.REQUIRE,
        page_size=PageSizeRequest(PageSizeKind.LARGE),
    )
    assert our_host_cells(topology, request) == (1,)
    search = nova_search(topology, request)
    assert search.decided and not search.fits
    assert search.defect == (
        "Nova would refuse this host, which fits (guest cell 0 -> host cell 1): guest cell 0's "
        "page size was fixed to 1 GiB pages when Nova tried it on host cell 0, and host cell 1 "
        "cannot give it those: no 1 GiB pages (cell offers: 4 KiB, 2 MiB)"
    )


def test_mixed_cell_takes_the_host_cell_id_before_its_ratio_check() -> None:
    # Nova packs a mixed cell's dedicated vCPUs, and gives it the host cell's id, before the
    # allocation-ratio check on its shared vCPUs. Order: 2, 0, 1.
    # (2, 0): guest cell 0 fits host cell 2 with id 0: fit_cache (host 2, id 0); guest cell 1
    #         is packed on host cell 0 (id 0 now) and then fails its CPU ratio there.
    # (2, 1): guest cell 1 fails host cell 1 before packing. (0, 2): guest cell 0 fits host
    #         cell 0; guest cell 1, id 0, finds (host 2, id 0) and is let through unchecked.
    def mixed_cell(cell_id: int, shared: int, usage: int, memory_usage: int,
                   pinned: frozenset[int]) -> HostCell:
        cpus = range(cell_id * 6, cell_id * 6 + 6)
        return HostCell(
            id=cell_id, cpuset=frozenset(cpus[:shared]), pcpuset=frozenset(cpus[shared:]),
            memory_mib=4096, memory_usage_mib=memory_usage, cpu_usage=usage, pinned_cpus=pinned,
        )

    topology = host(
        mixed_cell(0, 2, 3, 3500, frozenset({2})),
        mixed_cell(1, 1, 4, 3500, frozenset({7, 8, 10})),
        mixed_cell(2, 1, 2, 0, frozenset({14, 15})),
    )
    request = GuestRequest(
        (
            GuestCell(0, frozenset(), frozenset({0, 1}), 512),
            GuestCell(1, frozenset({2, 4}), frozenset({3, 5}), 512),
        ),
        cpu_policy=CPUPolicy.MIXED,
    )
    options = FitOptions(limits=Limits(2.0, 1.0))
    assert not fit_request(topology, request, options).fits
    search = nova_search(topology, request, options)
    assert search.fits and search.host_cells == (0, 2) and search.tried == 3
    assert search.defect == (
        "Nova would accept an assignment we refuse (guest cell 0 -> host cell 0, guest cell 1 "
        "-> host cell 2): Nova's fit cache lets guest cell 1 onto host cell 2 unchecked (guest "
        "cell 0's check on host cell 2 (2 vCPUs, 512 MiB) fitted, cached under id 0), but guest "
        "cell 1 does not fit there: needs 2 shared CPUs, cell has 1; 2 shared vCPUs placed + 2 "
        "> 2 (1 CPU x ratio 2)"
    )


def test_move_claim_refuses_another_page_size() -> None:
    topology = host(smt_cell(0, 4, pages_2m=1024, pages_1g=2))
    request = GuestRequest(
        (GuestCell(0, frozenset(), frozenset({0, 1}), 1024),),
        cpu_policy=CPUPolicy.DEDICATED,
        page_size=PageSizeRequest(PageSizeKind.LARGE),
    )
    options = FitOptions(current_pagesize_kib=2048)
    assert fit_request(topology, request, options).fits
    search = nova_search(topology, request, options)
    assert search.decided and not search.fits
    assert search.defect == (
        "Nova's move claim would refuse this host: Nova's search picks guest cell 0 -> host "
        "cell 0 with 1 GiB pages for guest cell 0; its move claim refuses that, the guest runs "
        "with 2 MiB pages"
    )


def test_too_few_host_cells() -> None:
    search = nova_search(host(cell(0, 4)), dedicated(1, 1))
    assert search.decided and not search.fits and search.defect is None and search.tried == 0


def test_too_many_permutations_are_not_simulated() -> None:
    topology = host(*(cell(i, 1) for i in range(8)))
    search = nova_search(topology, dedicated(2, 2, 2), bound=50)
    assert not search.decided and not search.fits and search.defect is None
    assert search.summary == (
        "not simulated: Nova would try more than 50 of the 336 host-cell permutations"
    )
    assert nova_search(topology, dedicated(2, 2, 2)).decided


SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(fit_cases())
def test_a_different_nova_answer_always_comes_with_a_defect(raw: dict[str, object]) -> None:
    try:
        case = case_from_json(raw)
        guest = guest_from_flavor(case.flavor, case.image_properties)
    except (InvalidCaseError, InvalidRequestError):
        assume(False)
        return
    assume(guest.numa is not None)
    assert guest.numa is not None
    topology, request, options = case.host, guest.numa, case.options
    search = nova_search(topology, request, options)
    assume(search.decided)
    ours = fit_request(topology, request, options)
    if not search.fits and ours.fits:
        assert search.defect is not None
    if search.fits and not ours.fits:
        assert search.defect is not None
    if search.defect is None:
        assert search.fits == ours.fits
    if search.fits and ours.fits and search.defect is None:
        assert ours.placement is not None and search.host_cells is not None
        assert search.host_cells == tuple(c.host_cell for c in ours.placement.cells)
        cells = order_host_cells(topology.cells, request, options.packing)
        position = {c.id: i for i, c in enumerate(cells)}
        verdicts = Verdicts(cells, request, options)
        assert all(
            verdicts.ok(g, position[h]) for g, h in enumerate(search.host_cells)
        ), search

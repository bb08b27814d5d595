"""Pure accounting: what a placement takes, admission limits, and the host the fitter sees."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from numa_migrate.claims import (
    CellUsage,
    Claim,
    ClaimKind,
    ClaimState,
    Holdings,
    HoldingsMismatchError,
    PoolResource,
    Resources,
    admission_limits,
    placement_usage,
    subtract_holdings,
)
from numa_migrate.core.fit.cellfit import Limits
from numa_migrate.core.fit.fitter import fit_request
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.usage import apply_placement
from tests.claims import (
    lab_host,
    pinned_placement,
    pinned_request,
    shared_placement,
    shared_request,
)

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def held(claim_id: int, *cells: CellUsage, vfs: frozenset[str] = frozenset()) -> Claim:
    return Claim(
        id=claim_id,
        host="lab-dst",
        kind=ClaimKind.DESTINATION,
        domain=f"g{claim_id}",
        owner="alice",
        state=ClaimState.RESERVED,
        created=T0,
        updated=T0,
        expires=T0,
        resources=Resources(tuple(cells), vfs),
    )


def test_placement_usage_is_apply_placement_on_an_idle_host() -> None:
    live = lab_host(pinned=[0, 1], used_2m=100)
    req = pinned_request(2, 1024)
    placement = pinned_placement(1, [10, 11], 1024)
    usage = placement_usage(live, req, placement)
    assert usage == (
        CellUsage(cell=1, pinned_cpus=frozenset({10, 11}), memory_mib=1024, pages=((2048, 512),)),
    )
    # the same numbers as the difference apply_placement makes on the live host
    after = apply_placement(live, req, placement).cell(1)
    before = live.cell(1)
    assert after.pinned_cpus - before.pinned_cpus == usage[0].pinned_cpus
    assert after.memory_usage_mib - before.memory_usage_mib == usage[0].memory_mib
    pool_after, pool_before = after.page_pool(2048), before.page_pool(2048)
    assert pool_after is not None and pool_before is not None
    assert pool_after.used - pool_before.used == 512


def test_floating_guest_takes_small_pages_and_a_cpu_share() -> None:
    live = lab_host(shared_cores=1)
    usage = placement_usage(live, shared_request(3, 2048), shared_placement(0, 3, 2048))
    assert usage == (CellUsage(cell=0, shared_vcpus=3, memory_mib=2048, pages=((4, 2048 * 256),)),)


def test_admission_limits_follow_the_fitters_rules() -> None:
    live = lab_host(pages_2m=16, used_2m=4, shared_cores=1)
    pinned = pinned_request(1, 4)
    usage = placement_usage(live, pinned, pinned_placement(0, [3], 4))
    assert admission_limits(live, pinned, usage) == {
        (0, PoolResource.PAGES, 2048): 12,  # free pages: hard
        (0, PoolResource.MEMORY_MIB, 0): None,  # cell has page pools: pages decide
    }
    floating = shared_request(2, 1024)
    usage = placement_usage(live, floating, shared_placement(0, 2, 1024))
    assert set(admission_limits(live, floating, usage).values()) == {None}  # over-commit
    limits = Limits(cpu_allocation_ratio=4.0, ram_allocation_ratio=1.5)
    assert admission_limits(live, floating, usage, limits) == {
        (0, PoolResource.SHARED_VCPUS, 0): 8,  # 2 shared CPUs x 4.0
        (0, PoolResource.MEMORY_MIB, 0): 24576,  # 16384 MiB x 1.5
        (0, PoolResource.PAGES, 4): None,
    }


def test_subtract_holdings_adds_claims_to_live_usage() -> None:
    live = lab_host(pages_2m=16, used_2m=2, pinned=[0])
    holdings = Holdings(
        "lab-dst",
        (
            held(1, CellUsage(0, frozenset({2, 3}), 0, 8, ((2048, 4),))),
            held(
                2,
                CellUsage(0, frozenset({4}), 1, 4, ((2048, 2),)),
                CellUsage(1, frozenset({8}), 0, 2, ((2048, 1),)),
                vfs=frozenset({"0000:3b:02.1"}),
            ),
        ),
    )
    view = subtract_holdings(live, holdings)
    c0, c1 = view.cell(0), view.cell(1)
    assert c0.pinned_cpus == {0, 2, 3, 4}
    assert (c0.cpu_usage, c0.memory_usage_mib) == (1, 12)
    pool0, pool1 = c0.page_pool(2048), c1.page_pool(2048)
    assert pool0 is not None and pool1 is not None
    assert (pool0.used, pool1.used) == (2 + 6, 2 + 1)
    assert c1.pinned_cpus == {8}
    assert holdings.vfs == {"0000:3b:02.1"}
    assert live.cell(0).pinned_cpus == {0}  # the input is not changed
    # and the fitter, shown that view, keeps off the held CPUs and pages
    fit = fit_request(view, pinned_request(4, 16))
    assert fit.placement is not None
    assert not fit.placement.pinned_host_cpus() & {0, 2, 3, 4, 8}


def test_subtract_holdings_with_nothing_held_is_the_live_host() -> None:
    live = lab_host()
    assert subtract_holdings(live, Holdings("lab-dst")) == live


@pytest.mark.parametrize(
    ("usage", "problem"),
    [
        (CellUsage(7, frozenset({1})), "claim 1 holds resources in cell 7, which the host"),
        (CellUsage(0, frozenset({9, 40})), "claim 1 holds CPUs 9,40 in cell 0, which has CPUs 0-7"),
        (CellUsage(1, pages=((1048576, 1),)), "claim 1 holds 1 GiB pages in cell 1, which has no"),
    ],
)
def test_claims_that_do_not_match_the_live_topology_are_reported(
    usage: CellUsage, problem: str
) -> None:
    live: HostTopology = lab_host()
    with pytest.raises(HoldingsMismatchError) as err:
        subtract_holdings(live, Holdings("lab-dst", (held(1, usage),)))
    assert problem in str(err.value)
    assert str(err.value).startswith("host lab-dst: the claims store does not match the live")

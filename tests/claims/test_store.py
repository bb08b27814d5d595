"""ClaimStore on real databases (a SQLite file and a PostgreSQL server): claims, conflicts,
life cycle, expiry, holdings and the schema (the journal: ``test_journal.py``)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.exc import IntegrityError

from numa_migrate.claims import (
    TRANSITIONS,
    Claim,
    ClaimConflict,
    ClaimError,
    ClaimKind,
    ClaimState,
    ClaimStore,
    InvalidTransitionError,
    SchemaError,
    UnknownClaimError,
    default_url,
    head_revision,
    subtract_holdings,
)
from numa_migrate.claims.engine import make_engine, parse_url
from numa_migrate.claims.schema import VERSION_TABLE, claim_cpus, metadata, pool_usage
from numa_migrate.core.fit.cellfit import Limits
from numa_migrate.core.fit.fitter import fit_request
from numa_migrate.core.model.guest import ThreadPolicy
from numa_migrate.core.usage import apply_placement
from tests.claims import (
    lab_host,
    pinned_placement,
    pinned_request,
    shared_placement,
    shared_request,
)
from tests.claims.conftest import FakeClock

ALICE = "alice@host1"
BOB = "bob@host2"


def claim_cpus_on(
    store: ClaimStore,
    cpus: list[int],
    *,
    owner: str = ALICE,
    domain: str = "web-7",
    mib: int = 1024,
    ttl_s: float = 600,
    cell: int = 0,
    vfs: tuple[str, ...] = (),
) -> Claim:
    return store.claim(
        lab_host(),
        pinned_request(len(cpus), mib),
        pinned_placement(cell, cpus, mib),
        domain=domain,
        owner=owner,
        ttl_s=ttl_s,
        vfs=vfs,
    )


# ----------------------------------------------------------------------------- claims


def test_claim_records_what_the_placement_takes(store: ClaimStore) -> None:
    c = claim_cpus_on(store, [4, 5], mib=1024, vfs=("0000:3B:02.1",))
    assert c.state is ClaimState.RESERVED
    assert c.kind is ClaimKind.DESTINATION
    assert c.expires - c.created == timedelta(seconds=600)
    (cell,) = c.resources.cells
    assert (cell.cell, cell.pinned_cpus, cell.memory_mib, cell.pages) == (
        0,
        frozenset({4, 5}),
        1024,
        ((2048, 512),),
    )
    assert c.resources.vfs == frozenset({"0000:3b:02.1"})
    assert store.get(c.id) == c
    assert store.list_claims("lab-dst") == [c]
    assert store.verify() == []


def test_isolate_and_emulator_pins_are_taken_as_apply_placement_takes_them(
    store: ClaimStore,
) -> None:
    """Whole cores under isolate, plus the emulator CPU: read off apply_placement."""
    live = lab_host()
    req = pinned_request(2, 1024)
    from dataclasses import replace

    from numa_migrate.core.model.guest import EmulatorPolicy

    req = replace(req, thread_policy=ThreadPolicy.ISOLATE, emulator_policy=EmulatorPolicy.ISOLATE)
    legacy = replace(live, cells=tuple(replace(c, cpuset=c.pcpuset | c.cpuset) for c in live.cells))
    fit = fit_request(legacy, req)
    assert fit.placement is not None, fit.summary
    c = store.claim(legacy, req, fit.placement, domain="iso", owner=ALICE, ttl_s=60)
    expected = apply_placement(legacy, req, fit.placement).cells[0].pinned_cpus
    assert c.resources.pinned_cpus == expected
    assert len(expected) == 6  # 2 vCPUs + 1 emulator CPU, each with its sibling
    assert store.verify() == []


def test_cpu_conflict_names_cpus_holder_owner_state_and_expiry(
    store: ClaimStore, clock: FakeClock
) -> None:
    first = claim_cpus_on(store, [4, 5], owner=ALICE, domain="web-7")
    store.set_state(first.id, ClaimState.MIGRATING)
    clock.advance(60)
    with pytest.raises(ClaimConflict) as err:
        claim_cpus_on(store, [5, 4, 6], owner=BOB, domain="db-1")
    assert str(err.value) == (
        f"host lab-dst: CPUs 4,5 are held by claim {first.id} "
        f"(owner alice@host1, migrating web-7, expires in 540 s)"
    )
    (conflict,) = err.value.conflicts
    assert (conflict.resource, conflict.items, conflict.holders) == ("cpus", (4, 5), (first.id,))
    assert store.list_claims() == [store.get(first.id)]
    assert store.verify() == []


def test_conflicts_name_every_holder_and_every_resource(store: ClaimStore) -> None:
    a = claim_cpus_on(store, [2], owner=ALICE, domain="a", vfs=("0000:3b:02.1",))
    b = claim_cpus_on(store, [3], owner=BOB, domain="b")
    with pytest.raises(ClaimConflict) as err:
        claim_cpus_on(store, [2, 3], owner="carol", domain="c", vfs=("0000:3b:02.1",))
    msg = str(err.value)
    assert f"host lab-dst: CPU 2 is held by claim {a.id} (owner {ALICE}, reserved a" in msg
    assert f"host lab-dst: CPU 3 is held by claim {b.id} (owner {BOB}, reserved b" in msg
    assert f"host lab-dst: VF 0000:3b:02.1 is held by claim {a.id} (owner {ALICE}" in msg
    assert err.value.holders == {a.id, b.id}


def test_page_conflict_says_how_many_are_free_and_who_holds_them(
    store: ClaimStore, clock: FakeClock
) -> None:
    live = lab_host(pages_2m=16, used_2m=4)  # 12 free 2 MiB pages per cell
    req8 = pinned_request(1, 16)  # 8 pages
    a = store.claim(live, req8, pinned_placement(1, [8], 16), domain="a", owner=ALICE, ttl_s=100)
    req2 = pinned_request(1, 4)  # 2 pages
    b = store.claim(live, req2, pinned_placement(1, [9], 4), domain="b", owner=BOB, ttl_s=100)
    with pytest.raises(ClaimConflict) as err:
        store.claim(live, req2, pinned_placement(1, [10], 6), domain="c", owner="carol", ttl_s=9)
    assert str(err.value) == (
        "host lab-dst cell 1: needs 3 2 MiB pages; 12 2 MiB pages free on the host, of which "
        f"claims hold 10: claim {a.id} (owner {ALICE}, reserved a, expires in 100 s) holds "
        f"8 2 MiB pages, claim {b.id} (owner {BOB}, reserved b, expires in 100 s) holds "
        "2 2 MiB pages"
    )
    (conflict,) = err.value.conflicts
    assert (conflict.need, conflict.have, conflict.held, conflict.cell) == (3, 12, 10, 1)
    # exactly what is left still fits
    store.claim(live, req2, pinned_placement(1, [10], 4), domain="c", owner="carol", ttl_s=9)
    assert store.verify() == []


def test_pages_short_on_the_live_host_alone(store: ClaimStore) -> None:
    live = lab_host(pages_2m=16, used_2m=15)
    with pytest.raises(ClaimConflict, match=r"only 1 2 MiB page free on the host \(no claim"):
        store.claim(
            live,
            pinned_request(1, 4),
            pinned_placement(0, [1], 4),
            domain="x",
            owner=ALICE,
            ttl_s=5,
        )


def test_cpus_pinned_by_running_guests_are_refused(store: ClaimStore) -> None:
    live = lab_host(pinned=[4, 5])
    with pytest.raises(ClaimConflict) as err:
        store.claim(
            live,
            pinned_request(2, 64),
            pinned_placement(0, [3, 4], 64),
            domain="x",
            owner=ALICE,
            ttl_s=5,
        )
    assert str(err.value) == (
        "host lab-dst: CPU 4 is pinned by guests running on the host (live usage)"
    )
    assert err.value.conflicts[0].live
    assert store.list_claims() == []


def test_a_refused_claim_leaves_nothing_behind(store: ClaimStore) -> None:
    a = claim_cpus_on(store, [1], vfs=("0000:3b:02.0",))
    for attempt in range(3):
        with pytest.raises(ClaimConflict):
            claim_cpus_on(store, [0, 1], owner=BOB, domain=f"d{attempt}", vfs=("0000:3b:02.7",))
    assert [c.id for c in store.list_claims(states=list(ClaimState))] == [a.id]
    assert store.verify() == []
    # the VF and CPU 0 that the refused claims wanted are still free
    claim_cpus_on(store, [0], owner=BOB, vfs=("0000:3b:02.7",))


def test_release_frees_cpus_pages_and_vfs_for_the_next_claim(store: ClaimStore) -> None:
    live = lab_host(pages_2m=8)
    req = pinned_request(2, 16)
    a = store.claim(
        live,
        req,
        pinned_placement(0, [2, 3], 16),
        domain="a",
        owner=ALICE,
        ttl_s=60,
        vfs=["0000:3b:02.1"],
    )
    with pytest.raises(ClaimConflict):
        store.claim(live, req, pinned_placement(0, [4, 5], 16), domain="b", owner=BOB, ttl_s=60)
    released = store.release(a.id)
    assert released.state is ClaimState.RELEASED
    assert store.get(a.id).resources == a.resources  # history keeps what it held
    b = store.claim(
        live,
        req,
        pinned_placement(0, [2, 3], 16),
        domain="b",
        owner=BOB,
        ttl_s=60,
        vfs=["0000:3b:02.1"],
    )
    assert store.held_by_others("lab-dst").claim_ids == (b.id,)
    assert store.verify() == []


def test_rollback_frees_everything(store: ClaimStore) -> None:
    a = claim_cpus_on(store, [6, 7], vfs=("0000:3b:02.3",))
    store.set_state(a.id, "migrating")
    assert store.rollback(a.id).state is ClaimState.ROLLED_BACK
    assert store.held_by_others("lab-dst").claims == ()
    claim_cpus_on(store, [6, 7], owner=BOB, vfs=("0000:3b:02.3",))
    assert store.verify() == []


def test_full_life_cycle_to_active_then_released(store: ClaimStore) -> None:
    a = claim_cpus_on(store, [1])
    assert store.set_state(a.id, ClaimState.MIGRATING).state is ClaimState.MIGRATING
    assert store.set_state(a.id, ClaimState.ACTIVE).state is ClaimState.ACTIVE
    assert store.held_by_others("lab-dst").claim_ids == (a.id,)
    assert store.release(a.id).state is ClaimState.RELEASED
    assert store.held_by_others("lab-dst").claim_ids == ()


@pytest.mark.parametrize(
    ("path", "target"),
    [
        (path, target)
        for path in ([], ["migrating"], ["migrating", "active"], ["released"], ["rolled_back"])
        for target in ClaimState
    ],
)
def test_only_allowed_transitions(store: ClaimStore, path: list[str], target: ClaimState) -> None:
    a = claim_cpus_on(store, [3])
    for step in path:
        store.set_state(a.id, step)
    current = store.get(a.id).state
    if target in TRANSITIONS[current]:
        assert store.set_state(a.id, target).state is target
    else:
        with pytest.raises(InvalidTransitionError) as err:
            store.set_state(a.id, target)
        assert f"claim {a.id} (destination claim for web-7 on lab-dst) is {current}" in str(
            err.value
        )
        assert f"it cannot become {target}" in str(err.value)
        assert store.get(a.id).state is current
    assert store.verify() == []


def test_transition_error_lists_what_is_allowed(store: ClaimStore) -> None:
    a = claim_cpus_on(store, [3])
    with pytest.raises(InvalidTransitionError) as err:
        store.set_state(a.id, "active")
    assert str(err.value) == (
        f"claim {a.id} (destination claim for web-7 on lab-dst) is reserved; it cannot become "
        "active (allowed from reserved: migrating, released, rolled_back)"
    )
    store.release(a.id)
    with pytest.raises(InvalidTransitionError, match=r"allowed from released: none"):
        store.release(a.id)


def test_unknown_claims_and_states(store: ClaimStore) -> None:
    with pytest.raises(UnknownClaimError, match="no claim 999"):
        store.release(999)
    a = claim_cpus_on(store, [3])
    with pytest.raises(ClaimError, match="'done' is not one of: reserved, migrating"):
        store.set_state(a.id, "done")


# ----------------------------------------------------------------------------- expiry


def test_expired_claims_are_listed_still_held_and_reaped(
    store: ClaimStore, clock: FakeClock
) -> None:
    short = claim_cpus_on(store, [1], domain="short", ttl_s=30)
    active = claim_cpus_on(store, [2], domain="act", ttl_s=30)
    store.set_state(active.id, "migrating")
    store.set_state(active.id, "active")
    long = claim_cpus_on(store, [3], domain="long", ttl_s=3600)
    done = claim_cpus_on(store, [4], domain="done", ttl_s=1)
    store.release(done.id)
    assert store.expired() == []
    clock.advance(60)
    assert [c.id for c in store.expired()] == [short.id, active.id]
    assert [c.id for c in store.expired(clock.now - timedelta(seconds=45))] == []
    # an expired claim still holds its CPUs until it is reaped, and says it expired
    with pytest.raises(ClaimConflict, match=r"reserved short, expired 30 s ago\)"):
        claim_cpus_on(store, [1], owner=BOB)
    assert set(store.held_by_others("lab-dst").claim_ids) == {short.id, active.id, long.id}
    reaped = store.reap()
    assert [(c.id, c.state) for c in reaped] == [
        (short.id, ClaimState.ROLLED_BACK),
        (active.id, ClaimState.RELEASED),
    ]
    assert store.held_by_others("lab-dst").claim_ids == (long.id,)
    assert store.expired() == []
    claim_cpus_on(store, [1, 2], owner=BOB)
    assert store.verify() == []


def test_renew_pushes_the_expiry(store: ClaimStore, clock: FakeClock) -> None:
    a = claim_cpus_on(store, [1], ttl_s=30)
    clock.advance(20)
    renewed = store.renew(a.id, 30)
    assert renewed.expires == clock.now + timedelta(seconds=30)
    clock.advance(20)
    assert store.expired() == []
    assert store.reap() == []
    store.release(a.id)
    with pytest.raises(ClaimError, match="only live claims"):
        store.renew(a.id, 30)


# ----------------------------------------------------------------------------- holdings


def test_live_usage_minus_claims_held_by_others(store: ClaimStore) -> None:
    live = lab_host(pages_2m=16)
    req = pinned_request(4, 16)
    first = fit_request(live, req)
    assert first.placement is not None
    a = store.claim(live, req, first.placement, domain="a", owner=ALICE, ttl_s=60)
    view = subtract_holdings(live, store.held_by_others(live.name))
    second = fit_request(view, req)
    assert second.placement is not None
    assert not second.placement.pinned_host_cpus() & a.resources.pinned_cpus
    b = store.claim(live, req, second.placement, domain="b", owner=BOB, ttl_s=60)
    # a's own claim is not in its way when it re-plans
    mine = subtract_holdings(live, store.held_by_others(live.name, except_claim=a.id))
    again = fit_request(mine, req)
    assert again.placement is not None
    assert again.placement.pinned_host_cpus() == a.resources.pinned_cpus
    assert store.held_by_others(live.name, except_claim=a.id).claim_ids == (b.id,)


def test_source_claim_keeps_what_the_guest_uses(store: ClaimStore) -> None:
    req = pinned_request(2, 16)
    placement = pinned_placement(0, [2, 3], 16)
    idle = lab_host("lab-src", pages_2m=8)
    running = apply_placement(idle, req, placement)  # the guest runs there: 8 of 8 pages used
    src = store.claim(
        running,
        req,
        placement,
        domain="web-7",
        owner=ALICE,
        ttl_s=60,
        kind="source",
        migration_id="m-1",
    )
    assert (src.kind, src.migration_id) == (ClaimKind.SOURCE, "m-1")
    # another operator, seeing the host after the guest left, cannot take its resources
    with pytest.raises(ClaimConflict, match=rf"CPUs 2,3 are held by claim {src.id}"):
        store.claim(idle, req, placement, domain="other", owner=BOB, ttl_s=60)
    with pytest.raises(ClaimError, match="does not show its pins"):
        store.claim(idle, req, placement, domain="web-7", owner=ALICE, ttl_s=60, kind="source")


def test_allocation_ratio_limits_shared_cpus_and_floating_memory_is_overcommitted(
    store: ClaimStore,
) -> None:
    live = lab_host(shared_cores=1)  # 2 shared CPUs per cell
    limits = Limits(cpu_allocation_ratio=2.0, ram_allocation_ratio=1.0)
    req = shared_request(3, 1024)
    a = store.claim(
        live, req, shared_placement(0, 3, 1024), domain="a", owner=ALICE, ttl_s=60, limits=limits
    )
    with pytest.raises(ClaimConflict) as err:
        store.claim(
            live,
            shared_request(2, 1024),
            shared_placement(0, 2, 1024),
            domain="b",
            owner=BOB,
            ttl_s=60,
            limits=limits,
        )
    assert str(err.value).startswith(
        "host lab-dst cell 0: needs 2 shared vCPUs; 4 shared vCPUs allowed on the cell by the "
        f"CPU allocation ratio, of which claims hold 3: claim {a.id}"
    )
    # without ratios, Nova over-commits floating guests: small pages are counted, not refused
    for i in range(20):
        store.claim(
            live,
            shared_request(2, 8192),
            shared_placement(1, 2, 8192),
            domain=f"f{i}",
            owner=BOB,
            ttl_s=60,
        )
    assert store.verify() == []


# ----------------------------------------------------------------------------- input


def test_bad_input_is_refused_with_a_reason(store: ClaimStore) -> None:
    live = lab_host()
    req = pinned_request(2, 64)
    cases = [
        (pinned_placement(5, [1, 2], 64), "uses host cell 5, the host has cells 0, 1"),
        (pinned_placement(0, [1, 9], 64), "pins CPUs 9, which are not in the cell"),
    ]
    for placement, message in cases:
        with pytest.raises(ClaimError, match=message):
            store.claim(live, req, placement, domain="x", owner=ALICE, ttl_s=5)
    good = pinned_placement(0, [1, 2], 64)
    with pytest.raises(ClaimError, match="not a PCI address"):
        store.claim(live, req, good, domain="x", owner=ALICE, ttl_s=5, vfs=["eth0"])
    with pytest.raises(ClaimError, match="ttl_s must be a positive"):
        store.claim(live, req, good, domain="x", owner=ALICE, ttl_s=0)
    with pytest.raises(ClaimError, match="ttl_s must be a positive"):
        store.claim(live, req, good, domain="x", owner=ALICE, ttl_s=float("inf"))
    with pytest.raises(ClaimError, match="needs a domain"):
        store.claim(live, req, good, domain=" ", owner=ALICE, ttl_s=5)
    with pytest.raises(ClaimError, match="claim kind 'sideways'"):
        store.claim(live, req, good, domain="x", owner=ALICE, ttl_s=5, kind="sideways")
    assert store.list_claims(states=list(ClaimState)) == []


# ----------------------------------------------------------------------------- schema


def test_migrations_build_exactly_the_declared_schema(empty_url: str) -> None:
    with ClaimStore(empty_url) as s:
        assert s.schema_revision() is None
        with pytest.raises(SchemaError, match=r"at schema \(empty\)"):
            s.check_schema()
        with pytest.raises(SchemaError, match="no claims schema"):
            s.list_claims()
        assert s.migrate() == head_revision()
        assert s.migrate() == head_revision()  # idempotent
        s.check_schema()
    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert ctx.get_current_revision() == head_revision()
            assert compare_metadata(ctx, metadata) == []
    finally:
        engine.dispose()


def test_the_database_itself_refuses_double_booking(store: ClaimStore) -> None:
    """Even SQL that bypasses the store cannot book a CPU twice or a counter below zero."""
    a = claim_cpus_on(store, [4])
    engine = make_engine(store.url)
    try:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(claim_cpus).values(host="lab-dst", cpu=4, cell=0, claim_id=a.id))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(update(pool_usage).values(used=pool_usage.c.used - 10_000))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(  # a row for a claim that does not exist
                insert(claim_cpus).values(host="lab-dst", cpu=9, cell=1, claim_id=a.id + 100)
            )
    finally:
        engine.dispose()
    assert store.verify() == []


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    with ClaimStore.open(url) as s:
        assert s.backend == "sqlite"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()
    raw = sqlite3.connect(tmp_path / "claims.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_default_url_is_in_the_users_state_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_url() == f"sqlite:///{tmp_path}/state/numa-migrate/claims.db"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path}/home/.local/state/numa-migrate/claims.db"
    with ClaimStore.open() as s:
        claim_cpus_on(s, [1])
    assert (tmp_path / "home" / ".local" / "state" / "numa-migrate" / "claims.db").is_file()


def test_a_hand_given_sqlite_path_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/typo/claims.db"
    with pytest.raises(ClaimError, match=r"the folder .*typo does not exist"):
        ClaimStore.open(url)
    assert not (tmp_path / "typo").exists()


def test_urls_are_checked() -> None:
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ClaimError, match="unsupported database 'mysql'"):
        parse_url("mysql://u@h/db")
    with pytest.raises(ClaimError, match="is not a URL"):
        parse_url("::nope::")


def test_an_unreachable_database_is_a_clear_error() -> None:
    with (
        ClaimStore("postgresql+psycopg://nobody:secret@127.0.0.1:1/none") as s,
        pytest.raises(ClaimError) as err,
    ):
        s.migrate()
    assert "claims database postgresql+psycopg://nobody:***@127.0.0.1:1/none" in str(err.value)


def test_in_memory_sqlite_works_for_quick_experiments() -> None:
    with ClaimStore.open("sqlite://") as s:
        a = claim_cpus_on(s, [1])
        assert s.get(a.id).state is ClaimState.RESERVED
        assert [c.id for c in s.list_claims()] == [a.id]
        with pytest.raises(ClaimConflict):
            claim_cpus_on(s, [1], owner=BOB)


def test_a_fresh_engine_reads_the_same_schema(empty_url: str) -> None:
    with ClaimStore.open(empty_url):
        pass
    engine = create_engine(parse_url(empty_url))
    try:
        with engine.connect() as conn:
            version = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        assert version == head_revision()
    finally:
        engine.dispose()


def test_a_claim_is_freed_once_when_many_threads_release_it(store: ClaimStore) -> None:
    a = claim_cpus_on(store, [1, 2], vfs=("0000:3b:02.2",))
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def release() -> None:
        barrier.wait(30)
        try:
            store.release(a.id)
        except InvalidTransitionError:
            outcomes.append("refused")
        else:
            outcomes.append("released")

    threads = [threading.Thread(target=release) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["refused"] * 7 + ["released"]
    assert store.verify() == []
    claim_cpus_on(store, [1, 2], owner=BOB, vfs=("0000:3b:02.2",))


def test_offline_sql_for_dbas_and_a_plain_import_of_the_environment() -> None:
    import io

    from alembic import command
    from alembic.config import Config

    import numa_migrate.claims.migrations.env  # noqa: F401 - importing must be harmless
    from numa_migrate.claims.store import MIGRATIONS_DIR

    out = io.StringIO()
    cfg = Config(output_buffer=out)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", "postgresql+psycopg://u@h/db")
    command.upgrade(cfg, "head", sql=True)
    sql = out.getvalue()
    assert "CREATE TABLE claim_cpus" in sql
    assert "CONSTRAINT pk_claim_cpus PRIMARY KEY (host, cpu)" in sql
    assert f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('{head_revision()}')" in sql

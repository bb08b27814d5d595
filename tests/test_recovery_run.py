"""``recover`` (migrate/recovery.py) carrying out the decision on in-memory hosts: the calls
it makes through the hypervisor seam, the claims it frees and what it journals."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import pytest

from numa_migrate.claims import ClaimState, ClaimStore
from numa_migrate.claims.journal import Journal
from numa_migrate.core.migration.journal import (
    ClaimedEntry,
    HostEndpoint,
    MigratingEntry,
    PlannedEntry,
    PostCopyEntry,
    RecoveredEntry,
)
from numa_migrate.core.migration.phases import Phase
from numa_migrate.core.migration.recovery import Outcome
from numa_migrate.hypervisor.base import DomainState, Hypervisor, HypervisorError
from numa_migrate.hypervisor.memory import MemoryHost
from numa_migrate.migrate.recovery import Recovery, recover
from numa_migrate.migrate.run import HostRef
from tests.claims import lab_host, pinned_placement, pinned_request
from tests.test_hypervisor import guest_xml, pair

DEAD_OWNER = f"{getpass.getuser()}@{socket.gethostname()}/999999999"
PERSISTENT_XML = guest_xml()
CHANGES = {"start", "resume", "destroy", "undefine", "define", "attach_device",
           "detach_device", "migrate"}


class World:
    """An interrupted migration of g1 from src to dst: journalled up to ``migrating`` (and
    ``post_copy``), its claim in state migrating, its owner gone."""

    def __init__(self, tmp_path: Path, *, post_copy: bool = False) -> None:
        self.src, self.dst = pair()
        self.store = ClaimStore.open(f"sqlite:///{tmp_path / 'claims.db'}")
        self.journal = Journal(self.store)
        self.uuid = self.src.add(PERSISTENT_XML).uuid()
        self.src.records.clear()
        self.journal.append("m-1", PlannedEntry(
            "g1", self.uuid, HostEndpoint("src", self.src.uri),
            HostEndpoint("dst", self.dst.uri), DEAD_OWNER, "g1 -> dst", PERSISTENT_XML))
        claim = self.store.claim(lab_host(), pinned_request(2, 1024),
                                 pinned_placement(0, [4, 5], 1024), domain="g1",
                                 owner=DEAD_OWNER, ttl_s=600, migration_id="m-1")
        self.claim_id = claim.id
        self.journal.append("m-1", ClaimedEntry(claim.id))
        self.store.set_state(claim.id, ClaimState.MIGRATING)
        self.journal.append("m-1", MigratingEntry(claim.id))
        if post_copy:
            self.journal.append("m-1", PostCopyEntry(claim.id))

    def connect(self, ref: HostRef) -> Hypervisor:
        return {"src": self.src, "dst": self.dst}[ref.name]

    def recover(self) -> list[Recovery]:
        return recover(self.store, connect=self.connect)

    def actions_on(self, host: MemoryHost) -> list[str]:
        """The calls that changed something on ``host``."""
        return [c for c in host.calls if c.split()[0] in CHANGES]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_killed_while_transferring_rolls_back(world: World) -> None:
    world.src.add(PERSISTENT_XML, state=DomainState.PAUSED)
    world.dst.add(PERSISTENT_XML, state=DomainState.PAUSED, persistent=False)
    [done] = world.recover()
    assert done.outcome is Outcome.ROLLED_BACK
    assert done.as_dict()["outcome"] == "rolled back"
    assert world.actions_on(world.src) == ["resume g1"]
    assert world.actions_on(world.dst) == ["destroy g1"]
    assert done.actions == ("resumed the paused guest on src",
                            "destroyed the half-migrated copy on dst", "rolled back the claim")
    assert world.store.get(world.claim_id).state is ClaimState.ROLLED_BACK
    last = world.journal.entries("m-1")[-1]
    assert last.entry == RecoveredEntry(
        "rolled back", done.actions,
        found="on src: paused (reason 1); on dst: paused (reason 1)")
    assert world.recover() == []  # nothing left to do
    world.store.close()


def test_killed_after_the_guest_moved_completes(world: World) -> None:
    world.src.add(PERSISTENT_XML, state=DomainState.SHUTOFF)
    world.dst.add(PERSISTENT_XML, persistent=False)
    [done] = world.recover()
    assert done.outcome is Outcome.COMPLETED
    assert world.actions_on(world.src) == ["undefine g1"]
    assert world.actions_on(world.dst) == ["define"]
    assert world.dst.lookup("g1") is not None and world.src.lookup("g1") is None
    assert done.actions == (
        "removed the stale definition on src", "made the guest persistent on dst",
        "released the claim (the destination's live usage shows the guest)")
    assert world.store.get(world.claim_id).state is ClaimState.RELEASED
    world.store.close()


def test_after_post_copy_nothing_is_touched(tmp_path: Path) -> None:
    world = World(tmp_path, post_copy=True)
    world.src.add(PERSISTENT_XML, state=DomainState.PAUSED)
    world.dst.add(PERSISTENT_XML, state=DomainState.PAUSED, persistent=False)
    [done] = world.recover()
    assert done.outcome is Outcome.POST_COPY_RESUME
    assert done.as_dict()["outcome"] == "needs attention"
    assert "--postcopy-resume" in done.detail
    assert world.actions_on(world.src) == [] and world.actions_on(world.dst) == []
    assert world.store.get(world.claim_id).state is ClaimState.MIGRATING
    assert world.journal.last_phase("m-1") is Phase.ATTENTION
    [again] = world.recover()  # still there for the person; journalled once more
    assert again.outcome is Outcome.POST_COPY_RESUME
    assert [e.phase for e in world.journal.entries("m-1")][-2:] == ["attention", "attention"]
    world.store.close()


def test_a_step_that_fails_is_reported_and_the_rest_still_runs(world: World) -> None:
    world.src.add(PERSISTENT_XML, state=DomainState.PAUSED)
    world.dst.add(PERSISTENT_XML, state=DomainState.SHUTOFF)
    world.src.fail("resume", "device busy")
    [done] = world.recover()
    assert done.actions == ("could not resume the guest on src: device busy",
                            "removed the stale definition on dst", "rolled back the claim")
    world.store.close()


def test_unreachable_hosts_skip(world: World) -> None:
    def refuse(ref: HostRef) -> Hypervisor:
        raise HypervisorError(f"host {ref.name}: cannot connect to {ref.uri}: refused")

    [done] = recover(world.store, connect=refuse)
    assert done.outcome is Outcome.SKIPPED
    assert done.detail == ("cannot inspect the hosts yet: host src: cannot connect to "
                           "memory:///src: refused")
    assert world.store.get(world.claim_id).state is ClaimState.MIGRATING
    assert world.journal.last_phase("m-1") is Phase.MIGRATING  # nothing journalled
    world.store.close()

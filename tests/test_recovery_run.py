"""``recover`` (migrate/recovery.py) carrying out the decision on stand-in hosts: the libvirt
calls it makes, the claims it frees and what it journals."""

from __future__ import annotations

import getpass
import socket
import subprocess
from pathlib import Path
from typing import Any

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
from tests.claims import lab_host, pinned_placement, pinned_request

UUID = "6f1c8d52-2f7e-4d5e-9a43-0c6a3b6c1f20"
RUNNING, PAUSED, SHUTOFF = 1, 3, 5  # libvirt's VIR_DOMAIN_* numbers


class Dom:
    def __init__(self, state: int, *, persistent: bool) -> None:
        self._state, self.persistent, self.calls = state, persistent, list[str]()

    def name(self) -> str:
        return "vnf"

    def UUIDString(self) -> str:
        return UUID

    def state(self) -> tuple[int, int]:
        return (self._state, 1)

    def isActive(self) -> bool:
        return self._state != SHUTOFF

    def isPersistent(self) -> bool:
        return self.persistent

    def resume(self) -> None:
        self.calls.append("resume")
        self._state = RUNNING

    def destroy(self) -> None:
        self.calls.append("destroy")
        self._state = SHUTOFF

    def undefine(self) -> None:
        self.calls.append("undefine")
        self.persistent = False

    def XMLDesc(self, _flags: int) -> str:
        return f"<domain><name>vnf</name><uuid>{UUID}</uuid></domain>"


class Conn:
    def __init__(self, dom: Dom | None) -> None:
        self.dom, self.defined = dom, list[str]()

    def _find(self, key: str) -> Dom:
        import libvirt

        if self.dom is None or key not in ("vnf", UUID):
            raise libvirt.libvirtError("Domain not found")
        return self.dom

    lookupByName = _find
    lookupByUUIDString = _find

    def defineXML(self, xml: str) -> Dom:
        self.defined.append(xml)
        assert self.dom is not None
        self.dom.persistent = True
        return self.dom


def _dead_owner() -> str:
    """An owner on this machine whose process has ended."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{getpass.getuser()}@{socket.gethostname()}/{proc.pid}"


def _interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, src: Dom | None,
                 dst: Dom | None, *, post_copy: bool = False) -> tuple[ClaimStore, int,
                                                                       dict[str, Conn]]:
    from numa_migrate.adapters import virt

    pytest.importorskip("libvirt")
    hosts = {"lab-src": Conn(src), "lab-dst": Conn(dst)}
    monkeypatch.setattr(virt, "connect", lambda _uri, host: hosts[host])
    store = ClaimStore.open(f"sqlite:///{tmp_path / 'claims.db'}")
    owner = _dead_owner()
    journal = Journal(store)
    journal.append("m-1", PlannedEntry(
        "vnf", UUID, HostEndpoint("lab-src", "test:///src"),
        HostEndpoint("lab-dst", "test:///dst"), owner, "vnf -> lab-dst", "<domain/>"))
    claim = store.claim(lab_host(), pinned_request(2, 1024), pinned_placement(0, [4, 5], 1024),
                        domain="vnf", owner=owner, ttl_s=600, migration_id="m-1")
    journal.append("m-1", ClaimedEntry(claim.id))
    store.set_state(claim.id, ClaimState.MIGRATING)
    journal.append("m-1", MigratingEntry(claim.id))
    if post_copy:
        journal.append("m-1", PostCopyEntry(claim.id))
    return store, claim.id, hosts


def test_killed_while_transferring_rolls_back(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from numa_migrate.migrate.recovery import recover

    src, dst = Dom(PAUSED, persistent=True), Dom(PAUSED, persistent=False)
    store, claim_id, _hosts = _interrupted(tmp_path, monkeypatch, src, dst)
    [done] = recover(store)
    assert done.outcome is Outcome.ROLLED_BACK
    assert done.as_dict()["outcome"] == "rolled back"
    assert src.calls == ["resume"] and dst.calls == ["destroy"]
    assert done.actions == ("resumed the paused guest on lab-src",
                            "destroyed the half-migrated copy on lab-dst",
                            "rolled back the claim")
    assert store.get(claim_id).state is ClaimState.ROLLED_BACK
    last = Journal(store).entries("m-1")[-1]
    assert last.entry == RecoveredEntry(
        "rolled back", done.actions,
        found="on lab-src: paused (reason 1); on lab-dst: paused (reason 1)")
    assert recover(store) == []  # nothing left to do
    store.close()


def test_killed_after_the_guest_moved_completes(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from numa_migrate.migrate.recovery import recover

    src, dst = Dom(SHUTOFF, persistent=True), Dom(RUNNING, persistent=False)
    store, claim_id, hosts = _interrupted(tmp_path, monkeypatch, src, dst)
    [done] = recover(store)
    assert done.outcome is Outcome.COMPLETED
    assert src.calls == ["undefine"] and hosts["lab-dst"].defined == ["<domain/>"]
    assert done.actions == (
        "removed the stale definition on lab-src", "made the guest persistent on lab-dst",
        "released the claim (the destination's live usage shows the guest)")
    assert store.get(claim_id).state is ClaimState.RELEASED
    store.close()


def test_after_post_copy_nothing_is_touched(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from numa_migrate.migrate.recovery import recover

    src, dst = Dom(PAUSED, persistent=True), Dom(PAUSED, persistent=False)
    store, claim_id, _hosts = _interrupted(tmp_path, monkeypatch, src, dst, post_copy=True)
    [done] = recover(store)
    assert done.outcome is Outcome.POST_COPY_RESUME
    assert done.as_dict()["outcome"] == "needs attention"
    assert src.calls == [] and dst.calls == []
    assert store.get(claim_id).state is ClaimState.MIGRATING
    assert Journal(store).last_phase("m-1") is Phase.ATTENTION
    [again] = recover(store)  # still there for the person; journalled once more
    assert again.outcome is Outcome.POST_COPY_RESUME
    assert [e.phase for e in Journal(store).entries("m-1")][-2:] == ["attention", "attention"]
    store.close()


def test_unreachable_hosts_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from numa_migrate.adapters import virt
    from numa_migrate.migrate.recovery import recover

    store, claim_id, _hosts = _interrupted(tmp_path, monkeypatch, None, None)

    def refuse(uri: str, host: str) -> Any:
        raise virt.VirtError(f"host {host}: cannot connect to {uri}: refused")

    monkeypatch.setattr(virt, "connect", refuse)
    [done] = recover(store)
    assert done.outcome is Outcome.SKIPPED
    assert done.detail == ("cannot inspect the hosts yet: host lab-src: cannot connect to "
                           "test:///src: refused")
    assert store.get(claim_id).state is ClaimState.MIGRATING
    assert Journal(store).last_phase("m-1") is Phase.MIGRATING  # nothing journalled
    store.close()

"""Recover from interrupted migrations: make claims and domains consistent again.

A migration is *interrupted* when its journal has no final phase and its owner is gone: a
local owner process that no longer exists, or any owner whose claim has expired. For each,
both hosts are inspected and brought to one of two consistent states:

- **completed** — the guest runs on the destination: a leftover definition on the source is
  removed, a transient destination domain is made persistent from the planned XML, the
  claim is released (the destination's live usage shows the guest);
- **rolled back** — the guest is alive on the source: it is resumed if it was paused by the
  migration, any copy on the destination (paused incoming domain, stale definition) is
  removed, the claim is rolled back.

A guest alive on both hosts, or on neither, is not touched: that needs a person, and the
report says what was found. Nor is a migration that had switched to post-copy and did not
finish on the destination: its source copy is stale, so rolling back would lose data; the
report gives the command that resumes it. Nothing here runs for a migration whose owner
is still alive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.claims import ClaimStore
from numa_migrate.claims.model import Claim, ClaimState, JournalEntry
from numa_migrate.hypervisor.base import Domain, DomainState, HypervisorError, attach
from numa_migrate.migrate.run import (
    FINAL_PHASES,
    POST_COPY_PHASES,
    Connector,
    HostRef,
    cleanup_after_failed_migration,
    connect_libvirt,
    owner_alive,
)


@dataclass(frozen=True)
class Recovery:
    migration_id: str
    domain: str
    outcome: str
    """``completed``, ``rolled back``, ``needs attention`` or ``skipped``."""
    actions: tuple[str, ...]
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"migration_id": self.migration_id, "domain": self.domain,
                "outcome": self.outcome, "actions": list(self.actions), "detail": self.detail}


def _interrupted(claim: Claim, now_expired: set[int]) -> bool:
    alive = owner_alive(claim.owner)
    if alive is True:
        return False
    return alive is False or claim.id in now_expired


def _planned(entries: Iterable[JournalEntry]) -> dict[str, Any] | None:
    for entry in entries:
        if entry.phase == "planned" and isinstance(entry.payload, dict):
            return entry.payload
    return None


def recover(store: ClaimStore, *, only: str | None = None,
            connect: Connector = connect_libvirt) -> list[Recovery]:
    """Recover every interrupted migration (or only migration ``only``)."""
    expired = {c.id for c in store.expired()}
    by_migration: dict[str, list[Claim]] = {}
    for claim in store.list_claims():
        if claim.migration_id and claim.state.live:
            by_migration.setdefault(claim.migration_id, []).append(claim)
    out = []
    for mid, claims in sorted(by_migration.items()):
        if only is not None and mid != only:
            continue
        entries = store.journal_entries(mid)
        if any(e.phase in FINAL_PHASES for e in entries) and all(
            not c.state.live for c in claims
        ):
            continue
        if not all(_interrupted(c, expired) for c in claims):
            continue
        out.append(_recover_one(store, mid, claims, entries, connect))
    return out


def _free(store: ClaimStore, claims: list[Claim], *, completed: bool) -> None:
    """Release (migration completed) or roll back (it did not) every claim still live."""
    for claim in claims:
        current = store.get(claim.id)
        if completed and current.state is ClaimState.MIGRATING:
            current = store.set_state(claim.id, ClaimState.ACTIVE)
        if current.state is ClaimState.ACTIVE or (
            completed and current.state is ClaimState.RESERVED
        ):
            store.release(claim.id)
        elif current.state.live:
            store.rollback(claim.id)


def _recover_one(store: ClaimStore, mid: str, claims: list[Claim],
                 entries: list[JournalEntry], connect: Connector) -> Recovery:
    planned = _planned(entries)
    domain = claims[0].domain
    if planned is None:
        _free(store, claims, completed=False)
        store.journal(mid, "recovered", {"outcome": "rolled back", "why": "no plan journalled"})
        return Recovery(mid, domain, "rolled back", ("freed the claim",),
                        "the migration never got past planning")
    src_ref, dst_ref = planned["source"], planned["destination"]
    dom_uuid = planned["uuid"]
    try:
        src = connect(HostRef(src_ref["name"], src_ref["uri"]))
        dst = connect(HostRef(dst_ref["name"], dst_ref["uri"]))
    except HypervisorError as exc:
        return Recovery(mid, domain, "skipped", (), f"cannot inspect the hosts yet: {exc}")
    src_dom = src.lookup(dom_uuid)
    dst_dom = dst.lookup(dom_uuid)
    src_alive = src_dom is not None and src_dom.is_active()
    dst_alive = dst_dom is not None and dst_dom.is_active()
    found = (f"on {src_ref['name']}: {src_dom.status() if src_dom else 'absent'}; "
             f"on {dst_ref['name']}: {dst_dom.status() if dst_dom else 'absent'}")
    actions: list[str] = []
    if dst_alive and not src_alive:
        assert dst_dom is not None
        if dst_dom.status().state is DomainState.PAUSED:
            dst_dom.resume()
            actions.append(f"resumed the guest on {dst_ref['name']}")
        if src_dom is not None and src_dom.is_persistent():
            src_dom.undefine()
            actions.append(f"removed the stale definition on {src_ref['name']}")
        if dst_dom is not None and not dst_dom.is_persistent() and planned.get("persistent_xml"):
            try:
                dst.define(planned["persistent_xml"])
                actions.append(f"made the guest persistent on {dst_ref['name']}")
            except HypervisorError as exc:
                actions.append(f"could not define the guest on {dst_ref['name']}: {exc.detail}")
        actions += _reattach(entries, dst_dom, dst_ref["name"], on_destination=True)
        _free(store, claims, completed=True)
        actions.append("released the claim (the destination's live usage shows the guest)")
        outcome = "completed"
    elif any(e.phase in POST_COPY_PHASES for e in entries):
        store.journal(mid, "attention", {"found": found, "post_copy": True})
        return Recovery(mid, domain, "needs attention", (), (
            f"left as is: guest {found}. It had switched to post-copy, so the copy on "
            f"{src_ref['name']} is stale and must not be resumed; resume the migration with "
            f"`virsh -c '{src_ref['uri']}' migrate --live --postcopy --postcopy-resume "
            f"{domain} '{dst_ref['uri']}'`, then run `numa-migrate recover` again"))
    elif src_alive and not (dst_dom is not None and dst_alive
                            and dst_dom.status().state is DomainState.RUNNING):
        actions += cleanup_after_failed_migration(src, dst, dom_uuid, src_ref["name"],
                                                  dst_ref["name"])
        actions += _reattach(entries, src_dom, src_ref["name"], on_destination=False)
        _free(store, claims, completed=False)
        actions.append("rolled back the claim")
        outcome = "rolled back"
    else:
        outcome = "needs attention"
        store.journal(mid, "attention", {"found": found})
        return Recovery(mid, domain, outcome, (), f"left as is: guest {found}. Decide which copy "
                        "is the guest, then run `numa-migrate recover` again")
    store.journal(mid, "recovered", {"outcome": outcome, "actions": actions, "found": found})
    return Recovery(mid, domain, outcome, tuple(actions), f"guest was {found}")


def _reattach(entries: list[JournalEntry], dom: Domain | None, host: str, *,
              on_destination: bool) -> list[str]:
    """SR-IOV ports detached by the interrupted run and never attached again: attach them
    where the guest now runs (the chosen VFs on the destination, the old ones on the
    source)."""
    phases = {e.phase: e.payload for e in entries}
    ports = phases.get("vf_detaching")
    if not isinstance(ports, dict) or "vf_attached" in phases or dom is None:
        return []
    key, index = ("dest_xml", 1) if on_destination else ("source_xml", 0)
    live_now = {d.address for d in domain_from_xml(dom.xml()).hostdevs}
    actions = []
    for pair, xml in zip(ports.get("moves", []), ports.get(key, []), strict=False):
        address = pair[index]
        if address in live_now:
            continue
        try:
            attach(dom, xml, address, persistent=on_destination)
            actions.append(f"attached VF {address} on {host}")
        except HypervisorError as exc:
            actions.append(f"could NOT attach VF {address} on {host}: {exc}")
    return actions

"""An independent validity checker for drain plans (shares no code with core/drain or the fit).

It replays a plan wave by wave from the initial fleet with its own capacity ledger, built
from the host topologies alone: per host cell the free dedicated CPUs, the free pages of each
size and the free memory; per host the free PCI devices. Within a wave every move takes from
the ledger as the wave left it so far (the wave's start minus earlier moves of the same wave);
sources give their guests' resources back only when the wave ends.

Moves have a kind (``drain`` when the attribute is missing): a ``drain`` move takes a drained
host's guest off it, and every such guest is moved exactly once or listed unplaceable; a
``relocate`` move takes a staying host's guest (from where it is now: a staying host can be a
source) to another staying host, at most once per guest, and never onto a drained host. At the
end no moved guest is on a drained host.

:func:`violations` returns every broken rule as a sentence (empty: the plan is valid).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CellLedger:
    pcpus: set[int]
    """Free dedicated CPUs."""
    all_pcpus: frozenset[int]
    siblings: tuple[frozenset[int], ...]
    pages: dict[int, int]
    """Page size KiB -> free pages."""
    smallest: int | None
    memory_mib: int
    """Free memory (MiB)."""
    total_memory_mib: int


@dataclass
class HostLedger:
    cells: dict[int, CellLedger]
    free_devices: set[str]
    devices: set[str] = field(default_factory=set)
    attrs: dict[str, dict[str, str | None]] = field(default_factory=dict)
    """Address -> the attributes a request's spec names, lower-case; plus ``numa_node``."""


def _attrs(d: Any) -> dict[str, str | None]:
    def low(v: object) -> str | None:
        return None if v is None else str(getattr(v, "value", v)).lower()

    return {
        "vendor_id": low(d.vendor_id), "product_id": low(d.product_id),
        "dev_type": low(d.dev_type), "physical_network": low(d.physical_network),
        "address": low(d.parent_addr or d.address),
        "numa_node": None if d.numa_node is None else str(d.numa_node),
    }


def _spec_matches(attrs: dict[str, str | None], request: Any) -> bool:
    wants_pf = any(k == "dev_type" and v.lower() == "type-pf" for alt in request.spec
                   for k, v in alt)
    if attrs["dev_type"] == "type-pf" and not wants_pf:
        return False
    return any(all(attrs.get(k) == v.lower() for k, v in alt) for alt in request.spec)


def ledger_of(host: Any) -> HostLedger:
    cells: dict[int, CellLedger] = {}
    for c in host.cells:
        pools = {p.size_kib: max(0, p.total - p.used - p.reserved) for p in c.mempages}
        cells[c.id] = CellLedger(
            pcpus=set(c.pcpuset) - set(c.pinned_cpus),
            all_pcpus=frozenset(c.pcpuset),
            siblings=tuple(frozenset(s) for s in c.siblings),
            pages=pools,
            smallest=min(pools) if pools else None,
            memory_mib=c.memory_mib - c.memory_usage_mib,
            total_memory_mib=c.memory_mib,
        )
    devices = {d.address for d in host.pci_devices}
    free = {d.address for d in host.pci_devices if not d.allocated}
    attrs = {d.address: _attrs(d) for d in host.pci_devices}
    return HostLedger(cells, free, devices, attrs)


def _pinned(guest: Any) -> bool:
    numa = guest.numa
    return numa is not None and str(getattr(numa.cpu_policy, "value", "")) in (
        "dedicated", "mixed")


def _isolate(guest: Any) -> bool:
    numa = guest.numa
    return numa is not None and str(getattr(numa.thread_policy, "value", "")) == "isolate"


def _usage(guest: Any, placement: Any, cell: CellLedger, cp: Any, first: bool
           ) -> tuple[set[int], int | None, int, int]:
    """(CPUs taken, page size, pages, MiB) one cell placement takes from ``cell``."""
    cpus = {p for _, p in cp.pinning or ()}
    if first and placement.emulator_pins:
        cpus |= set(placement.emulator_pins)
    if _isolate(guest):
        cpus = set().union(*(s for s in cell.siblings if s & cpus)) | cpus
    if not _pinned(guest):
        cpus = set()
    size = cp.pagesize_kib or cell.smallest
    pages = cp.memory_mib * 1024 // size if size else 0
    return cpus, size, pages, cp.memory_mib


def violations(
    initial: Any, drain_hosts: Iterable[str], plan: Any, max_parallel: int,
    per_host_parallel: int,
) -> list[str]:
    """Every rule ``plan`` breaks, replayed from the fleet state ``initial``."""
    out: list[str] = []
    drained = set(drain_hosts)
    hosts = {h.name: h for h in initial.hosts}
    ledger = {name: ledger_of(h) for name, h in hosts.items()}
    guests = {g.name: g for g in initial.guests}
    to_move = {g.name for g in initial.guests if g.host in drained}
    moved: dict[str, int] = {}
    relocated: dict[str, int] = {}
    # where each guest is now: (host, the guest with its placement and devices there)
    at: dict[str, tuple[str, Any, Any, tuple[str, ...]]] = {
        g.name: (g.host, g.guest, g.placement, tuple(g.pci_devices)) for g in initial.guests}
    for u in plan.unplaceable:
        if u.guest not in to_move:
            out.append(f"unplaceable {u.guest} is not a guest of a drained host")
        if not u.reason:
            out.append(f"unplaceable {u.guest} has no reason")
    unplaceable = [u.guest for u in plan.unplaceable]
    if len(set(unplaceable)) != len(unplaceable):
        out.append("a guest is listed unplaceable twice")
    for w, wave in enumerate(plan.waves, 1):
        if not wave.moves:
            out.append(f"wave {w} is empty")
        if len(wave.moves) > max_parallel:
            out.append(f"wave {w} has {len(wave.moves)} moves, more than {max_parallel}")
        per_host: dict[str, int] = {}
        for m in wave.moves:
            for h in (m.source, m.destination):
                per_host[h] = per_host.get(h, 0) + 1
        for h, n in sorted(per_host.items()):
            if n > per_host_parallel:
                out.append(f"wave {w}: {n} moves touch {h}, more than {per_host_parallel}")
        names = [m.guest for m in wave.moves]
        if len(set(names)) != len(names):
            out.append(f"wave {w} moves a guest twice")
        releases = []
        for m in wave.moves:
            kind = getattr(m, "kind", "drain")
            where = f"wave {w}, {m.guest} -> {m.destination} ({kind})"
            g = guests.get(m.guest)
            if g is None:
                out.append(f"{where}: not a guest of the fleet")
                continue
            if kind == "drain":
                if m.guest not in to_move:
                    out.append(f"{where}: not a guest of a drained host")
                    continue
                moved[m.guest] = moved.get(m.guest, 0) + 1
                if m.guest in unplaceable:
                    out.append(f"{where}: also listed unplaceable")
            elif kind == "relocate":
                if m.guest in to_move:
                    out.append(f"{where}: a drained host's guest moved as a relocation")
                    continue
                relocated[m.guest] = relocated.get(m.guest, 0) + 1
                if m.source in drained:
                    out.append(f"{where}: a relocation from drained host {m.source}")
            else:
                out.append(f"{where}: unknown kind {kind!r}")
                continue
            now = at[m.guest]
            if m.source != now[0]:
                out.append(f"{where}: source {m.source} is not its host {now[0]}")
            if m.destination == m.source:
                out.append(f"{where}: destination is its source")
            if m.destination in drained or m.destination not in hosts:
                out.append(f"{where}: destination is drained or unknown")
                continue
            out.extend(_take(ledger[m.destination], now[1], now[2], m, where))
            releases.append(now)
            at[m.guest] = (m.destination, now[1], m.placement, tuple(m.pci_devices))
        for host, guest, placement, devices in releases:  # the wave has ended
            _give_back(ledger[host], guest, placement, devices)
    for name in sorted(to_move):
        n = moved.get(name, 0) + unplaceable.count(name)
        if n != 1:
            out.append(f"guest {name} of a drained host is moved/listed {n} times")
    for name, n in sorted(relocated.items()):
        if n != 1:
            out.append(f"guest {name} of a staying host is relocated {n} times")
    for name, (host, *_rest) in sorted(at.items()):
        if name in to_move and name not in unplaceable and host in drained:
            out.append(f"guest {name} ends on drained host {host}")
        if name not in to_move and host in drained:
            out.append(f"guest {name} of a staying host ends on drained host {host}")
    return out


def _take(dest: HostLedger, guest: Any, held: Any, m: Any, where: str) -> list[str]:
    """Take the move's usage from ``dest``; ``held``: the placement the guest has now."""
    out: list[str] = []
    placement = m.placement
    numa = guest.numa
    if numa is None:
        if placement.cells:
            out.append(f"{where}: a guest with no NUMA request got cells")
    else:
        if sorted(cp.guest_cell for cp in placement.cells) != list(range(len(numa.cells))):
            out.append(f"{where}: the placement does not place each guest cell once")
        host_cells = [cp.host_cell for cp in placement.cells]
        if len(set(host_cells)) != len(host_cells):
            out.append(f"{where}: two guest cells on one host cell")
        sizes = {cp.pagesize_kib for cp in held.cells} - {None}
        if sizes and any(cp.pagesize_kib not in sizes for cp in placement.cells):
            out.append(f"{where}: page size changed from {sorted(sizes)} KiB")
        for i, cp in enumerate(placement.cells):
            cell = dest.cells.get(cp.host_cell)
            if cell is None:
                out.append(f"{where}: no host cell {cp.host_cell}")
                continue
            gcell = numa.cells[cp.guest_cell] if cp.guest_cell < len(numa.cells) else None
            if gcell is not None:
                pins = dict(cp.pinning or ())
                if set(pins) != set(gcell.dedicated_vcpus):
                    out.append(f"{where}: cell {cp.guest_cell} pins {sorted(pins)}, "
                               f"dedicated vCPUs are {sorted(gcell.dedicated_vcpus)}")
                if len(set(pins.values())) != len(pins):
                    out.append(f"{where}: two vCPUs pinned to one CPU")
                if cp.memory_mib != gcell.memory_mib:
                    out.append(f"{where}: cell {cp.guest_cell} memory differs")
            cpus, size, pages, mib = _usage(guest, placement, cell, cp, i == 0)
            if not cpus <= cell.all_pcpus:
                out.append(f"{where}: CPUs {sorted(cpus - cell.all_pcpus)} are not dedicated "
                           f"CPUs of host cell {cp.host_cell}")
            busy = cpus & cell.all_pcpus - cell.pcpus
            if busy:
                out.append(f"{where}: CPUs {sorted(busy)} of host cell {cp.host_cell} are not "
                           f"free (pinned already or taken earlier in the wave)")
            cell.pcpus -= cpus
            huge = cp.pagesize_kib is not None or _pinned(guest)
            if size is not None and huge:
                have = cell.pages.get(size, 0)
                if pages > have:
                    out.append(f"{where}: needs {pages} pages of {size} KiB on host cell "
                               f"{cp.host_cell}, {have} free")
            if size is not None:
                cell.pages[size] = cell.pages.get(size, 0) - pages
            if cp.pagesize_kib is None and not _pinned(guest) and mib > cell.total_memory_mib:
                out.append(f"{where}: {mib} MiB is more than host cell {cp.host_cell} has")
            if cp.pagesize_kib is None and _pinned(guest) and not cell.smallest \
                    and mib > cell.memory_mib:
                out.append(f"{where}: {mib} MiB, {cell.memory_mib} MiB free")
            cell.memory_mib -= mib
    need = sum(r.count for r in guest.pci_requests)
    if len(m.pci_devices) != need or len(set(m.pci_devices)) != need:
        out.append(f"{where}: takes {len(m.pci_devices)} devices, needs {need}")
    for a in m.pci_devices:
        if a not in dest.devices:
            out.append(f"{where}: device {a} is not on the destination")
        elif a not in dest.free_devices:
            out.append(f"{where}: device {a} is not free (held, or taken earlier in the wave)")
    dest.free_devices -= set(m.pci_devices)
    cells = {str(cp.host_cell) for cp in placement.cells}
    for a in m.pci_devices:
        attrs = dest.attrs.get(a)
        if attrs is None:
            continue
        serving = [r for r in guest.pci_requests if _spec_matches(attrs, r)]
        if not serving:
            out.append(f"{where}: device {a} matches none of the guest's PCI requests")
        elif numa is not None and all(
                str(getattr(r.numa_policy, "value", r.numa_policy)) == "required"
                for r in serving) and attrs["numa_node"] not in cells:
            out.append(f"{where}: device {a} (node {attrs['numa_node']}) is not on the guest's "
                       f"host cells {sorted(cells)} (policy required)")
    return out


def _give_back(src: HostLedger, guest: Any, placement: Any, devices: tuple[str, ...]) -> None:
    numa = guest.numa
    for i, cp in enumerate(placement.cells if numa is not None else ()):
        cell = src.cells[cp.host_cell]
        cpus, size, pages, mib = _usage(guest, placement, cell, cp, i == 0)
        cell.pcpus |= cpus & cell.all_pcpus
        if size is not None:
            cell.pages[size] = cell.pages.get(size, 0) + pages
        cell.memory_mib += mib
    src.free_devices |= set(devices)

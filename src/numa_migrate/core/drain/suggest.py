"""The smallest change that lets an incomplete drain complete (:func:`suggest`).

Two kinds, each checked by planning the whole drain again with the change applied (the
``planner`` given: the same drain, limits and post-passes as the plan being explained):

- **add a host**: one more host, empty, shaped like an existing host (its cells, CPUs, memory,
  pages and PCI devices, none of them used). Distinct shapes are tried smallest first (fewest
  CPUs, then memory, then name), at most ``max_shapes`` re-plans; a shape none of the
  unplaceable guests fits on its own (empty) is skipped without a re-plan.
- **free a guest**: stop one guest of a staying host (or move it off the fleet). Guests are
  tried smallest first (dedicated vCPUs, memory, NUMA cells, PCI devices, then name), at most
  ``max_guests`` re-plans; only guests whose host, without them, passes the cheap capacity
  bound for one of the unplaceable guests are tried (freeing any other guest leaves no more
  room where those guests could go directly).

Before any re-plan, a change must pass a necessary count: the dedicated CPUs every guest of
the drained hosts pins must not exceed those free on the staying hosts plus those the change
adds (the new host's, or the freed guest's); a change that fails it is skipped without a
re-plan. One change is searched for only when at most ``max_stuck`` guests cannot move (one
host or one guest rarely makes room for more).

The first success of each kind is the suggestion: the smallest shape, the smallest guest, among
those tried. When a search ends on its bound, the note says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from numa_migrate.core.drain.heuristic import hardness
from numa_migrate.core.drain.hosts import remove_guest
from numa_migrate.core.drain.plan import Plan, Suggestion
from numa_migrate.core.drain.state import FleetGuest, FleetState
from numa_migrate.core.fit.fitter import FitOptions, fit_guest
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.rank import CapacityBound

__all__ = ["MAX_GUESTS", "MAX_SHAPES", "MAX_STUCK", "Planner", "empty_like", "suggest"]

MAX_SHAPES = 6
"""Re-plans with one more host, at most."""
MAX_GUESTS = 16
"""Re-plans with one guest freed, at most."""
MAX_STUCK = 8
"""A single change is searched for only when at most this many guests cannot move."""

Planner = Callable[[FleetState], Plan]
"""Plans the drain being explained on a changed fleet."""


def _empty_cell(c: HostCell) -> HostCell:
    return replace(c, memory_usage_mib=0, cpu_usage=0, pinned_cpus=frozenset(),
                   mempages=tuple(replace(p, used=0) for p in c.mempages))


def empty_like(host: HostTopology, name: str) -> HostTopology:
    """A host named ``name`` shaped like ``host`` with nothing used on it."""
    return replace(host, name=name, cells=tuple(_empty_cell(c) for c in host.cells),
                   pci_devices=tuple(replace(d, allocated=False) for d in host.pci_devices))


def _size(host: HostTopology) -> tuple[int, int]:
    return (sum(len(c.cpuset | c.pcpuset) for c in host.cells),
            sum(c.memory_mib for c in host.cells))


def _signature(host: HostTopology) -> object:
    cells = tuple((len(c.cpuset), len(c.pcpuset), c.memory_mib, len(c.siblings),
                   tuple((p.size_kib, p.total, p.reserved) for p in c.mempages))
                  for c in host.cells)
    devices = tuple(sorted((d.vendor_id, d.product_id, str(d.numa_node), str(d.dev_type),
                            str(d.physical_network)) for d in host.pci_devices))
    return (cells, devices)


def _new_name(state: FleetState, like: str) -> str:
    name, n = f"new-{like}", 1
    while name in state.by_name:
        n += 1
        name = f"new-{like}-{n}"
    return name


def _pins(g: FleetGuest) -> int:
    """Dedicated CPUs the guest pins at least (its dedicated vCPUs)."""
    numa = g.guest.numa
    return sum(len(c.dedicated_vcpus) for c in numa.cells) if numa and numa.pinned else 0


def _free(host: HostTopology) -> int:
    return sum(len(c.free_pcpus) for c in host.cells)


def _shortfall(state: FleetState, drained: frozenset[str]) -> int:
    """Dedicated CPUs the drained hosts' guests pin beyond those free on staying hosts."""
    need = sum(_pins(g) for g in state.guests if g.host in drained)
    return need - sum(_free(h) for h in state.hosts if h.name not in drained)


def _fits_empty(host: HostTopology, guests: list[FleetGuest]) -> bool:
    return any(fit_guest(host, g.guest, FitOptions(current_pagesize_kib=g.pagesize_kib)).fits
               for g in guests)


def _add_host(state: FleetState, stuck: list[FleetGuest], planner: Planner,
              max_shapes: int, short: int) -> tuple[Suggestion | None, str]:
    shapes: dict[object, HostTopology] = {}
    for h in sorted(state.hosts, key=lambda h: (*_size(h), h.name)):
        shapes.setdefault(_signature(h), h)
    tried = 0
    for like in shapes.values():
        new = empty_like(like, _new_name(state, like.name))
        if sum(len(c.pcpuset) for c in new.cells) < short or not _fits_empty(new, stuck):
            continue
        if tried >= max_shapes:
            return None, (f"no added host found within the bound ({max_shapes} host shapes "
                          f"re-planned, of {len(shapes)})")
        tried += 1
        plan = planner(replace(state, hosts=(*state.hosts, new)))
        if not plan.unplaceable:
            cpus, memory = _size(like)
            cells = len(like.cells)
            devices = f", {len(like.pci_devices)} PCI devices" if like.pci_devices else ""
            text = (f"add one more host shaped like {like.name} ({cells} NUMA "
                    f"cell{'s' if cells != 1 else ''}, {cpus} CPUs, {memory} MiB{devices}): "
                    f"the drain then completes")
            return Suggestion("add-host", text, like.name), (
                f"{tried} host shape(s) re-planned (bound {max_shapes})")
    return None, f"no host shape of the fleet is enough ({tried} re-planned, of {len(shapes)})"


def _free_guest(state: FleetState, drained: frozenset[str], stuck: list[FleetGuest],
                planner: Planner, *, max_guests: int, short: int
                ) -> tuple[Suggestion | None, str]:
    bounds = [CapacityBound(g.guest, g.pagesize_kib) for g in stuck]
    candidates = sorted((g for g in state.guests if g.host not in drained),
                        key=lambda g: (hardness(g), g.name))
    tried = 0
    for y in candidates:
        host = state.host(y.host)
        without = remove_guest(host, y.guest, y.placement, y.pci_devices)
        if _free(without) - _free(host) < short or all(b.check(without) for b in bounds):
            continue
        if tried >= max_guests:
            return None, f"no guest to free found within the bound ({max_guests} re-planned)"
        tried += 1
        changed = FleetState(
            tuple(without if h.name == y.host else h for h in state.hosts),
            tuple(g for g in state.guests if g.name != y.name))
        plan = planner(changed)
        if not plan.unplaceable:
            text = (f"free {y.name} on {y.host} (stop it or move it off the fleet): the "
                    f"drain then completes")
            return Suggestion("free-guest", text, y.host, y.name), (
                f"{tried} guest(s) re-planned (bound {max_guests})")
    if not tried:
        return None, ("no guest of a staying host, freed, leaves room where an unplaceable "
                      "guest could go")
    return None, f"freeing no single guest is enough ({tried} re-planned)"


def suggest(
    state: FleetState,
    drain_hosts: Iterable[str],
    plan: Plan,
    planner: Planner,
    *,
    max_shapes: int = MAX_SHAPES,
    max_guests: int = MAX_GUESTS,
    max_stuck: int = MAX_STUCK,
) -> Plan:
    """``plan`` with its ``suggestions`` and ``suggestion_note`` (unchanged when complete)."""
    if not plan.unplaceable:
        return plan
    if len(plan.unplaceable) > max_stuck:
        return replace(plan, suggestion_note=(
            f"not searched: {len(plan.unplaceable)} guests cannot move; one change is "
            f"searched for when at most {max_stuck} cannot"))
    drained = frozenset(drain_hosts)
    by_name = {g.name: g for g in state.guests}
    stuck = [by_name[u.guest] for u in plan.unplaceable]
    short = _shortfall(state, drained)
    found: list[Suggestion] = []
    host, host_note = _add_host(state, stuck, planner, max_shapes, short)
    if host is not None:
        found.append(host)
    guest, guest_note = _free_guest(state, drained, stuck, planner, max_guests=max_guests,
                                    short=short)
    if guest is not None:
        found.append(guest)
    return replace(plan, suggestions=tuple(found),
                   suggestion_note=f"add a host: {host_note}; free a guest: {guest_note}")

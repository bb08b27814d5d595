"""Prove that a domain runs where it was planned to (pure: values in, a report out).

After a migration the domain's live XML on the destination, its persistent XML, the plan
that was applied, the destination's other domains, its PCI devices and, where they can be
read, the real thread affinities of its QEMU process are compared. Each comparison is one
:class:`Check`: passed, failed (with what was expected and what was found) or skipped with
the reason it could not be made -- a check is never passed for lack of data.

The checks:

- ``vcpu_pins_planned`` / ``emulator_pins_planned``: the live pins are the plan's;
- ``emulator_isolated``: a planned isolated emulator set shares no CPU with any vCPU pin;
- ``persistent_pins`` / ``persistent_numa``: the persistent definition says what the live
  one says (a persistent XML that keeps the source host's pins restarts the guest on CPUs
  the destination gave to others: the CVE-2020-17376 class of bug);
- ``pcpus_exclusive``: no dedicated CPU is pinned by another guest (or twice);
- ``cpu_pools``: dedicated pins lie in the host's dedicated pool, floating ones in its
  shared pool;
- ``numatune_strict`` / ``numatune_nodes``: memory is bound (mode strict) to exactly the
  host cells of the pins (and of the plan), per guest cell;
- ``hugepages_planned``: each guest cell is backed by the planned page size;
- ``hostdevs_planned``, ``hostdev_numa[ADDR]``, ``hostdev_exclusive[ADDR]``: PCI devices
  are the planned ones, on a host node of the guest, and given to no other guest;
- ``vcpu_affinity`` / ``emulator_affinity``: what the kernel enforces equals the pins;
- ``floating_avoids_pinned`` / ``others_avoid_pinned``: floating vCPUs (this domain's and
  the other guests') may not run on any guest's dedicated CPUs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from numa_migrate.adapters.domain import DomainInfo
from numa_migrate.adapters.nodedev import PciFunction
from numa_migrate.adapters.rewrite import DestinationPlan
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.domainusage import (
    cells_of_cpus,
    dedicated_vcpus,
    floating_vcpus,
    guest_cell_page_kib,
    guest_cell_vcpus,
    host_cpus,
    is_numa_placed,
    isolated_emulator,
)
from numa_migrate.core.model.host import HostTopology

_EMPTY: frozenset[int] = frozenset()
NO_PLAN = "no plan given (--plan PLAN.json)"
NO_HOST = "no host topology given"


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Check:
    """One comparison. For a skipped check ``detail`` says why it could not be made."""

    name: str
    title: str
    status: Status
    expected: str = ""
    actual: str = ""
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED

    @property
    def skipped(self) -> bool:
        return self.status is Status.SKIPPED

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "passed": self.passed,
            "expected": self.expected,
            "actual": self.actual,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ValidationReport:
    """Every check made for one domain; ``passed`` when none failed (skips do not fail)."""

    domain: str
    uuid: str
    host: str | None
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.failed)

    @property
    def skipped(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.skipped)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "uuid": self.uuid,
            "host": self.host,
            "passed": self.passed,
            "counts": {
                s.value: sum(1 for c in self.checks if c.status is s) for s in Status
            },
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass(frozen=True)
class ThreadAffinities:
    """Real affinities of the domain's threads and where they were read.

    ``vcpus``: vCPU id -> CPUs its thread may run on. ``emulator``: (thread label, CPUs) of
    the emulator threads, the main thread first; empty when the source does not report
    them. ``iothreads``: IOThread id -> CPUs.
    """

    source: str
    vcpus: Mapping[int, frozenset[int]] = field(default_factory=dict)
    emulator: tuple[tuple[str, frozenset[int]], ...] = ()
    iothreads: Mapping[int, frozenset[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vcpus", MappingProxyType(
            {k: frozenset(v) for k, v in sorted(self.vcpus.items())}))
        object.__setattr__(self, "iothreads", MappingProxyType(
            {k: frozenset(v) for k, v in sorted(self.iothreads.items())}))
        object.__setattr__(self, "emulator", tuple(
            (str(n), frozenset(c)) for n, c in self.emulator))


# --------------------------------------------------------------------------- formatting


def _cpus(cpus: Iterable[int] | None) -> str:
    if cpus is None:
        return "any"
    text = CpuSet.of(cpus).format()
    return text or "none"


def _pins(pins: Mapping[int, frozenset[int]]) -> str:
    return ", ".join(f"{v}->{_cpus(c)}" for v, c in sorted(pins.items())) or "none"


def _nodes(nodes: Mapping[int, frozenset[int]]) -> str:
    return ", ".join(f"cell {g}->{_cpus(n)}" for g, n in sorted(nodes.items())) or "none"


def _pages(pages: Mapping[int, int | None]) -> str:
    def one(size: int | None) -> str:
        if size is None:
            return "small"
        return "default huge" if size == 0 else f"{size} KiB"

    return ", ".join(f"cell {g}: {one(s)}" for g, s in sorted(pages.items())) or "none"


def _ok(name: str, title: str, expected: str, actual: str, detail: str = "") -> Check:
    return Check(name, title, Status.PASSED, expected, actual, detail)


def _fail(name: str, title: str, expected: str, actual: str, detail: str) -> Check:
    return Check(name, title, Status.FAILED, expected, actual, detail)


def _skip(name: str, title: str, reason: str) -> Check:
    return Check(name, title, Status.SKIPPED, "", "", reason)


def _verdict(
    name: str, title: str, expected: str, actual: str, problems: Sequence[str], *, ok: str = ""
) -> Check:
    if problems:
        detail = "; ".join(problems) + (f" ({ok})" if ok else "")
        return _fail(name, title, expected, actual, detail)
    return _ok(name, title, expected, actual, ok)


# --------------------------------------------------------------------------- the checks


@dataclass(frozen=True)
class _Context:
    live: DomainInfo
    persistent: DomainInfo | None
    plan: DestinationPlan | None
    host: HostTopology | None
    others: tuple[DomainInfo, ...]
    pci: tuple[PciFunction, ...] | None
    affinity: ThreadAffinities | None
    affinity_reason: str

    @property
    def all_cpus(self) -> frozenset[int] | None:
        return None if self.host is None else host_cpus(self.host)

    def pinned_by(self, info: DomainInfo) -> frozenset[int]:
        return frozenset(dedicated_vcpus(info).values()) | isolated_emulator(info, self.host)


def _diff_pins(
    expected: Mapping[int, frozenset[int]], actual: Mapping[int, frozenset[int]], what: str
) -> list[str]:
    problems = []
    for key in sorted(set(expected) | set(actual)):
        want, have = expected.get(key), actual.get(key)
        if want == have:
            continue
        if want is None:
            problems.append(f"{what} {key} is pinned to {_cpus(have)}, the plan pins it nowhere")
        elif have is None:
            problems.append(f"{what} {key} has no pin, expected {_cpus(want)}")
        else:
            problems.append(f"{what} {key} on {_cpus(have)}, expected {_cpus(want)}")
    return problems


def _vcpu_pins_planned(ctx: _Context) -> Check:
    name, title = "vcpu_pins_planned", "vCPU pins as planned"
    if ctx.plan is None:
        return _skip(name, title, NO_PLAN)
    want, have = dict(ctx.plan.vcpu_pins), dict(ctx.live.vcpupin)
    return _verdict(name, title, _pins(want), _pins(have), _diff_pins(want, have, "vCPU"))


def _emulator_pins_planned(ctx: _Context) -> Check:
    name, title = "emulator_pins_planned", "emulator pins as planned"
    if ctx.plan is None:
        return _skip(name, title, NO_PLAN)
    want, have = ctx.plan.emulator_pins, ctx.live.emulatorpin or _EMPTY
    problems = [] if want == have else [
        f"<emulatorpin> is {_cpus(have)}, the plan says {_cpus(want)}"
    ]
    return _verdict(name, title, _cpus(want), _cpus(have), problems)


def _emulator_isolated(ctx: _Context) -> Check:
    name, title = "emulator_isolated", "isolated emulator threads apart from vCPUs"
    if ctx.plan is None:
        return _skip(name, title, "the emulator thread policy is not in the domain XML; "
                     + NO_PLAN)
    planned_vcpus = frozenset().union(*ctx.plan.vcpu_pins.values())
    if not ctx.plan.emulator_pins or ctx.plan.emulator_pins & planned_vcpus:
        return _skip(name, title, "the plan does not isolate the emulator threads (they "
                     "share the vCPUs' CPUs)")
    emulator = ctx.live.emulatorpin or _EMPTY
    vcpu_cpus = frozenset().union(*(c for _, c in ctx.live.vcpupin))
    expected = f"emulator CPUs disjoint from vCPU CPUs {_cpus(vcpu_cpus)}"
    actual = f"emulator on {_cpus(emulator)}"
    problems = []
    if not emulator:
        problems.append("no <emulatorpin>: the emulator threads float")
    elif emulator & vcpu_cpus:
        problems.append(f"the emulator threads share CPU {_cpus(emulator & vcpu_cpus)} with "
                        "vCPU threads")
    return _verdict(name, title, expected, actual, problems)


def _persistent_pins(ctx: _Context) -> Check:
    name, title = "persistent_pins", "persistent definition has the live pins"
    persistent = ctx.persistent
    if persistent is None:
        return _skip(name, title, "transient domain: there is no persistent definition")
    live = ctx.live
    problems = _diff_pins(dict(live.vcpupin), dict(persistent.vcpupin), "vCPU")
    if (live.emulatorpin or _EMPTY) != (persistent.emulatorpin or _EMPTY):
        problems.append(f"<emulatorpin> {_cpus(persistent.emulatorpin)}, live "
                        f"{_cpus(live.emulatorpin)}")
    if live.vcpu_cpuset != persistent.vcpu_cpuset:
        problems.append(f"<vcpu cpuset> {_cpus(persistent.vcpu_cpuset)}, live "
                        f"{_cpus(live.vcpu_cpuset)}")
    problems += _diff_pins(dict(live.iothreadpins), dict(persistent.iothreadpins), "IOThread")
    if problems:
        problems[0] = "persistent: " + problems[0]
        problems.append("a restart would run the guest on these CPUs, which this host may have "
                        "given to other guests (the CVE-2020-17376 class of bug)")
    return _verdict(name, title, f"live: {_pins(dict(live.vcpupin))}; emulator "
                    f"{_cpus(live.emulatorpin)}",
                    f"persistent: {_pins(dict(persistent.vcpupin))}; emulator "
                    f"{_cpus(persistent.emulatorpin)}", problems)


def _numa_summary(info: DomainInfo) -> str:
    tune = info.numatune
    parts = []
    if tune is None:
        parts.append("no numatune")
    else:
        parts.append(f"memory {tune.mode} {_cpus(tune.nodeset)}")
        parts += [f"cell {m.cell_id} {m.mode} {_cpus(m.nodeset)}" for m in tune.memnodes]
    sizes = guest_cell_page_kib(info)
    parts.append(f"pages {_pages(sizes)}" if sizes else "small pages")
    if info.hostdevs:
        parts.append("PCI " + ", ".join(d.address for d in info.hostdevs))
    return "; ".join(parts)


def _persistent_numa(ctx: _Context) -> Check:
    name, title = "persistent_numa", "persistent definition has the live NUMA tuning"
    persistent = ctx.persistent
    if persistent is None:
        return _skip(name, title, "transient domain: there is no persistent definition")
    live = ctx.live
    problems = []
    if live.numatune != persistent.numatune:
        problems.append("<numatune> differs")
    if guest_cell_page_kib(live) != guest_cell_page_kib(persistent):
        problems.append("huge page sizes differ")
    live_devs = sorted(d.address for d in live.hostdevs)
    persistent_devs = sorted(d.address for d in persistent.hostdevs)
    if live_devs != persistent_devs:
        problems.append(f"PCI devices {', '.join(persistent_devs) or 'none'}, live "
                        f"{', '.join(live_devs) or 'none'}")
    if problems:
        problems.append("a restart would bind the guest to other host nodes or devices")
    return _verdict(name, title, f"live: {_numa_summary(live)}",
                    f"persistent: {_numa_summary(persistent)}", problems)


def _pcpus_exclusive(ctx: _Context) -> Check:
    name, title = "pcpus_exclusive", "dedicated CPUs not shared with other pinned guests"
    dedicated = dedicated_vcpus(ctx.live)
    ours = ctx.pinned_by(ctx.live)
    if not ours:
        return _skip(name, title, "the domain has no dedicated vCPU (none pinned to one CPU)")
    problems = []
    by_cpu: dict[int, list[int]] = {}
    for vcpu, cpu in sorted(dedicated.items()):
        by_cpu.setdefault(cpu, []).append(vcpu)
    for cpu, vcpus in sorted(by_cpu.items()):
        if len(vcpus) > 1:
            problems.append(f"vCPUs {_cpus(vcpus)} share CPU {cpu}")
    for other in ctx.others:
        shared = ours & ctx.pinned_by(other)
        if shared:
            problems.append(f"CPU {_cpus(shared)} also pinned by {other.name}")
    return _verdict(
        name, title, f"CPUs {_cpus(ours)} held by this domain only",
        f"{len(ctx.others)} other running guest(s) checked", problems,
    )


def _cpu_pools(ctx: _Context) -> Check:
    name, title = "cpu_pools", "pins inside the host's dedicated / shared CPU sets"
    if ctx.host is None:
        return _skip(name, title, NO_HOST)
    dedicated_pool = ctx.host.dedicated_cpus
    shared_pool = ctx.host.shared_cpus
    ours = ctx.pinned_by(ctx.live)
    floating = [c for c in floating_vcpus(ctx.live).values() if c is not None]
    float_cpus = frozenset().union(*floating)
    problems = []
    if ours - dedicated_pool:
        problems.append(f"dedicated CPU {_cpus(ours - dedicated_pool)} outside the dedicated "
                        f"set {_cpus(dedicated_pool)}")
    if float_cpus - shared_pool:
        problems.append(f"floating vCPUs may run on CPU {_cpus(float_cpus - shared_pool)}, "
                        f"outside the shared set {_cpus(shared_pool)}")
    return _verdict(
        name, title, f"dedicated in {_cpus(dedicated_pool)}; floating in {_cpus(shared_pool)}",
        f"dedicated {_cpus(ours)}; floating {_cpus(float_cpus) if floating else 'none'}",
        problems,
    )


def _numatune_strict(ctx: _Context) -> Check:
    name, title = "numatune_strict", "memory bound with numatune mode strict"
    live = ctx.live
    if not is_numa_placed(live):
        return _skip(name, title, "the domain has no NUMA placement (no pins, guest NUMA "
                     "cells, numatune or huge pages)")
    tune = live.numatune
    if tune is None:
        return _fail(name, title, "mode strict", "no <numatune>",
                     "memory may come from any host node")
    modes = {"memory": tune.mode} | {f"memnode {m.cell_id}": m.mode for m in tune.memnodes}
    actual = ", ".join(f"{k} {v}" for k, v in modes.items())
    loose = [f"{k} is {v}" for k, v in modes.items() if v not in ("strict", "restrictive")]
    if tune.nodeset is None and not tune.memnodes:
        loose.append("no nodeset (placement auto?)")
    note = ("restrictive binds memory through cgroups only (Nova writes strict)"
            if "restrictive" in modes.values() else "")
    return _verdict(name, title, "strict", actual, loose, ok=note)


def _numatune_nodes(ctx: _Context) -> Check:
    name, title = "numatune_nodes", "memory nodes = host cells of the pins (and the plan)"
    live = ctx.live
    if not is_numa_placed(live):
        return _skip(name, title, "the domain has no NUMA placement")
    cells = guest_cell_vcpus(live)
    pins = dict(live.vcpupin)
    by_pins: dict[int, frozenset[int]] = {}
    if ctx.host is not None:
        for gcell, vcpus in cells.items():
            pinned = frozenset().union(*(pins.get(v, _EMPTY) for v in vcpus))
            if pinned:
                by_pins[gcell] = cells_of_cpus(ctx.host, pinned)
    planned: dict[int, frozenset[int]] = {}
    if ctx.plan is not None:
        planned = {g: frozenset({n}) for g, n in ctx.plan.cell_nodes.items()}
    if not by_pins and ctx.plan is None:
        reason = NO_HOST if ctx.host is None else "no vCPU is pinned"
        return _skip(name, title, f"{reason} and {NO_PLAN}: the expected nodes are unknown")
    tune = live.numatune
    nodeset = None if tune is None else tune.nodeset
    memnodes = {} if tune is None else {m.cell_id: m.nodeset for m in tune.memnodes}
    if not live.numa_cells and nodeset is not None:
        memnodes.setdefault(0, nodeset)
    expected_nodes = frozenset().union(*by_pins.values(), *planned.values())
    problems = []
    if nodeset is not None and nodeset != expected_nodes:
        problems.append(f"<memory nodeset> is {_cpus(nodeset)}, expected {_cpus(expected_nodes)}")
    if ctx.plan is not None and nodeset is not None and nodeset != ctx.plan.memory_nodes:
        problems.append(f"the plan's memory nodes are {_cpus(ctx.plan.memory_nodes)}")
    for gcell in sorted(cells):
        have = memnodes.get(gcell)
        for source, wanted in (("pins", by_pins), ("plan", planned)):
            want = wanted.get(gcell)
            if want is None:
                continue
            if len(want) > 1:
                problems.append(f"guest cell {gcell}'s vCPUs are pinned over host cells "
                                f"{_cpus(want)}")
            elif have is None:
                problems.append(f"guest cell {gcell} has no memnode/nodeset, its {source} say "
                                f"node {_cpus(want)}")
            elif have != want:
                problems.append(f"guest cell {gcell} memory on node {_cpus(have)}, its "
                                f"{source} say {_cpus(want)}")
    expected = _nodes(planned or by_pins)
    actual = f"nodeset {_cpus(nodeset)}; {_nodes(memnodes)}"
    return _verdict(name, title, expected, actual, list(dict.fromkeys(problems)))


def _hugepages_planned(ctx: _Context) -> Check:
    name, title = "hugepages_planned", "page size per guest cell as planned"
    if ctx.plan is None:
        return _skip(name, title, NO_PLAN)
    if ctx.plan.hugepage_kib is None:
        return _skip(name, title, "the plan keeps the page size the domain had")
    cells = sorted(guest_cell_vcpus(ctx.live))
    have = guest_cell_page_kib(ctx.live)
    want: dict[int, int | None] = {g: ctx.plan.hugepage_kib.get(g) for g in cells}
    actual: dict[int, int | None] = {g: have.get(g) for g in cells}
    problems = [
        f"guest cell {g}: {_pages({g: actual[g]}).split(': ', 1)[1]} pages, planned "
        f"{_pages({g: want[g]}).split(': ', 1)[1]}"
        for g in cells if want[g] != actual[g]
    ]
    return _verdict(name, title, _pages(want), _pages(actual), problems)


def _hostdevs_planned(ctx: _Context) -> Check:
    name, title = "hostdevs_planned", "PCI devices as planned"
    if ctx.plan is None:
        return _skip(name, title, NO_PLAN)
    present = {d.address for d in ctx.live.hostdevs}
    if not ctx.plan.hostdev_map:
        reason = ("the domain has no PCI hostdev" if not present
                  else "the plan moves no PCI device, so it names none to compare with")
        return _skip(name, title, reason)
    targets = set(ctx.plan.hostdev_map.values())
    problems = [f"{new} (planned for {old}) is not given to the guest"
                for old, new in sorted(ctx.plan.hostdev_map.items()) if new not in present]
    problems += [f"{old} (the source's device) is still given to the guest"
                 for old in sorted(ctx.plan.hostdev_map) if old in present and old not in targets]
    return _verdict(name, title, ", ".join(sorted(targets)),
                    ", ".join(sorted(present)) or "none", problems)


def _hostdev_checks(ctx: _Context) -> list[Check]:
    out: list[Check] = []
    if not ctx.live.hostdevs:
        reason = "the domain has no PCI hostdev"
        return [_skip("hostdev_numa", "PCI devices on the guest's host nodes", reason),
                _skip("hostdev_exclusive", "PCI devices given to no other guest", reason)]
    functions = {f.address: f for f in ctx.pci or ()}
    guest_nodes = (None if ctx.plan is None
                   else frozenset(ctx.plan.cell_nodes.values()) or ctx.plan.memory_nodes)
    for dev in ctx.live.hostdevs:
        name, title = f"hostdev_numa[{dev.address}]", f"{dev.address} on a host node of the guest"
        function = functions.get(dev.address)
        if ctx.pci is None:
            out.append(_skip(name, title, "no PCI device inventory of the host was given"))
        elif function is None:
            out.append(_skip(name, title, "not among the host's PCI devices (no node device)"))
        elif function.numa_node is None:
            out.append(_skip(name, title, "the host reports no NUMA node for this device"))
        elif guest_nodes is None:
            out.append(_skip(name, title, "which host nodes the guest should be on is known "
                             f"from a plan only; {NO_PLAN}"))
        elif not guest_nodes:
            out.append(_skip(name, title, "the plan puts the guest on no host node"))
        else:
            kind = "VF" if function.is_vf else "PCI device"
            check = _verdict(
                name, title, f"node in {_cpus(guest_nodes)}", f"node {function.numa_node}",
                [] if function.numa_node in guest_nodes else [
                    f"{kind} {dev.address} is on host node {function.numa_node}, the guest's "
                    f"cells are on node {_cpus(guest_nodes)}: its DMA crosses nodes"],
            )
            out.append(check)
    for dev in ctx.live.hostdevs:
        name, title = f"hostdev_exclusive[{dev.address}]", f"{dev.address} given to no other guest"
        holders = [o.name for o in ctx.others if any(d.address == dev.address for d in o.hostdevs)]
        out.append(_verdict(name, title, "this domain only", ", ".join(holders) or "this domain",
                            [f"also given to {', '.join(holders)}"] if holders else []))
    return out


def _vcpu_affinity(ctx: _Context) -> Check:
    name, title = "vcpu_affinity", "real vCPU thread affinity = pins"
    affinity = ctx.affinity
    if affinity is None:
        return _skip(name, title, ctx.affinity_reason)
    if not affinity.vcpus:
        return _skip(name, title, f"{affinity.source} shows no per-vCPU thread (QEMU TCG "
                     "without MTTCG runs every vCPU on one thread)")
    pins = dict(ctx.live.vcpupin)
    expected: dict[int, frozenset[int]] = {}
    for vcpu in range(ctx.live.vcpu_current):
        cpus = pins.get(vcpu, ctx.live.vcpu_cpuset)
        if cpus is not None:
            expected[vcpu] = cpus
    if not expected:
        return _skip(name, title, "the domain pins no vCPU and has no <vcpu cpuset>")
    actual = {v: c for v, c in affinity.vcpus.items() if v in expected}
    problems = _diff_pins(expected, actual, "vCPU thread")
    problems = [p.replace("has no pin", "has no thread") for p in problems]
    return _verdict(name, title, _pins(expected), _pins(actual), problems,
                    ok=f"read from {affinity.source}")


def _emulator_affinity(ctx: _Context) -> Check:
    name, title = "emulator_affinity", "real emulator/IOThread affinity = pins"
    affinity = ctx.affinity
    if affinity is None:
        return _skip(name, title, ctx.affinity_reason)
    if not affinity.emulator:
        return _skip(name, title, f"{affinity.source} reports vCPU threads only")
    emulator = ctx.live.emulatorpin
    if emulator is None:
        return _skip(name, title, "the domain has no <emulatorpin>")
    problems = []
    kernel: list[str] = []
    contexts: list[str] = []
    memory_cpus = _memory_node_cpus(ctx)
    (main_label, main_cpus), *rest = affinity.emulator
    if main_cpus != emulator:
        problems.append(f"main thread {main_label} on {_cpus(main_cpus)}")
    for label, cpus in rest:
        if label.split(" (")[0].startswith("kvm"):
            kernel.append(label)  # kernel-made KVM helpers (kvm-nx-lpage-recovery, ...)
        elif label.startswith("TC "):
            # QEMU thread contexts that preallocate guest memory: libvirt binds them to the
            # CPUs of the memory's host nodes, not to <emulatorpin> (seen on the lab)
            if memory_cpus is not None and not cpus <= memory_cpus:
                problems.append(f"memory thread context {label} on {_cpus(cpus)}, outside "
                                f"the CPUs of its host nodes ({_cpus(memory_cpus)})")
            contexts.append(label)
        elif not cpus <= emulator:
            problems.append(f"thread {label} on {_cpus(cpus)}")
    io_pins = dict(ctx.live.iothreadpins)
    for thread, cpus in sorted(affinity.iothreads.items()):
        want = io_pins.get(thread, emulator)
        if cpus != want:
            problems.append(f"IOThread {thread} on {_cpus(cpus)}, expected {_cpus(want)}")
    note = f"read from {affinity.source}"
    if kernel:
        note += f"; kernel KVM helper threads not compared: {', '.join(kernel)}"
    if contexts:
        note += ("; memory thread contexts checked against their host nodes' CPUs"
                 if memory_cpus is not None else
                 "; memory thread contexts not compared (host or nodeset unknown)")
        note += f": {', '.join(contexts)}"
    return _verdict(name, title, f"emulator threads on {_cpus(emulator)}",
                    f"main thread on {_cpus(main_cpus)}; {len(rest)} other thread(s)",
                    problems, ok=note)


def _memory_node_cpus(ctx: _Context) -> frozenset[int] | None:
    """All CPUs of the host nodes the domain's memory is bound to; None when unknown."""
    tune = ctx.live.numatune
    if ctx.host is None or tune is None:
        return None
    nodes = set(tune.nodeset or ()) | {n for m in tune.memnodes for n in m.nodeset}
    if not nodes:
        return None
    cells = [c for c in ctx.host.cells if c.id in nodes]
    return frozenset().union(
        *(c.cpuset | c.pcpuset | frozenset().union(*c.siblings) for c in cells))


def _floating_avoids_pinned(ctx: _Context) -> Check:
    name, title = "floating_avoids_pinned", "floating vCPUs avoid every guest's dedicated CPUs"
    floating = floating_vcpus(ctx.live)
    if not floating:
        return _skip(name, title, "the domain has no floating vCPU")
    own = frozenset(dedicated_vcpus(ctx.live).values()) | isolated_emulator(ctx.live, ctx.host)
    held: dict[int, str] = {cpu: "this domain" for cpu in own}
    for other in ctx.others:
        for cpu in ctx.pinned_by(other):
            held.setdefault(cpu, other.name)
    problems = []
    for vcpu, cpus in sorted(floating.items()):
        allowed = cpus if cpus is not None else ctx.all_cpus
        if allowed is None:
            if held:
                problems.append(f"vCPU {vcpu} may run on any host CPU, including pinned CPUs "
                                f"{_cpus(held)}")
            continue
        clash = sorted(allowed & frozenset(held))
        if clash:
            owners = sorted({held[c] for c in clash})
            problems.append(f"vCPU {vcpu} may run on CPU {_cpus(clash)} (pinned by "
                            f"{', '.join(owners)})")
    allowed_all = [c for c in floating.values()]
    actual = ", ".join(sorted({_cpus(c) for c in allowed_all}))
    return _verdict(name, title, f"no CPU of {_cpus(held)}", f"floating on {actual}",
                    list(dict.fromkeys(problems)))


def _others_avoid_pinned(ctx: _Context) -> Check:
    name, title = "others_avoid_pinned", "other guests' floating threads avoid our CPUs"
    ours = ctx.pinned_by(ctx.live)
    if not ours:
        return _skip(name, title, "the domain has no dedicated vCPU")
    problems = []
    for other in ctx.others:
        clash: set[int] = set()
        whole_host = False
        for cpus in floating_vcpus(other).values():
            if cpus is None:
                whole_host = True
            else:
                clash |= cpus & ours
        emulator = other.emulatorpin
        if emulator is not None and not isolated_emulator(other, ctx.host):
            clash |= emulator & ours
        if whole_host:
            problems.append(f"{other.name} has floating vCPUs without <vcpupin> or <vcpu "
                            "cpuset>: they may run on every host CPU")
        elif clash:
            problems.append(f"{other.name} may run threads on CPU {_cpus(clash)}")
    return _verdict(name, title, f"no other guest's floating thread on {_cpus(ours)}",
                    f"{len(ctx.others)} other running guest(s) checked", problems)


# --------------------------------------------------------------------------- entry point


def validate(
    live: DomainInfo,
    persistent: DomainInfo | None,
    *,
    plan: DestinationPlan | None = None,
    host: HostTopology | None = None,
    others: Iterable[DomainInfo] = (),
    pci_functions: Iterable[PciFunction] | None = None,
    affinity: ThreadAffinities | None = None,
    affinity_skip_reason: str = "no thread affinity data given",
    host_name: str | None = None,
) -> ValidationReport:
    """Check that ``live`` (with its ``persistent`` definition) runs as planned.

    ``others`` are the host's other running domains (the domain itself, matched by UUID,
    is left out if present); ``pci_functions`` the host's PCI functions (None: unknown);
    ``affinity`` the real thread affinities, or None with ``affinity_skip_reason`` saying
    why there are none. Inputs are not changed.
    """
    ctx = _Context(
        live=live,
        persistent=persistent,
        plan=plan,
        host=host,
        others=tuple(o for o in others if o.uuid != live.uuid),
        pci=None if pci_functions is None else tuple(pci_functions),
        affinity=affinity,
        affinity_reason=affinity_skip_reason,
    )
    checks = [
        _vcpu_pins_planned(ctx),
        _emulator_pins_planned(ctx),
        _emulator_isolated(ctx),
        _persistent_pins(ctx),
        _persistent_numa(ctx),
        _pcpus_exclusive(ctx),
        _cpu_pools(ctx),
        _numatune_strict(ctx),
        _numatune_nodes(ctx),
        _hugepages_planned(ctx),
        _hostdevs_planned(ctx),
        *_hostdev_checks(ctx),
        _vcpu_affinity(ctx),
        _emulator_affinity(ctx),
        _floating_avoids_pinned(ctx),
        _others_avoid_pinned(ctx),
    ]
    return ValidationReport(
        domain=live.name,
        uuid=live.uuid,
        host=host_name if host_name is not None else (host.name if host else None),
        checks=tuple(checks),
    )

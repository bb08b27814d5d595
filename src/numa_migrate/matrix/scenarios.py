"""The scenarios of the validation matrix (pure data and checks, no I/O).

Each scenario is a guest defined from Nova-style extra specs, what the hosts must offer to
express it (:class:`Need`), and what is expected: a round trip source -> destination ->
source that ``validate`` passes after each leg, or a refusal before anything moves. The
runner (:mod:`numa_migrate.matrix.runner`) turns them into results; a scenario the hosts
cannot express is *skipped with the reason*, never passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.fit.reasons import plural
from numa_migrate.core.model.host import HostTopology

NUMA, PINNING, PAGES, SRIOV, NEGATIVE = (
    "NUMA awareness", "CPU pinning", "Huge pages", "SR-IOV", "Negative",
)


class Kind(StrEnum):
    ROUND_TRIP = "round-trip"
    """Migrate there and back; validate after each leg."""
    NO_ROOM = "no-room"
    """A blocker guest takes the destination's dedicated CPUs: the move must be refused."""
    NO_PAGE_SIZE = "no-page-size"
    """The destination's pages of the guest's size are all reserved: refused."""
    FIXTURES = "fixtures"
    """Planned and checked on XML fixtures only (the hosts lack the hardware)."""


@dataclass(frozen=True)
class Need:
    """Something both hosts must offer; ``missing`` says why a host does not, or None."""

    what: str
    missing: Callable[[HostTopology], str | None]


def min_nodes(count: int) -> Need:
    def missing(host: HostTopology) -> str | None:
        have = len(host.cells)
        return None if have >= count else (
            f"{host.name} has {plural(have, 'NUMA node')}, not {count}")
    return Need(f"{count} host NUMA nodes", missing)


def smt() -> Need:
    def missing(host: HostTopology) -> str | None:
        pinned = host.dedicated_cpus
        for cell in host.cells:
            if any(len(s & pinned) > 1 for s in cell.siblings):
                return None
        return f"{host.name} has no SMT sibling threads among its dedicated CPUs"
    return Need("SMT sibling threads", missing)


def dedicated_cpus(count: int) -> Need:
    def missing(host: HostTopology) -> str | None:
        have = len(host.dedicated_cpus)
        return None if have >= count else (
            f"{host.name} has {plural(have, 'dedicated CPU')} (cpu_dedicated_set), not {count}")
    return Need(f"{count} dedicated CPUs", missing)


def shared_cpus(count: int) -> Need:
    def missing(host: HostTopology) -> str | None:
        have = len(host.shared_cpus)
        return None if have >= count else (
            f"{host.name} has {plural(have, 'shared CPU')} (cpu_shared_set), not {count}")
    return Need(f"{count} shared CPUs", missing)


def page_size(kib: int, count: int) -> Need:
    label = f"{kib // 1024} MiB" if kib < 1048576 else f"{kib // 1048576} GiB"

    def missing(host: HostTopology) -> str | None:
        free = sum(p.total - p.reserved for c in host.cells for p in c.mempages
                   if p.size_kib == kib)
        return None if free >= count else (
            f"{host.name} has {plural(free, label + ' huge page')} in its pool, the guest needs "
            f"{count}")
    return Need(f"{count} x {label} huge pages", missing)


@dataclass(frozen=True)
class Scenario:
    id: str
    group: str
    title: str
    extra_specs: Mapping[str, str]
    vcpus: int = 1
    memory_mib: int = 64
    kind: Kind = Kind.ROUND_TRIP
    needs: tuple[Need, ...] = ()
    lab_cpu_sets: Mapping[str, tuple[str, str | None]] | None = None
    """On the lab only: (cpu_dedicated_set, cpu_shared_set) per role ("source",
    "destination") for this scenario (both lab hosts are one machine; its CPU sets are
    configuration). None: the inventory's sets."""
    neighbour_specs: Mapping[str, str] | None = None
    """A pinned guest started on the destination first (a neighbour the guest must avoid,
    or, for NO_ROOM, the blocker that takes every dedicated CPU)."""
    expect_reason: str = ""
    """For refusals: a fragment the refusal's reasons must contain."""
    checks: tuple[str, ...] = field(default=())
    """Extra checks by name, run by the runner (see its CHECKS)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_specs", MappingProxyType(dict(self.extra_specs)))

    def unmet(self, *hosts: HostTopology) -> list[str]:
        """Why the hosts cannot express this scenario (empty: they can)."""
        return [reason for need in self.needs for host in hosts
                if (reason := need.missing(host)) is not None]


DEDICATED = {"hw:cpu_policy": "dedicated"}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("numa-1", NUMA, "one guest NUMA cell, pinned", DEDICATED | {"hw:numa_nodes": "1"}),
    Scenario("numa-2", NUMA, "two guest NUMA cells on two host nodes",
             DEDICATED | {"hw:numa_nodes": "2"}, vcpus=2, memory_mib=128,
             needs=(min_nodes(2), dedicated_cpus(2))),
    Scenario("numa-asymmetric", NUMA, "asymmetric cells (hw:numa_cpus.N / hw:numa_mem.N)",
             DEDICATED | {"hw:numa_nodes": "2", "hw:numa_cpus.0": "0", "hw:numa_cpus.1": "1,2",
                          "hw:numa_mem.0": "32", "hw:numa_mem.1": "96"},
             vcpus=3, memory_mib=128, needs=(min_nodes(2), dedicated_cpus(3))),
    Scenario("pin-prefer", PINNING, "dedicated, thread policy prefer",
             DEDICATED | {"hw:cpu_thread_policy": "prefer"}),
    Scenario("pin-isolate", PINNING, "dedicated, thread policy isolate",
             DEDICATED | {"hw:cpu_thread_policy": "isolate"}),
    Scenario("pin-require", PINNING, "dedicated, thread policy require (sibling threads)",
             DEDICATED | {"hw:cpu_thread_policy": "require"}, vcpus=2,
             needs=(smt(), dedicated_cpus(2))),
    Scenario("pin-emulator-isolate", PINNING, "emulator threads on a dedicated CPU of their own",
             DEDICATED | {"hw:emulator_threads_policy": "isolate"},
             needs=(dedicated_cpus(2),),
             lab_cpu_sets={"source": ("0-1", None), "destination": ("0-1", None)}),
    Scenario("pin-mixed", PINNING, "mixed policy: vCPU 0 floats, vCPU 1 pinned",
             {"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "^0"}, vcpus=2,
             needs=(dedicated_cpus(1), shared_cpus(1))),
    Scenario("shared-beside-pinned", PINNING,
             "floating guest next to a pinned one: its <vcpu cpuset> avoids the pinned CPUs",
             {}, needs=(shared_cpus(1), dedicated_cpus(1)),
             neighbour_specs=DEDICATED, checks=("cpuset_avoids_neighbour",)),
    Scenario("pages-large", PAGES, "hw:mem_page_size=large",
             DEDICATED | {"hw:mem_page_size": "large"}, needs=(page_size(2048, 64),)),
    Scenario("pages-2m", PAGES, "hw:mem_page_size=2048",
             DEDICATED | {"hw:mem_page_size": "2048"}, needs=(page_size(2048, 64),)),
    Scenario("pages-1g", PAGES, "hw:mem_page_size=1GB",
             DEDICATED | {"hw:mem_page_size": "1GB"}, memory_mib=1024,
             needs=(page_size(1048576, 2),)),
    Scenario("sriov-direct", SRIOV, "SR-IOV direct port (VF) on the guest's NUMA node",
             DEDICATED | {"hw:pci_numa_affinity_policy": "required"}, kind=Kind.FIXTURES),
    Scenario("sriov-refuse-no-vf", SRIOV,
             "SR-IOV port with every suitable VF busy: refused by the fit, per host cell",
             DEDICATED | {"hw:pci_numa_affinity_policy": "required"}, kind=Kind.FIXTURES,
             expect_reason="PCI request 1"),
    Scenario("refuse-no-room", NEGATIVE, "destination without room: refused before moving",
             DEDICATED, kind=Kind.NO_ROOM, needs=(dedicated_cpus(1),),
             neighbour_specs=DEDICATED, expect_reason="dedicated"),
    Scenario("refuse-no-page-size", NEGATIVE,
             "destination without the page size: refused before moving",
             DEDICATED | {"hw:mem_page_size": "2048"}, kind=Kind.NO_PAGE_SIZE,
             needs=(page_size(2048, 32),), expect_reason="page"),
)


def scenario_ids() -> tuple[str, ...]:
    return tuple(s.id for s in SCENARIOS)


def select(ids: tuple[str, ...] | list[str]) -> tuple[Scenario, ...]:
    """The scenarios named (all when none), in matrix order; unknown ids are an error."""
    known = scenario_ids()
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise NumaMigrateError(f"unknown scenario {', '.join(unknown)} "
                               f"(scenarios: {', '.join(known)})")
    return tuple(s for s in SCENARIOS if not ids or s.id in ids)

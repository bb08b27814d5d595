"""A seeded synthetic fleet: realistic host shapes with guests placed on them by the fitter.

Host shapes: ``intel`` (2 sockets x 20 cores, SMT 2, 192 GiB per node, 2 MiB and 1 GiB
pages, 8 VFs per node on physnet1), ``epyc`` (4 NUMA nodes x 16 cores, SMT 2, 128 GiB per
node, 2 MiB pages, 4 VFs on nodes 0 and 2), ``small`` (1 node x 8 cores, SMT 2, 64 GiB,
2 MiB pages), and two tiny shapes for property tests (``tiny1``: 1 node x 4 cores, ``tiny2``:
2 nodes x 3 cores, each with 2 MiB pages and 2 VFs per node). Each shape keeps its first
core(s) per node for the shared pool (``cpu_shared_set``), the rest is dedicated.

Flavors: shared (no NUMA request), pinned, pinned with 2 MiB pages, 2-cell pinned with
pages, isolated emulator threads, thread policy require, SR-IOV (a VF on physnet1, pinned).
``load`` is the share of each host's dedicated CPUs that pinned guests may fill; placing
stops there (shared guests fill the quota). The fleet is what placing the guests in order
produces (``apply_placement``, ``take_devices``), so it is consistent by construction.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

from numa_migrate.core.drain.hosts import add_guest
from numa_migrate.core.drain.state import FleetGuest, FleetState
from numa_migrate.core.fit.fitter import fit_guest
from numa_migrate.core.model.guest import Guest
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool
from numa_migrate.core.model.pcidev import DevType, PciDevice, PciRequest
from numa_migrate.core.request import Flavor, guest_from_flavor

PHYSNET1 = PciRequest(1, ((("physical_network", "physnet1"),),))


@dataclass(frozen=True)
class Shape:
    name: str
    nodes: int
    cores_per_node: int
    threads: int
    shared_cores_per_node: int
    memory_mib: int
    """Per node."""
    huge_2m: int
    """2 MiB pages per node."""
    huge_1g: int
    vfs_per_node: tuple[int, ...]
    sockets: tuple[int, ...]


SHAPES: dict[str, Shape] = {
    "intel": Shape("intel", 2, 20, 2, 2, 196_608, 32_768, 32, (8, 8), (0, 1)),
    "epyc": Shape("epyc", 4, 16, 2, 1, 131_072, 16_384, 0, (4, 0, 4, 0), (0, 0, 1, 1)),
    "small": Shape("small", 1, 8, 2, 1, 65_536, 8_192, 0, (0,), (0,)),
    "tiny1": Shape("tiny1", 1, 4, 2, 1, 16_384, 2_048, 0, (2,), (0,)),
    "tiny2": Shape("tiny2", 2, 3, 2, 1, 16_384, 2_048, 0, (2, 2), (0, 0)),
}


def make_host(name: str, shape: Shape) -> HostTopology:
    cores = shape.nodes * shape.cores_per_node
    cells: list[HostCell] = []
    devices: list[PciDevice] = []
    for n in range(shape.nodes):
        first = n * shape.cores_per_node
        siblings = tuple(
            frozenset(first + c + t * cores for t in range(shape.threads))
            for c in range(shape.cores_per_node)
        )
        shared = frozenset().union(*siblings[: shape.shared_cores_per_node])
        dedicated = frozenset().union(*siblings[shape.shared_cores_per_node:])
        huge_kib = shape.huge_2m * 2048 + shape.huge_1g * 1_048_576
        pools = [PagePool(4, (shape.memory_mib * 1024 - huge_kib) // 4)]
        if shape.huge_2m:
            pools.append(PagePool(2048, shape.huge_2m))
        if shape.huge_1g:
            pools.append(PagePool(1_048_576, shape.huge_1g))
        cells.append(HostCell(n, shared, dedicated, shape.memory_mib, siblings,
                              mempages=tuple(pools), socket=shape.sockets[n]))
        vfs = shape.vfs_per_node[n]
        if vfs:
            pf = f"0000:{0x3b + n:02x}:00.0"
            devices.append(PciDevice(pf, "8086", "1572", n, DevType.PF, "physnet1"))
            devices.extend(
                PciDevice(f"0000:{0x3b + n:02x}:02.{i}", "8086", "154c", n, DevType.VF,
                          "physnet1", pf)
                for i in range(vfs)
            )
    return HostTopology(name, tuple(cells), pci_devices=tuple(devices))


FLAVORS: tuple[tuple[str, int, int, dict[str, str], bool], ...] = (
    # name, vcpus, memory MiB, extra specs, SR-IOV port
    ("shared.2", 2, 4096, {}, False),
    ("shared.4", 4, 8192, {}, False),
    ("pinned.2", 2, 4096, {"hw:cpu_policy": "dedicated"}, False),
    ("pinned.4", 4, 8192, {"hw:cpu_policy": "dedicated"}, False),
    ("pinned.8", 8, 16384, {"hw:cpu_policy": "dedicated"}, False),
    ("huge.4", 4, 8192, {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "2048"}, False),
    ("huge.2cell.8", 8, 16384, {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "2048",
                                "hw:numa_nodes": "2"}, False),
    # isolate cannot be met with cpu_dedicated_set on SMT hosts (Nova 34): emulator
    # threads isolated and thread policy "require" instead
    ("emu.4", 4, 8192, {"hw:cpu_policy": "dedicated",
                        "hw:emulator_threads_policy": "isolate"}, False),
    ("require.2", 2, 2048, {"hw:cpu_policy": "dedicated",
                            "hw:cpu_thread_policy": "require"}, False),
    ("sriov.4", 4, 8192, {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "2048"}, True),
    ("sriov.2", 2, 2048, {"hw:cpu_policy": "dedicated"}, True),
)
WEIGHTS = (6, 3, 3, 4, 2, 3, 1, 1, 1, 2, 2)


def make_guest(rng: random.Random, name: str, pinned_only: bool = False,
               shared_only: bool = False) -> Guest:
    choices = [f for f in FLAVORS
               if not (pinned_only and not f[3]) and not (shared_only and f[3])]
    weights = [WEIGHTS[FLAVORS.index(f)] for f in choices]
    fname, vcpus, mem, specs, sriov = rng.choices(choices, weights)[0]
    requests = (PHYSNET1,) if sriov else ()
    return guest_from_flavor(Flavor(vcpus, mem, specs, fname), None, requests)


def _dedicated_used(host: HostTopology) -> float:
    total = sum(len(c.pcpuset) for c in host.cells)
    free = sum(len(c.free_pcpus) for c in host.cells)
    return (total - free) / total if total else 1.0


def generate(
    seed: int,
    hosts: int,
    guests: int,
    load: float = 0.7,
    shapes: tuple[tuple[str, int], ...] = (("intel", 5), ("epyc", 3), ("small", 2)),
) -> FleetState:
    """``hosts`` hosts (shapes drawn by weight) with up to ``guests`` guests in all."""
    rng = random.Random(seed)
    names, weights = zip(*shapes, strict=True)
    tops: list[HostTopology] = []
    placed: list[FleetGuest] = []
    quota = [guests // hosts + (1 if i < guests % hosts else 0) for i in range(hosts)]
    n = 0
    for i in range(hosts):
        shape = SHAPES[rng.choices(names, weights)[0]]
        host = make_host(f"host-{i:03d}", shape)
        misses = 0
        for _ in range(quota[i]):
            while misses < 8:
                shared_only = _dedicated_used(host) >= load
                guest = make_guest(rng, f"g-{n:05d}", shared_only=shared_only)
                result = fit_guest(host, guest)
                if result.placement is None:
                    misses += 1
                    continue
                held = result.pci_addresses
                host = add_guest(host, guest, result.placement, held)
                placed.append(FleetGuest(f"g-{n:05d}", host.name, guest,
                                         result.placement, held))
                n += 1
                break
        tops.append(host)
    return FleetState(tuple(tops), tuple(placed))


def place_all(
    hosts: list[HostTopology], guests: list[tuple[str, str, Guest]]
) -> FleetState:
    """A fleet state with ``(name, host, guest)`` placed in order by the fitter."""
    by_name = {h.name: h for h in hosts}
    placed: list[FleetGuest] = []
    for name, host_name, guest in guests:
        host = by_name[host_name]
        result = fit_guest(host, guest)
        if result.placement is None:
            raise ValueError(f"{name} does not fit on {host_name}: {result.summary}")
        held = result.pci_addresses
        by_name[host_name] = add_guest(host, guest, result.placement, held)
        placed.append(FleetGuest(name, host_name, guest, result.placement, held))
    return FleetState(tuple(by_name[h.name] for h in hosts), tuple(placed))


def flavor(vcpus: int, memory_mib: int, sriov: bool = False, **specs: str) -> Guest:
    """A guest of a flavor; ``specs`` as ``hw_cpu_policy="dedicated"`` (``_`` -> ``:``)."""
    extra = {k.replace("hw_", "hw:", 1): v for k, v in specs.items()}
    return guest_from_flavor(Flavor(vcpus, memory_mib, extra), None,
                             (PHYSNET1,) if sriov else ())


def add_drain_arguments(parser: argparse.ArgumentParser, *, drains: int | list[int]) -> None:
    """The drain benches' common options: the generated fleet (--hosts, --guests, --seed,
    --load), how many of its first hosts to drain (--drain, one or more) and the
    parallelism limits (--max-parallel, --per-host)."""
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--guests", type=int, default=4000)
    if isinstance(drains, list):
        parser.add_argument("--drain", type=int, nargs="+", default=drains)
    else:
        parser.add_argument("--drain", type=int, default=drains)
    parser.add_argument("--max-parallel", type=int, default=10)
    parser.add_argument("--per-host", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--load", type=float, default=0.7)

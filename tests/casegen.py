"""Deterministic generator of fit cases (shared/formats/fit-case.md) for differential tests
and benchmarks: realistic hosts with usage, and guest requests covering every Nova knob.

``generate_cases(n, seed)`` is a mixed corpus (valid requests, near-full hosts, invalid
requests); ``worst_cases(seed)`` are the many-cell hosts where Nova's permutation search
explodes. Run as a script to write JSON Lines::

    python -m tests.casegen --cases 100 --seed 1 > cases.jsonl
    python -m tests.casegen --worst > worst.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from typing import Any

Case = dict[str, Any]
SIZES_2M, SIZES_1G = 2048, 1048576


def _cell(rng: random.Random, cell_id: int, first_cpu: int, *, cores: int, threads: int,
          cpu_mode: str, load: float) -> dict[str, Any]:
    groups = [list(range(first_cpu + c * threads, first_cpu + (c + 1) * threads))
              for c in range(cores)]
    if cpu_mode == "legacy":
        shared = dedicated = [cpu for g in groups for cpu in g]
    else:
        split = {"dedicated": 0, "shared": cores}.get(cpu_mode, rng.randint(0, cores))
        shared = [cpu for g in groups[:split] for cpu in g]
        dedicated = [cpu for g in groups[split:] for cpu in g]
    pinned: list[int] = []
    if dedicated and load > 0:
        whole_cores = rng.random() < 0.6
        for g in groups:
            if g[0] not in dedicated or rng.random() >= load:
                continue
            pinned.extend(g if whole_cores or threads == 1 else g[: rng.randint(1, threads)])
    memory = rng.choice([4096, 8192, 16384, 32768, 65536])
    pages: list[dict[str, int]] = []
    huge_mib = 0
    if rng.random() < 0.85:
        if rng.random() < 0.6:
            total = rng.randint(0, memory // 2 // 2)
            used = int(total * load * rng.random())
            reserved = rng.choice([0, 0, 0, min(total - used, rng.randint(0, 64))])
            pages.append({"size_kib": SIZES_2M, "total": total, "used": used,
                          "reserved": reserved})
            huge_mib += total * 2
        if rng.random() < 0.3 and memory >= 8192:
            total = rng.randint(0, (memory - huge_mib) // 2 // 1024)
            pages.append({"size_kib": SIZES_1G, "total": total,
                          "used": rng.randint(0, total) if load else 0, "reserved": 0})
            huge_mib += total * 1024
        small_total = (memory - huge_mib) * 256
        pages.insert(0, {"size_kib": 4, "total": small_total,
                         "used": int(small_total * load * rng.random()), "reserved": 0})
    return {
        "id": cell_id,
        "cpuset": shared,
        "pcpuset": dedicated,
        "siblings": groups if threads > 1 else [],
        "memory_mib": memory,
        "memory_usage_mib": int(memory * load * rng.random()),
        "cpu_usage": rng.randint(0, len(shared) * 2) if load and shared else 0,
        "pinned_cpus": sorted(pinned),
        "mempages": pages,
    }


def random_host(rng: random.Random, min_cells: int, max_cells: int,
                near_full: float) -> dict[str, Any]:
    n = rng.randint(min_cells, max_cells)
    threads = rng.choice([1, 2, 2])
    cpu_mode = rng.choice(["split", "dedicated", "dedicated", "shared", "legacy"])
    uniform = rng.random() < 0.7
    cores = rng.randint(2, 8)
    full = rng.random() < near_full
    cells = []
    cpu = 0
    for cell_id in range(n):
        if not uniform:
            cores = rng.randint(1, 8)
        load = rng.uniform(0.5, 0.95) if full else rng.choice([0.0, 0.0, 0.2, 0.4])
        cells.append(_cell(rng, cell_id, cpu, cores=cores, threads=threads, cpu_mode=cpu_mode,
                           load=load))
        cpu += cores * threads
    return {"cells": cells}


def _split(total: int, parts: int, rng: random.Random, unit: int) -> list[int]:
    """Split ``total`` into ``parts`` positive multiples of ``unit`` (uneven)."""
    units = total // unit
    cuts = sorted(rng.sample(range(1, units), parts - 1)) if units > parts else []
    if len(cuts) != parts - 1:
        return [total // parts] * parts
    bounds = [0, *cuts, units]
    return [(b - a) * unit for a, b in itertools.pairwise(bounds)]


def random_request(rng: random.Random, nodes: int) -> tuple[dict[str, Any], dict[str, str]]:
    """A valid-looking flavor and image properties (Nova still decides validity)."""
    per_node = rng.choice([1, 2, 2, 3, 4, 6])
    explicit = nodes > 1 and rng.random() < 0.25
    vcpus = nodes * per_node + (rng.randint(0, nodes - 1) if explicit else 0)
    memory = nodes * rng.choice([512, 1024, 1024, 2048, 2048, 4096, 8192])
    specs: dict[str, str] = {}
    image: dict[str, str] = {}
    policy = rng.choice(["none", "shared", "dedicated", "dedicated", "dedicated", "mixed"])
    if nodes > 1 or rng.random() < 0.5:
        specs["hw:numa_nodes"] = str(nodes)
    if policy != "none":
        specs["hw:cpu_policy"] = policy
    if policy == "mixed":
        vcpus = max(vcpus, 2)
        dedicated = rng.sample(range(vcpus), rng.randint(1, vcpus - 1))
        specs["hw:cpu_dedicated_mask"] = ",".join(str(v) for v in sorted(dedicated))
    if policy == "dedicated":
        if rng.random() < 0.4:
            specs["hw:cpu_thread_policy"] = rng.choice(["prefer", "isolate", "require"])
        if rng.random() < 0.2:
            specs["hw:emulator_threads_policy"] = rng.choice(["share", "isolate", "isolate"])
        if rng.random() < 0.1 and vcpus > 1:
            specs["hw:cpu_realtime"] = "yes"
            specs["hw:cpu_realtime_mask"] = "^0"
    if rng.random() < 0.5:
        specs["hw:mem_page_size"] = rng.choice(
            ["small", "large", "large", "any", "2048", "2MB", "1GB", "4KB"])
    if explicit:
        cpu_parts = _split(vcpus, nodes, rng, 1)
        mem_parts = _split(memory, nodes, rng, 512)
        cpu = 0
        for node, (ncpu, mem) in enumerate(zip(cpu_parts, mem_parts, strict=True)):
            specs[f"hw:numa_cpus.{node}"] = f"{cpu}-{cpu + ncpu - 1}" if ncpu > 1 else str(cpu)
            specs[f"hw:numa_mem.{node}"] = str(mem)
            cpu += ncpu
    if rng.random() < 0.15:
        # image-side requests, allowed or not by the flavor
        key, value = rng.choice([
            ("hw_mem_page_size", rng.choice(["large", "small", "2MB", "any"])),
            ("hw_cpu_policy", rng.choice(["dedicated", "shared"])),
            ("hw_cpu_thread_policy", rng.choice(["prefer", "isolate", "require"])),
            ("hw_numa_nodes", str(nodes)),
        ])
        image[key] = value
        if key == "hw_mem_page_size" and rng.random() < 0.5:
            specs["hw:mem_page_size"] = "any"
    flavor = {"vcpus": vcpus, "memory_mib": memory, "extra_specs": specs}
    return flavor, image


def _break(rng: random.Random, flavor: dict[str, Any], image: dict[str, str]) -> None:
    """Make a request invalid the way operators get it wrong."""
    specs = flavor["extra_specs"]
    nodes = int(specs.get("hw:numa_nodes", "1"))
    kind = rng.randrange(14)
    if kind == 0:
        specs["hw:numa_nodes"] = rng.choice(["0", "-1", str(flavor["vcpus"] + 1), "two"])
    elif kind == 1:
        specs["hw:numa_nodes"] = str(max(2, nodes))
        specs["hw:numa_cpus.0"] = "0"
    elif kind == 2:
        specs["hw:numa_nodes"] = "2"
        flavor["vcpus"] = max(flavor["vcpus"], 2)
        specs["hw:numa_cpus.0"] = "0"
        specs["hw:numa_mem.0"] = str(flavor["memory_mib"] // 2)
        specs["hw:numa_cpus.1"] = rng.choice(["0", str(flavor["vcpus"] + 3), "1"])
        specs["hw:numa_mem.1"] = str(flavor["memory_mib"] // 2 + rng.choice([0, 0, 512]))
    elif kind == 3:
        specs["hw:cpu_policy"] = rng.choice(["pinned", "Dedicated", ""])
    elif kind == 4:
        specs["hw:mem_page_size"] = rng.choice(["huge", "3MB", "-2048", "0"])
    elif kind == 5:
        specs["hw:mem_page_size"] = rng.choice(["small", "2048"])
        image["hw_mem_page_size"] = "large"
    elif kind == 6:
        specs["hw:cpu_policy"] = "shared"
        image["hw_cpu_policy"] = "dedicated"
    elif kind == 7:
        specs["hw:cpu_policy"] = "shared"
        specs["hw:cpu_thread_policy"] = rng.choice(["isolate", "require"])
    elif kind == 8:
        specs["hw:cpu_policy"] = rng.choice(["shared", "mixed"])
        specs.pop("hw:cpu_dedicated_mask", None)
        specs["hw:emulator_threads_policy"] = "isolate"
    elif kind == 9:
        specs["hw:cpu_policy"] = "mixed"
        specs.pop("hw:cpu_dedicated_mask", None)
    elif kind == 10:
        specs["hw:cpu_policy"] = "dedicated"
        specs["hw:cpu_realtime"] = "yes"
        specs.pop("hw:cpu_realtime_mask", None)
        if rng.random() < 0.5:
            specs["hw:cpu_realtime_mask"] = rng.choice(["^0-999", "0-999", "abc"])
    elif kind == 11:
        image[rng.choice(["hw_cpu_policy", "hw_cpu_thread_policy", "hw_mem_page_size"])] = "bogus"
    elif kind == 12:
        specs["hw:cpu_thread_policy"] = rng.choice(["sometimes", "ISOLATE"])
    else:
        specs["hw:emulator_threads_policy"] = rng.choice(["separate", "shared"])


def generate_cases(n: int, seed: int, *, min_host_cells: int = 1, max_host_cells: int = 4,
                   min_guest_nodes: int = 1, max_guest_nodes: int = 3,
                   near_full: float = 0.35, invalid_fraction: float = 0.12) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        host = random_host(rng, min_host_cells, max_host_cells, near_full)
        most = max_guest_nodes if rng.random() < 0.08 else min(
            max_guest_nodes, max(min_guest_nodes, len(host["cells"])))
        nodes = rng.randint(min_guest_nodes, most)
        flavor, image = random_request(rng, nodes)
        if rng.random() < invalid_fraction:
            _break(rng, flavor, image)
        sizes = sorted({p["size_kib"] for c in host["cells"] for p in c["mempages"]})
        current = None
        if "hw:mem_page_size" in flavor["extra_specs"] and sizes and rng.random() < 0.15:
            current = rng.choice(sizes)
        limits = None
        if rng.random() < 0.2:
            limits = {"cpu_allocation_ratio": rng.choice([1.0, 2.0, 4.0, 16.0]),
                      "ram_allocation_ratio": rng.choice([1.0, 1.0, 1.5])}
        cases.append({
            "id": f"gen-{seed}-{i:05d}",
            "host": host,
            "flavor": flavor,
            "image_properties": image,
            "limits": limits,
            "current_pagesize_kib": current,
            "packing": rng.random() < 0.3,
        })
    return cases


def _uniform_host(cells: int, cores: int, free_cores: list[int],
                  free_pages_2m: list[int] | None = None, memory: int = 65536) -> dict[str, Any]:
    """A dedicated-CPU SMT host; cell i has ``free_cores[i]`` free cores (the rest pinned)
    and ``free_pages_2m[i]`` free 2 MiB pages of 8192."""
    free_pages = free_pages_2m or [8192] * cells
    out = []
    for cell_id in range(cells):
        first = cell_id * cores * 2
        groups = [[first + 2 * c, first + 2 * c + 1] for c in range(cores)]
        pinned = [cpu for g in groups[free_cores[cell_id]:] for cpu in g]
        out.append({
            "id": cell_id, "cpuset": [], "pcpuset": [cpu for g in groups for cpu in g],
            "siblings": groups, "memory_mib": memory, "memory_usage_mib": 0, "cpu_usage": 0,
            "pinned_cpus": pinned,
            "mempages": [
                {"size_kib": 4, "total": (memory - 16384) * 256, "used": 0, "reserved": 0},
                {"size_kib": SIZES_2M, "total": 8192, "used": 8192 - free_pages[cell_id],
                 "reserved": 0}],
        })
    return {"cells": out}


def worst_cases(seed: int = 0) -> list[Case]:
    """Many-cell hosts and multi-node guests, where Nova walks host-cell permutations.

    ``*-nofit``: one cell fewer than the guest needs has room, so no permutation works and
    Nova enumerates all of them; ``*-fit-late``: the cells Nova tries first (most free CPUs)
    have no free huge pages, the ones that fit come last; ``*-fit``: an idle host.
    """
    rng = random.Random(seed)
    cases = []
    for cells, nodes in ((8, 4), (8, 6), (12, 4), (12, 6), (16, 4), (16, 6), (16, 8)):
        per_node = 4
        flavor = {"vcpus": nodes * per_node, "memory_mib": nodes * 4096,
                  "extra_specs": {"hw:numa_nodes": str(nodes), "hw:cpu_policy": "dedicated",
                                  "hw:mem_page_size": "large"}}
        roomy = rng.sample(range(cells), nodes - 1)
        free = [8 if c in roomy else 1 for c in range(cells)]
        variants = {
            "nofit": _uniform_host(cells, 8, free),
            "fit-late": _uniform_host(cells, 8, [8] * (cells - nodes) + [4] * nodes,
                                      [0] * (cells - nodes) + [8192] * nodes),
            "fit": _uniform_host(cells, 8, [8] * cells),
        }
        for name, host in variants.items():
            cases.append({"id": f"w-{cells}c-{nodes}n-{name}", "host": host, "flavor": flavor,
                          "image_properties": {}, "limits": None, "current_pagesize_kib": None,
                          "packing": False})
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worst", action="store_true")
    args = parser.parse_args()
    cases = worst_cases(args.seed) if args.worst else generate_cases(args.cases, args.seed)
    for case in cases:
        sys.stdout.write(json.dumps(case) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

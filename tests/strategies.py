"""Hypothesis strategies for random fit cases (hosts with usage, guest requests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

PAGE_SIZES = (4, 2048, 1048576)


@st.composite
def host_cells(draw: st.DrawFn, n_cells: int, threads: int, legacy: bool) -> list[dict[str, Any]]:
    cells = []
    cpu = 0
    for cell_id in draw(st.permutations(range(n_cells))):
        cores = draw(st.integers(1, 6))
        groups = []
        for _ in range(cores):
            groups.append(list(range(cpu, cpu + threads)))
            cpu += threads
        cpus = [c for g in groups for c in g]
        if legacy:
            shared = dedicated = cpus
        else:
            split = draw(st.integers(0, len(cpus)))
            shared, dedicated = cpus[:split], cpus[split:]
        pinned = (
            draw(st.lists(st.sampled_from(dedicated), unique=True, max_size=len(dedicated) // 2))
            if dedicated
            else []
        )
        memory = draw(st.sampled_from([1024, 2048, 4096, 8192]))
        pages = []
        if draw(st.booleans()):
            pages.append(
                {
                    "size_kib": 4,
                    "total": memory * 256,
                    "used": draw(st.integers(0, memory * 128)),
                    "reserved": 0,
                }
            )
            if draw(st.booleans()):
                total = draw(st.integers(0, memory // 2))
                used = draw(st.integers(0, total))
                pages.append(
                    {
                        "size_kib": 2048,
                        "total": total,
                        "used": used,
                        "reserved": draw(st.integers(0, total - used)),
                    }
                )
            if draw(st.booleans()):
                pages.append(
                    {
                        "size_kib": 1048576,
                        "total": draw(st.integers(0, 4)),
                        "used": 0,
                        "reserved": 0,
                    }
                )
        cells.append(
            {
                "id": cell_id,
                "cpuset": shared,
                "pcpuset": dedicated,
                "siblings": groups if threads > 1 else [],
                "memory_mib": memory,
                "memory_usage_mib": draw(st.integers(0, memory // 2)),
                "cpu_usage": draw(st.integers(0, 4)),
                "pinned_cpus": pinned,
                "mempages": pages,
            }
        )
    return cells


@st.composite
def fit_cases(draw: st.DrawFn, max_host_cells: int = 4) -> dict[str, Any]:
    n_host = draw(st.integers(1, max_host_cells))
    threads = draw(st.sampled_from([1, 2, 2, 4]))
    cells = draw(host_cells(n_host, threads, draw(st.booleans())))
    nodes = draw(st.integers(1, min(3, n_host + 1)))
    asymmetric = nodes > 1 and draw(st.booleans())
    vcpus = nodes * draw(st.integers(1, 4)) + (draw(st.integers(0, nodes - 1)) if asymmetric else 0)
    memory = nodes * draw(st.sampled_from([256, 512, 1024, 1536, 2048]))
    specs: dict[str, str] = {"hw:numa_nodes": str(nodes)}
    policy = draw(st.sampled_from(["shared", "dedicated", "dedicated", "mixed", None]))
    if policy:
        specs["hw:cpu_policy"] = policy
    if policy == "mixed":
        if vcpus < 2:
            specs["hw:cpu_policy"] = "dedicated"
        else:
            specs["hw:cpu_dedicated_mask"] = f"^0-{draw(st.integers(0, vcpus - 2))}"
    if policy in ("dedicated", "mixed"):
        tp = draw(st.sampled_from([None, "prefer", "isolate", "require"]))
        if tp:
            specs["hw:cpu_thread_policy"] = tp
        if draw(st.booleans()):
            specs["hw:emulator_threads_policy"] = draw(st.sampled_from(["share", "isolate"]))
    if asymmetric:
        # asymmetric guest cells: cell i gets a share of the vCPUs and memory
        cut = sorted(
            draw(
                st.lists(
                    st.integers(1, vcpus - 1), min_size=nodes - 1, max_size=nodes - 1, unique=True
                )
            )
        )
        bounds = [0, *cut, vcpus]
        unit = memory // nodes
        mem = [unit] * nodes
        shift = draw(st.integers(0, unit // 256)) * 256 if unit >= 512 else 0
        mem[0] += shift
        mem[-1] -= shift
        for i in range(nodes):
            lo, hi = bounds[i], bounds[i + 1] - 1
            specs[f"hw:numa_cpus.{i}"] = f"{lo}-{hi}" if hi > lo else str(lo)
            specs[f"hw:numa_mem.{i}"] = str(mem[i])
    page = draw(st.sampled_from([None, None, "small", "large", "any", "2048", "1GB"]))
    if page:
        specs["hw:mem_page_size"] = page
    limits = None
    if draw(st.booleans()):
        limits = {
            "cpu_allocation_ratio": draw(st.sampled_from([1.0, 2.0, 16.0])),
            "ram_allocation_ratio": draw(st.sampled_from([1.0, 1.5])),
        }
    current = None
    if page and draw(st.integers(0, 3)) == 0:
        current = draw(st.sampled_from(PAGE_SIZES))
    return {
        "id": "hyp",
        "host": {"cells": cells},
        "flavor": {"vcpus": vcpus, "memory_mib": memory, "extra_specs": specs},
        "image_properties": {},
        "limits": limits,
        "current_pagesize_kib": current,
        "packing": draw(st.booleans()),
    }

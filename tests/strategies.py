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


# --- SR-IOV / PCI devices ------------------------------------------------------------------

PHYSNETS = ("physnet1", "physnet1", "physnet2", None)
PF_ADDRESSES = ("0000:81:00.0", "0000:82:00.0")


def _any_case(draw: st.DrawFn, text: str) -> str:
    """``text`` as given, upper-cased or capitalised (spec values compare case-insensitively)."""
    style: str = draw(st.sampled_from(["same", "same", "upper", "title"]))
    return {"same": text, "upper": text.upper(), "title": text.title()}[style]


@st.composite
def pci_devices(
    draw: st.DrawFn, cell_ids: list[int], max_devices: int = 10
) -> list[dict[str, Any]]:
    """VFs (under one of two PFs), PFs and whole PCI devices on the host's cells, on no node or
    (rarely) on a node that is no host cell; some allocated."""
    nodes: list[int | None] = [*cell_ids, None]
    devices = []
    for i in range(draw(st.integers(0, max_devices))):
        kind = draw(st.sampled_from(["type-VF", "type-VF", "type-VF", "type-PF", "type-PCI"]))
        node = max(cell_ids) + 1 if draw(st.integers(0, 9)) == 0 else draw(st.sampled_from(nodes))
        device: dict[str, Any] = {
            "vendor_id": draw(st.sampled_from(["8086", "15b3"])),
            "product_id": draw(st.sampled_from(["154c", "1572"])),
            "numa_node": node,
            "dev_type": kind,
            "physical_network": draw(st.sampled_from(PHYSNETS)),
            "status": draw(st.sampled_from(["available"] * 5 + ["allocated"])),
        }
        if kind == "type-VF":
            device["address"] = f"0000:83:{i // 8:02x}.{i % 8}"
            device["parent_addr"] = draw(st.sampled_from(PF_ADDRESSES))
        elif kind == "type-PF":
            device["address"] = f"0000:{0x90 + i:02x}:00.0"
        else:
            device["address"] = f"0000:{0xa0 + i:02x}:00.0"
        if draw(st.booleans()):
            del device["status"]  # the default: available
        devices.append(device)
    return devices


def _device_value(device: dict[str, Any], key: str) -> str | None:
    if key == "address":
        return str(device.get("parent_addr") or device["address"])
    value = device.get(key)
    return None if value is None else str(value)


@st.composite
def _alternative(draw: st.DrawFn, devices: list[dict[str, Any]],
                 addresses: list[str]) -> dict[str, str]:
    """1-2 attributes: most often those of one of the host's devices (so that requests often
    match something), else drawn from the values the generator uses."""
    keys = draw(st.lists(st.sampled_from(["physical_network", "physical_network", "vendor_id",
                                          "product_id", "dev_type", "address"]),
                         min_size=1, max_size=draw(st.sampled_from([1, 1, 2])), unique=True))
    model = draw(st.sampled_from(devices)) if devices and draw(st.integers(0, 2)) else None
    alt: dict[str, str] = {}
    for key in keys:
        value = None if model is None else _device_value(model, key)
        if value is None:
            value = {
                "physical_network": draw(st.sampled_from(["physnet1", "physnet2"])),
                "vendor_id": draw(st.sampled_from(["8086", "15b3"])),
                "product_id": draw(st.sampled_from(["154c", "1572"])),
                "dev_type": draw(st.sampled_from(["type-VF", "type-PF", "type-PCI"])),
                "address": draw(st.sampled_from(addresses)),
            }[key]
        alt[key] = value if key == "dev_type" else _any_case(draw, value)
    return alt


@st.composite
def pci_requests(draw: st.DrawFn, devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """0-3 requests of 1-3 devices, each spec 1-2 alternatives, a policy or none."""
    addresses = sorted({*PF_ADDRESSES, *(d["address"] for d in devices
                                         if d["dev_type"] != "type-VF")})
    requests = []
    for _ in range(draw(st.integers(0, 3))):
        spec = [draw(_alternative(devices, addresses))
                for _ in range(draw(st.sampled_from([1, 1, 2])))]
        request: dict[str, Any] = {"count": draw(st.sampled_from([1, 1, 1, 2, 3])),
                                   "spec": spec}
        policy = draw(st.sampled_from([None, None, "required", "legacy", "preferred", "socket"]))
        if policy:
            request["numa_policy"] = policy
        requests.append(request)
    return requests


@st.composite
def pci_fit_cases(draw: st.DrawFn, max_host_cells: int = 4) -> dict[str, Any]:
    """A fit case with PCI devices on the host, sockets on its cells sometimes, 0-3 PCI
    requests, a flavor/image PCI policy sometimes; now and then a guest without NUMA need."""
    case = draw(fit_cases(max_host_cells=max_host_cells))
    cells = case["host"]["cells"]
    ids = sorted(c["id"] for c in cells)
    sockets = draw(st.sampled_from(["all", "all", "some", "none"]))
    per_socket = draw(st.integers(1, 2))
    for c in cells:
        if sockets == "all" or (sockets == "some" and draw(st.booleans())):
            c["socket"] = c["id"] // per_socket
    devices = draw(pci_devices(ids))
    case["host"]["pci_devices"] = devices
    case["pci_requests"] = draw(pci_requests(devices))
    specs = case["flavor"]["extra_specs"]
    shape = draw(st.sampled_from(["as drawn", "small", "small", "no NUMA"]))
    if shape == "small":
        # a guest that most hosts can take, so that the devices decide more often
        nodes = draw(st.integers(1, min(2, len(cells))))
        case["flavor"].update(vcpus=nodes, memory_mib=256 * nodes)
        specs.clear()
        specs["hw:numa_nodes"] = str(nodes)
        specs["hw:cpu_policy"] = draw(st.sampled_from(["shared", "dedicated"]))
        case["limits"] = None
        case["current_pagesize_kib"] = None
    elif shape == "no NUMA":
        specs.clear()  # devices are not filtered by node
    where = draw(st.sampled_from(["none", "none", "flavor", "image", "both"]))
    policy = draw(st.sampled_from(["required", "legacy", "preferred", "socket"]))
    if where in ("flavor", "both"):
        specs["hw:pci_numa_affinity_policy"] = policy
    if where in ("image", "both"):
        case["image_properties"]["hw_pci_numa_affinity_policy"] = policy
    return case

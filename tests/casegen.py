"""Deterministic generator of fit cases (shared/formats/fit-case.md) for differential tests
and benchmarks: realistic hosts with usage, and guest requests covering every Nova knob.

``generate_cases(n, seed)`` is a mixed corpus (valid requests, near-full hosts, invalid
requests); ``worst_cases(seed)`` are the many-cell hosts where Nova's permutation search
explodes; ``generate_pci_cases(n, seed)`` adds SR-IOV / PCI devices and requests
(fit-case.md, "SR-IOV / PCI devices") and ``pci_coupled_cases(seed)`` are many-cell hosts
where the devices decide which set of host cells the guest may use. Run as a script to write
JSON Lines::

    python -m tests.casegen --cases 100 --seed 1 > cases.jsonl
    python -m tests.casegen --worst > worst.jsonl
    python -m tests.casegen --pci --cases 100 --seed 1 > pci-cases.jsonl
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


# --- SR-IOV / PCI -------------------------------------------------------------------------

NIC_VENDOR, NIC_PF, NIC_VF = "8086", "1572", "154c"
MLX_VENDOR, MLX_PF, MLX_VF = "15b3", "1017", "1018"
GPU_VENDOR, GPU_PRODUCT = "10de", "1eb8"
PHYSNETS = ("physnet1", "physnet2", "physnet3")
PCI_POLICIES = ("required", "socket", "legacy", "preferred")
BAD_PCI_POLICIES = ("strict", "Required", "none", "numa")


def _sockets(rng: random.Random, cells: list[dict[str, Any]]) -> None:
    """Give host cells their socket: usually all (1 or 2 cells per socket), sometimes none,
    sometimes all but one (a host Nova cannot apply the ``socket`` policy on)."""
    mode = rng.choices(["all", "none", "partial"], [0.75, 0.1, 0.15])[0]
    if mode == "none":
        return
    per_socket = rng.choice([1, 2, 2]) if len(cells) > 1 else 1
    for cell in cells:
        cell["socket"] = cell["id"] // per_socket
    if mode == "partial" and len(cells) > 1:
        del rng.choice(cells)["socket"]


def _device(address: str, vendor: str, product: str, node: int | None, *, dev_type: str,
            physnet: str | None = None, parent: str | None = None,
            allocated: bool = False) -> dict[str, Any]:
    return {"address": address, "vendor_id": vendor, "product_id": product, "numa_node": node,
            "dev_type": dev_type, "physical_network": physnet, "parent_addr": parent,
            "status": "allocated" if allocated else "available"}


def random_pci_devices(rng: random.Random, n_cells: int) -> list[dict[str, Any]]:
    """NICs (a PF with its VFs, the PF itself assignable sometimes) on various nodes, some
    reporting no node, with physnets; some VFs taken; sometimes a GPU (type-PCI)."""
    devices: list[dict[str, Any]] = []
    bus = 0x81
    busy = rng.random() < 0.3
    no_node = rng.random() < 0.2
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        node = None if no_node and rng.random() < 0.5 else rng.randrange(n_cells)
        physnet = rng.choice([*PHYSNETS[:2], PHYSNETS[0], PHYSNETS[2], None])
        vendor, pf_id, vf_id = (NIC_VENDOR, NIC_PF, NIC_VF) if rng.random() < 0.75 else (
            MLX_VENDOR, MLX_PF, MLX_VF)
        pf = f"0000:{bus:02x}:00.0"
        n_vfs = rng.choice([0, 1, 2, 2, 3, 4, 4, 6, 8, 16])
        taken = [busy and rng.random() < 0.4 for _ in range(n_vfs)]
        pf_whole = n_vfs == 0 or rng.random() < 0.3
        if pf_whole:
            # a PF in the device spec: assignable only while none of its VFs is taken
            pf_net = physnet if rng.random() < 0.5 else None
            pf_taken = any(taken) or (busy and rng.random() < 0.2)
            devices.append(_device(pf, vendor, pf_id, node, dev_type="type-PF", physnet=pf_net,
                                   allocated=pf_taken))
            if pf_taken and not any(taken):
                taken = [True] * n_vfs
        for i in range(n_vfs):
            address = f"0000:{bus:02x}:{2 + i // 8:02x}.{i % 8}"
            devices.append(_device(address, vendor, vf_id, node, dev_type="type-VF",
                                   physnet=physnet, parent=pf, allocated=taken[i]))
        bus += 1
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        node = None if no_node and rng.random() < 0.5 else rng.randrange(n_cells)
        devices.append(_device(f"0000:{bus:02x}:00.0", GPU_VENDOR, GPU_PRODUCT, node,
                               dev_type="type-PCI", allocated=busy and rng.random() < 0.4))
        bus += 1
    rng.shuffle(devices)
    return devices


def _spec_like(rng: random.Random, d: dict[str, Any]) -> list[dict[str, str]]:
    """A spec a device of the host matches (and often its PF or neighbours too)."""
    if d["dev_type"] == "type-PF":
        return [rng.choice([{"dev_type": "type-PF", "vendor_id": d["vendor_id"]},
                            {"dev_type": "type-PF", "address": d["address"]},
                            {"vendor_id": d["vendor_id"], "product_id": d["product_id"]}])]
    options: list[dict[str, str]] = [{"vendor_id": d["vendor_id"], "product_id": d["product_id"]},
                                     {"vendor_id": d["vendor_id"]}]
    if d["physical_network"]:
        options += [{"physical_network": d["physical_network"]}] * 2
        options.append({"vendor_id": d["vendor_id"], "physical_network": d["physical_network"]})
    if d["parent_addr"]:
        options.append({"address": d["parent_addr"]})
    return [rng.choice(options)]


def _pci_spec(rng: random.Random, devices: list[dict[str, Any]]) -> list[dict[str, str]]:
    if devices and rng.random() < 0.7:
        return _spec_like(rng, rng.choice(devices))
    pfs = [d["address"] for d in devices if d["dev_type"] == "type-PF"] or ["0000:81:00.0"]
    kind = rng.randrange(10)
    if kind == 0:
        return [{"vendor_id": NIC_VENDOR, "product_id": NIC_VF}]
    if kind == 1:
        return [{"vendor_id": NIC_VENDOR, "product_id": NIC_VF,
                 "physical_network": rng.choice(PHYSNETS)}]
    if kind == 2:
        return [{"dev_type": "type-PF", "vendor_id": rng.choice([NIC_VENDOR, MLX_VENDOR])}]
    if kind == 3:
        return [{"vendor_id": GPU_VENDOR, "product_id": GPU_PRODUCT}]
    if kind == 4:
        return [{"address": rng.choice(pfs)}]
    if kind == 5:
        return [{"physical_network": "physnet1"}, {"physical_network": "physnet2"}]
    if kind == 6:
        # any device of a vendor: PFs (when assignable) match the ids but not the request
        return [{"vendor_id": rng.choice([NIC_VENDOR, MLX_VENDOR])}]
    if kind == 7:
        return [{"vendor_id": MLX_VENDOR, "product_id": MLX_VF, "dev_type": "type-VF"}]
    return [{"physical_network": rng.choice(PHYSNETS)}]


def random_pci_requests(rng: random.Random, devices: list[dict[str, Any]],
                        ) -> list[dict[str, Any]]:
    out = []
    for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3])):
        req: dict[str, Any] = {"count": rng.choice([1, 1, 1, 1, 2, 2, 3]),
                               "spec": _pci_spec(rng, devices)}
        if rng.random() < 0.4:
            req["numa_policy"] = rng.choice(PCI_POLICIES)
        out.append(req)
    return out


def _pci_policy_keys(rng: random.Random, specs: dict[str, str], image: dict[str, str]) -> None:
    """The flavor's / image's PCI NUMA affinity policy: agreeing, conflicting or bad."""
    roll = rng.random()
    if roll < 0.25:
        specs["hw:pci_numa_affinity_policy"] = rng.choice(PCI_POLICIES)
    elif roll < 0.35:
        image["hw_pci_numa_affinity_policy"] = rng.choice(PCI_POLICIES)
    elif roll < 0.40:
        value = rng.choice(PCI_POLICIES)
        specs["hw:pci_numa_affinity_policy"] = value
        image["hw_pci_numa_affinity_policy"] = value
    elif roll < 0.43:
        specs["hw:pci_numa_affinity_policy"], image["hw_pci_numa_affinity_policy"] = (
            rng.sample(PCI_POLICIES, 2))  # ImagePCINUMAPolicyForbidden
    elif roll < 0.46:
        specs["hw:pci_numa_affinity_policy"] = rng.choice(BAD_PCI_POLICIES)
    elif roll < 0.48:
        image["hw_pci_numa_affinity_policy"] = rng.choice(BAD_PCI_POLICIES)  # ValueError


def _pf_trap(rng: random.Random, case: Case) -> None:
    """Where Nova counts PFs a request did not ask for: every host cell has an assignable PF
    and ``k`` of its VFs, and the guest asks for ``k + 1`` devices of the PF's vendor (which
    the PF matches, but may not serve) under ``legacy``, ``preferred`` or ``socket``, with
    spare VFs that report no NUMA node. Nova finds ``k + 1`` devices on the guest's cells,
    keeps only those, drops the PF and refuses; the devices with no node, or on the same
    socket, would serve the request."""
    k = rng.choice([0, 1, 1, 2])
    devices = []
    for cell in case["host"]["cells"]:
        bus = 0xc0 + cell["id"]
        pf = f"0000:{bus:02x}:00.0"
        physnet = rng.choice([None, "physnet1"])
        devices.append(_device(pf, NIC_VENDOR, NIC_PF, cell["id"], dev_type="type-PF",
                               physnet=physnet))
        devices += [_device(f"0000:{bus:02x}:02.{i}", NIC_VENDOR, NIC_VF, cell["id"],
                            dev_type="type-VF", physnet=physnet, parent=pf) for i in range(k)]
    devices += [_device(f"0000:e0:02.{i}", NIC_VENDOR, NIC_VF, None, dev_type="type-VF",
                        physnet="physnet1", parent="0000:e0:00.0")
                for i in range(rng.choice([0, 1, 2, 3]))]
    case["host"]["pci_devices"] = devices
    case["pci_requests"] = [{"count": k + 1, "spec": [{"vendor_id": NIC_VENDOR}],
                             "numa_policy": rng.choice(["legacy", "preferred", "socket"])}]


def _small_numa_request(rng: random.Random, nodes: int, host: dict[str, Any],
                        ) -> tuple[dict[str, Any], dict[str, str]]:
    """A small NUMA guest that usually has room (its CPU policy is one the host has CPUs
    for), so that its devices decide the fit."""
    specs = {"hw:numa_nodes": str(nodes)}
    dedicated = any(c["pcpuset"] for c in host["cells"])
    shared = any(c["cpuset"] for c in host["cells"])
    policy = rng.choice((["dedicated", "dedicated"] if dedicated else [])
                        + (["shared", "none"] if shared else []) or ["dedicated"])
    if policy != "none":
        specs["hw:cpu_policy"] = policy
    if rng.random() < 0.2:
        specs["hw:mem_page_size"] = rng.choice(["small", "large", "any"])
    flavor = {"vcpus": nodes * rng.choice([1, 1, 2, 2, 4]),
              "memory_mib": nodes * rng.choice([256, 512, 1024, 1024, 2048]),
              "extra_specs": specs}
    return flavor, {}


def generate_pci_cases(n: int, seed: int, *, min_host_cells: int = 1, max_host_cells: int = 4,
                       max_guest_nodes: int = 3, near_full: float = 0.2,
                       invalid_fraction: float = 0.05,
                       pf_trap_fraction: float = 0.04) -> list[Case]:
    """Hosts with PCI devices and sockets; guests with 0-3 PCI requests under every policy,
    with or without NUMA topology, and with the flavor/image policy keys (some bad); a few
    hosts where Nova's counting of unrequested PFs decides (:func:`_pf_trap`)."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        host = random_host(rng, min_host_cells, max_host_cells, near_full)
        _sockets(rng, host["cells"])
        host["pci_devices"] = random_pci_devices(rng, len(host["cells"]))
        nodes = rng.randint(1, min(max_guest_nodes, len(host["cells"])))
        if rng.random() < 0.3:
            flavor, image = random_request(rng, nodes)
        else:
            flavor, image = _small_numa_request(rng, nodes, host)
        if rng.random() < 0.15:
            # no NUMA topology at all: devices are not filtered by node
            flavor = {"vcpus": rng.choice([1, 2, 4]), "memory_mib": 1024, "extra_specs": {}}
            image = {}
        if rng.random() < invalid_fraction:
            _break(rng, flavor, image)
        _pci_policy_keys(rng, flavor["extra_specs"], image)
        case: Case = {
            "id": f"pci-{seed}-{i:05d}",
            "host": host,
            "flavor": flavor,
            "image_properties": image,
            "limits": None,
            "current_pagesize_kib": None,
            "packing": rng.random() < 0.3,
            "pci_requests": random_pci_requests(rng, host["pci_devices"]),
        }
        if rng.random() < 0.1:
            case["limits"] = {"cpu_allocation_ratio": 4.0, "ram_allocation_ratio": 1.5}
        if rng.random() < pf_trap_fraction:
            _pf_trap(rng, case)
        cases.append(case)
    return cases


def pci_coupled_cases(seed: int = 0) -> list[Case]:
    """Many-cell hosts where PCI couples the guest cells and decides the set of host cells.

    The guest needs one VF on physnet1 and one on physnet2 under ``required``; they sit on the
    two last cells, while the other cells hold more devices (physnet3 VFs the guest does not
    want), so Nova's host-cell order (cells with the most devices first) tries the wrong cells
    first and the fitter has to search over sets of host cells. ``*-fit``: the device cells
    can take a guest cell; ``*-nofit``: the physnet2 cell has no free core, so every set is
    refused (Nova walks every permutation)."""
    rng = random.Random(seed)
    cases = []
    for cells, nodes in ((4, 2), (8, 2), (8, 4), (12, 3)):
        for name in ("fit", "nofit"):
            dev_cells = [cells - 1, cells - 2]
            free = [8] * cells
            free[dev_cells[0]] = 2
            free[dev_cells[1]] = 2 if name == "fit" else 0
            host = _uniform_host(cells, 8, free)
            for c in host["cells"]:
                c["socket"] = c["id"] * 2 // cells
            devices = []
            for k, c in enumerate(dev_cells):
                pf = f"0000:{0x81 + k:02x}:00.0"
                devices += [_device(f"0000:{0x81 + k:02x}:02.{i}", NIC_VENDOR, NIC_VF, c,
                                    dev_type="type-VF", physnet=PHYSNETS[k], parent=pf)
                            for i in range(4)]
            for c in range(cells - 2):
                pf = f"0000:{0xa0 + c:02x}:00.0"
                devices += [_device(f"0000:{0xa0 + c:02x}:02.{i}", MLX_VENDOR, MLX_VF, c,
                                    dev_type="type-VF", physnet=PHYSNETS[2], parent=pf)
                            for i in range(8)]
            rng.shuffle(devices)
            host["pci_devices"] = devices
            flavor = {"vcpus": 2 * nodes, "memory_mib": nodes * 2048,
                      "extra_specs": {"hw:numa_nodes": str(nodes), "hw:cpu_policy": "dedicated",
                                      "hw:pci_numa_affinity_policy": "required"}}
            requests = [{"count": 1, "spec": [{"physical_network": PHYSNETS[0]}]},
                        {"count": 1, "spec": [{"physical_network": PHYSNETS[1]}]}]
            rng.shuffle(requests)
            cases.append({"id": f"pci-{cells}c-{nodes}n-{name}", "host": host,
                          "flavor": flavor, "image_properties": {}, "limits": None,
                          "current_pagesize_kib": None, "packing": False,
                          "pci_requests": requests})
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worst", action="store_true")
    parser.add_argument("--pci", action="store_true",
                        help="cases with SR-IOV / PCI devices and requests")
    parser.add_argument("--pci-coupled", action="store_true",
                        help="many-cell hosts where PCI decides the set of host cells")
    args = parser.parse_args()
    if args.pci_coupled:
        cases = pci_coupled_cases(args.seed)
    elif args.pci:
        cases = generate_pci_cases(args.cases, args.seed)
    elif args.worst:
        cases = worst_cases(args.seed)
    else:
        cases = generate_cases(args.cases, args.seed)
    for case in cases:
        sys.stdout.write(json.dumps(case) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

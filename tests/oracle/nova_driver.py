"""Nova 34 as a test oracle: answer fit cases (JSON Lines on stdin) with Nova's own code.

Runs only inside the oracle venv made by tests/oracle/setup_oracle.sh, never in the same
process as numa-migrate. For each case it builds Nova's objects (host NUMATopology, Flavor,
ImageMeta), calls ``numa_get_constraints`` and ``numa_fit_instance_to_host`` exactly as the
scheduler and the compute claim do, and prints one JSON line:

    {"id", "fits", "error_type", "error_message", "placement", "seconds", "timed_out"}

``seconds`` is the median over ``--repeat`` runs of the two Nova calls only (object
construction excluded). ``--timeout`` bounds one call (SIGALRM); a case that takes longer is
reported with ``timed_out: true``. A live-migration refit (``current_pagesize_kib``) is refused
when Nova's chosen page size differs from the current one, as Nova's move claim does.

PCI (shared/formats/fit-case.md, "SR-IOV / PCI devices"): host cells get their ``socket``; the
host's available ``pci_devices`` become ``objects.PciDevice`` objects added one by one to a
``nova.pci.stats.PciDeviceStats`` (Nova's own pooling, through a test-only device filter whose
device spec carries the device's ``physical_network`` tag), and the pools are then handed over
as the compute node reports them (``to_device_pools_obj``) to a fresh ``PciDeviceStats``, as the
scheduler's host state builds it. Each case request becomes an ``objects.InstancePCIRequest``
(its own ``numa_policy``, else the flavor's / image's from
``hardware.get_pci_numa_policy_constraint``, called after ``numa_get_constraints`` as Nova's API
does). A guest with NUMA topology goes through ``numa_fit_instance_to_host(..., pci_requests,
pci_stats)``; one without is answered by ``pci_stats.support_requests`` (the
PciPassthroughFilter), with no cells.

``--permutations`` answers a different question, used to explain disagreements: which
assignments of guest cells to host cells Nova accepts *one at a time*, free of its search's
fit-cache defect (bug 1978372). For each permutation of host cells (only the case's
``check_cells`` when it gives them), Nova's ``numa_fit_instance_to_host`` gets a host made of
exactly those cells in that order, so its first and only clean try is that assignment, with the
PCI stats of the whole host (sockets and devices of the other cells still count)::

    {"id", "error_type", "accepted": [[host cell id per guest cell], ...], "fits_any"}

A guest without NUMA topology gets ``accepted: [[]]`` when ``support_requests`` passes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import signal
import statistics
import sys
import time
import uuid
import warnings
from typing import Any

logging.disable(logging.CRITICAL)
warnings.simplefilter("ignore")

from nova import objects  # noqa: E402
from nova.conf import CONF  # noqa: E402
from nova.pci import stats as pci_stats_mod  # noqa: E402
from nova.virt import hardware  # noqa: E402

objects.register_all()


class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise _Timeout


def _host(raw: dict[str, Any]) -> Any:
    cells = []
    for c in raw["cells"]:
        cpus = set(c.get("cpuset", [])) | set(c.get("pcpuset", []))
        groups = [set(g) for g in c.get("siblings") or [] if g]
        covered = set().union(*groups) if groups else set()
        groups += [{cpu} for cpu in sorted(cpus - covered)]
        cells.append(objects.NUMACell(
            id=c["id"],
            cpuset=set(c.get("cpuset", [])),
            pcpuset=set(c.get("pcpuset", [])),
            memory=c["memory_mib"],
            cpu_usage=c.get("cpu_usage") or 0,
            memory_usage=c.get("memory_usage_mib") or 0,
            pinned_cpus=set(c.get("pinned_cpus") or []),
            siblings=groups,
            mempages=[objects.NUMAPagesTopology(
                size_kb=p["size_kib"], total=p["total"], used=p.get("used") or 0,
                reserved=p.get("reserved") or 0) for p in c.get("mempages") or []],
            network_metadata=objects.NetworkMetadata(physnets=set(), tunneled=False),
            socket=c.get("socket"),
        ))
    return objects.NUMATopology(cells=cells)


class _DevSpec:
    """What ``[pci] device_spec`` would give the device: its ``physical_network`` tag."""

    def __init__(self, tags: dict[str, str]) -> None:
        self._tags = tags

    def get_tags(self) -> dict[str, str]:
        return self._tags


class _DevFilter:
    """A test-only stand-in for Nova's ``Whitelist``: every case device is allowed, tagged with
    its physical network when it has one."""

    def __init__(self, physnets: dict[str, str | None]) -> None:
        self._physnets = physnets

    def get_devspec(self, dev: Any) -> _DevSpec:
        net = self._physnets.get(dev.address)
        return _DevSpec({"physical_network": net} if net is not None else {})


def _pci_stats(raw: dict[str, Any], host: Any) -> Any:
    """The host's PCI stats from its available devices, as the scheduler sees them."""
    devices = [d for d in raw.get("pci_devices") or []
               if d.get("status", "available") == "available"]
    dev_filter = _DevFilter({d["address"]: d.get("physical_network") for d in devices})
    compute = pci_stats_mod.PciDeviceStats(host, dev_filter=dev_filter)
    for d in devices:
        compute.add_device(objects.PciDevice(
            address=d["address"], vendor_id=d["vendor_id"], product_id=d["product_id"],
            numa_node=d.get("numa_node"), dev_type=d.get("dev_type", "type-VF"),
            parent_addr=d.get("parent_addr"), status="available", extra_info={}))
    return pci_stats_mod.PciDeviceStats(host, stats=compute.to_device_pools_obj(),
                                        dev_filter=dev_filter)


def _pci_requests(case: dict[str, Any], policy: str | None) -> list[Any]:
    out = []
    for index, r in enumerate(case.get("pci_requests") or []):
        req = objects.InstancePCIRequest(
            count=r["count"], spec=[dict(alt) for alt in r["spec"]],
            alias_name=r.get("name") or f"alias-{index}",
            request_id=str(uuid.UUID(int=index + 1)))
        chosen = r.get("numa_policy") or policy
        if chosen:
            req.numa_policy = chosen
        out.append(req)
    return out


def _limits(raw: dict[str, Any] | None) -> Any:
    if raw is None:
        return None
    return objects.NUMATopologyLimits(
        cpu_allocation_ratio=float(raw.get("cpu_allocation_ratio", 1.0)),
        ram_allocation_ratio=float(raw.get("ram_allocation_ratio", 1.0)))


def _placement(topology: Any) -> dict[str, Any]:
    cells = []
    emulator: set[int] = set()
    for index, cell in enumerate(topology.cells):
        pinning = cell.cpu_pinning if cell.obj_attr_is_set("cpu_pinning_raw") else None
        pagesize = cell.pagesize if cell.obj_attr_is_set("pagesize") else None
        if cell.obj_attr_is_set("cpuset_reserved") and cell.cpuset_reserved:
            emulator |= set(cell.cpuset_reserved)
        cells.append({
            "guest_cell": index,
            "host_cell": cell.id,
            "vcpus": sorted(set(cell.cpuset) | set(cell.pcpuset)),
            "memory_mib": cell.memory,
            "pagesize_kib": pagesize,
            "cpu_pinning": {str(k): v for k, v in sorted(pinning.items())}
            if pinning else None,
        })
    return {"cells": cells, "emulator_pins": sorted(emulator) if emulator else None}


def _run_once(case: dict[str, Any]) -> tuple[float, Any, Exception | None]:
    """Build the objects, then time Nova's two calls: (seconds, topology or None, error)."""
    host = _host(case["host"])
    flavor_raw = case["flavor"]
    flavor = objects.Flavor(vcpus=flavor_raw["vcpus"], memory_mb=flavor_raw["memory_mib"],
                            extra_specs=dict(flavor_raw.get("extra_specs") or {}),
                            name=flavor_raw.get("name", "flavor"))
    limits = _limits(case.get("limits"))
    has_pci = "pci_requests" in case or "pci_devices" in case["host"]
    stats = _pci_stats(case["host"], host) if has_pci else None
    start = time.perf_counter()
    try:
        # ImageMeta.from_dict is where Nova refuses unknown enum values (ValueError)
        image = objects.ImageMeta.from_dict(
            {"properties": dict(case.get("image_properties") or {})})
        constraints = hardware.numa_get_constraints(flavor, image)
        requests: list[Any] = []
        if has_pci:
            policy = hardware.get_pci_numa_policy_constraint(flavor, image)
            requests = _pci_requests(case, policy)
        fitted = None
        if constraints is not None:
            fitted = hardware.numa_fit_instance_to_host(
                host, constraints, None, limits=limits,
                pci_requests=requests or None, pci_stats=stats)
        elif requests and not stats.support_requests(requests, None):
            seconds = time.perf_counter() - start
            return seconds, None, None
    except _Timeout:
        raise
    except Exception as exc:  # Nova's own exception type is the answer
        return time.perf_counter() - start, None, exc
    seconds = time.perf_counter() - start
    return seconds, ("no-topology" if constraints is None else fitted), None


def answer(case: dict[str, Any], timeout_s: float, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {"id": case.get("id"), "fits": None, "error_type": None,
                           "error_message": None, "placement": None, "seconds": None,
                           "timed_out": False}
    CONF.set_override("packing_host_numa_cells_allocation_strategy",
                      bool(case.get("packing")), "compute")
    times = []
    result: Any = None
    error: Exception | None = None
    try:
        for _ in range(max(1, repeat)):
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            try:
                seconds, result, error = _run_once(case)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            times.append(seconds)
    except _Timeout:
        out["timed_out"] = True
        out["seconds"] = timeout_s
        return out
    out["seconds"] = statistics.median(times)
    if error is not None:
        out["error_type"] = type(error).__name__
        out["error_message"] = str(error)
        return out
    if result == "no-topology":
        out["fits"] = True
        out["placement"] = {"cells": [], "emulator_pins": None}
        return out
    if result is None:
        out["fits"] = False
        return out
    placement = _placement(result)
    current = case.get("current_pagesize_kib")
    if current is not None and any(c["pagesize_kib"] != current for c in placement["cells"]):
        out["fits"] = False  # the move claim refuses a different page size
        return out
    out["fits"] = True
    out["placement"] = placement
    return out


def permutations(case: dict[str, Any]) -> dict[str, Any]:
    """The assignments Nova accepts one at a time (see the module docstring)."""
    out: dict[str, Any] = {"id": case.get("id"), "error_type": None, "accepted": [],
                           "fits_any": False}
    CONF.set_override("packing_host_numa_cells_allocation_strategy",
                      bool(case.get("packing")), "compute")
    host = _host(case["host"])
    stats = _pci_stats(case["host"], host)
    flavor_raw = case["flavor"]
    limits = _limits(case.get("limits"))
    current = case.get("current_pagesize_kib")

    def constraints_and_requests() -> tuple[Any, list[Any]]:
        flavor = objects.Flavor(vcpus=flavor_raw["vcpus"], memory_mb=flavor_raw["memory_mib"],
                                extra_specs=dict(flavor_raw.get("extra_specs") or {}),
                                name=flavor_raw.get("name", "flavor"))
        image = objects.ImageMeta.from_dict(
            {"properties": dict(case.get("image_properties") or {})})
        constraints = hardware.numa_get_constraints(flavor, image)
        policy = hardware.get_pci_numa_policy_constraint(flavor, image)
        return constraints, _pci_requests(case, policy)

    try:
        constraints, requests = constraints_and_requests()
    except Exception as exc:  # Nova's own exception type is the answer
        out["error_type"] = type(exc).__name__
        return out
    if constraints is None:
        if not requests or stats.support_requests(requests, None):
            out["accepted"] = [[]]
    else:
        by_id = {c.id: c for c in host.cells}
        wanted = case.get("check_cells")
        perms = ([tuple(by_id[i] for i in wanted)] if wanted is not None
                 else itertools.permutations(host.cells, len(constraints.cells)))
        for perm in perms:
            constraints, requests = constraints_and_requests()
            sub = objects.NUMATopology(cells=list(perm))
            fitted = hardware.numa_fit_instance_to_host(
                sub, constraints, None, limits=limits, pci_requests=requests or None,
                pci_stats=stats)
            ids = [c.id for c in perm]
            if fitted is None or [c.id for c in fitted.cells] != ids:
                continue
            if current is not None and any(
                    c.pagesize != current for c in fitted.cells):
                continue
            out["accepted"].append(ids)
    out["fits_any"] = bool(out["accepted"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--permutations", action="store_true",
                        help="the assignments Nova accepts one at a time")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        result = permutations(case) if args.permutations else answer(
            case, args.timeout, args.repeat)
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

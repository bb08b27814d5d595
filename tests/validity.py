"""An independent judge of fit answers, written from the fit-case format and Nova's documented
semantics, sharing no code with numa_migrate.core.fit.

- ``violations(case, answer)`` lists every way a placement breaks the rules.
- ``exhaustive_fits(case)`` decides feasibility by trying every assignment of guest cells to
  host cells (all permutations, no cache) with a per-cell feasibility predicate, and, when the
  case has ``pci_requests``, PCI support of the assignment's set of host cells.
- ``pci_support(case, cells)`` decides whether host cells ``cells`` (None: a guest without NUMA
  topology) can serve the case's ``pci_requests`` ("SR-IOV / PCI devices" in the format), from
  the JSON devices one by one (no code shared with numa_migrate.core.model.pcidev or
  numa_migrate.core.fit.pcifit).

Both read the host straight from the case JSON; the guest's cells (which vCPUs and how much
memory per guest cell, which vCPUs are dedicated) come from the request rules, which the
differential tests check against Nova separately.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from numa_migrate.core.model.guest import GuestRequest, PageSizeKind, ThreadPolicy
from numa_migrate.core.request import Flavor, guest_from_flavor


@dataclass
class Cell:
    id: int
    cpuset: set[int]
    pcpuset: set[int]
    groups: list[set[int]]
    memory: int
    memory_usage: int
    cpu_usage: int
    pinned: set[int]
    pages: dict[int, tuple[int, int, int]]  # size_kib -> (total, used, reserved)

    @property
    def free(self) -> set[int]:
        return self.pcpuset - self.pinned

    @property
    def tpc(self) -> int:
        return max((len(g) for g in self.groups), default=1)

    def core(self, cpu: int) -> set[int]:
        return next((g for g in self.groups if cpu in g), {cpu})

    def free_pages(self, size: int) -> int:
        total, used, reserved = self.pages[size]
        return total - used - reserved


def read_cells(case: dict[str, Any]) -> list[Cell]:
    cells = []
    for raw in case["host"]["cells"]:
        cpus = set(raw.get("cpuset", [])) | set(raw.get("pcpuset", []))
        groups = [set(g) for g in raw.get("siblings") or [] if g]
        covered = set().union(*groups) if groups else set()
        groups += [{c} for c in sorted(cpus - covered)]
        cells.append(
            Cell(
                id=raw["id"],
                cpuset=set(raw.get("cpuset", [])),
                pcpuset=set(raw.get("pcpuset", [])),
                groups=groups,
                memory=raw["memory_mib"],
                memory_usage=raw.get("memory_usage_mib", 0),
                cpu_usage=raw.get("cpu_usage", 0),
                pinned=set(raw.get("pinned_cpus", [])),
                pages={
                    p["size_kib"]: (p["total"], p.get("used", 0), p.get("reserved", 0))
                    for p in raw.get("mempages") or []
                },
            )
        )
    return cells


def request_of(case: dict[str, Any]) -> GuestRequest | None:
    f = case["flavor"]
    flavor = Flavor(f["vcpus"], f["memory_mib"], f.get("extra_specs", {}))
    return guest_from_flavor(flavor, case.get("image_properties") or {}).numa


def _allowed_page_sizes(case: dict[str, Any], req: GuestRequest, cell: Cell) -> list[int]:
    sizes = sorted(cell.pages)
    current = case.get("current_pagesize_kib")
    assert req.page_size is not None
    if current is not None:
        return [current]
    kind = req.page_size.kind
    if kind is PageSizeKind.SMALL:
        return sizes[:1]
    if kind is PageSizeKind.LARGE:
        return sizes[1:]
    if kind is PageSizeKind.ANY:
        return sizes
    return [req.page_size.size_kib]  # type: ignore[list-item]


def memory_ok(
    case: dict[str, Any], req: GuestRequest, gmem: int, cell: Cell, pagesize: int | None
) -> bool:
    need_kib = gmem * 1024
    if req.page_size is not None:
        if pagesize not in _allowed_page_sizes(case, req, cell) or pagesize not in cell.pages:
            return False
        return need_kib % pagesize == 0 and need_kib <= cell.free_pages(pagesize) * pagesize
    if pagesize is not None:
        return False
    if cell.pages:
        smallest = min(cell.pages)
        total, _, _ = cell.pages[smallest]
        have = cell.free_pages(smallest) * smallest if req.pinned else total * smallest
        return need_kib <= have and need_kib % smallest == 0
    return gmem <= (cell.memory - cell.memory_usage if req.pinned else cell.memory)


def shared_ok(
    case: dict[str, Any], req: GuestRequest, n_shared: int, gmem: int, cell: Cell
) -> bool:
    if req.cpu_policy not in (None, "shared", "mixed"):
        return True
    if n_shared > len(cell.cpuset):
        return False
    limits = case.get("limits")
    if limits:
        cpu_ratio = limits.get("cpu_allocation_ratio", 1.0)
        ram_ratio = limits.get("ram_allocation_ratio", 1.0)
        if cell.cpu_usage + n_shared > len(cell.cpuset) * cpu_ratio:
            return False
        if cell.memory_usage + gmem > cell.memory * ram_ratio:
            return False
    return True


def _free_sibling_pair(cell: Cell) -> bool:
    """Whether some core of the cell has 2 free dedicated threads."""
    return any(len(g & cell.free) >= 2 for g in cell.groups)


def _thread_policy_ok(req: GuestRequest, cell: Cell, pcpus: list[int]) -> str | None:
    policy = req.thread_policy
    if policy is ThreadPolicy.ISOLATE:
        if cell.tpc > 1 and cell.pcpuset != cell.cpuset:
            return "isolate on an SMT host with cpu_dedicated_set"
        cores = [frozenset(cell.core(p)) for p in pcpus]
        if len(set(cores)) != len(cores):
            return "isolate: two vCPUs share a core"
        for core in cores:
            if len(core & cell.free) < cell.tpc:
                return f"isolate: core {sorted(core)} is not wholly free"
    if policy is ThreadPolicy.REQUIRE:
        if cell.tpc < 2:
            return "require on a host without SMT"
        if not pcpus and not _free_sibling_pair(cell):
            return "require: no core with 2 free threads for a cell without dedicated vCPUs"
        per_core: dict[frozenset[int], int] = {}
        for p in pcpus:
            core = frozenset(cell.core(p))
            per_core[core] = per_core.get(core, 0) + 1
        counts = sorted(per_core.values(), reverse=True)
        width = counts[0] if counts else 2
        if len(counts) > 1 and (width < 2 or any(c != width for c in counts[:-1])):
            return f"require: vCPUs per core {counts} are not packed on siblings"
    return None


def violations(case: dict[str, Any], answer: dict[str, Any]) -> list[str]:
    """Every rule the answer's placement breaks (empty list: valid)."""
    req = request_of(case)
    out: list[str] = []
    cells = {c.id: c for c in read_cells(case)}
    if req is None:
        if answer["cells"] != []:
            return ["a guest without NUMA need got cells"]
        return _pci_violations(case, None)
    placed = answer["cells"]
    if [c["guest_cell"] for c in placed] != list(range(len(req.cells))):
        return [f"guest cells {[c['guest_cell'] for c in placed]} are not 0..{len(req.cells) - 1}"]
    hosts = [c["host_cell"] for c in placed]
    if len(set(hosts)) != len(hosts):
        out.append(f"two guest cells on one host cell: {hosts}")
    all_pins: list[int] = []
    for gcell, pc in zip(req.cells, placed, strict=True):
        cell = cells.get(pc["host_cell"])
        if cell is None:
            out.append(f"unknown host cell {pc['host_cell']}")
            continue
        if set(pc["vcpus"]) != set(gcell.vcpus) or pc["memory_mib"] != gcell.memory_mib:
            out.append(f"guest cell {gcell.index}: vcpus/memory differ from the request")
        if not memory_ok(case, req, gcell.memory_mib, cell, pc["pagesize_kib"]):
            out.append(
                f"guest cell {gcell.index}: memory/page size does not fit host cell "
                f"{cell.id} (pagesize {pc['pagesize_kib']})"
            )
        if not shared_ok(case, req, len(gcell.shared_vcpus), gcell.memory_mib, cell):
            out.append(f"guest cell {gcell.index}: shared CPUs / limits exceeded on {cell.id}")
        pins = {int(k): v for k, v in (pc["cpu_pinning"] or {}).items()}
        if set(pins) != set(gcell.dedicated_vcpus):
            out.append(
                f"guest cell {gcell.index}: pinned vCPUs {sorted(pins)} != dedicated "
                f"{sorted(gcell.dedicated_vcpus)}"
            )
        bad = [p for p in pins.values() if p not in cell.free]
        if bad:
            out.append(
                f"guest cell {gcell.index}: pins {bad} not free dedicated CPUs of "
                f"host cell {cell.id}"
            )
        all_pins += list(pins.values())
        problem = _thread_policy_ok(req, cell, list(pins.values()))
        if problem:
            out.append(f"guest cell {gcell.index}: {problem}")
    if len(set(all_pins)) != len(all_pins):
        out.append("a host CPU is pinned twice")
    emu = answer.get("emulator_pins")
    if req.emulator_isolated:
        if not emu or len(emu) != 1:
            out.append(f"isolated emulator threads need exactly one CPU, got {emu}")
        else:
            home = cells[placed[0]["host_cell"]]
            (e,) = emu
            if e not in home.free or e in all_pins:
                out.append(f"emulator CPU {e} is not a spare free CPU of guest cell 0's host")
            if req.thread_policy is ThreadPolicy.ISOLATE and any(
                e in home.core(p) for p in all_pins
            ):
                out.append(f"emulator CPU {e} is a sibling of an isolated vCPU")
    elif emu:
        out.append(f"emulator pins {emu} without emulator isolation")
    return out + _pci_violations(case, hosts)


def _dedicated_feasible(req: GuestRequest, cell: Cell, n: int, reserve: int) -> bool:
    free = cell.free
    if n + reserve > len(cell.pcpuset) or n + reserve > len(free):
        return False
    if n == 0:
        if reserve or req.thread_policy is ThreadPolicy.ISOLATE:
            return False
        # a mixed guest cell with no dedicated vCPU: require still needs a core with 2 free
        # threads (fit-case.md, "Semantics worth knowing")
        return req.thread_policy is not ThreadPolicy.REQUIRE or _free_sibling_pair(cell)
    groups = [g & free for g in cell.groups if g & free]
    if req.thread_policy is ThreadPolicy.ISOLATE:
        if cell.tpc > 1 and cell.pcpuset != cell.cpuset:
            return False
        whole = [g for g in groups if len(g) == cell.tpc]
        if len(whole) < n:
            return False
        # any n whole cores will do; the emulator CPU needs one free CPU outside them
        return not reserve or sum(len(g) for g in groups) - n * cell.tpc >= 1
    if req.thread_policy is ThreadPolicy.REQUIRE:
        if cell.tpc < 2:
            return False
        return any(
            t * sum(1 for g in groups if len(g) >= t) >= n
            for t in range(2, max(len(g) for g in groups) + 1)
        )
    return True


def cell_feasible(case: dict[str, Any], req: GuestRequest, g: int, cell: Cell) -> bool:
    gcell = req.cells[g]
    sizes: list[int | None] = (
        [None]
        if req.page_size is None
        else list(cell.pages)
        + ([case["current_pagesize_kib"]] if case.get("current_pagesize_kib") else [])
    )
    if not any(memory_ok(case, req, gcell.memory_mib, cell, s) for s in sizes):
        return False
    if not shared_ok(case, req, len(gcell.shared_vcpus), gcell.memory_mib, cell):
        return False
    if not req.pinned:
        return True
    reserve = 1 if (g == 0 and req.emulator_isolated) else 0
    return _dedicated_feasible(req, cell, len(gcell.dedicated_vcpus), reserve)


def exhaustive_fits(case: dict[str, Any]) -> bool | None:
    """Feasibility by brute force over every injective guest-cell -> host-cell assignment.

    With ``pci_requests`` the assignment's host cells must also serve them
    (:func:`pci_support`). None only then: no assignment serves them whatever devices earlier
    requests take, but some would for some choice (which the format leaves open).
    """
    req = request_of(case)
    wants_pci = bool(case.get("pci_requests"))
    if req is None:
        return pci_support(case, None) if wants_pci else True
    cells = read_cells(case)
    ok = [[cell_feasible(case, req, g, c) for c in cells] for g in range(len(req.cells))]
    verdicts: dict[frozenset[int], bool | None] = {}
    for perm in itertools.permutations(range(len(cells)), len(req.cells)):
        if not all(ok[g][h] for g, h in enumerate(perm)):
            continue
        if not wants_pci:
            return True
        ids = frozenset(cells[h].id for h in perm)
        if ids not in verdicts:
            verdicts[ids] = pci_support(case, ids)
        if verdicts[ids] is True:
            return True
    return None if None in verdicts.values() else False


# --- PCI devices ("SR-IOV / PCI devices" in shared/formats/fit-case.md) -------------------
#
# Each request is served in order from the devices the earlier ones left. Its devices come
# from "tiers", nearest first: the guest's host cells; then, by policy, devices with no NUMA
# node (legacy, preferred), devices on another cell of the same socket(s) (socket, only when
# every host cell names its socket), any other device (preferred). A request takes every
# device of a tier before it looks at the next one. Within the tier where it completes, the
# format does not say which devices it takes, so every choice is tried: the answer is True
# when every choice serves all requests, False when none does, None when it depends.

_PCI_ADDRESS = re.compile(r"\s*([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-9a-fA-F]+)\s*")


def _pci_address(text: object) -> str:
    """dddd:bb:ss.f in lower case (leading zeros optional in the input)."""
    m = _PCI_ADDRESS.fullmatch(str(text))
    if m is None:
        return str(text).lower()
    d, b, s, f = (int(x, 16) for x in m.groups())
    return f"{d:04x}:{b:02x}:{s:02x}.{f:x}"


def pci_policy(case: dict[str, Any], request: dict[str, Any]) -> str:
    """The request's numa_policy, else the flavor's, else the image's, else legacy."""
    specs = case["flavor"].get("extra_specs") or {}
    image = case.get("image_properties") or {}
    for value in (request.get("numa_policy"), specs.get("hw:pci_numa_affinity_policy"),
                  image.get("hw_pci_numa_affinity_policy")):
        if value:
            return str(value)
    return "legacy"


def _device_value(device: dict[str, Any], key: str) -> str | None:
    """What a spec's ``key`` is compared with: a VF's ``address`` is its PF's."""
    if key == "address":
        return _pci_address(device.get("parent_addr") or device["address"])
    if key == "dev_type":
        return str(device.get("dev_type") or "type-VF").lower()
    value = device.get(key)
    return None if value is None else str(value).lower()


def _spec_value(key: str, value: object) -> str:
    return _pci_address(value) if key == "address" else str(value).lower()


def device_matches(device: dict[str, Any], request: dict[str, Any]) -> bool:
    """Whether a free device may serve the request, NUMA aside: it matches one alternative
    of the spec, and is a PF only when the spec asks for PFs."""
    if device.get("status", "available") == "allocated":
        return False
    spec = request["spec"]
    wants_pf = any(str(alt.get("dev_type", "")).lower() == "type-pf" for alt in spec)
    if str(device.get("dev_type") or "type-VF") == "type-PF" and not wants_pf:
        return False
    return any(
        all(_device_value(device, k) == _spec_value(k, v) for k, v in alt.items())
        for alt in spec
    )


def _tier(case: dict[str, Any], policy: str, cells: frozenset[int] | None,
          node: int | None) -> int | None:
    """How near a device on NUMA node ``node`` is for a request (0 nearest; None: unusable)."""
    if cells is None or (node is not None and node in cells):
        return 0
    if policy == "legacy":
        return 1 if node is None else None
    if policy == "preferred":
        return 1 if node is None else 2
    if policy == "socket":
        host_cells = case["host"]["cells"]
        if node is None or any(c.get("socket") is None for c in host_cells):
            return None
        sockets = {c["socket"] for c in host_cells if c["id"] in cells}
        same = {c["id"] for c in host_cells if c["socket"] in sockets}
        return 1 if node in same else None
    return None  # required


def _distributions(need: int, have: list[int]) -> Iterable[tuple[int, ...]]:
    """Every way to take ``need`` devices from groups holding ``have`` devices each."""
    if not have:
        if need == 0:
            yield ()
        return
    for n in range(min(need, have[0]) + 1):
        for rest in _distributions(need - n, have[1:]):
            yield (n, *rest)


def pci_support(case: dict[str, Any], cells: Iterable[int] | None) -> bool | None:
    """Whether host cells ``cells`` (None: no NUMA topology) serve every PCI request: True
    whatever devices earlier requests take, False whatever they take, None when it depends."""
    requests = case.get("pci_requests") or []
    chosen = None if cells is None else frozenset(cells)
    devices = case["host"].get("pci_devices") or []
    policies = [pci_policy(case, r) for r in requests]
    # Devices alike for every request (same tier for each, or unusable) are interchangeable:
    # group them and count, so a choice is how many to take from each group.
    groups: dict[tuple[int | None, ...], int] = {}
    for device in devices:
        key = tuple(
            _tier(case, policy, chosen, device.get("numa_node"))
            if device_matches(device, request) else None
            for request, policy in zip(requests, policies, strict=True)
        )
        groups[key] = groups.get(key, 0) + 1
    kinds = list(groups)
    memo: dict[tuple[int, tuple[int, ...]], frozenset[bool]] = {}

    def serve(i: int, left: tuple[int, ...]) -> frozenset[bool]:
        if i == len(requests):
            return frozenset([True])
        if (i, left) in memo:
            return memo[(i, left)]
        need = requests[i]["count"]
        rest = list(left)
        outcomes: set[bool] = set()
        tiers = sorted({k[i] for k in kinds if k[i] is not None})
        # the nearest tier alone when it is enough; otherwise the nearest tiers together that
        # are, any devices among them (the format leaves open which ones a request takes)
        for tier in tiers:
            here = [j for j, k in enumerate(kinds)
                    if k[i] is not None and k[i] <= tier and rest[j]]
            have = sum(rest[j] for j in here)
            if have < need:
                continue
            for take in _distributions(need, [rest[j] for j in here]):
                after = list(rest)
                for j, n in zip(here, take, strict=True):
                    after[j] -= n
                outcomes |= serve(i + 1, tuple(after))
                if len(outcomes) == 2:
                    break
            break
        else:
            outcomes.add(False)
        memo[(i, left)] = frozenset(outcomes)
        return memo[(i, left)]

    result = serve(0, tuple(groups[k] for k in kinds))
    return None if len(result) == 2 else (True in result)


def _pci_violations(case: dict[str, Any], hosts: list[int] | None) -> list[str]:
    """A fitting answer's host cells must be able to serve the PCI requests."""
    if not case.get("pci_requests"):
        return []
    if pci_support(case, hosts) is False:
        where = "anywhere (no NUMA topology)" if hosts is None else f"on host cells {hosts}"
        return [f"the PCI requests cannot be served {where}"]
    return []

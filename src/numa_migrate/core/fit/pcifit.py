"""Serve a guest's PCI requests from a host's free devices, given the host cells it runs on.

The rules are Nova 34's PCI stats (``support_requests``), per request and in request order,
each request served from what the earlier ones left:

- a device matches a request when it matches one alternative of the spec; a PF only when the
  spec asks for ``dev_type: type-PF``; an allocated device never;
- ``required``: devices on the guest's host cells only;
- ``legacy``: those, and when they are not enough also devices that report no NUMA node;
- ``preferred``: like ``legacy``, and when that is not enough any matching device;
- ``socket``: the guest's cells, and when they are not enough devices on any cell of the same
  socket(s) — only when every host cell names its socket;
- with no host cells given (a guest without NUMA topology) devices are not filtered by node.

Devices are grouped into pools of interchangeable devices (same ids, type, network, PF and
node), so the cost of one check grows with the number of pools, not of VFs. Which devices a
request takes matters to the requests after it, so they are taken as Nova takes them: from the
pools its policy allows, in Nova's pool order — pools with fewer attributes first (a plain PCI
device; then a VF or PF, or a device with a physical network; then a VF or PF with one), in the
order the host lists the devices otherwise — except that ``preferred``, when the guest's cells
and the devices with no node are not enough, takes those first and then the rest.

One deliberate difference from Nova: Nova counts PFs the request did not ask for when it
decides whether the devices on the guest's cells are "enough" (and then drops them), so it can
refuse a ``legacy``/``preferred``/``socket`` request that devices with no node, or on the same
socket, would serve. Here unrequested PFs are never counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from numa_migrate.core.model.pcidev import DevType, PciDevice, PciNumaPolicy, PciRequest

__all__ = ["PciPools", "PciServed", "PciShort"]


@dataclass(frozen=True, slots=True)
class PciShort:
    """Why request ``index`` cannot be served on host cells ``cells``."""

    index: int
    request: PciRequest
    policy: PciNumaPolicy
    cells: frozenset[int] | None
    matching: int
    """Free devices matching the spec anywhere on the host (after earlier requests)."""
    on_cells: int
    no_node: int
    same_socket: int | None
    """On the chosen cells' sockets (``socket`` policy; None when a cell has no socket)."""
    per_node: tuple[tuple[int | None, int], ...]
    """Free matching devices per NUMA node (None: no node reported)."""

    @property
    def usable(self) -> int:
        """How many the policy could use: what is short is ``request.count - usable``."""
        if self.cells is None:
            return self.matching
        if self.policy is PciNumaPolicy.REQUIRED:
            return self.on_cells
        if self.policy is PciNumaPolicy.SOCKET:
            return max(self.on_cells, self.same_socket or 0)
        if self.policy is PciNumaPolicy.LEGACY:
            return self.on_cells + self.no_node
        return self.matching

    def where(self) -> str:
        """Where the policy looks for devices, in words."""
        if self.cells is None:
            return "anywhere on the host"
        cells = ",".join(str(c) for c in sorted(self.cells))
        here = f"on host cell(s) {cells}"
        if self.policy is PciNumaPolicy.REQUIRED:
            return here
        if self.policy is PciNumaPolicy.SOCKET:
            if self.same_socket is None:
                return f"{here} (a host cell names no socket)"
            return f"{here} or their socket(s)"
        if self.policy is PciNumaPolicy.LEGACY:
            return f"{here} or with no NUMA node"
        return "anywhere on the host"

    def message(self) -> str:
        r = self.request
        label = f"PCI request {self.index + 1}" + (f" ({r.name})" if r.name else "")
        nodes = ", ".join(
            f"{'no node' if n is None else f'node {n}'}: {c}" for n, c in self.per_node
        ) or "none"
        return (
            f"{label} needs {r.describe()} {self.where()} ({self.policy.value}); "
            f"{self.usable} free there (free matching devices: {nodes})"
        )


@dataclass(frozen=True, slots=True)
class PciServed:
    """Devices taken per request (addresses, in request order)."""

    taken: tuple[tuple[str, ...], ...]


@dataclass
class _Pool:
    device: PciDevice
    """A representative: every device of the pool has its ids, type, network, PF and node."""
    addresses: list[str]


def _pool_key(d: PciDevice) -> tuple[object, ...]:
    return (d.vendor_id.lower(), d.product_id.lower(), d.dev_type, d.physical_network,
            d.attribute("address"), d.numa_node)


def _attributes(d: PciDevice) -> int:
    """How many attributes Nova's pool for ``d`` has beyond the common ones: its pools are
    kept sorted by that (a stable sort), and a request takes from them in that order."""
    return int(d.physical_network is not None) + int(d.dev_type is not DevType.PCI)


class PciPools:
    """A host's free devices grouped into pools; built once per host, read by every check."""

    def __init__(self, devices: Iterable[PciDevice],
                 sockets: Mapping[int, int | None] | None = None) -> None:
        pools: dict[tuple[object, ...], _Pool] = {}
        for d in devices:
            if d.allocated:
                continue
            key = _pool_key(d)
            pool = pools.get(key)
            if pool is None:
                pools[key] = _Pool(d, [d.address])
            else:
                pool.addresses.append(d.address)
        self.pools: tuple[_Pool, ...] = tuple(sorted(pools.values(),
                                                    key=lambda p: _attributes(p.device)))
        self.sockets: dict[int, int | None] = dict(sockets or {})

    def free_per_node(self) -> dict[int | None, int]:
        """Free devices (any type) per NUMA node: Nova's host-cell order puts cells with more
        first when the guest asks for PCI devices."""
        out: dict[int | None, int] = {}
        for p in self.pools:
            out[p.device.numa_node] = out.get(p.device.numa_node, 0) + len(p.addresses)
        return out

    def node_counts(self, request: PciRequest) -> dict[int | None, int]:
        """Free devices matching ``request`` per NUMA node (no earlier request served)."""
        out: dict[int | None, int] = {}
        for p in self.pools:
            if request.matches(p.device):
                out[p.device.numa_node] = out.get(p.device.numa_node, 0) + len(p.addresses)
        return out

    def serve(
        self, requests: Sequence[PciRequest], cells: frozenset[int] | None
    ) -> PciServed | PciShort:
        """Serve every request on the guest's host ``cells`` (None: no NUMA filtering)."""
        left = [len(p.addresses) for p in self.pools]
        taken: list[tuple[str, ...]] = []
        for index, request in enumerate(requests):
            order = self._eligible(request, cells, left)
            if isinstance(order, PciShort):
                return replace(order, index=index)
            need = request.count
            got: list[str] = []
            for i in order:
                n = min(need, left[i])
                start = len(self.pools[i].addresses) - left[i]
                got.extend(self.pools[i].addresses[start:start + n])
                left[i] -= n
                need -= n
                if need == 0:
                    break
            taken.append(tuple(got))
        return PciServed(tuple(taken))

    def _socket_nodes(self, cells: frozenset[int]) -> frozenset[int] | None:
        if not self.sockets or any(s is None for s in self.sockets.values()):
            return None
        wanted = {self.sockets.get(c) for c in cells}
        return frozenset(c for c, s in self.sockets.items() if s in wanted)

    def _eligible(
        self, request: PciRequest, cells: frozenset[int] | None, left: list[int]
    ) -> list[int] | PciShort:
        """Pool positions the request may take from, in the order it takes them; or why it is
        short."""
        policy = request.policy
        matching = [i for i, p in enumerate(self.pools) if left[i] and request.matches(p.device)]
        total = sum(left[i] for i in matching)
        if cells is None:
            if total >= request.count:
                return matching
            return self._short(request, cells, matching, left, (0, 0, None))
        on = [i for i in matching if self.pools[i].device.numa_node in cells]
        no_node = [i for i in matching if self.pools[i].device.numa_node is None]
        n_on = sum(left[i] for i in on)
        n_none = sum(left[i] for i in no_node)
        if n_on >= request.count:
            return on
        socket_nodes = self._socket_nodes(cells) if policy is PciNumaPolicy.SOCKET else None
        same = [i for i in matching if self.pools[i].device.numa_node in (socket_nodes or ())]
        n_same = sum(left[i] for i in same) if socket_nodes is not None else None
        if policy is PciNumaPolicy.SOCKET and n_same is not None and n_same >= request.count:
            return same
        near = [i for i in matching
                if self.pools[i].device.numa_node is None or self.pools[i].device.numa_node
                in cells]
        if policy is PciNumaPolicy.LEGACY and n_on + n_none >= request.count:
            return near
        if policy is PciNumaPolicy.PREFERRED and total >= request.count:
            return near + [i for i in matching if i not in near]
        return self._short(request, cells, matching, left, (n_on, n_none, n_same))

    def _short(self, request: PciRequest, cells: frozenset[int] | None, matching: list[int],
               left: list[int], near: tuple[int, int, int | None]) -> PciShort:
        """``near``: free matching devices on the cells, with no node, on their sockets."""
        per_node: dict[int | None, int] = {}
        for i in matching:
            node = self.pools[i].device.numa_node
            per_node[node] = per_node.get(node, 0) + left[i]
        ordered = tuple(sorted(per_node.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))
        return PciShort(0, request, request.policy, cells, sum(left[i] for i in matching),
                        *near, ordered)

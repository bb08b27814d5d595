"""Fleet snapshots: one self-contained JSON file holding a whole fleet, written here.

A snapshot is what ``numa-migrate fleet snapshot`` writes, from a fleet read live
(``--hosts``) or from a fleet file; every command that takes ``--fleet`` reads it back
(:mod:`numa_migrate.adapters.snapshotload`), for planning away from production and for bug
reports. Format version 1:

- ``format`` ("numa-migrate fleet snapshot", first), ``version`` (1), ``taken_at`` (UTC,
  ISO 8601), ``taken_from`` (the inventory or fleet file), ``numa_migrate`` (the version
  that wrote it) and ``notes`` (what the live read left out or approximated);
- ``hosts``: each with ``name``, ``uri`` (null when not read live), either
  ``capabilities_xml`` (the XML itself, inline) with ``cpu_dedicated_set`` /
  ``cpu_shared_set`` (CPU lists or null) and ``reserved_huge_pages``, or ``topology``
  (``cells`` in the fit-case host format, for a host that came with no XML); its
  ``pci_devices`` (fit-case format, ``status`` allocated for those held by anything but the
  guests listed); ``other_usage`` per cell (what is used by anything but the guests listed:
  domains that could not be modelled, other operators' claims, pages the kernel says are
  used); and its ``guests``;
- each guest: ``name``, ``uuid``, ``vcpus``, ``memory_mib``, ``numa`` (its NUMA request:
  ``cells`` with ``shared_vcpus`` / ``dedicated_vcpus`` CPU lists and ``memory_mib``,
  ``cpu_policy``, ``thread_policy``, ``emulator_policy``, ``page_size`` ("small", "large",
  "any" or a size in KiB) and ``realtime_vcpus``; null: no NUMA need), ``pci_requests``
  (fit-case format), ``placement`` (as ``fit --json`` prints one) and ``pci_devices`` (the
  addresses it holds); ``request_name`` when the request has a name of its own (a
  flavor's).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from numa_migrate import __version__
from numa_migrate.adapters.casefmt import placement_to_json
from numa_migrate.adapters.fleet import Fleet, HostInputs, PlacedGuest
from numa_migrate.adapters.wholefile import write_whole
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.drain.hosts import remove_guest
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.guest import GuestRequest, PageSizeKind
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.pcidev import PciDevice, PciRequest
from numa_migrate.inputs.fields import one_line

__all__ = ["SNAPSHOT_FORMAT", "SNAPSHOT_VERSION", "snapshot_doc", "write_snapshot"]

SNAPSHOT_FORMAT = "numa-migrate fleet snapshot"
SNAPSHOT_VERSION = 1


def _cpus(cpus: frozenset[int] | None) -> str | None:
    return None if cpus is None else CpuSet.of(cpus).format()


def _request(request: GuestRequest) -> dict[str, object]:
    page: object = None
    if request.page_size is not None:
        page = (request.page_size.size_kib if request.page_size.kind is PageSizeKind.EXPLICIT
                else request.page_size.kind.value)
        if isinstance(page, float) and page.is_integer():
            page = int(page)
    return {
        "cells": [{"shared_vcpus": _cpus(c.shared_vcpus), "dedicated_vcpus":
                   _cpus(c.dedicated_vcpus), "memory_mib": c.memory_mib}
                  for c in request.cells],
        "cpu_policy": None if request.cpu_policy is None else request.cpu_policy.value,
        "thread_policy": None if request.thread_policy is None else request.thread_policy.value,
        "emulator_policy": None if request.emulator_policy is None
        else request.emulator_policy.value,
        "page_size": page,
        "realtime_vcpus": _cpus(request.realtime_vcpus),
    }


def pci_request_json(request: PciRequest) -> dict[str, object]:
    return {
        "count": request.count,
        "spec": [dict(alternative) for alternative in request.spec],
        "numa_policy": None if request.numa_policy is None else request.numa_policy.value,
        "name": request.name,
    }


def pci_device_json(device: PciDevice) -> dict[str, object]:
    return {
        "address": device.address,
        "vendor_id": device.vendor_id,
        "product_id": device.product_id,
        "numa_node": device.numa_node,
        "dev_type": device.dev_type.value,
        "physical_network": device.physical_network,
        "parent_addr": device.parent_addr,
        "status": "allocated" if device.allocated else "available",
    }


def _guest(placed: PlacedGuest) -> dict[str, object]:
    guest = placed.guest
    named = {} if guest.name == placed.name else {"request_name": guest.name}
    return {
        "name": placed.name,
        **named,
        "uuid": placed.uuid,
        "vcpus": guest.vcpus,
        "memory_mib": guest.memory_mib,
        "numa": None if guest.numa is None else _request(guest.numa),
        "pci_requests": [pci_request_json(r) for r in guest.pci_requests],
        "placement": placement_to_json(placed.placement),
        "pci_devices": list(placed.pci_devices),
    }


def _usage(cell: HostCell) -> dict[str, object] | None:
    pages = [{"size_kib": p.size_kib, "count": p.used} for p in cell.mempages if p.used]
    if not (cell.pinned_cpus or cell.cpu_usage or cell.memory_usage_mib or pages):
        return None
    return {"cell": cell.id, "pinned_cpus": _cpus(cell.pinned_cpus),
            "shared_vcpus": cell.cpu_usage, "memory_mib": cell.memory_usage_mib,
            "pages": pages}


def _topology(host: HostTopology) -> dict[str, object]:
    return {"cells": [
        {"id": c.id, "cpuset": sorted(c.cpuset), "pcpuset": sorted(c.pcpuset),
         "memory_mib": c.memory_mib, "siblings": [sorted(g) for g in c.siblings],
         "mempages": [{"size_kib": p.size_kib, "total": p.total, "reserved": p.reserved}
                      for p in c.mempages],
         "socket": c.socket}
        for c in host.cells]}


def _host(host: HostTopology, guests: tuple[PlacedGuest, ...],
          inputs: HostInputs | None) -> dict[str, object]:
    other = host
    for placed in reversed(guests):
        other = remove_guest(other, placed.guest, placed.placement, placed.pci_devices)
    doc: dict[str, object] = {"name": host.name,
                              "uri": None if inputs is None else inputs.uri}
    if inputs is not None:
        doc |= {
            "capabilities_xml": inputs.capabilities_xml,
            "cpu_dedicated_set": _cpus(inputs.cpu_dedicated_set),
            "cpu_shared_set": _cpus(inputs.cpu_shared_set),
            "reserved_huge_pages": [{"node": n, "size_kib": s, "count": c}
                                    for n, s, c in inputs.reserved_huge_pages],
        }
    else:
        doc["topology"] = _topology(host)
    doc["pci_devices"] = [pci_device_json(d) for d in other.pci_devices]
    doc["other_usage"] = [u for u in (_usage(c) for c in other.cells) if u is not None]
    doc["guests"] = [_guest(g) for g in guests]
    return doc


def snapshot_doc(fleet: Fleet, *, taken_at: datetime | None = None) -> dict[str, object]:
    """The snapshot of ``fleet`` as a JSON-ready document."""
    inputs = {i.name: i for i in fleet.inputs}
    when = (taken_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    by_host: dict[str, list[PlacedGuest]] = {h.name: [] for h in fleet.hosts}
    for placed in fleet.guests:
        by_host[placed.host].append(placed)
    return {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "taken_at": when.isoformat().replace("+00:00", "Z"),
        "taken_from": one_line(fleet.source),
        "numa_migrate": __version__,
        "notes": [one_line(n) for n in fleet.notes],
        "left_out": [{"host": o.host, "name": o.name, "reason": one_line(o.reason)}
                     for o in fleet.left_out],
        "hosts": [_host(h, tuple(by_host[h.name]), inputs.get(h.name)) for h in fleet.hosts],
    }


class SnapshotWriteError(NumaMigrateError):
    """The snapshot file could not be written (the message names it and why)."""


def write_snapshot(fleet: Fleet, path: Path, *, taken_at: datetime | None = None) -> int:
    """Write the snapshot of ``fleet`` to ``path`` (atomically); returns its size in bytes."""
    doc = snapshot_doc(fleet, taken_at=taken_at)
    hosts = doc.pop("hosts")
    assert isinstance(hosts, list)
    # the head indented, then one host per line (json's C encoder: indenting every
    # nested value takes its pure-Python one, 5x slower on a big fleet)
    head = json.dumps(doc, indent=1).removesuffix("\n}")
    body = ",\n".join(f"  {json.dumps(h)}" for h in hosts)
    text = f'{head},\n "hosts": [\n{body}\n ]\n}}\n' if hosts else f'{head},\n "hosts": []\n}}\n'
    data = text.encode("utf-8")
    try:
        write_whole(path, data, mode=0o644)
    except OSError as exc:
        raise SnapshotWriteError(f"{path}: cannot write the snapshot: "
                                 f"{exc.strerror or exc}") from None
    return len(data)

"""The PCI search over sets of host cells on hosts too large to try every set."""

from __future__ import annotations

import time

from numa_migrate.core.fit.fitter import MAX_PCI_CELL_SETS, fit_request
from numa_migrate.core.fit.reasons import Code
from numa_migrate.core.model.guest import CPUPolicy, GuestCell, GuestRequest
from numa_migrate.core.model.host import HostCell, HostTopology
from numa_migrate.core.model.pcidev import DevType, PciDevice, PciNumaPolicy, PciRequest


def host(cells: int, device_cells: range) -> HostTopology:
    cell_list = tuple(
        HostCell(id=i, cpuset=frozenset(), pcpuset=frozenset({2 * i, 2 * i + 1}),
                 memory_mib=4096)
        for i in range(cells))
    devices = tuple(
        PciDevice(f"0000:{c:02x}:02.0", "8086", "154c", c, DevType.VF, "physnet1",
                  f"0000:{c:02x}:00.0")
        for c in device_cells)
    return HostTopology("big", cell_list, pci_devices=devices)


def guest(cells: int) -> GuestRequest:
    return GuestRequest(
        tuple(GuestCell(i, frozenset(), frozenset({i}), 256) for i in range(cells)),
        cpu_policy=CPUPolicy.DEDICATED)


def ports(count: int) -> tuple[PciRequest, ...]:
    return (PciRequest(count, ((("physical_network", "physnet1"),),), PciNumaPolicy.REQUIRED),)


def test_a_64_cell_host_finds_the_only_cells_with_devices() -> None:
    big = host(64, range(60, 64))
    start = time.perf_counter()
    result = fit_request(big, guest(4), pci_requests=ports(4))
    elapsed = time.perf_counter() - start
    assert result.placement is not None
    assert sorted(c.host_cell for c in result.placement.cells) == [60, 61, 62, 63]
    assert result.pci is not None and len(result.pci.taken[0]) == 4
    assert elapsed < 1.0  # one set tried, not the 20 000 of the bound


def test_beyond_the_bound_a_refusal_says_the_search_stopped() -> None:
    # 5 devices on 5 different cells, the guest has 4 cells and needs 5 on its own cells:
    # impossible, and too many sets to prove it by trying them all
    result = fit_request(host(64, range(59, 64)), guest(4), pci_requests=ports(5))
    assert result.placement is None
    assert any(r.code is Code.PCI_DEVICES_SHORT for r in result.reasons)
    assert f"of {635376}: the search stopped at its bound" in result.summary
    assert MAX_PCI_CELL_SETS < 635376


def test_a_small_host_is_searched_completely_in_novas_order() -> None:
    result = fit_request(host(4, range(3, 4)), guest(2), pci_requests=ports(1))
    assert result.placement is not None
    assert 3 in {c.host_cell for c in result.placement.cells}
    refused = fit_request(host(4, range(3, 4)), guest(2), pci_requests=ports(2))
    assert refused.placement is None
    assert "nor does any other choice of 2 host cells" in refused.summary

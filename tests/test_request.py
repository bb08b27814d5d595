"""Request rules: what Nova accepts, how it shapes guest cells, and each refusal's type."""

from __future__ import annotations

import pytest

from numa_migrate.core.errors import InvalidRequestError
from numa_migrate.core.model.guest import CPUPolicy, EmulatorPolicy, PageSizeKind, ThreadPolicy
from numa_migrate.core.request import Flavor, guest_from_flavor


def guest(vcpus: int = 4, ram: int = 4096, image: dict[str, object] | None = None,
          **specs: str):
    keys = {k.replace("__", ":").replace("_dot_", "."): v for k, v in specs.items()}
    return guest_from_flavor(Flavor(vcpus, ram, keys), image or {})


def test_no_numa_need_gives_no_topology() -> None:
    assert guest().numa is None
    assert guest(hw__cpu_policy="shared").numa is None


def test_auto_cells_split_cpus_and_memory_evenly() -> None:
    numa = guest(8, 8192, hw__numa_nodes="2").numa
    assert numa is not None
    assert [sorted(c.vcpus) for c in numa.cells] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [c.memory_mib for c in numa.cells] == [4096, 4096]
    assert numa.cpu_policy is None


def test_manual_asymmetric_cells() -> None:
    numa = guest(6, 6144, hw__numa_nodes="2", hw__numa_cpus_dot_0="0-1",
                 hw__numa_cpus_dot_1="2-5", hw__numa_mem_dot_0="2048",
                 hw__numa_mem_dot_1="4096", hw__cpu_policy="dedicated").numa
    assert numa is not None
    assert [sorted(c.dedicated_vcpus) for c in numa.cells] == [[0, 1], [2, 3, 4, 5]]
    assert [c.memory_mib for c in numa.cells] == [2048, 4096]


def test_dedicated_implies_one_cell() -> None:
    numa = guest(hw__cpu_policy="dedicated").numa
    assert numa is not None and len(numa.cells) == 1
    assert numa.cpu_policy is CPUPolicy.DEDICATED
    assert numa.cells[0].dedicated_vcpus == frozenset(range(4))


def test_mixed_mask_with_exclusion() -> None:
    numa = guest(hw__cpu_policy="mixed", hw__cpu_dedicated_mask="^0").numa
    assert numa is not None
    assert numa.cells[0].dedicated_vcpus == {1, 2, 3}
    assert numa.cells[0].shared_vcpus == {0}


def test_mixed_from_realtime_mask() -> None:
    numa = guest(hw__cpu_policy="mixed", hw__cpu_realtime="yes",
                 hw__cpu_realtime_mask="^0-1").numa
    assert numa is not None and numa.cells[0].dedicated_vcpus == {2, 3}


@pytest.mark.parametrize(("value", "kind", "size"), [
    ("small", PageSizeKind.SMALL, None), ("large", PageSizeKind.LARGE, None),
    ("any", PageSizeKind.ANY, None), ("2048", PageSizeKind.EXPLICIT, 2048),
    ("2MB", PageSizeKind.EXPLICIT, 2048), ("1GB", PageSizeKind.EXPLICIT, 1048576),
    ("1GiB", PageSizeKind.EXPLICIT, 1048576), ("2048KB", PageSizeKind.EXPLICIT, 2048),
])
def test_page_sizes(value: str, kind: PageSizeKind, size: int | None) -> None:
    numa = guest(hw__mem_page_size=value).numa
    assert numa is not None and numa.page_size is not None
    assert numa.page_size.kind is kind and numa.page_size.size_kib == size


def test_image_may_choose_page_size_when_flavor_says_large() -> None:
    numa = guest(hw__mem_page_size="large", image={"hw_mem_page_size": "2048"}).numa
    assert numa is not None and numa.page_size is not None
    assert numa.page_size.size_kib == 2048


def test_policies_from_image() -> None:
    numa = guest(image={"hw_cpu_policy": "dedicated", "hw_cpu_thread_policy": "require"}).numa
    assert numa is not None
    assert numa.cpu_policy is CPUPolicy.DEDICATED and numa.thread_policy is ThreadPolicy.REQUIRE


def test_hyperthreading_trait_means_isolate() -> None:
    numa = guest(hw__cpu_policy="dedicated", trait__HW_CPU_HYPERTHREADING="forbidden").numa
    assert numa is not None and numa.thread_policy is ThreadPolicy.ISOLATE


def test_emulator_isolate() -> None:
    numa = guest(hw__cpu_policy="dedicated", hw__emulator_threads_policy="isolate").numa
    assert numa is not None and numa.emulator_policy is EmulatorPolicy.ISOLATE


REFUSALS = [
    ({"hw:numa_nodes": "0"}, {}, "InvalidNUMANodesNumber", "hw:numa_nodes"),
    ({"hw:numa_nodes": "two"}, {}, "InvalidNUMANodesNumber", "whole number"),
    ({"hw:numa_nodes": "3"}, {}, "ImageNUMATopologyAsymmetric", "divide"),
    ({"hw:numa_nodes": "2", "hw:numa_cpus.0": "0-1", "hw:numa_cpus.1": "2-3"}, {},
     "ImageNUMATopologyIncomplete", "hw:numa_mem"),
    ({"hw:numa_nodes": "2", "hw:numa_cpus.0": "0-1", "hw:numa_mem.0": "4096",
      "hw:numa_cpus.1": "2-3"}, {}, "ImageNUMATopologyIncomplete", "2 guest cells"),
    ({"hw:numa_nodes": "2", "hw:numa_cpus.0": "0-1", "hw:numa_cpus.1": "2-7",
      "hw:numa_mem.0": "2048", "hw:numa_mem.1": "2048"}, {},
     "ImageNUMATopologyCPUOutOfRange", "vCPU 4"),
    ({"hw:numa_nodes": "2", "hw:numa_cpus.0": "0-2", "hw:numa_cpus.1": "2-3",
      "hw:numa_mem.0": "2048", "hw:numa_mem.1": "2048"}, {},
     "ImageNUMATopologyCPUDuplicates", "vCPU 2"),
    ({"hw:numa_nodes": "2", "hw:numa_cpus.0": "0", "hw:numa_cpus.1": "1-2",
      "hw:numa_mem.0": "2048", "hw:numa_mem.1": "2048"}, {},
     "ImageNUMATopologyCPUsUnassigned", "3"),
    ({"hw:numa_nodes": "2", "hw:numa_cpus.0": "0-1", "hw:numa_cpus.1": "2-3",
      "hw:numa_mem.0": "1024", "hw:numa_mem.1": "2048"}, {},
     "ImageNUMATopologyMemoryOutOfRange", "3072"),
    ({"hw:numa_nodes": "2"}, {"hw_numa_nodes": 2}, "ImageNUMATopologyForbidden",
     "hw_numa_nodes"),
    ({"hw:cpu_policy": "fast"}, {}, "InvalidCPUAllocationPolicy", "shared, dedicated, mixed"),
    ({"hw:cpu_policy": "shared"}, {"hw_cpu_policy": "dedicated"}, "ImageCPUPinningForbidden",
     "hw_cpu_policy"),
    ({}, {"hw_cpu_policy": "fast"}, "ValueError", "hw_cpu_policy"),
    ({"hw:cpu_policy": "dedicated", "hw:cpu_thread_policy": "never"}, {},
     "InvalidCPUThreadAllocationPolicy", "prefer, isolate, require"),
    ({"hw:cpu_policy": "dedicated", "hw:cpu_thread_policy": "isolate"},
     {"hw_cpu_thread_policy": "require"}, "ImageCPUThreadPolicyForbidden", "conflicts"),
    ({"hw:cpu_thread_policy": "isolate"}, {}, "CPUThreadPolicyConfigurationInvalid",
     "dedicated or mixed"),
    ({"hw:emulator_threads_policy": "isolate"}, {}, "BadRequirementEmulatorThreadsPolicy",
     "dedicated or mixed"),
    ({"hw:cpu_policy": "dedicated", "hw:emulator_threads_policy": "separate"}, {},
     "InvalidEmulatorThreadsPolicy", "share, isolate"),
    ({"hw:cpu_policy": "mixed"}, {}, "RequiredMixedOrRealtimeCPUMask",
     "hw:cpu_dedicated_mask"),
    ({"hw:cpu_policy": "dedicated", "hw:cpu_dedicated_mask": "0"}, {},
     "RequiredMixedInstancePolicy", "mixed"),
    ({"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "0-3"}, {},
     "InvalidMixedInstanceDedicatedMask", "at least one"),
    ({"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "0,9"}, {},
     "InvalidMixedInstanceDedicatedMask", "9"),
    ({"hw:cpu_realtime": "yes"}, {}, "RealtimeMaskNotFoundOrInvalid", "hw:cpu_realtime_mask"),
    ({"hw:cpu_realtime": "yes", "hw:cpu_realtime_mask": "^0"}, {},
     "RealtimeConfigurationInvalid", "dedicated or mixed"),
    ({"hw:mem_page_size": "huge"}, {}, "MemoryPageSizeInvalid", "small, large, any"),
    ({}, {"hw_mem_page_size": "2048"}, "MemoryPageSizeForbidden", "large or any"),
    ({"hw:mem_page_size": "small"}, {"hw_mem_page_size": "2048"}, "MemoryPageSizeForbidden",
     "hw:mem_page_size=small"),
    ({"hw:cpu_policy": "dedicated", "resources:PCPU": "4"}, {}, "InvalidRequest",
     "hw:cpu_policy"),
    ({"hw:numa_nodes": "2", "hw:numa_cpus.0": "0-x"}, {}, "Invalid", "hw:numa_cpus.0"),
]


@pytest.mark.parametrize(("specs", "image", "nova_type", "mentions"), REFUSALS)
def test_refusals(specs: dict[str, str], image: dict[str, object], nova_type: str,
                  mentions: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        guest_from_flavor(Flavor(4, 4096, specs), image)
    assert info.value.nova_type == nova_type
    assert mentions in info.value.message

"""Guest requests from Nova flavor extra specs and image properties, with Nova's rules.

:func:`guest_from_flavor` accepts and refuses exactly what Nova 34's ``numa_get_constraints``
(and the image-property model in front of it) accepts and refuses, and raises
:class:`InvalidRequestError` whose ``nova_type`` is the Nova exception class for the same
request. The messages are ours: they name the key and the allowed values.

PCI requests come from elsewhere (a fit case's ``pci_requests``, a domain's hostdevs); here
their NUMA affinity policy is read from ``hw:pci_numa_affinity_policy`` /
``hw_pci_numa_affinity_policy`` with Nova's rules, after the NUMA constraints (Nova's order),
and given to the requests that name none.

Not modelled: vPMEM (``hw:pmem``), locked memory and memory encryption, which never change
the NUMA fit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from numa_migrate.core import novaopts
from numa_migrate.core.cpuset import CpuBoundError, CpuSet
from numa_migrate.core.errors import InvalidRequestError, ParseError
from numa_migrate.core.limits import MAX_GUEST_CELLS, MAX_GUEST_VCPUS, MAX_MEMORY_MIB
from numa_migrate.core.model.guest import (
    CPUPolicy,
    EmulatorPolicy,
    Guest,
    GuestCell,
    GuestRequest,
    PageSizeKind,
    PageSizeRequest,
    ThreadPolicy,
)
from numa_migrate.core.model.pcidev import PciNumaPolicy, PciRequest

NUMA_NODES_MAX = MAX_GUEST_CELLS
_POLICIES = tuple(p.value for p in CPUPolicy)
_THREAD_POLICIES = tuple(p.value for p in ThreadPolicy)
_EMULATOR_POLICIES = tuple(p.value for p in EmulatorPolicy)
_PCI_POLICIES = tuple(p.value for p in PciNumaPolicy)
_TRUE_STRINGS = ("1", "t", "true", "on", "y", "yes")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Flavor:
    vcpus: int
    memory_mib: int
    extra_specs: Mapping[str, str]
    name: str = "flavor"


# --- image properties: the typed model Nova builds before any rule runs --------------------


@dataclass(frozen=True, slots=True)
class ImageProps:
    """The NUMA-relevant image properties, typed as Nova's ``ImageMetaProps`` types them."""

    cpu_policy: str | None = None
    cpu_thread_policy: str | None = None
    cpu_realtime_mask: str | None = None
    mem_page_size: str | None = None
    numa_nodes: int | None = None
    numa_cpus: tuple[frozenset[int], ...] | None = None
    numa_mem: tuple[int, ...] | None = None
    traits_required: tuple[str, ...] = ()
    pci_numa_affinity_policy: str | None = None


def _image_value_error(key: str, value: object, allowed: str) -> InvalidRequestError:
    return InvalidRequestError(
        "ValueError", f"image property {key}={value!r} is invalid: {allowed}", key=key
    )


def _image_int(key: str, value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        raise _image_value_error(key, value, "expected an integer") from None


def _image_enum(key: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _image_value_error(key, value, f"allowed values: {', '.join(allowed)}")
    return str(value)


def _indexed(
    props: Mapping[str, object], prefix: str, conv: Callable[[str, object], T]
) -> tuple[T, ...] | None:
    out: list[T] = []
    for cell in range(NUMA_NODES_MAX):
        key = f"{prefix}.{cell}"
        if key not in props:
            break
        out.append(conv(key, props[key]))
    return tuple(out) or None


def _cpu_spec_or_invalid(
    key: str, value: object, *, out_of_range: str = "ImageNUMATopologyCPUOutOfRange"
) -> frozenset[int]:
    """A vCPU list; ids are bounded by the largest guest (``out_of_range`` is the Nova
    error type for an id beyond it, ``Invalid`` for a list Nova cannot read)."""
    try:
        return CpuSet.parse(str(value), field=key, bound=MAX_GUEST_VCPUS)
    except CpuBoundError as exc:
        raise InvalidRequestError(
            out_of_range, f"{exc} (a guest has at most {MAX_GUEST_VCPUS} vCPUs)", key=key
        ) from None
    except ParseError as exc:
        raise InvalidRequestError("Invalid", str(exc), key=key) from None


def image_props_from_dict(props: Mapping[str, object]) -> ImageProps:
    """Type the image properties; a value the image model refuses raises ``ValueError``-type."""
    if not props:
        return _EMPTY_IMAGE
    return ImageProps(
        cpu_policy=_image_enum("hw_cpu_policy", props["hw_cpu_policy"], _POLICIES)
        if "hw_cpu_policy" in props
        else None,
        cpu_thread_policy=_image_enum(
            "hw_cpu_thread_policy", props["hw_cpu_thread_policy"], _THREAD_POLICIES
        )
        if "hw_cpu_thread_policy" in props
        else None,
        cpu_realtime_mask=str(props["hw_cpu_realtime_mask"])
        if "hw_cpu_realtime_mask" in props
        else None,
        mem_page_size=str(props["hw_mem_page_size"]) if "hw_mem_page_size" in props else None,
        numa_nodes=_image_int("hw_numa_nodes", props["hw_numa_nodes"])
        if "hw_numa_nodes" in props
        else None,
        numa_cpus=_indexed(props, "hw_numa_cpus", _cpu_spec_or_invalid),
        numa_mem=_indexed(props, "hw_numa_mem", _image_int),
        pci_numa_affinity_policy=_image_enum(
            "hw_pci_numa_affinity_policy", props["hw_pci_numa_affinity_policy"], _PCI_POLICIES
        )
        if "hw_pci_numa_affinity_policy" in props
        else None,
        traits_required=tuple(
            k[len("trait:") :]
            for k, v in props.items()
            if k.startswith("trait:") and str(v) == "required"
        ),
    )


_EMPTY_IMAGE = ImageProps()


# --- individual constraints, in the order Nova evaluates them ------------------------------


def _cpu_policy(flavor: Flavor, image: ImageProps) -> CPUPolicy | None:
    fval = flavor.extra_specs.get("hw:cpu_policy")
    ival = image.cpu_policy
    if fval and fval not in _POLICIES:
        raise InvalidRequestError(
            "InvalidCPUAllocationPolicy",
            f"hw:cpu_policy={fval!r} is not a CPU policy; allowed: {', '.join(_POLICIES)}",
            key="hw:cpu_policy",
        )
    if fval in (CPUPolicy.MIXED, CPUPolicy.SHARED):
        forbidden = (
            (CPUPolicy.DEDICATED,)
            if fval == CPUPolicy.MIXED
            else (CPUPolicy.MIXED, CPUPolicy.DEDICATED)
        )
        if ival in forbidden:
            raise InvalidRequestError(
                "ImageCPUPinningForbidden",
                f"image property hw_cpu_policy={ival} is not allowed: the flavor sets "
                f"hw:cpu_policy={fval}; remove one of them",
                key="hw_cpu_policy",
            )
    if fval:
        return CPUPolicy(fval)
    return CPUPolicy(ival) if ival else None


def _thread_policy(flavor: Flavor, image: ImageProps) -> ThreadPolicy | None:
    fval = flavor.extra_specs.get("hw:cpu_thread_policy")
    ival = image.cpu_thread_policy
    if fval and fval not in _THREAD_POLICIES:
        raise InvalidRequestError(
            "InvalidCPUThreadAllocationPolicy",
            f"hw:cpu_thread_policy={fval!r} is not a thread policy; allowed: "
            f"{', '.join(_THREAD_POLICIES)}",
            key="hw:cpu_thread_policy",
        )
    if fval in (None, ThreadPolicy.PREFER):
        chosen = fval or ival
    elif ival and ival != fval:
        raise InvalidRequestError(
            "ImageCPUThreadPolicyForbidden",
            f"image property hw_cpu_thread_policy={ival} conflicts with the flavor's "
            f"hw:cpu_thread_policy={fval}; the image may only narrow 'prefer'",
            key="hw_cpu_thread_policy",
        )
    else:
        chosen = fval
    return ThreadPolicy(chosen) if chosen else None


def _emulator_policy(flavor: Flavor) -> EmulatorPolicy | None:
    val = flavor.extra_specs.get("hw:emulator_threads_policy")
    if not val:
        return None
    if val not in _EMULATOR_POLICIES:
        raise InvalidRequestError(
            "InvalidEmulatorThreadsPolicy",
            f"hw:emulator_threads_policy={val!r} is not valid; allowed: "
            f"{', '.join(_EMULATOR_POLICIES)}",
            key="hw:emulator_threads_policy",
        )
    return EmulatorPolicy(val)


def _mask(spec: str, vcpus: int, key: str, out_of_range: str) -> frozenset[int]:
    """A vCPU mask; one starting with '^' excludes from all vCPUs."""
    text = f"0-{vcpus - 1},{spec}" if spec.strip().startswith("^") else spec
    return _cpu_spec_or_invalid(key, text, out_of_range=out_of_range)


def _realtime_vcpus(flavor: Flavor, image: ImageProps) -> frozenset[int] | None:
    if str(flavor.extra_specs.get("hw:cpu_realtime", "")).strip().lower() not in _TRUE_STRINGS:
        return None
    mask = image.cpu_realtime_mask or flavor.extra_specs.get("hw:cpu_realtime_mask")
    key = "hw_cpu_realtime_mask" if image.cpu_realtime_mask else "hw:cpu_realtime_mask"
    all_vcpus = frozenset(range(flavor.vcpus))
    rt = _mask(mask, flavor.vcpus, key, "RealtimeMaskNotFoundOrInvalid") if mask else all_vcpus
    if not rt:
        raise InvalidRequestError(
            "RealtimeMaskNotFoundOrInvalid",
            f"{key}={mask!r} leaves no realtime vCPU; give e.g. '^0' (all but vCPU 0)",
            key=key,
        )
    if rt == all_vcpus and not _emulator_policy(flavor):
        raise InvalidRequestError(
            "RealtimeMaskNotFoundOrInvalid",
            "hw:cpu_realtime needs hw:cpu_realtime_mask to leave at least one vCPU "
            "non-realtime (e.g. '^0'), or hw:emulator_threads_policy to be set",
            key="hw:cpu_realtime_mask",
        )
    if not rt <= all_vcpus:
        raise InvalidRequestError(
            "RealtimeMaskNotFoundOrInvalid",
            f"{key}={mask!r} names vCPUs {CpuSet.of(rt - all_vcpus)} but the flavor "
            f"has vCPUs 0-{flavor.vcpus - 1}",
            key=key,
        )
    return rt


def _dedicated_mask(flavor: Flavor) -> frozenset[int] | None:
    spec = flavor.extra_specs.get("hw:cpu_dedicated_mask")
    if not spec:
        return None
    pcpus = _mask(spec, flavor.vcpus, "hw:cpu_dedicated_mask", "InvalidMixedInstanceDedicatedMask")
    all_vcpus = frozenset(range(flavor.vcpus))
    if not pcpus or not (all_vcpus - pcpus):
        raise InvalidRequestError(
            "InvalidMixedInstanceDedicatedMask",
            f"hw:cpu_dedicated_mask={spec!r} must leave at least one dedicated and one "
            f"shared vCPU among 0-{flavor.vcpus - 1}",
            key="hw:cpu_dedicated_mask",
        )
    if not pcpus <= all_vcpus:
        raise InvalidRequestError(
            "InvalidMixedInstanceDedicatedMask",
            f"hw:cpu_dedicated_mask={spec!r} names vCPUs {CpuSet.of(pcpus - all_vcpus)} "
            f"outside the flavor's 0-{flavor.vcpus - 1}",
            key="hw:cpu_dedicated_mask",
        )
    return pcpus


def _resource_counts(flavor: Flavor) -> tuple[int, int]:
    vcpu = pcpu = 0
    for key, val in flavor.extra_specs.items():
        if not key.startswith("resources"):
            continue
        for rc in ("VCPU", "PCPU"):
            if re.match(rf"resources([1-9][0-9]*)?:{rc}", key):
                try:
                    n = int(val)
                except ValueError:
                    continue
                if rc == "VCPU":
                    vcpu += n
                else:
                    pcpu += n
    return vcpu, pcpu


def _hyperthreading_trait(flavor: Flavor, image: ImageProps) -> str | None:
    for key, val in flavor.extra_specs.items():
        if key.startswith("trait") and re.match(r"trait([1-9][0-9]*)?:HW_CPU_HYPERTHREADING", key):
            return val
    return "required" if "HW_CPU_HYPERTHREADING" in image.traits_required else None


def _is_int_like(val: object) -> bool:
    try:
        return str(int(val)) == str(val)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def _numa_nodes(flavor: Flavor, image: ImageProps) -> int | None:
    fval = flavor.extra_specs.get("hw:numa_nodes")
    ival = image.numa_nodes
    if fval and ival:
        raise InvalidRequestError(
            "ImageNUMATopologyForbidden",
            "image property hw_numa_nodes may not be set when the flavor sets hw:numa_nodes",
            key="hw_numa_nodes",
        )
    nodes: str | int | None = fval or ival
    if nodes is not None and (not _is_int_like(nodes) or int(nodes) < 1):
        raise InvalidRequestError(
            "InvalidNUMANodesNumber",
            f"hw:numa_nodes={nodes!r} must be a whole number >= 1",
            key="hw:numa_nodes",
        )
    return int(nodes) if nodes else None


def _page_size(flavor: Flavor, image: ImageProps) -> PageSizeRequest | None:
    fval = flavor.extra_specs.get("hw:mem_page_size")
    ival = image.mem_page_size
    if not fval and ival:
        raise InvalidRequestError(
            "MemoryPageSizeForbidden",
            f"image property hw_mem_page_size={ival} needs the flavor to allow it with "
            "hw:mem_page_size=large or any",
            key="hw_mem_page_size",
        )
    if not fval:
        return None
    size = novaopts.page_size(fval, key="hw:mem_page_size")
    if ival and size.kind in (PageSizeKind.ANY, PageSizeKind.LARGE):
        return novaopts.page_size(ival, key="hw_mem_page_size")
    if ival:
        raise InvalidRequestError(
            "MemoryPageSizeForbidden",
            f"image property hw_mem_page_size={ival} is not allowed: the flavor sets "
            f"hw:mem_page_size={fval} (only 'large' or 'any' let the image choose)",
            key="hw_mem_page_size",
        )
    return size


def _flavor_indexed(
    flavor: Flavor, prefix: str, conv: Callable[[str, str], T]
) -> tuple[T, ...] | None:
    return _indexed(flavor.extra_specs, prefix, lambda k, v: conv(k, str(v)))


def _flavor_mem(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidRequestError(
            "ValueError", f"{key}={value!r} must be a whole number of MiB", key=key
        ) from None


def _cell_lists(
    flavor: Flavor, image: ImageProps
) -> tuple[tuple[frozenset[int], ...] | None, tuple[int, ...] | None]:
    cpus = _flavor_indexed(flavor, "hw:numa_cpus", _cpu_spec_or_invalid)
    if cpus is None:
        cpus = image.numa_cpus
    elif image.numa_cpus is not None:
        raise InvalidRequestError(
            "ImageNUMATopologyForbidden",
            "image properties hw_numa_cpus.N may not be set when the flavor sets hw:numa_cpus.N",
            key="hw_numa_cpus",
        )
    mem = _flavor_indexed(flavor, "hw:numa_mem", _flavor_mem)
    if mem is None:
        mem = image.numa_mem
    elif image.numa_mem is not None:
        raise InvalidRequestError(
            "ImageNUMATopologyForbidden",
            "image properties hw_numa_mem.N may not be set when the flavor sets hw:numa_mem.N",
            key="hw_numa_mem",
        )
    return cpus, mem


def _auto_cells(nodes: int, flavor: Flavor, pcpus: frozenset[int]) -> tuple[GuestCell, ...]:
    if flavor.vcpus % nodes or flavor.memory_mib % nodes:
        raise InvalidRequestError(
            "ImageNUMATopologyAsymmetric",
            f"hw:numa_nodes={nodes} must divide the flavor's {flavor.vcpus} vCPUs and "
            f"{flavor.memory_mib} MiB evenly; otherwise give hw:numa_cpus.N and hw:numa_mem.N",
            key="hw:numa_nodes",
        )
    ncpus, mem = flavor.vcpus // nodes, flavor.memory_mib // nodes
    cells = []
    for node in range(nodes):
        cpus = CpuSet(range(node * ncpus, (node + 1) * ncpus))
        cells.append(GuestCell(node, cpus - pcpus, cpus & pcpus, mem))
    return tuple(cells)


def _manual_cells(
    nodes: int,
    flavor: Flavor,
    pcpus: frozenset[int],
    cpu_list: tuple[frozenset[int], ...],
    mem_list: tuple[int, ...],
) -> tuple[GuestCell, ...]:
    unassigned = set(range(flavor.vcpus))
    cells = []
    for node in range(nodes):
        for cpu in sorted(cpu_list[node]):
            if cpu > flavor.vcpus - 1:
                raise InvalidRequestError(
                    "ImageNUMATopologyCPUOutOfRange",
                    f"hw:numa_cpus.{node} names vCPU {cpu} but the flavor has vCPUs "
                    f"0-{flavor.vcpus - 1}",
                    key=f"hw:numa_cpus.{node}",
                )
            if cpu not in unassigned:
                raise InvalidRequestError(
                    "ImageNUMATopologyCPUDuplicates",
                    f"vCPU {cpu} is in hw:numa_cpus.{node} and in an earlier hw:numa_cpus.N",
                    key=f"hw:numa_cpus.{node}",
                )
            unassigned.remove(cpu)
        cells.append(
            GuestCell(
                node,
                CpuSet(cpu_list[node] - pcpus),
                CpuSet(cpu_list[node] & pcpus),
                mem_list[node],
            )
        )
    if unassigned:
        raise InvalidRequestError(
            "ImageNUMATopologyCPUsUnassigned",
            f"vCPUs {CpuSet.of(unassigned)} are in no hw:numa_cpus.N; every vCPU "
            "must be in exactly one guest cell",
            key="hw:numa_cpus",
        )
    total = sum(mem_list[:nodes])
    if total != flavor.memory_mib:
        raise InvalidRequestError(
            "ImageNUMATopologyMemoryOutOfRange",
            f"hw:numa_mem.N add up to {total} MiB but the flavor has {flavor.memory_mib} MiB",
            key="hw:numa_mem",
        )
    return tuple(cells)


def _check_policy_combination(
    cpu_policy: CPUPolicy | None,
    thread_policy: ThreadPolicy | None,
    emulator: EmulatorPolicy | None,
    dedicated: frozenset[int] | None,
    realtime: frozenset[int] | None,
) -> frozenset[int] | None:
    """Nova's sanity checks; returns the dedicated vCPUs of a mixed guest."""
    if cpu_policy in (CPUPolicy.SHARED, None):
        shown = cpu_policy.value if cpu_policy else "unset"
        if thread_policy:
            raise InvalidRequestError(
                "CPUThreadPolicyConfigurationInvalid",
                f"hw:cpu_thread_policy={thread_policy} needs hw:cpu_policy=dedicated or mixed "
                f"(it is {shown})",
                key="hw:cpu_thread_policy",
            )
        if emulator is EmulatorPolicy.ISOLATE:
            raise InvalidRequestError(
                "BadRequirementEmulatorThreadsPolicy",
                "hw:emulator_threads_policy=isolate needs hw:cpu_policy=dedicated or mixed "
                f"(it is {shown})",
                key="hw:emulator_threads_policy",
            )
        if dedicated:
            raise InvalidRequestError(
                "RequiredMixedInstancePolicy",
                f"hw:cpu_dedicated_mask needs hw:cpu_policy=mixed (it is {shown})",
                key="hw:cpu_dedicated_mask",
            )
        if realtime:
            raise InvalidRequestError(
                "RealtimeConfigurationInvalid",
                f"hw:cpu_realtime needs hw:cpu_policy=dedicated or mixed (it is {shown})",
                key="hw:cpu_realtime",
            )
        return None
    if cpu_policy is CPUPolicy.DEDICATED:
        if dedicated:
            raise InvalidRequestError(
                "RequiredMixedInstancePolicy",
                "hw:cpu_dedicated_mask needs hw:cpu_policy=mixed (it is dedicated: every "
                "vCPU is already dedicated)",
                key="hw:cpu_dedicated_mask",
            )
        return None
    if bool(realtime) == bool(dedicated):
        raise InvalidRequestError(
            "RequiredMixedOrRealtimeCPUMask",
            "hw:cpu_policy=mixed needs exactly one of hw:cpu_dedicated_mask or "
            "hw:cpu_realtime_mask (with hw:cpu_realtime=yes) to say which vCPUs are dedicated",
            key="hw:cpu_dedicated_mask",
        )
    return dedicated or realtime


def _check_flavor_bounds(flavor: Flavor) -> None:
    """The flavor's size within what one guest can be, before anything is sized by it."""
    for what, value, top, unit in (
        ("vcpus", flavor.vcpus, MAX_GUEST_VCPUS, "vCPUs"),
        ("memory_mib", flavor.memory_mib, MAX_MEMORY_MIB, "MiB"),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise InvalidRequestError(
                "InvalidInput",
                f"flavor {what}={str(value)[:40]!r} is out of range: a guest has 0 to {top} "
                f"{unit}",
                key=f"flavor.{what}",
            )


def pci_numa_policy(flavor: Flavor, image: ImageProps) -> PciNumaPolicy | None:
    """The flavor's / image's PCI NUMA affinity policy (they must agree), or None."""
    key = "hw:pci_numa_affinity_policy"
    fval = flavor.extra_specs.get(key)
    ival = image.pci_numa_affinity_policy
    if fval and ival and fval != ival:
        raise InvalidRequestError(
            "ImagePCINUMAPolicyForbidden",
            f"image property hw_pci_numa_affinity_policy={ival} conflicts with the flavor's "
            f"{key}={fval}; give one, or the same value in both",
            key="hw_pci_numa_affinity_policy",
        )
    value = fval or ival
    if not value:
        return None
    if value not in _PCI_POLICIES:
        raise InvalidRequestError(
            "InvalidPCINUMAAffinity",
            f"{key}={value!r} is not a PCI NUMA affinity policy; allowed values: "
            f"{', '.join(_PCI_POLICIES)}",
            key=key,
        )
    return PciNumaPolicy(value)


def with_pci_requests(
    requests: tuple[PciRequest, ...], policy: str | None
) -> tuple[PciRequest, ...]:
    """``requests`` with the flavor's / image's policy given to those that name none."""
    if policy is not None and policy not in _PCI_POLICIES:
        raise InvalidRequestError(
            "InvalidPCINUMAAffinity",
            f"hw:pci_numa_affinity_policy={policy!r} is not a PCI NUMA affinity policy; "
            f"allowed values: {', '.join(_PCI_POLICIES)}",
            key="hw:pci_numa_affinity_policy",
        )
    default = PciNumaPolicy(policy) if policy else None
    return tuple(r.with_default_policy(default) for r in requests)


def guest_from_flavor(
    flavor: Flavor,
    image_properties: Mapping[str, object] | None = None,
    pci_requests: tuple[PciRequest, ...] = (),
) -> Guest:
    """Build the guest's NUMA request as Nova would, or raise :class:`InvalidRequestError`.

    ``pci_requests`` without a policy of their own take the flavor's / image's.
    """
    _check_flavor_bounds(flavor)
    image = image_props_from_dict(image_properties or {})
    guest = _numa_guest(flavor, image)
    policy = pci_numa_policy(flavor, image)
    requests = tuple(r.with_default_policy(policy) for r in pci_requests)
    return Guest(guest.vcpus, guest.memory_mib, guest.numa, guest.name, requests)


def _numa_guest(flavor: Flavor, image: ImageProps) -> Guest:
    cpu_policy = _cpu_policy(flavor, image)
    thread_policy = _thread_policy(flavor, image)
    realtime = _realtime_vcpus(flavor, image)
    dedicated = _dedicated_mask(flavor)
    emulator = _emulator_policy(flavor)

    req_vcpu, req_pcpu = _resource_counts(flavor)
    if cpu_policy and (req_vcpu or req_pcpu):
        raise InvalidRequestError(
            "InvalidRequest",
            "resources:VCPU / resources:PCPU cannot be combined with hw:cpu_policy; use one",
            key="resources:PCPU",
        )
    if req_vcpu and req_pcpu:
        raise InvalidRequestError(
            "InvalidRequest",
            "resources:VCPU and resources:PCPU cannot both be set; use one",
            key="resources:PCPU",
        )
    if req_pcpu:
        want = flavor.vcpus + (1 if emulator is EmulatorPolicy.ISOLATE else 0)
        if req_pcpu != want:
            raise InvalidRequestError(
                "InvalidRequest",
                f"resources:PCPU={req_pcpu} must be exactly {want} (the flavor's vCPUs"
                f"{' + 1 for isolated emulator threads' if want > flavor.vcpus else ''})",
                key="resources:PCPU",
            )
        cpu_policy = CPUPolicy.DEDICATED
    if req_vcpu:
        cpu_policy = CPUPolicy.SHARED

    trait = _hyperthreading_trait(flavor, image)
    if thread_policy and trait:
        raise InvalidRequestError(
            "InvalidRequest",
            "trait:HW_CPU_HYPERTHREADING cannot be combined with hw:cpu_thread_policy; use one",
            key="trait:HW_CPU_HYPERTHREADING",
        )
    if trait == "forbidden":
        thread_policy = ThreadPolicy.ISOLATE
    elif trait == "required":
        thread_policy = ThreadPolicy.REQUIRE

    dedicated = _check_policy_combination(cpu_policy, thread_policy, emulator, dedicated, realtime)
    nodes = _numa_nodes(flavor, image)
    page_size = _page_size(flavor, image)

    pcpus = dedicated or frozenset()
    if cpu_policy is CPUPolicy.DEDICATED:
        pcpus = frozenset(range(flavor.vcpus))
    page_size_set = page_size is not None and (
        page_size.kind is not PageSizeKind.EXPLICIT or bool(page_size.size_kib)
    )
    if not (nodes or page_size_set or cpu_policy in (CPUPolicy.DEDICATED, CPUPolicy.MIXED)):
        return Guest(flavor.vcpus, flavor.memory_mib, None, flavor.name)

    nodes = nodes or 1
    cpu_list, mem_list = _cell_lists(flavor, image)
    if cpu_list is None and mem_list is None:
        cells = _auto_cells(nodes, flavor, pcpus)
    elif cpu_list is not None and mem_list is not None:
        if len(cpu_list) != nodes or len(mem_list) != nodes:
            raise InvalidRequestError(
                "ImageNUMATopologyIncomplete",
                f"{nodes} guest cells need hw:numa_cpus.0..{nodes - 1} and "
                f"hw:numa_mem.0..{nodes - 1}; got {len(cpu_list)} CPU and {len(mem_list)} "
                "memory entries",
                key="hw:numa_cpus",
            )
        cells = _manual_cells(nodes, flavor, pcpus, cpu_list, mem_list)
    else:
        given, missing = (
            ("hw:numa_cpus", "hw:numa_mem") if cpu_list else ("hw:numa_mem", "hw:numa_cpus")
        )
        raise InvalidRequestError(
            "ImageNUMATopologyIncomplete",
            f"{given}.N is set but {missing}.N is missing; give both for every guest cell",
            key=missing,
        )
    request = GuestRequest(
        cells=cells,
        cpu_policy=cpu_policy,
        thread_policy=thread_policy,
        emulator_policy=emulator,
        page_size=page_size if page_size_set else None,
        realtime_vcpus=realtime,
    )
    return Guest(flavor.vcpus, flavor.memory_mib, request, flavor.name)

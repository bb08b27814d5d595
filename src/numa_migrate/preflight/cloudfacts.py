"""What the OpenStack API says about the cloud, and the checks on it (pure).

:class:`CloudFacts` is filled elsewhere (from the compute API: the versions document, the
os-services and os-hypervisors lists, placement inventories and traits); this module only
holds the values and judges them. Every rule names where in Nova it comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from numa_migrate.preflight.findings import Finding, Severity
from numa_migrate.preflight.sources import RELEASES, TRAIN, PreflightInputError, release_name

COMPUTE_STATES = ("up", "down")
COMPUTE_STATUSES = ("enabled", "disabled")
CONTROL_BINARIES = ("nova-conductor", "nova-scheduler")

# The newest compute API microversion of each release: ``_MAX_API_VERSION`` in
# nova/api/openstack/api_version_request.py at the tags 17.0.0 (Queens) .. 33.0.0 (2026.1),
# read from Nova's git history. Victoria, Yoga, 2023.2, 2024.2 and 2025.2 added none, so one
# maximum can mean two releases.
MAX_MICROVERSION: tuple[tuple[tuple[int, int], tuple[str, ...]], ...] = (
    ((2, 60), ("queens",)),
    ((2, 65), ("rocky",)),
    ((2, 72), ("stein",)),
    ((2, 79), ("train",)),
    ((2, 87), ("ussuri", "victoria")),
    ((2, 88), ("wallaby",)),
    ((2, 90), ("xena", "yoga")),
    ((2, 93), ("zed",)),
    ((2, 95), ("2023.1", "2023.2")),
    ((2, 96), ("2024.1", "2024.2")),
    ((2, 100), ("2025.1", "2025.2")),
    ((2, 103), ("2026.1",)),
)

_MICROVERSION = re.compile(r"(\d{1,3})\.(\d{1,4})")


@dataclass(frozen=True)
class ComputeService:
    """One nova-compute service with its hypervisor and placement inventory.

    ``hypervisor_version`` is Nova's integer (major * 1,000,000 + minor * 1,000 + micro).
    For the libvirt driver it is what ``virConnectGetVersion`` returns: the QEMU version,
    not libvirt's (nova/virt/libvirt/driver.py reports ``self._host.get_version()``).
    ``pcpu_total``/``vcpu_total`` are the placement inventories (None: none reported;
    placement refuses an inventory of 0, so Nova leaves it out).
    """

    host: str
    state: str
    status: str
    hypervisor_type: str | None = None
    hypervisor_version: int | None = None
    pcpu_total: int | None = None
    vcpu_total: int | None = None
    traits: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.state not in COMPUTE_STATES:
            raise PreflightInputError(f"compute {self.host}: state {self.state!r} is not one "
                                      f"of {', '.join(COMPUTE_STATES)}")
        if self.status not in COMPUTE_STATUSES:
            raise PreflightInputError(f"compute {self.host}: status {self.status!r} is not one "
                                      f"of {', '.join(COMPUTE_STATUSES)}")
        for what, value in (("hypervisor_version", self.hypervisor_version),
                            ("pcpu_total", self.pcpu_total), ("vcpu_total", self.vcpu_total)):
            if value is not None and value < 0:
                raise PreflightInputError(f"compute {self.host}: {what} {value} is negative")


@dataclass(frozen=True)
class CloudFacts:
    """The cloud as its API reports it.

    ``other_services`` holds (binary, host, state, status) of the control services
    (nova-conductor, nova-scheduler).
    """

    api_max_microversion: str
    computes: tuple[ComputeService, ...] = ()
    other_services: tuple[tuple[str, str, str, str], ...] = ()

    def __post_init__(self) -> None:
        parse_microversion(self.api_max_microversion)
        for binary, host, state, status in self.other_services:
            if state not in COMPUTE_STATES or status not in COMPUTE_STATUSES:
                raise PreflightInputError(
                    f"service {binary} on {host}: state {state!r} / status {status!r}: "
                    f"expected {'/'.join(COMPUTE_STATES)} and {'/'.join(COMPUTE_STATUSES)}")


def parse_microversion(text: str) -> tuple[int, int]:
    match = _MICROVERSION.fullmatch(text.strip())
    if match is None:
        raise PreflightInputError(f"API microversion {text[:40]!r} is not MAJOR.MINOR "
                                  "(like 2.93)")
    return int(match.group(1)), int(match.group(2))


def api_releases(microversion: str) -> tuple[int | None, int | None]:
    """The releases (indexes in :data:`RELEASES`) whose nova-api has this maximum
    microversion: ``(first, last)``; ``(None, i)`` older than Queens; ``(i, None)`` newer than
    the last release known here (a development snapshot or a release after it)."""
    version = parse_microversion(microversion)
    previous: int | None = None
    for top, names in MAX_MICROVERSION:
        first, last = RELEASES.index(names[0]), RELEASES.index(names[-1])
        if version == top:
            return first, last
        if version < top:
            # between two releases' maxima: a development snapshot after `previous`
            return (None, first) if previous is None else (previous, first)
        previous = last
    return previous, None


def _describe(first: int | None, last: int | None) -> str:
    if first is None and last is not None:
        return f"older than {release_name(last)}"
    if last is None and first is not None:
        return f"newer than {release_name(first)}"
    if first is not None and last is not None:
        if first == last:
            return release_name(first)
        return f"{release_name(first)} or {release_name(last)}"
    return "unknown"


def describe_api_release(microversion: str) -> str:
    """The release(s) a nova-api with this maximum microversion runs, for people: "zed",
    "xena (...) or yoga (...)", "newer than 2026.1 (...)"."""
    return _describe(*api_releases(microversion))


def version_text(version: int) -> str:
    """Nova's hypervisor_version integer as major.minor.micro."""
    return f"{version // 1_000_000}.{version // 1_000 % 1_000}.{version % 1_000}"


# --------------------------------------------------------------------------- checks


def check_cloud(cloud: CloudFacts, compute_releases: Iterable[int] = (),
                skip_hypervisor_check: bool = False) -> list[Finding]:
    """Findings about the cloud as the API reports it.

    ``compute_releases`` are the releases given for the computes (to compare with the API's);
    ``skip_hypervisor_check`` is the conductor's
    ``[workarounds] skip_hypervisor_version_check_on_lm`` when a controller nova.conf says so.
    """
    out = api_release(cloud, list(compute_releases))
    out += compute_services(cloud)
    out += pcpu_inventory(cloud)
    out += hypervisor_versions(cloud, skip_hypervisor_check)
    out += cpu_traits(cloud)
    out += control_services(cloud)
    return out


def api_release(cloud: CloudFacts, compute_releases: list[int]) -> list[Finding]:
    first, last = api_releases(cloud.api_max_microversion)
    text = _describe(first, last)
    out = [Finding(Severity.INFO, "api-release", "nova-api",
                   f"maximum compute API microversion {cloud.api_max_microversion}: {text}")]
    if last is not None and last < TRAIN:
        out.append(Finding(
            Severity.WARNING, "api-release-pre-train", "nova-api",
            f"the controller runs {text}: nova-conductor before Train refuses to live-migrate "
            "NUMA guests unless its [workarounds] enable_numa_live_migration = True, and then "
            "moves them without recalculating pins or NUMA placement",
            "upgrade the controller, then every compute, to Train or later"))
    if compute_releases and last is not None and max(compute_releases) > last:
        out.append(Finding(
            Severity.WARNING, "api-older-than-computes", "nova-api",
            f"the API reports {text} but a compute is given as "
            f"{release_name(max(compute_releases))}: Nova supports controllers at or ahead of "
            "their computes, never behind", "upgrade the controller services first"))
    return out


def compute_services(cloud: CloudFacts) -> list[Finding]:
    out = []
    for c in cloud.computes:
        # ComputeFilter rejects a disabled or down service; the conductor checks that a
        # requested destination is up (nova/conductor/tasks/live_migrate.py _check_host_is_up)
        if c.state == "down":
            out.append(Finding(Severity.WARNING, "compute-down", c.host,
                               "nova-compute is down: not a live-migration destination, and "
                               "its guests cannot be live-migrated away",
                               f"start nova-compute on {c.host} (openstack compute service "
                               "list shows its state)"))
        if c.status == "disabled":
            out.append(Finding(Severity.WARNING, "compute-disabled", c.host,
                               "nova-compute is disabled: the scheduler will not pick it as a "
                               "destination (a forced destination still can)",
                               f"openstack compute service set --enable {c.host} nova-compute, "
                               "if it should receive guests"))
    return out


def pcpu_inventory(cloud: CloudFacts) -> list[Finding]:
    with_pcpu = [c for c in cloud.computes if c.pcpu_total]
    if not with_pcpu:
        return []
    out = []
    for c in cloud.computes:
        if not c.pcpu_total:
            out.append(Finding(
                Severity.WARNING, "compute-no-pcpu", c.host,
                f"no PCPU inventory while {len(with_pcpu)} other compute(s) have some: guests "
                "with hw:cpu_policy=dedicated request PCPU from placement and cannot move here",
                "set [compute] cpu_dedicated_set on this compute if it should host pinned "
                "guests"))
    return out


def hypervisor_versions(cloud: CloudFacts, skip_check: bool) -> list[Finding]:
    """The conductor refuses a destination of another hypervisor type, or with a lower
    hypervisor_version than the source (InvalidHypervisorType / DestinationHypervisorTooOld in
    nova/conductor/tasks/live_migrate.py _check_compatible_with_source_hypervisor; from Zed
    ``[workarounds] skip_hypervisor_version_check_on_lm`` skips the version test)."""
    known = [c for c in cloud.computes if c.hypervisor_type and c.hypervisor_version is not None]
    out: list[Finding] = []
    types = sorted({c.hypervisor_type or "" for c in known})
    if len(types) > 1:
        out.append(Finding(Severity.WARNING, "hypervisor-type-mixed", "cloud",
                           f"hypervisor types {', '.join(types)}: the conductor refuses live "
                           "migration between different types", "keep live migration within "
                           "hosts of one hypervisor type (aggregates)"))
    for kind in types:
        hosts = [c for c in known if c.hypervisor_type == kind]
        versions = {c.hypervisor_version for c in hosts if c.hypervisor_version is not None}
        if len(versions) < 2:
            continue
        newest = max(versions)
        listing = ", ".join(f"{c.host} {version_text(c.hypervisor_version or 0)}"
                            for c in sorted(hosts, key=lambda c: (c.hypervisor_version or 0,
                                                                  c.host)))
        older = sorted(c.host for c in hosts if (c.hypervisor_version or 0) < newest)
        if skip_check:
            out.append(Finding(
                Severity.WARNING, "hypervisor-version-mixed", "cloud",
                f"{kind} versions differ ({listing}) and the conductor skips its version "
                "check: a guest can be moved to an older QEMU/libvirt, which may refuse its "
                "machine type or CPU features", "upgrade the older hosts, or unset [workarounds] "
                "skip_hypervisor_version_check_on_lm"))
        else:
            out.append(Finding(
                Severity.WARNING, "hypervisor-version-mixed", "cloud",
                f"{kind} versions differ ({listing}): the conductor never moves a guest to a "
                f"host with an older hypervisor version, so {', '.join(older)} cannot receive "
                "guests from the newer hosts", "upgrade the older hosts to the same version"))
    return out


def cpu_traits(cloud: CloudFacts) -> list[Finding]:
    """CPU feature traits (HW_CPU_*, reported by the libvirt driver) that only some computes
    have: a guest with cpu_mode host-model/host-passthrough, or one whose flavor requires
    such a trait, can only move between hosts that share them."""
    cpus = {c.host: frozenset(t for t in c.traits if t.startswith("HW_CPU_"))
            for c in cloud.computes if c.traits}
    if len(cpus) < 2:
        return []
    common = frozenset.intersection(*cpus.values())
    extra = {host: sorted(t - common) for host, t in sorted(cpus.items()) if t - common}
    if not extra:
        return []
    shown = "; ".join(f"{host}: {', '.join(t[:6])}{' ...' if len(t) > 6 else ''}"
                      for host, t in extra.items())
    return [Finding(Severity.INFO, "cpu-traits-differ", "cloud",
                    f"CPU traits not on every compute: {shown}",
                    "guests using host CPU features may only move between hosts that have "
                    "them: use a common named [libvirt] cpu_models, or aggregates")]


def control_services(cloud: CloudFacts) -> list[Finding]:
    out = []
    for binary in CONTROL_BINARIES:
        services = [s for s in cloud.other_services if s[0] == binary]
        if not services:
            out.append(Finding(Severity.INFO, "service-not-reported", binary,
                               f"the API facts list no {binary}", ""))
            continue
        serving = [s for s in services if s[2] == "up" and s[3] == "enabled"]
        for _binary, host, state, status in services:
            if state == "up" and status == "enabled":
                continue
            severity = Severity.WARNING if serving else Severity.ERROR
            impact = ("others serve" if serving else
                      "no live migration can be scheduled or run" if binary == "nova-conductor"
                      else "no destination can be chosen")
            problem = "down" if state == "down" else "disabled"
            out.append(Finding(severity, f"{binary.removeprefix('nova-')}-{problem}", host,
                               f"{binary} is {state}/{status}: {impact}",
                               f"start and enable {binary} on {host}"))
    return out

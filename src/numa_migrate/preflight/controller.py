"""The controller's side of NUMA live migration (pure): nova-scheduler's filters,
nova-conductor's checks, the nova-cloud-controller charm, and the cloud as its API reports it.

Nova's behaviour below was read from Nova's git history (tags 17.0.0 Queens .. 33.0.0
2026.1) and the charm from openstack/charm-nova-cloud-controller; each rule says where.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from numa_migrate.preflight.cloudfacts import CloudFacts, api_releases, check_cloud
from numa_migrate.preflight.findings import Finding, Severity
from numa_migrate.preflight.sources import (
    ALIASES,
    RELEASES,
    TRAIN,
    CharmConfig,
    NovaConf,
    PreflightInputError,
    Value,
    conf_bool,
    conf_int,
    release_index,
    release_name,
)

XENA = RELEASES.index("xena")
NUMA_FILTER = "NUMATopologyFilter"
PCI_FILTER = "PciPassthroughFilter"
ALL_FILTERS = "nova.scheduler.filters.all_filters"


@dataclass(frozen=True)
class Controller:
    """One controller (nova-api, nova-scheduler, nova-conductor): its nova.conf and release."""

    name: str
    conf: NovaConf
    release: int | None


# --------------------------------------------------------------------------- Nova's tables

# [filter_scheduler] enabled_filters default (nova/conf/scheduler.py): Queens..Stein, then
# Train drops RetryFilter, Xena drops AvailabilityZoneFilter; unchanged to 2026.1. None of
# them has NUMATopologyFilter or PciPassthroughFilter.
_BASE_DEFAULT = ("ComputeFilter", "ComputeCapabilitiesFilter", "ImagePropertiesFilter",
                 "ServerGroupAntiAffinityFilter", "ServerGroupAffinityFilter")


def nova_default_filters(release: int | None) -> tuple[str, ...]:
    if release is not None and release < TRAIN:
        return ("RetryFilter", "AvailabilityZoneFilter", *_BASE_DEFAULT)
    if release is not None and release < XENA:
        return ("AvailabilityZoneFilter", *_BASE_DEFAULT)
    return _BASE_DEFAULT


# The filter classes in nova/scheduler/filters/ at Queens (17.0.0), and the release from which
# each removed one is gone (read from the tags: Exact* in Rocky, Core/Ram/Disk in Train,
# Aggregate{Core,Disk,Ram} and RetryFilter in Victoria, AvailabilityZoneFilter in 2023.2).
NOVA_FILTERS = frozenset({
    "AggregateImagePropertiesIsolation", "AggregateInstanceExtraSpecsFilter",
    "AggregateIoOpsFilter", "AggregateMultiTenancyIsolation", "AggregateNumInstancesFilter",
    "AggregateTypeAffinityFilter", "AllHostsFilter", "ComputeCapabilitiesFilter",
    "ComputeFilter", "DifferentHostFilter", "ImagePropertiesFilter", "IoOpsFilter",
    "IsolatedHostsFilter", "JsonFilter", "MetricsFilter", "NUMATopologyFilter",
    "NumInstancesFilter", "PciPassthroughFilter", "SameHostFilter", "ServerGroupAffinityFilter",
    "ServerGroupAntiAffinityFilter", "SimpleCIDRAffinityFilter",
})
REMOVED_FILTERS = {
    "ExactCoreFilter": "rocky", "ExactDiskFilter": "rocky", "ExactRamFilter": "rocky",
    "CoreFilter": "train", "DiskFilter": "train", "RamFilter": "train",
    "AggregateCoreFilter": "victoria", "AggregateDiskFilter": "victoria",
    "AggregateRamFilter": "victoria", "RetryFilter": "victoria",
    "AvailabilityZoneFilter": "2023.2",
}

# [upgrade_levels] compute aliases (VERSION_ALIASES in nova/compute/rpcapi.py, 33.0.0): the
# codenames, never the 2023.1-style numbers.
RPC_ALIASES = {
    "icehouse": (3, 23), "juno": (3, 35), "kilo": (4, 0), "liberty": (4, 5),
    "mitaka": (4, 11), "newton": (4, 13), "ocata": (4, 13), "pike": (4, 17),
    "queens": (5, 0), "rocky": (5, 0), "stein": (5, 1), "train": (5, 3), "ussuri": (5, 11),
    "victoria": (5, 12), "wallaby": (6, 0), "xena": (6, 0), "yoga": (6, 0), "zed": (6, 1),
    "antelope": (6, 2), "bobcat": (6, 2), "caracal": (6, 3), "dalmatian": (6, 3),
    "epoxy": (6, 4), "flamingo": (6, 4), "gazpacho": (6, 5),
}
# check_can_live_migrate_destination sends the migration (and so NUMA-aware live migration)
# only when the client can send compute RPC 5.3 (6.0 from Wallaby); below it the destination
# drops dst_supports_numa_live_migration and the move is the legacy, non-NUMA-aware one
# (nova/compute/rpcapi.py and ComputeManager._dest_can_numa_live_migrate, 20.0.0..33.0.0).
NUMA_LM_RPC = (5, 3)
_RPC_VERSION = re.compile(r"(\d{1,4})\.(\d{1,4})")

# The nova-cloud-controller charm's default scheduler-default-filters when the option is
# unset (hooks/nova_cc_context.py default_enabled_filters): none has NUMATopologyFilter; it
# appends PciPassthroughFilter itself when neutron-api enables SR-IOV or hardware offload.
_CHARM_TAIL = ("ServerGroupAntiAffinityFilter", "ServerGroupAffinityFilter",
               "DifferentHostFilter", "SameHostFilter")
_CHARM_CORE = ("ComputeFilter", "ComputeCapabilitiesFilter", "ImagePropertiesFilter")


def charm_default_filters(release: int | None) -> tuple[str, ...]:
    if release is not None and release < RELEASES.index("victoria"):
        # the charm's pike list (every release this tool knows is Queens or later)
        return ("RetryFilter", "AvailabilityZoneFilter", *_CHARM_CORE, *_CHARM_TAIL)
    if release is not None and release < RELEASES.index("2023.2"):
        return ("AvailabilityZoneFilter", *_CHARM_CORE, *_CHARM_TAIL)
    return (*_CHARM_CORE, *_CHARM_TAIL)


# Ubuntu series -> the OpenStack release its archive carries (charmhelpers fetch/ubuntu.py
# UBUNTU_OPENSTACK_RELEASE), for openstack-origin values like cloud:jammy-zed.
UBUNTU_SERIES = {
    "bionic": "queens", "cosmic": "rocky", "disco": "stein", "eoan": "train",
    "focal": "ussuri", "groovy": "victoria", "hirsute": "wallaby", "impish": "xena",
    "jammy": "yoga", "kinetic": "zed", "lunar": "2023.1", "mantic": "2023.2",
    "noble": "2024.1", "oracular": "2024.2", "plucky": "2025.1",
}


# --------------------------------------------------------------------------- entry point


def check_controller(controllers: Iterable[Controller], compute_releases: Sequence[int | None],
                     compute_confs: Iterable[tuple[str, NovaConf, int | None]] = (),
                     charm: CharmConfig | None = None,
                     cloud: CloudFacts | None = None) -> list[Finding]:
    """Every controller-side finding.

    ``compute_releases``: the release of each compute (None: not given); ``compute_confs``:
    (name, nova.conf, release) of each compute, for the settings that the conductor, not the
    compute, reads.
    """
    controllers = list(controllers)
    compute_confs = list(compute_confs)
    known = [r for r in compute_releases if r is not None]
    charm_release = charm_openstack_release(charm) if charm is not None else None
    out: list[Finding] = []
    for c in controllers:
        release = c.release if c.release is not None else charm_release
        if release is None and cloud is not None:
            release = _api_side_of_train(cloud)
        out += scheduler_filters(c, release)
        out += scheduler_retries(c)
        out += conductor_numa_workaround(c, release, known)
        out += rpc_pin(c.name, c.conf, release, known, role="controller")
        out += hypervisor_check_workaround(c)
    if controllers:
        out += workaround_only_on_computes(controllers, compute_confs)
    if charm is not None:
        out += controller_charm_options(charm, charm_release, known)
    if cloud is not None:
        skip = any(conf_bool(c.conf, "workarounds", "skip_hypervisor_version_check_on_lm")
                   for c in controllers)
        out += check_cloud(cloud, known, skip)
    return out


def _api_side_of_train(cloud: CloudFacts) -> int | None:
    """The controller's release as far as the API's microversion settles it: its newest
    possible release when both possibilities are on the same side of Train."""
    first, last = api_releases(cloud.api_max_microversion)
    if first is not None and last is not None:
        return last
    if last is None and first is not None and first >= TRAIN:
        return first
    return None


# --------------------------------------------------------------------------- scheduler


def _list(value: Value) -> list[str]:
    return [item.strip() for item in value.value.replace("\n", ",").split(",") if item.strip()]


def _enabled_filters(c: Controller, release: int | None,
                     out: list[Finding]) -> tuple[list[str], Value | None]:
    new = c.conf.get("filter_scheduler", "enabled_filters")
    old = c.conf.get("DEFAULT", "scheduler_default_filters")
    if new is not None:
        return _list(new), new
    if old is not None and (release is None or release < XENA):
        # deprecated name (group DEFAULT) honoured through Wallaby, gone in Xena
        return _list(old), old
    if old is not None:
        out.append(Finding(
            Severity.WARNING, "scheduler-filters-ignored", c.name,
            f"[DEFAULT] scheduler_default_filters is not read by {release_name(release or 0)} "
            "(removed in Xena): Nova's default filters apply",
            "move the list to [filter_scheduler] enabled_filters", c.conf.where(old)))
    return list(nova_default_filters(release)), None


def _available(c: Controller, release: int | None) -> tuple[list[str], Value | None]:
    values = c.conf.all("filter_scheduler", "available_filters")
    if not values and (release is None or release < XENA):
        values = c.conf.all("DEFAULT", "scheduler_available_filters")
    return [v.value.strip() for v in values if v.value.strip()], (values[-1] if values else None)


def known_filters(release: int | None) -> frozenset[str]:
    if release is None:
        return NOVA_FILTERS | frozenset(REMOVED_FILTERS)
    gone = {name for name, when in REMOVED_FILTERS.items() if RELEASES.index(when) <= release}
    return NOVA_FILTERS | (frozenset(REMOVED_FILTERS) - gone)


def scheduler_filters(c: Controller, release: int | None) -> list[Finding]:
    out: list[Finding] = []
    enabled, value = _enabled_filters(c, release, out)
    where = c.conf.where(value)
    shown = ",".join(enabled)
    if NUMA_FILTER in enabled:
        out.append(Finding(Severity.OK, "scheduler-numa-filter", c.name,
                           "NUMATopologyFilter is enabled: destinations are checked for the "
                           "guest's NUMA cells, pinned CPUs and huge pages", "", where))
    else:
        origin = "the list" if value is not None else "Nova's default list"
        out.append(Finding(
            Severity.ERROR, "scheduler-numa-filter-missing", c.name,
            f"NUMATopologyFilter is not in {origin} ({shown}): nova-scheduler picks "
            "destinations without checking that a NUMA guest's cells, pinned CPUs and huge "
            "pages fit there (from Train the destination's claim then refuses and the "
            "conductor tries another host; before Train nothing checks)",
            f"[filter_scheduler] enabled_filters = {shown},{NUMA_FILTER}", where))
    pci_alias = c.conf.get("pci", "alias") or c.conf.get("DEFAULT", "pci_alias")
    if PCI_FILTER not in enabled:
        out.append(Finding(
            Severity.WARNING if pci_alias is not None else Severity.INFO,
            "scheduler-pci-filter-missing", c.name,
            "PciPassthroughFilter is not enabled: guests with PCI or SR-IOV devices "
            + ("(a [pci] alias is set here) " if pci_alias is not None else "")
            + "may be sent to hosts without a free device",
            f"add {PCI_FILTER} to [filter_scheduler] enabled_filters if PCI/SR-IOV guests "
            "are used", where))
    available, available_value = _available(c, release)
    named = {entry.rsplit(".", 1)[-1] for entry in available}
    everything = not available or ALL_FILTERS in available
    valid = known_filters(release) if everything else frozenset()
    unknown = [f for f in enabled if f not in valid and f not in named]
    if unknown:
        because = ("is not one of Nova's filters" + (f" in {release_name(release)}"
                                                     if release is not None else "")
                   if everything else "is not in [filter_scheduler] available_filters")
        gone = [f"{f} (removed in {REMOVED_FILTERS[f]})" for f in unknown
                if f in REMOVED_FILTERS]
        out.append(Finding(
            Severity.ERROR, "scheduler-filter-unknown", c.name,
            f"{', '.join(unknown)} {because}: nova-scheduler will not start "
            f"(SchedulerHostFilterNotFound){'; ' + ', '.join(gone) if gone else ''}",
            "remove it from enabled_filters, or add its class path to available_filters",
            c.conf.where(available_value) if not everything else where))
    return out


def scheduler_retries(c: Controller) -> list[Finding]:
    out = []
    attempts = conf_int(c.conf, "scheduler", "max_attempts")
    subset = conf_int(c.conf, "filter_scheduler", "host_subset_size")
    retries = conf_int(c.conf, "DEFAULT", "migrate_max_retries")
    for section, key, value, minimum in (("scheduler", "max_attempts", attempts, 1),
                                         ("filter_scheduler", "host_subset_size", subset, 1),
                                         ("DEFAULT", "migrate_max_retries", retries, -1)):
        if value is not None and value < minimum:
            out.append(Finding(Severity.ERROR, "scheduler-option-range", c.name,
                               f"[{section}] {key} = {value} is below its minimum {minimum}: "
                               "the service refuses the option", f"set {key} >= {minimum}",
                               c.conf.where(c.conf.get(section, key))))
    # live migration retries are the conductor's migrate_max_retries (DEFAULT, -1 = no limit;
    # nova/conf/conductor.py); [scheduler] max_attempts counts build and cold-move attempts
    # (the live-migration task asks the scheduler without alternates)
    text = "no limit" if retries in (None, -1) else str(retries)
    out.append(Finding(Severity.INFO, "scheduler-retries", c.name,
                       f"a live migration tries destinations until one passes its checks "
                       f"([DEFAULT] migrate_max_retries: {text}); [scheduler] max_attempts "
                       f"({attempts if attempts is not None else 3}) applies to builds and "
                       "cold moves; [filter_scheduler] host_subset_size "
                       f"{subset if subset is not None else 1}", "",
                       c.conf.where(c.conf.get("DEFAULT", "migrate_max_retries"))))
    if retries == 0:
        out.append(Finding(Severity.WARNING, "migrate-no-retry", c.name,
                           "migrate_max_retries = 0: when the chosen destination refuses the "
                           "NUMA claim the live migration fails instead of trying another "
                           "host", "leave [DEFAULT] migrate_max_retries at -1 or set a few",
                           c.conf.where(c.conf.get("DEFAULT", "migrate_max_retries"))))
    return out


# --------------------------------------------------------------------------- conductor


def conductor_numa_workaround(c: Controller, release: int | None,
                              compute_releases: list[int]) -> list[Finding]:
    """nova-conductor (nova/conductor/tasks/live_migrate.py _check_instance_has_no_numa)
    refuses to live-migrate a NUMA guest unless its own [workarounds]
    enable_numa_live_migration is True: in Stein, and in the Rocky 18.2.0+ / Queens 17.0.11+
    backports; from Train only while a nova-compute service is older than version 40 (Train)."""
    value = c.conf.get("workarounds", "enable_numa_live_migration")
    flag = conf_bool(c.conf, "workarounds", "enable_numa_live_migration")
    where = c.conf.where(value)
    if release is None:
        return [Finding(Severity.WARNING, "controller-release-unknown", c.name,
                        "the controller's release is not known: whether nova-conductor allows "
                        "NUMA live migration cannot be said", f"give --release {c.name}=NAME",
                        c.conf.path)]
    old_computes = [r for r in compute_releases if r < TRAIN]
    if release >= TRAIN and not old_computes:
        note = ("; its [workarounds] enable_numa_live_migration has no effect once every "
                "compute runs Train or later" if value is not None else "")
        return [Finding(Severity.OK, "conductor-numa-live-migration", c.name,
                        f"nova-conductor {release_name(release)} allows NUMA-aware live "
                        f"migration when every nova-compute runs Train or later{note}", "",
                        where)]
    why = (f"nova-conductor {release_name(release)} checks NUMA guests itself"
           + (" (Queens from 17.0.11, Rocky from 18.2.0; their earlier point releases move "
              "NUMA guests without any check)" if release < RELEASES.index("stein") else "")
           if release < TRAIN else
           f"a compute runs {release_name(min(old_computes))}, so nova-conductor "
           f"{release_name(release)} falls back to the pre-Train rule")
    if not flag:
        return [Finding(
            Severity.ERROR, "conductor-numa-live-migration-disabled", c.name,
            f"{why}: it refuses to live-migrate NUMA guests unless the CONDUCTOR's nova.conf "
            "sets [workarounds] enable_numa_live_migration = True (the computes' setting is "
            "not read)", "upgrade every compute (and the controller) to Train or later; or set "
            "the workaround on the conductor knowing pins are not recalculated", where)]
    return [Finding(
        Severity.WARNING, "conductor-numa-live-migration-unsafe", c.name,
        f"{why}, and enable_numa_live_migration = True there: NUMA guests move WITHOUT "
        "recalculating their pins and NUMA placement on the destination",
        "use numa-migrate migrate (it re-pins and validates), or finish the upgrade to Train",
        where)]


def workaround_only_on_computes(controllers: list[Controller],
                                computes: list[tuple[str, NovaConf, int | None]]) -> list[Finding]:
    if any(c.conf.get("workarounds", "enable_numa_live_migration") for c in controllers):
        return []
    on = [name for name, conf, _ in computes
          if conf_bool(conf, "workarounds", "enable_numa_live_migration")]
    if not on:
        return []
    return [Finding(Severity.INFO, "numa-workaround-on-computes-only", ", ".join(on),
                    "[workarounds] enable_numa_live_migration is set on compute(s) but on no "
                    "controller: nova-conductor reads it, nova-compute does not",
                    "set it in the conductor's nova.conf, if the workaround is wanted")]


def parse_rpc_pin(value: Value, where: str) -> tuple[int, int] | None:
    """``[upgrade_levels] compute``: None for auto/unset, else the version cap."""
    text = value.value.strip().lower()
    if text in ("", "auto"):
        return None
    if text in RPC_ALIASES:
        return RPC_ALIASES[text]
    match = _RPC_VERSION.fullmatch(text)
    if match is None:
        raise PreflightInputError(
            f"{where}: [upgrade_levels] compute = {value.value.strip()[:40]!r} is neither auto, "
            f"a release codename ({', '.join(RPC_ALIASES)}) nor an RPC version N.N")
    return int(match.group(1)), int(match.group(2))


def rpc_pin(name: str, conf: NovaConf, release: int | None, compute_releases: list[int],
            role: str) -> list[Finding]:
    value = conf.get("upgrade_levels", "compute")
    where = conf.where(value)
    mixed = bool(compute_releases) and min(compute_releases) != max(compute_releases)
    if value is None or not value.value.strip():
        if mixed and role == "controller":
            return [Finding(Severity.WARNING, "upgrade-levels-unset", name,
                            "[upgrade_levels] compute is not set while computes run different "
                            "releases: the controller sends its newest compute RPC, which "
                            "older computes cannot read", "[upgrade_levels] compute = auto",
                            conf.path)]
        return []
    cap = parse_rpc_pin(value, where)
    text = value.value.strip()
    if cap is None:
        return [Finding(Severity.OK, "upgrade-levels", name,
                        "[upgrade_levels] compute = auto: the compute RPC version follows the "
                        "oldest nova-compute", "", where)]
    if text in RELEASES and text.lower() not in RPC_ALIASES:
        codename = next((a for a, r in ALIASES.items() if r == text), "auto")
        return [Finding(Severity.ERROR, "upgrade-levels-number", name,
                        f"[upgrade_levels] compute = {text}: Nova's aliases are codenames, so "
                        f"this is read as RPC version {text}, which no compute speaks",
                        f"[upgrade_levels] compute = {codename} (or auto)", where)]
    if release is not None and release < TRAIN:
        return [Finding(Severity.INFO, "upgrade-levels", name,
                        f"[upgrade_levels] compute = {text} (RPC {cap[0]}.{cap[1]})", "", where)]
    if cap < NUMA_LM_RPC:
        side = ("nova-conductor does not send the migration to the destination's check"
                if role == "controller" else
                "this compute, as the source, does not confirm NUMA live migration")
        return [Finding(
            Severity.ERROR, "upgrade-levels-numa-unaware", name,
            f"[upgrade_levels] compute = {text} caps compute RPC at {cap[0]}.{cap[1]}, below "
            f"5.3: {side}, so Nova live-migrates NUMA guests the legacy way, WITHOUT "
            "recalculating pins and NUMA placement (and without an error)",
            "[upgrade_levels] compute = auto once every compute runs Train or later", where)]
    return [Finding(Severity.INFO, "upgrade-levels", name,
                    f"[upgrade_levels] compute = {text} (RPC {cap[0]}.{cap[1]}): pinned; auto "
                    "follows upgrades by itself", "", where)]


def hypervisor_check_workaround(c: Controller) -> list[Finding]:
    value = c.conf.get("workarounds", "skip_hypervisor_version_check_on_lm")
    if not conf_bool(c.conf, "workarounds", "skip_hypervisor_version_check_on_lm"):
        return []
    return [Finding(Severity.INFO, "conductor-skips-hypervisor-check", c.name,
                    "[workarounds] skip_hypervisor_version_check_on_lm = True (Zed and later): "
                    "nova-conductor lets guests move to hosts with an older QEMU/libvirt", "",
                    c.conf.where(value))]


# --------------------------------------------------------------------------- charm

# Option names verified in openstack/charm-nova-cloud-controller config.yaml (and how the
# charm uses them in hooks/nova_cc_context.py and templates/*/nova.conf):
#   openstack-origin            string   release source (distro, cloud:<series>-<release>, ...)
#   scheduler-default-filters   string   -> [filter_scheduler] enabled_filters (unset: the
#                                           charm's own default list for the release)
#   cpu-allocation-ratio        float    -> [DEFAULT] cpu_allocation_ratio, also sent to the
#   ram-allocation-ratio        float       computes over the cloud-compute relation
#   scheduler-max-attempts      int      -> [scheduler] max_attempts
#   scheduler-host-subset-size  int      -> [filter_scheduler] host_subset_size
#   pci-alias                   string   -> [pci] alias
#   config-flags                string   -> [DEFAULT] key=value pairs only
# The charm's nova.conf templates (rocky, train, yoga) write "[upgrade_levels] compute = auto"
# and no [workarounds] section.


def charm_openstack_release(charm: CharmConfig) -> int | None:
    """openstack-origin as charmhelpers reads it (get_os_codename_install_source): a release
    name, cloud:<series>-<release>[/pocket], distro (the unit's Ubuntu series decides: not
    known here), or a deb/ppa line naming a release."""
    raw = charm.value("openstack-origin")
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise PreflightInputError(f"{charm.where('openstack-origin')}: openstack-origin must "
                                  "be a string")
    text = raw.strip().lower()
    if text in ("distro", "distro-proposed", "proposed"):
        return None
    if text.startswith("cloud:"):
        match = re.fullmatch(r"cloud:([a-z]+)-([a-z0-9.]+)(/[a-z]+)?", text)
        if match is None or match.group(1) not in UBUNTU_SERIES:
            raise PreflightInputError(
                f"{charm.where('openstack-origin')}: openstack-origin {raw[:60]!r} is not "
                "cloud:<series>-<release>[/updates|/proposed|/staging] with a known Ubuntu "
                f"series ({', '.join(UBUNTU_SERIES)})")
        return _release_or_error(match.group(2), raw, charm)
    if text.startswith(("deb", "ppa", "snap")):
        for name in (*ALIASES, *RELEASES):
            if re.search(rf"(?<![a-z0-9.]){re.escape(name)}(?![a-z0-9])", text):
                return release_index(name)
        return None
    return _release_or_error(text, raw, charm)


def _release_or_error(name: str, raw: str, charm: CharmConfig) -> int:
    try:
        return release_index(name)
    except PreflightInputError as exc:
        raise PreflightInputError(f"{charm.where('openstack-origin')}: openstack-origin "
                                  f"{raw[:60]!r}: {exc}") from None


def _charm_str(charm: CharmConfig, key: str) -> str | None:
    value = charm.value(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PreflightInputError(f"{charm.where(key)}: {key} must be a string, not "
                                  f"{type(value).__name__}")
    return value


def _charm_number(charm: CharmConfig, key: str, *, integer: bool) -> float | None:
    value = charm.value(key)
    if value is None or value == "":
        return None
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = float(value)
    elif isinstance(value, float):
        number = None if integer else value
    elif isinstance(value, str):
        try:
            number = float(int(value.strip())) if integer else float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or (not integer and number <= 0):
        kind = "an integer" if integer else "a positive number"
        raise PreflightInputError(f"{charm.where(key)}: {key} = {str(value)[:40]!r} is not "
                                  f"{kind}")
    return number


def controller_charm_options(charm: CharmConfig, release: int | None,
                             compute_releases: list[int]) -> list[Finding]:
    app = charm.application
    out: list[Finding] = []
    origin = charm.value("openstack-origin")
    if release is None:
        said = ("openstack-origin is not in the file" if origin in (None, "") else
                f"openstack-origin {origin!r} does not say the release (distro follows the "
                "units' Ubuntu series)")
        out.append(Finding(Severity.INFO, "charm-release-unknown", app, said,
                           "give --release for the controller and computes; juju status shows "
                           "the workload version", charm.where("openstack-origin")))
    else:
        out.append(Finding(Severity.INFO, "charm-release", app,
                           f"openstack-origin {origin!r}: {release_name(release)}", "",
                           charm.where("openstack-origin")))
        if compute_releases and max(compute_releases) > release:
            out.append(Finding(
                Severity.WARNING, "charm-older-than-computes", app,
                f"the controller runs {release_name(release)} but a compute runs "
                f"{release_name(max(compute_releases))}: controllers upgrade first",
                f"juju config {app} openstack-origin=... to the computes' release",
                charm.where("openstack-origin")))
    filters_text = _charm_str(charm, "scheduler-default-filters")
    if filters_text is None:
        filters = list(charm_default_filters(release))
        origin_text = "unset, so the charm's default list applies"
    else:
        filters = [f.strip() for f in filters_text.split(",") if f.strip()]
        origin_text = "set"
    where = charm.where("scheduler-default-filters")
    if NUMA_FILTER in filters:
        out.append(Finding(Severity.OK, "charm-scheduler-numa-filter", app,
                           "scheduler-default-filters has NUMATopologyFilter", "", where))
    else:
        out.append(Finding(
            Severity.ERROR, "charm-scheduler-numa-filter-missing", app,
            f"scheduler-default-filters is {origin_text} ({','.join(filters)}) without "
            "NUMATopologyFilter: nova-scheduler does not check that NUMA guests fit",
            f"juju config {app} scheduler-default-filters="
            f"\"{','.join([*filters, NUMA_FILTER])}\"", where))
    unknown = [f for f in filters if f not in known_filters(release)]
    if unknown:
        out.append(Finding(
            Severity.ERROR, "charm-scheduler-filter-unknown", app,
            f"{', '.join(unknown)} is not one of Nova's filters"
            + (f" in {release_name(release)}" if release is not None else "")
            + ": nova-scheduler will not start (the charm offers no available_filters)",
            f"juju config {app} scheduler-default-filters=... without it", where))
    pci_alias = _charm_str(charm, "pci-alias")
    if PCI_FILTER not in filters:
        out.append(Finding(
            Severity.WARNING if pci_alias else Severity.INFO, "charm-scheduler-pci-filter", app,
            "PciPassthroughFilter is not in scheduler-default-filters"
            + (" while pci-alias is set" if pci_alias else "")
            + ": the charm adds it only when neutron-api enables SR-IOV or hardware offload",
            f"add {PCI_FILTER} to scheduler-default-filters if PCI/SR-IOV guests are used",
            where))
    for key in ("cpu-allocation-ratio", "ram-allocation-ratio"):
        ratio = _charm_number(charm, key, integer=False)
        if ratio is None:
            continue
        note = ("VCPU only: pinned guests use PCPU, which Nova never overcommits (allocation "
                "ratio 1)" if key.startswith("cpu") else
                "MEMORY_MB; huge-page guests take whole pages, which are never overcommitted")
        out.append(Finding(Severity.INFO, f"charm-{key}", app,
                           f"{key} = {ratio:g} (sent to the computes): {note}", "",
                           charm.where(key)))
    for key, conf_key in (("scheduler-max-attempts", "[scheduler] max_attempts"),
                          ("scheduler-host-subset-size", "[filter_scheduler] host_subset_size")):
        number = _charm_number(charm, key, integer=True)
        if number is None:
            continue
        if number < 1:
            raise PreflightInputError(f"{charm.where(key)}: {key} = {int(number)} must be 1 or "
                                      "more")
        out.append(Finding(Severity.INFO, f"charm-{key}", app,
                           f"{key} = {int(number)} (-> {conf_key})", "", charm.where(key)))
    old = release is not None and release < TRAIN
    if old or any(r < TRAIN for r in compute_releases):
        out.append(Finding(
            Severity.ERROR, "charm-numa-workaround-not-exposed", app,
            "NUMA live migration needs nova-conductor's [workarounds] "
            "enable_numa_live_migration while any service runs a release before Train, and the "
            f"{app} charm cannot set it (config-flags writes only [DEFAULT]; hand edits are "
            "overwritten)", f"upgrade the cloud to Train or later (juju config {app} "
            "openstack-origin=...), then every compute", charm.where("openstack-origin")))
    return out

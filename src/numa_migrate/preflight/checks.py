"""Preflight findings (pure): can these computes live-migrate NUMA guests, and what to change.

Inputs are parsed nova.conf files (one per compute), the release each runs, optionally a
nova-compute charm config and the live facts of inventory hosts; output is a list of
:class:`Finding`, each with a severity, where it comes from (file:line) and a fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import ParseError
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.novaopts import (
    RESERVED_PAGES_SYNTAX,
    OptionError,
    cpu_set_option,
    reserved_huge_pages_entry,
)
from numa_migrate.preflight.cloudfacts import CloudFacts
from numa_migrate.preflight.controller import Controller, check_controller, rpc_pin
from numa_migrate.preflight.findings import Finding, Severity
from numa_migrate.preflight.sources import (
    TRAIN,
    CharmConfig,
    NovaConf,
    PreflightInputError,
    conf_bool,
    conf_int,
    release_name,
)

# what numa-migrate relies on: migrate3 with a persistent XML, post-copy, memory thread
# contexts; Nova itself has required libvirt 6.0.0 / QEMU 4.2.0 since Wallaby
MIN_LIBVIRT = (6, 0, 0)
MIN_QEMU = (4, 2, 0)
POSTCOPY_RESUME_LIBVIRT = (8, 5, 0)

__all__ = ["CHARM_OPTIONS", "CloudFacts", "Compute", "Controller", "Finding", "HostFacts",
           "Severity", "charm_options", "check_all", "cpu_sets", "huge_pages",
           "migration_options", "numa_live_migration", "versions"]


@dataclass(frozen=True)
class Compute:
    """One compute: its nova.conf and the release it runs (None: not given)."""

    name: str
    conf: NovaConf
    release: int | None


@dataclass(frozen=True)
class HostFacts:
    name: str
    topology: HostTopology
    libvirt: tuple[int, int, int]
    qemu: tuple[int, int, int]
    cpu_model: str
    cpu_features: frozenset[str] = field(default_factory=frozenset)


def check_all(computes: Iterable[Compute], facts: Iterable[HostFacts] = (),
              charm: CharmConfig | None = None, *,
              controllers: Iterable[Controller] = (),
              controller_charm: CharmConfig | None = None,
              cloud: CloudFacts | None = None) -> list[Finding]:
    """Every finding: the computes' nova.conf (and hosts, and nova-compute charm), then the
    controller's side when controllers, a nova-cloud-controller charm or cloud facts are given."""
    computes = list(computes)
    controllers = list(controllers)
    by_name = {f.name: f for f in facts}
    releases = [c.release for c in computes if c.release is not None]
    out: list[Finding] = []
    out += numa_live_migration(computes)
    for compute in computes:
        host = by_name.get(compute.name)
        out += cpu_sets(compute, host.topology if host else None)
        out += huge_pages(compute, host.topology if host else None)
        out += migration_options(compute)
        out += rpc_pin(compute.name, compute.conf, compute.release, releases, role="compute")
    out += versions(list(by_name.values()))
    if charm is not None:
        out += charm_options(charm, computes)
    if controllers or controller_charm is not None or cloud is not None:
        out += check_controller(controllers, [c.release for c in computes],
                                [(c.name, c.conf, c.release) for c in computes],
                                controller_charm, cloud)
    return out


# --------------------------------------------------------------------------- release


def numa_live_migration(computes: list[Compute]) -> list[Finding]:
    out = []
    releases = [c.release for c in computes if c.release is not None]
    mixed = bool(releases) and min(releases) < TRAIN <= max(releases)
    for c in computes:
        flag_value = c.conf.get("workarounds", "enable_numa_live_migration")
        flag = conf_bool(c.conf, "workarounds", "enable_numa_live_migration")
        where = c.conf.where(flag_value)
        if c.release is None:
            out.append(Finding(Severity.WARNING, "release-unknown", c.name,
                               "the release is not known, so whether NUMA live migration is "
                               "allowed cannot be said", f"give --release {c.name}=NAME",
                               c.conf.path))
        elif c.release < TRAIN and not flag:
            out.append(Finding(
                Severity.ERROR, "numa-live-migration-disabled", c.name,
                f"{release_name(c.release)} refuses to live-migrate instances with a NUMA "
                "topology (pinned CPUs, huge pages, guest NUMA cells) unless [workarounds] "
                "enable_numa_live_migration = True", "upgrade every compute to Train or "
                "later (NUMA-aware live migration), or set the workaround knowing its danger "
                "(see numa-live-migration-unsafe)", where))
        elif c.release < TRAIN:
            out.append(Finding(
                Severity.WARNING, "numa-live-migration-unsafe", c.name,
                f"{release_name(c.release)} with enable_numa_live_migration = True moves NUMA "
                "guests WITHOUT recalculating their pins and NUMA placement on the "
                "destination: they keep the source's CPU numbers and may overlap guests "
                "pinned there", "use numa-migrate migrate (it re-pins and validates), or "
                "upgrade to Train or later", where))
        elif mixed:
            out.append(Finding(
                Severity.WARNING, "numa-live-migration-mixed", c.name,
                "computes run releases before and after Train: NUMA-aware live migration "
                "only works when both ends run Train or later; with older computes left "
                "Nova refuses it unless [workarounds] enable_numa_live_migration = True "
                "(which then migrates without re-pinning)", "finish the upgrade of every "
                "compute to Train or later", where))
        else:
            note = ("; [workarounds] enable_numa_live_migration is deprecated and has no "
                    "effect once every compute runs Train or later"
                    if flag_value is not None else "")
            out.append(Finding(Severity.OK, "numa-live-migration", c.name,
                               f"{release_name(c.release)}: NUMA-aware live migration "
                               f"recalculates pins and NUMA placement on the destination{note}",
                               "", where))
    return out


# --------------------------------------------------------------------------- CPU sets


def _cpus(c: Compute, section: str, key: str, out: list[Finding]) -> frozenset[int] | None:
    value = c.conf.get(section, key)
    if value is None:
        return None
    try:
        return cpu_set_option(value.value, option=key)
    except ParseError as exc:
        out.append(Finding(Severity.ERROR, "cpu-set-syntax", c.name, str(exc),
                           f"fix [{section}] {key} (Nova's syntax: 2-7,^4,12)",
                           c.conf.where(value)))
        return None


def cpu_sets(c: Compute, host: HostTopology | None) -> list[Finding]:
    out: list[Finding] = []
    dedicated = _cpus(c, "compute", "cpu_dedicated_set", out)
    shared = _cpus(c, "compute", "cpu_shared_set", out)
    legacy = _cpus(c, "DEFAULT", "vcpu_pin_set", out)
    where = c.conf.where(c.conf.get("DEFAULT", "vcpu_pin_set")
                         or c.conf.get("compute", "cpu_dedicated_set"))
    if legacy is not None and dedicated is not None:
        out.append(Finding(Severity.ERROR, "cpu-sets-conflict", c.name,
                           "[DEFAULT] vcpu_pin_set and [compute] cpu_dedicated_set are both "
                           "set: nova-compute refuses to start",
                           "remove vcpu_pin_set (cpu_dedicated_set replaces it)", where))
    elif legacy is not None and (c.release is None or c.release >= TRAIN):
        out.append(Finding(Severity.WARNING, "cpu-sets-legacy", c.name,
                           "only the legacy [DEFAULT] vcpu_pin_set is set: pinned guests are "
                           "accounted as VCPU, not PCPU, in placement",
                           "move to [compute] cpu_dedicated_set (pinned) and cpu_shared_set "
                           "(floating), then reshape as Nova's upgrade notes describe", where))
    if dedicated is not None and shared is not None and dedicated & shared:
        out.append(Finding(Severity.ERROR, "cpu-sets-overlap", c.name,
                           f"CPUs {CpuSet.of(dedicated & shared)} are in both "
                           "cpu_dedicated_set and cpu_shared_set",
                           "a CPU is either dedicated or shared: remove it from one set",
                           c.conf.where(c.conf.get("compute", "cpu_shared_set"))))
    if dedicated is None and legacy is None and (c.release is None or c.release >= TRAIN):
        out.append(Finding(Severity.INFO, "cpu-sets-none", c.name,
                           "no cpu_dedicated_set: this compute offers no PCPU inventory, so "
                           "hw:cpu_policy=dedicated guests cannot land on it",
                           "set [compute] cpu_dedicated_set if it should host pinned guests",
                           c.conf.path))
    if host is None:
        return out
    have = host.cpus
    for key, cpus in (("cpu_dedicated_set", dedicated), ("cpu_shared_set", shared),
                      ("vcpu_pin_set", legacy)):
        if cpus and cpus - have:
            section = "DEFAULT" if key == "vcpu_pin_set" else "compute"
            out.append(Finding(Severity.ERROR, "cpu-sets-missing-cpus", c.name,
                               f"{key} names CPUs {CpuSet.of(cpus - have)} that "
                               f"{host.name} does not have (it has {CpuSet.of(have)})",
                               f"fix [{section}] {key}",
                               c.conf.where(c.conf.get(section, key))))
    if dedicated and shared:
        for cell in host.cells:
            for siblings in cell.siblings:
                if siblings & dedicated and siblings & shared:
                    out.append(Finding(
                        Severity.WARNING, "cpu-sets-split-siblings", c.name,
                        f"thread siblings {CpuSet.of(siblings)} are split between "
                        "cpu_dedicated_set and cpu_shared_set: a pinned guest shares a core "
                        "with floating ones", "put both threads of a core in the same set",
                        c.conf.where(c.conf.get("compute", "cpu_shared_set"))))
    return out


# --------------------------------------------------------------------------- huge pages


def huge_pages(c: Compute, host: HostTopology | None) -> list[Finding]:
    out: list[Finding] = []
    for value in c.conf.all("DEFAULT", "reserved_huge_pages"):
        # one entry per value, as Nova's MultiOpt of Dict reads it
        entry = value.value.strip()
        try:
            reserved = reserved_huge_pages_entry(entry)
        except OptionError as exc:
            hint = "" if RESERVED_PAGES_SYNTAX in exc.detail else (
                f"; expected {RESERVED_PAGES_SYNTAX}")
            raise PreflightInputError(
                f"{c.conf.where(value)}: reserved_huge_pages {entry[:60]!r}: "
                f"{exc.detail.removeprefix(': ')}{hint}"
            ) from None
        node, count, size = reserved.node, reserved.count, reserved.size_kib
        if host is None:
            continue
        pool = host.page_pool(node, size)
        if pool is None:
            out.append(Finding(Severity.ERROR, "reserved-pages-missing", c.name,
                               f"reserves {count} x {size} KiB pages on node {node}, but "
                               f"{host.name} has no such pages there",
                               "fix reserved_huge_pages or allocate the pages (kernel "
                               "hugepages= / nr_hugepages)", c.conf.where(value)))
        elif count > pool.total:
            out.append(Finding(Severity.ERROR, "reserved-pages-too-many", c.name,
                               f"reserves {count} x {size} KiB pages on node {node}; the "
                               f"host has {pool.total}", "lower the reservation",
                               c.conf.where(value)))
        elif pool.total - max(count, pool.used) <= 0:
            out.append(Finding(Severity.WARNING, "reserved-pages-none-left", c.name,
                               f"node {node}: {pool.total} x {size} KiB pages, {count} "
                               f"reserved, {pool.used} in use: none free for a migrating "
                               "guest", "free or add huge pages on this node",
                               c.conf.where(value)))
    return out


# --------------------------------------------------------------------------- migration


def migration_options(c: Compute) -> list[Finding]:
    out = []
    converge = conf_bool(c.conf, "libvirt", "live_migration_permit_auto_converge")
    postcopy = conf_bool(c.conf, "libvirt", "live_migration_permit_post_copy")
    out.append(Finding(Severity.INFO, "migration-convergence", c.name,
                       f"auto-converge {'permitted' if converge else 'not permitted'}, "
                       f"post-copy {'permitted' if postcopy else 'not permitted'}"
                       + (" (Nova prefers post-copy when both are)" if converge and postcopy
                          else ""),
                       "" if converge or postcopy else "busy pinned guests may never converge: "
                       "consider [libvirt] live_migration_permit_post_copy = True",
                       c.conf.where(c.conf.get("libvirt", "live_migration_permit_post_copy"))))
    concurrent = conf_int(c.conf, "DEFAULT", "max_concurrent_live_migrations")
    if concurrent == 0:
        out.append(Finding(Severity.WARNING, "migration-unlimited", c.name,
                           "max_concurrent_live_migrations = 0 (unlimited): parallel "
                           "migrations of pinned guests compete for the same link and CPUs",
                           "set [DEFAULT] max_concurrent_live_migrations = 1 (Nova's default)",
                           c.conf.where(c.conf.get("DEFAULT",
                                                   "max_concurrent_live_migrations"))))
    timeout = conf_int(c.conf, "libvirt", "live_migration_completion_timeout")
    if timeout == 0:
        out.append(Finding(Severity.WARNING, "migration-no-timeout", c.name,
                           "live_migration_completion_timeout = 0: a migration that never "
                           "converges is never aborted", "set a timeout (Nova's default 800 "
                           "s per GiB)", c.conf.where(c.conf.get(
                               "libvirt", "live_migration_completion_timeout"))))
    action = c.conf.get("libvirt", "live_migration_timeout_action")
    if action is not None and action.value.strip() == "force_complete" and not postcopy:
        out.append(Finding(Severity.INFO, "migration-force-complete", c.name,
                           "live_migration_timeout_action = force_complete without post-copy "
                           "pauses the guest until the copy finishes", "permit post-copy, or "
                           "use abort", c.conf.where(action)))
    return out


# --------------------------------------------------------------------------- hosts


def _version(v: tuple[int, int, int]) -> str:
    return ".".join(str(x) for x in v)


def versions(hosts: list[HostFacts]) -> list[Finding]:
    out = []
    for h in hosts:
        for what, have, need in (("libvirt", h.libvirt, MIN_LIBVIRT), ("QEMU", h.qemu, MIN_QEMU)):
            sev = Severity.OK if have >= need else Severity.ERROR
            out.append(Finding(sev, f"version-{what.lower()}", h.name,
                               f"{what} {_version(have)} (numa-migrate needs {_version(need)}, "
                               "the minimum Nova has required since Wallaby)",
                               "" if sev is Severity.OK else f"upgrade {what}"))
        if h.libvirt < POSTCOPY_RESUME_LIBVIRT:
            out.append(Finding(Severity.INFO, "version-postcopy-resume", h.name,
                               f"libvirt {_version(h.libvirt)} cannot resume a failed "
                               "post-copy migration (needs 8.5.0)", ""))
    for a in hosts:
        for b in hosts:
            if a.name >= b.name:
                continue
            if a.cpu_model != b.cpu_model or a.cpu_features != b.cpu_features:
                only_a = sorted(a.cpu_features - b.cpu_features)
                only_b = sorted(b.cpu_features - a.cpu_features)
                out.append(Finding(
                    Severity.WARNING, "cpu-model-mismatch", f"{a.name}/{b.name}",
                    f"CPU {a.cpu_model} vs {b.cpu_model}; only on {a.name}: "
                    f"{', '.join(only_a) or 'none'}; only on {b.name}: "
                    f"{', '.join(only_b) or 'none'}",
                    "guests with cpu_mode host-passthrough/host-model may not migrate "
                    "between them: use a common named cpu_model"))
    return out


# --------------------------------------------------------------------------- charm

# nova.conf option -> the nova-compute charm option that sets it (None: the charm has none)
CHARM_OPTIONS: dict[tuple[str, str], str | None] = {
    ("workarounds", "enable_numa_live_migration"): None,
    ("compute", "cpu_dedicated_set"): "cpu-dedicated-set",
    ("compute", "cpu_shared_set"): "cpu-shared-set",
    ("DEFAULT", "vcpu_pin_set"): "vcpu-pin-set",
    ("DEFAULT", "reserved_huge_pages"): "reserved-huge-pages",
    ("libvirt", "live_migration_permit_auto_converge"): "live-migration-permit-auto-converge",
    ("libvirt", "live_migration_permit_post_copy"): "live-migration-permit-post-copy",
    ("libvirt", "live_migration_completion_timeout"): "live-migration-completion-timeout",
    ("DEFAULT", "max_concurrent_live_migrations"): None,
    ("libvirt", "live_migration_timeout_action"): None,
}


def charm_options(charm: CharmConfig, computes: list[Compute]) -> list[Finding]:
    app = charm.application
    out = []
    if not charm.value("enable-live-migration"):
        out.append(Finding(Severity.ERROR, "charm-live-migration-off", app,
                           "enable-live-migration is false: the charm does not configure "
                           "libvirt for live migration at all",
                           f"juju config {app} enable-live-migration=true",
                           charm.where("enable-live-migration")))
    if charm.value("vcpu-pin-set") and charm.value("cpu-dedicated-set"):
        out.append(Finding(Severity.ERROR, "charm-cpu-sets-conflict", app,
                           "vcpu-pin-set and cpu-dedicated-set are both set",
                           f"juju config {app} --reset vcpu-pin-set",
                           charm.where("vcpu-pin-set")))
    old = [c for c in computes if c.release is not None and c.release < TRAIN]
    for (section, key), option in CHARM_OPTIONS.items():
        if option is not None:
            continue
        if section == "DEFAULT":
            fix = (f"not a charm option; [DEFAULT] options go through config-flags: "
                   f"juju config {app} config-flags=\"{key}=VALUE\" (config-flags writes only "
                   "[DEFAULT], and replaces any earlier config-flags value)")
        else:
            fix = (f"the charm cannot set [{section}] {key}: config-flags writes only "
                   "[DEFAULT], and hand edits of nova.conf are overwritten by the charm")
            if key == "enable_numa_live_migration":
                fix += ("; upgrade the cloud to Train or later (openstack-origin) for "
                        "NUMA-aware live migration")
        sev = Severity.ERROR if key == "enable_numa_live_migration" and old else Severity.INFO
        out.append(Finding(sev, "charm-not-exposed", app,
                           f"[{section}] {key} is not exposed by the {app} charm", fix))
    for (section, key), option in CHARM_OPTIONS.items():
        if option is None or charm.value(option) in (None, ""):
            continue
        out.append(Finding(Severity.INFO, "charm-sets", app,
                           f"{option} = {charm.value(option)!r} (-> [{section}] {key})", "",
                           charm.where(option)))
    return out

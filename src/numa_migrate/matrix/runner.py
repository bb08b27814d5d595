"""Run the validation matrix on two real libvirt hosts (the lab, or an inventory's pair).

For each scenario of :mod:`numa_migrate.matrix.scenarios`: read both hosts live; skip with
the reason when they cannot express it; define the guest from its extra specs on the source,
placed and pinned by numa-migrate's fitter (:mod:`numa_migrate.lab.flavored`); start it and
wait until its counter runs; migrate it with numa-migrate's :class:`Migration` (claims,
rewritten XML, migrate3); ``validate`` it on the destination against the plan (pins, NUMA
memory, huge pages, persistent XML, /proc affinities); migrate it back and validate again.
Refusal scenarios must be refused before anything moves. Everything the scenario started is
removed afterwards, whatever happened. Each scenario's guest is a counter guest whose
floppy image must exist at the same path on both hosts (the lab has it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from numa_migrate.adapters.inventory import HostConfig, Inventory, ReservedPages
from numa_migrate.adapters.inventory_live import LiveHost, read_live_host
from numa_migrate.adapters.validate_live import validate_on_host
from numa_migrate.claims import ClaimStore
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.request import Flavor
from numa_migrate.core.validation import Status as CheckStatus
from numa_migrate.core.validation import ValidationReport
from numa_migrate.hypervisor.base import Hypervisor, HypervisorError
from numa_migrate.hypervisor.libvirt import connect, connection
from numa_migrate.lab.flavored import FlavoredGuest, flavored_guest
from numa_migrate.lab.guest import counter_advances, wait_until_counting
from numa_migrate.matrix.report import (
    CellPicture,
    Check,
    HostPicture,
    Leg,
    MatrixReport,
    ScenarioResult,
    Status,
)
from numa_migrate.matrix.scenarios import Kind, Scenario
from numa_migrate.migrate.hosts import Hosts
from numa_migrate.migrate.plan import NoRoom
from numa_migrate.migrate.run import HostRef, Migration, Outcome

_OUTCOME = {CheckStatus.PASSED: "pass", CheckStatus.FAILED: "fail",
            CheckStatus.SKIPPED: "skip"}
PREFIX = "nm-mx-"


class ScenarioError(NumaMigrateError):
    """A scenario could not be carried out (its row fails with this message)."""


@dataclass
class MatrixRun:
    """The matrix on ``source`` and ``destination`` of ``inventory``."""

    inventory: Inventory
    source: str
    destination: str
    store: ClaimStore
    image: Path
    domain_type: str
    lab: bool = False
    """Both hosts are the lab's: scenarios may set their own CPU sets (lab_cpu_sets)."""
    lab_kind: str = "lab"
    """Which lab the rows ran on (the report's ``ran_on``): "lab" or "multi-node-lab"."""
    say: Callable[[str], None] = lambda _m: None
    fixtures: Callable[[Scenario], ScenarioResult] | None = None
    """Runs a FIXTURES scenario (None: such rows are skipped with the reason)."""
    _checks: list[Check] = field(default_factory=list)
    _conns: dict[str, Hypervisor] = field(default_factory=dict)

    # ------------------------------------------------------------------ the matrix

    def run(self, scenarios: tuple[Scenario, ...], title: str) -> MatrixReport:
        started = _now()
        environment = self._environment()
        results = []
        for number, scenario in enumerate(scenarios, 1):
            self.say(f"[{number}/{len(scenarios)}] {scenario.id}: {scenario.title}")
            result = self.run_one(scenario)
            self.say(f"[{number}/{len(scenarios)}] {scenario.id}: {result.status.value}"
                     + (f" ({result.reason})" if result.reason else ""))
            results.append(result)
        return MatrixReport(title=title, started_at=started, finished_at=_now(),
                            environment=environment, scenarios=tuple(results))

    def run_one(self, scenario: Scenario) -> ScenarioResult:
        if scenario.kind is Kind.FIXTURES:
            if self.fixtures is None:
                return self._result(scenario, Status.SKIPPED, "no fixture runner given",
                                    ran_on="none")
            return self.fixtures(scenario)
        self._checks = []
        hosts = self._hosts(scenario)
        try:
            with self._cleanup(hosts, scenario):
                return self._run_live(scenario, hosts)
        except (NumaMigrateError, OSError) as exc:
            return self._result(scenario, Status.FAILED, str(exc), checks=tuple(self._checks))
        except Exception as exc:  # libvirt errors and the unexpected: the row fails, loudly
            return self._result(scenario, Status.FAILED, f"{type(exc).__name__}: {exc}",
                                checks=tuple(self._checks))

    # ------------------------------------------------------------------ one scenario

    def _run_live(self, scenario: Scenario, hosts: Hosts) -> ScenarioResult:
        src_cfg = hosts.inventory.host(self.source)
        dst_cfg = hosts.inventory.host(self.destination)
        src_live, dst_live = read_live_host(src_cfg), read_live_host(dst_cfg)
        unmet = scenario.unmet(src_live.capacity, dst_live.capacity)
        if unmet:
            return self._result(scenario, Status.SKIPPED,
                                "the hosts cannot express it: " + "; ".join(unmet),
                                ran_on="none")
        if scenario.kind is Kind.NO_PAGE_SIZE:
            hosts, dst_cfg = self._without_pages(hosts, dst_live, scenario)
        neighbour = None
        if scenario.neighbour_specs is not None:
            neighbour = self._start_neighbour(scenario, dst_cfg, dst_live)
        name = PREFIX + scenario.id
        flavor = Flavor(scenario.vcpus, scenario.memory_mib, dict(scenario.extra_specs),
                        scenario.id)
        guest = flavored_guest(name, flavor, src_live.topology, image=self.image,
                               domain_type=self.domain_type)
        if not isinstance(guest, FlavoredGuest):
            return self._result(scenario, Status.SKIPPED,
                                f"{self.source} cannot place the guest now: {guest.summary}",
                                ran_on="none")
        self._start(src_cfg, guest.xml)
        pictures = [self._picture(src_cfg, "before"), self._picture(dst_cfg, "before")]
        src, dst = hosts.ref(self.source), hosts.ref(self.destination)
        page = _page_size(guest)
        if scenario.kind is not Kind.ROUND_TRIP:
            return self._refusal(scenario, hosts, src, dst, guest=guest, pictures=pictures,
                                 page=page)
        source_cells = dict(guest.plan.cell_nodes) if guest.plan else {}
        there = self._leg(hosts, src, dst, name, source_cells=source_cells, scenario=scenario,
                          neighbour=neighbour, label="there")
        pictures += [self._picture(src_cfg, "after"), self._picture(dst_cfg, "after")]
        back = self._leg(hosts, dst, src, name, source_cells=dict(there.dest_cells),
                         scenario=scenario, neighbour=None, label="back")
        failed = [c for c in self._checks if c.outcome == "fail"]
        status = Status.FAILED if failed else Status.PASSED
        reason = "; ".join(f"{c.title}: {c.detail}" for c in failed[:3])
        return self._result(scenario, status, reason, page=page, legs=(there, back),
                            checks=tuple(self._checks), pictures=tuple(pictures))

    def _leg(self, hosts: Hosts, src: HostRef, dst: HostRef, name: str, *,
             source_cells: dict[int, int], scenario: Scenario, neighbour: FlavoredGuest | None,
             label: str) -> Leg:
        outcome = Migration(store=self.store, source=src, destination=dst, domain=name,
                            read_host=hosts.read_host).run()
        if isinstance(outcome, NoRoom):
            extra = [r for r in outcome.reasons if r not in outcome.summary][:3]
            detail = f" ({'; '.join(extra)})" if extra else ""
            raise ScenarioError(f"{label}: {dst.name} refused the guest: {outcome.summary}"
                                f"{detail}")
        self._after_move(hosts, outcome, dst, name=name, label=label)
        if "cpuset_avoids_neighbour" in scenario.checks and neighbour is not None:
            self._cpuset_check(hosts, dst, name, neighbour, label)
        plan = outcome.plan.dest_plan
        return Leg(source=src.name, destination=dst.name, seconds=outcome.seconds,
                   downtime_ms=outcome.downtime_ms,
                   source_pins={v: tuple(c) for v, c in outcome.source_pins.items()},
                   dest_pins={v: tuple(c) for v, c in outcome.dest_pins.items()},
                   source_cells=source_cells,
                   dest_cells=dict(plan.cell_nodes) if plan else {})

    def _after_move(self, hosts: Hosts, outcome: Outcome, dst: HostRef, *,
                    name: str, label: str) -> None:
        checked = validate_on_host(hosts.inventory.host(dst.name), name,
                                   outcome.plan.dest_plan)
        self._checks += validation_checks(checked.report, label)
        where = self._running_on(hosts, name)
        self._check(f"{label}:runs_once", f"{label}: runs on {dst.name} only",
                    "pass" if where == [dst.name] else "fail", f"running on: {where or 'none'}")
        dom = self._conn(hosts, dst.name).lookup(name)
        counting = dom is not None and counter_advances(dom)
        self._check(f"{label}:counter", f"{label}: guest keeps running (counter advances)",
                    "pass" if counting else "fail", f"after {outcome.seconds:.2f} s, "
                    f"downtime {outcome.downtime_ms} ms")
        live = [c.id for c in self.store.list_claims() if c.state.live]
        self._check(f"{label}:claims", f"{label}: no claim left live",
                    "pass" if not live else "fail", f"live claims: {live or 'none'}")

    def _cpuset_check(self, hosts: Hosts, dst: HostRef, name: str, neighbour: FlavoredGuest,
                      label: str) -> None:
        live = read_live_host(hosts.inventory.host(dst.name))
        dom, nb = live.domain(name), live.domain(neighbour.name)
        if dom is None or nb is None:
            self._check(f"{label}:cpuset", f"{label}: cpuset avoids the pinned neighbour",
                        "fail", "guest or neighbour not found on the destination")
            return
        pinned = frozenset().union(*(c for _v, c in nb.info.vcpupin))
        shared = live.capacity.shared_cpus
        cpuset = dom.info.vcpu_cpuset
        ok = cpuset is not None and not (cpuset & pinned) and cpuset <= shared
        self._check(f"{label}:cpuset", f"{label}: <vcpu cpuset> avoids the pinned neighbour",
                    "pass" if ok else "fail",
                    f"cpuset {_spec(cpuset)}, neighbour pinned on {_spec(pinned)}, "
                    f"shared set {_spec(shared)}")
        persistent = dom.persistent.vcpu_cpuset if dom.persistent else None
        self._check(f"{label}:cpuset_persistent",
                    f"{label}: persistent <vcpu cpuset> equals the live one",
                    "pass" if persistent == cpuset else "fail",
                    f"persistent {_spec(persistent)}, live {_spec(cpuset)}")

    def _refusal(self, scenario: Scenario, hosts: Hosts, src: HostRef, dst: HostRef, *,
                 guest: FlavoredGuest, pictures: list[HostPicture],
                 page: int | None) -> ScenarioResult:
        outcome = Migration(store=self.store, source=src, destination=dst, domain=guest.name,
                            read_host=hosts.read_host).run()
        reasons: tuple[str, ...] = ()
        if isinstance(outcome, NoRoom):
            reasons = tuple(dict.fromkeys((outcome.summary, *outcome.reasons)))
            self._check("refused", "refused by the fitter", "pass", outcome.summary)
            text = " ".join(reasons).lower()
            self._check("reason", f"the reasons mention {scenario.expect_reason!r}",
                        "pass" if scenario.expect_reason in text else "fail",
                        "; ".join(reasons[:4]))
        else:
            self._check("refused", "refused by the fitter", "fail",
                        f"it migrated to {dst.name} although it should have been refused")
        where = self._running_on(hosts, guest.name)
        self._check("stays", f"still runs on {src.name} only",
                    "pass" if where == [src.name] else "fail", f"running on: {where or 'none'}")
        dom = self._conn(hosts, src.name).lookup(guest.name)
        self._check("counter", "guest keeps running (counter advances)",
                    "pass" if dom is not None and counter_advances(dom) else "fail")
        leftover = self._conn(hosts, dst.name).lookup(guest.name)
        self._check("nothing_on_destination", f"nothing defined on {dst.name}",
                    "pass" if leftover is None and dst.name not in where else "fail")
        live = [c.id for c in self.store.list_claims() if c.state.live]
        self._check("claims", "no claim taken", "pass" if not live else "fail",
                    f"live claims: {live or 'none'}")
        failed = [c for c in self._checks if c.outcome == "fail"]
        leg = Leg(source=src.name, destination=dst.name, seconds=None, downtime_ms=None,
                  source_pins={v: tuple(sorted(c)) for v, c in
                               (guest.plan.vcpu_pins.items() if guest.plan else ())},
                  dest_pins={}, source_cells=dict(guest.plan.cell_nodes) if guest.plan else {},
                  dest_cells={}, refused_reasons=reasons)
        return self._result(scenario, Status.FAILED if failed else Status.PASSED,
                            "; ".join(f"{c.title}: {c.detail}" for c in failed[:3]),
                            page=page, legs=(leg,), checks=tuple(self._checks),
                            pictures=tuple(pictures))

    # ------------------------------------------------------------------ helpers

    def _hosts(self, scenario: Scenario) -> Hosts:
        configs = []
        for config in self.inventory.hosts:
            role = {self.source: "source", self.destination: "destination"}.get(config.name)
            sets = (scenario.lab_cpu_sets or {}).get(role or "") if self.lab else None
            if sets is None:
                configs.append(config)
                continue
            dedicated, shared = sets
            configs.append(replace(config, cpu_dedicated_set=CpuSet.parse(dedicated),
                                   cpu_shared_set=None if shared is None
                                   else CpuSet.parse(shared)))
        return Hosts(Inventory(self.inventory.path, tuple(configs)))

    def _without_pages(self, hosts: Hosts, dst_live: LiveHost,
                       scenario: Scenario) -> tuple[Hosts, HostConfig]:
        size = int(scenario.extra_specs.get("hw:mem_page_size", "2048"))
        reserved = tuple(ReservedPages(cell.id, p.size_kib, p.total)
                         for cell in dst_live.capacity.cells for p in cell.mempages
                         if p.size_kib == size)
        configs = tuple(replace(c, reserved_huge_pages=reserved) if c.name == self.destination
                        else c for c in hosts.inventory.hosts)
        self._check("pages_reserved", f"every {size} KiB page of {self.destination} reserved "
                    "(reserved_huge_pages in the scenario's inventory)", "pass",
                    ", ".join(f"node {r.node}: {r.count}" for r in reserved) or "none")
        new = Hosts(Inventory(hosts.inventory.path, configs))
        return new, new.inventory.host(self.destination)

    def _start_neighbour(self, scenario: Scenario, dst_cfg: HostConfig,
                         dst_live: LiveHost) -> FlavoredGuest:
        specs = dict(scenario.neighbour_specs or {})
        memory = 16
        vcpus = 1
        if scenario.kind is Kind.NO_ROOM:
            specs, vcpus, memory = blocker_specs(specs, dst_live.topology)
        flavor = Flavor(vcpus, memory, specs, "neighbour")
        guest = flavored_guest(f"{PREFIX}{scenario.id}-nb", flavor, dst_live.topology,
                               image=self.image, domain_type=self.domain_type)
        if not isinstance(guest, FlavoredGuest):
            raise ScenarioError(f"the neighbour guest does not fit on {dst_cfg.name}: "
                                f"{guest.summary}")
        self._start(dst_cfg, guest.xml)
        return guest

    def _start(self, config: HostConfig, xml: str) -> None:
        with connection(config.uri, config.name) as conn:
            dom = conn.define(xml)
            dom.start()
            wait_until_counting(dom, timeout=90)

    def _conn(self, hosts: Hosts, host: str) -> Hypervisor:
        if host not in self._conns:
            config = hosts.inventory.host(host)
            self._conns[host] = connect(config.uri, config.name)
        return self._conns[host]

    def _running_on(self, hosts: Hosts, name: str) -> list[str]:
        out = []
        for host in (self.source, self.destination):
            dom = self._conn(hosts, host).lookup(name)
            if dom is not None and dom.is_active():
                out.append(host)
        return out

    @contextmanager
    def _cleanup(self, hosts: Hosts, scenario: Scenario) -> Iterator[None]:
        try:
            yield
        finally:
            for host in (self.source, self.destination):
                conn = self._conn(hosts, host)
                for name in (PREFIX + scenario.id, f"{PREFIX}{scenario.id}-nb"):
                    _remove(conn, name)
            for conn in self._conns.values():
                with suppress(Exception):
                    conn.close()
            self._conns.clear()

    def _picture(self, config: HostConfig, when: str) -> HostPicture:
        return host_picture(read_live_host(config), when)

    def _check(self, name: str, title: str, outcome: str, detail: str = "") -> None:
        self._checks.append(Check(name=name, title=title, outcome=outcome, detail=detail))

    def _result(self, scenario: Scenario, status: Status, reason: str = "", *,
                page: int | None = None, legs: tuple[Leg, ...] = (),
                checks: tuple[Check, ...] = (), pictures: tuple[HostPicture, ...] = (),
                ran_on: str = "lab") -> ScenarioResult:
        if ran_on == "lab":
            ran_on = self.lab_kind if self.lab else "hosts"
        return ScenarioResult(id=scenario.id, group=scenario.group, title=scenario.title,
                              extra_specs=dict(scenario.extra_specs), status=status,
                              reason=reason, page_size_kib=page, legs=legs, checks=checks,
                              pictures=pictures, ran_on=ran_on)

    def _environment(self) -> dict[str, str]:
        env = {"source": self.source, "destination": self.destination,
               "guests": self.domain_type}
        for host in (self.source, self.destination):
            config = self.inventory.host(host)
            try:
                with connection(config.uri, config.name) as conn:
                    versions = conn.versions()
            except HypervisorError as exc:
                env[f"{host}"] = str(exc)
                continue
            env[f"{host} libvirt"] = ".".join(map(str, versions.libvirt))
            env[f"{host} QEMU"] = ".".join(map(str, versions.hypervisor))
            env[f"{host} uri"] = config.uri
        return env


def validation_checks(report: ValidationReport, label: str = "") -> list[Check]:
    """``validate``'s checks as report rows (prefixed with the leg's label when given)."""
    out = []
    for c in report.checks:
        detail = c.detail or (f"expected {c.expected}; actual {c.actual}"
                              if c.expected or c.actual else "")
        out.append(Check(f"{label}:{c.name}" if label else c.name,
                         f"{label}: {c.title}" if label else c.title,
                         _OUTCOME[c.status], detail))
    return out


def host_picture(live: LiveHost, when: str) -> HostPicture:
    """Each NUMA cell's CPUs, with the guest pinned to (or floating on) each."""
    cells = []
    for cell in live.capacity.cells:
        cpus = tuple(sorted(frozenset().union(*cell.siblings) | cell.cpuset | cell.pcpuset))
        owners: dict[int, str] = {}
        for dom in live.active_domains:
            for _vcpu, pinned in dom.info.vcpupin:
                if len(pinned) == 1:
                    owners.setdefault(next(iter(pinned)), dom.name)
        for dom in live.active_domains:
            floating = dom.info.vcpu_cpuset
            if floating is not None and not dom.info.vcpupin:
                for cpu in floating:
                    owners.setdefault(cpu, dom.name)
        kinds = {cpu: "dedicated" if cpu in cell.pcpuset else
                 "shared" if cpu in cell.cpuset else "reserved" for cpu in cpus}
        cells.append(CellPicture(node=cell.id, cpus=cpus,
                                 owners={c: o for c, o in owners.items() if c in cpus},
                                 kinds=kinds))
    return HostPicture(host=live.name, when=when, cells=tuple(cells))


def _remove(conn: Hypervisor, name: str) -> None:
    try:
        dom = conn.lookup(name)
        if dom is None:
            return
        if dom.is_active():
            dom.destroy()
        if dom.is_persistent():
            dom.undefine()
    except HypervisorError:
        pass


def _page_size(guest: FlavoredGuest) -> int | None:
    if guest.plan is None or not guest.plan.hugepage_kib:
        return None
    return max(guest.plan.hugepage_kib.values())


def _spec(cpus: frozenset[int] | None) -> str:
    return "none" if cpus is None else CpuSet.of(cpus).format() or "none"


def blocker_specs(specs: dict[str, str], host: HostTopology
                  ) -> tuple[dict[str, str], int, int]:
    """Extra specs, vCPUs and MiB of a guest that takes every free dedicated CPU of ``host``:
    one guest cell per host cell that has free dedicated CPUs (hw:numa_cpus.N sized to each
    cell's free CPUs, 16 MiB per cell), so that on a multi-node host no cell is left free."""
    free = [len(c.pcpuset - c.pinned_cpus) for c in host.cells]
    counts = [n for n in free if n > 0] or [1]
    vcpus = sum(counts)
    if len(counts) == 1:
        return specs, vcpus, 16
    out = {**specs, "hw:numa_nodes": str(len(counts))}
    first = 0
    for index, count in enumerate(counts):
        out[f"hw:numa_cpus.{index}"] = CpuSet.of(range(first, first + count)).format()
        out[f"hw:numa_mem.{index}"] = "16"
        first += count
    return out, vcpus, 16 * len(counts)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

"""``validate-matrix --cloud``: the validation matrix through Nova.

Per scenario: a flavor from its extra specs, a server booted on the source compute,
live-migrated **by Nova** to the destination and back (``migrate --cloud``: our checks, then
Nova's API with the host), validated after each move (Nova's view against libvirt and
/proc). A refusal scenario boots a blocker on the destination first; the move must be
predicted as refused by ``explain`` *and* refused by Nova when asked anyway.

Everything it creates (servers, flavors, the image when it had to upload one) is deleted at
the end of each scenario and of the run, also on failure and on Ctrl-C. Scenarios the
computes cannot express, or that cannot be set up on a cloud without changing its
configuration, are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from numa_migrate.cloud import nova
from numa_migrate.cloud.api import CloudApi, CloudError, CloudResponseError
from numa_migrate.cloud.computes import ComputeMap
from numa_migrate.cloud.explain import explain_server
from numa_migrate.cloud.migrate import CloudMigration, migrate_server
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.fit.fitter import fit_guest
from numa_migrate.core.novaview import ServerTopology
from numa_migrate.core.request import Flavor, guest_from_flavor
from numa_migrate.inputs.fields import root
from numa_migrate.lab.guest import boot_sector
from numa_migrate.matrix.report import (
    Check,
    HostPicture,
    Leg,
    MatrixReport,
    ScenarioResult,
    Status,
)
from numa_migrate.matrix.runner import host_picture, validation_checks
from numa_migrate.matrix.scenarios import Kind, Scenario
from numa_migrate.preflight.cloudfacts import describe_api_release

PREFIX = "nm-matrix-"
IMAGE_NAME = "numa-migrate-counter"
IMAGE_SIZE = 1 << 20
STALE_WAIT_S = 150.0
RETRY_S = 10.0

Say = Callable[[str], None]


def _quiet(_msg: str) -> None:
    return None


@dataclass
class _Made:
    """What a run created and must delete: servers, flavors, an image."""

    servers: list[str] = field(default_factory=list)
    flavors: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


@dataclass
class CloudMatrixRun:
    api: CloudApi
    computes: ComputeMap
    source: str
    destination: str
    say: Say = _quiet
    image: str = IMAGE_NAME
    _checks: list[Check] = field(default_factory=list)
    _made: _Made = field(default_factory=_Made)
    _image_id: str | None = None

    # -------------------------------------------------------------------------- the matrix

    def run(self, scenarios: tuple[Scenario, ...], title: str) -> MatrixReport:
        started = _now()
        environment = self._environment()
        results = []
        try:
            for number, scenario in enumerate(scenarios, 1):
                self.say(f"[{number}/{len(scenarios)}] {scenario.id}: {scenario.title}")
                result = self.run_one(scenario)
                self.say(f"[{number}/{len(scenarios)}] {scenario.id}: {result.status.value}"
                         + (f" ({result.reason})" if result.reason else ""))
                results.append(result)
        finally:
            self._delete_all()
        return MatrixReport(title=title, started_at=started, finished_at=_now(),
                            environment=environment, scenarios=tuple(results))

    def run_one(self, scenario: Scenario) -> ScenarioResult:
        self._checks = []
        skip = self._cannot(scenario)
        if skip:
            return self._result(scenario, Status.SKIPPED, skip, ran_on="none")
        try:
            with self._cleanup():
                return self._run(scenario)
        except NumaMigrateError as exc:
            return self._result(scenario, Status.FAILED, str(exc), checks=tuple(self._checks))
        except Exception as exc:  # the unexpected fails the row, loudly, and the run goes on
            return self._result(scenario, Status.FAILED, f"{type(exc).__name__}: {exc}",
                                checks=tuple(self._checks))

    def _cannot(self, scenario: Scenario) -> str:
        """Why this scenario cannot run through Nova here ('' when it can)."""
        if scenario.kind is Kind.FIXTURES:
            return ("needs SR-IOV hardware, which the computes lack; the libvirt matrix runs "
                    "it on node-device XML fixtures")
        if scenario.kind is Kind.NO_PAGE_SIZE:
            return ("needs the destination's huge pages reserved in its nova.conf "
                    "(reserved_huge_pages) and its nova-compute restarted: not done to a "
                    "cloud by a test; the libvirt matrix runs it")
        if scenario.lab_cpu_sets is not None:
            return ("needs its own cpu_dedicated_set/cpu_shared_set on each compute; a cloud's "
                    "CPU sets are its nova.conf's")
        flavor = Flavor(scenario.vcpus, scenario.memory_mib, dict(scenario.extra_specs),
                        scenario.id)
        if guest_from_flavor(flavor).numa is None:
            return ("no NUMA topology: Nova places it by Placement alone and its server "
                    "topology is empty; the libvirt matrix checks its <vcpu cpuset>")
        try:
            src = self.computes.read(self.computes.config(self.source))
            dst = self.computes.read(self.computes.config(self.destination))
        except NumaMigrateError as exc:
            return f"the computes' libvirt cannot be read: {exc}"
        unmet = scenario.unmet(src.capacity, dst.capacity)
        if unmet:
            return "the computes cannot express it: " + "; ".join(unmet)
        guest = guest_from_flavor(flavor)
        hosts = [src] if scenario.kind is Kind.NO_ROOM else [src, dst]
        for live in hosts:
            fit = fit_guest(live.topology, guest)
            if not fit.fits:
                others = ", ".join(d.name for d in live.active_domains) or "none"
                return (f"{live.name} has no room for it now (running there: {others}): "
                        f"{fit.summary}")
        return ""

    # -------------------------------------------------------------------------- one scenario

    def _run(self, scenario: Scenario) -> ScenarioResult:
        blocker = None
        if scenario.neighbour_specs is not None:
            blocker = self._boot(f"{PREFIX}{scenario.id}-blocker", dict(scenario.neighbour_specs),
                                 1, 64, self.destination)
            if blocker.status != "ACTIVE":
                return self._result(scenario, Status.SKIPPED,
                                    f"the blocker could not boot on {self.destination}: "
                                    f"{blocker.fault or blocker.status}", ran_on="none")
        server = self._boot(PREFIX + scenario.id, dict(scenario.extra_specs), scenario.vcpus,
                            scenario.memory_mib, self.source)
        if server.status != "ACTIVE":
            raise CloudError(f"Nova could not boot the server on {self.source}: "
                             f"{server.fault or server.status}")
        pictures = [self._picture(self.source, "before"), self._picture(self.destination,
                                                                          "before")]
        before = nova.server_topology(self.api, server.id)
        page = before.pagesize_kib if before else None
        if scenario.kind is Kind.NO_ROOM:
            leg = self._refusal(scenario, server)
            failed = [c for c in self._checks if c.failed]
            status = Status.FAILED if failed else Status.PASSED
            return self._result(scenario, status, "; ".join(c.detail for c in failed[:3]),
                                page=page, legs=(leg,), checks=tuple(self._checks),
                                pictures=tuple(pictures))
        there = self._leg(server, self.destination, before, "there")
        pictures += [self._picture(self.source, "after"),
                     self._picture(self.destination, "after")]
        back = self._leg(server, self.source, nova.server_topology(self.api, server.id), "back")
        failed = [c for c in self._checks if c.failed]
        status = Status.FAILED if failed else Status.PASSED
        reason = "; ".join(f"{c.title}: {c.detail}" for c in failed[:3])
        return self._result(scenario, status, reason, page=page, legs=(there, back),
                            checks=tuple(self._checks), pictures=tuple(pictures))

    def _leg(self, server: nova.Server, to: str, before: ServerTopology | None,
             label: str) -> Leg:
        result: CloudMigration = migrate_server(self.api, server.id, self.computes, to=to)
        self._check(f"{label}:nova-outcome", f"{label}: Nova's migration",
                    "pass" if result.outcome == "completed" else "fail",
                    f"{result.outcome}: {result.detail}")
        if result.outcome != "completed" or result.validation is None:
            raise CloudError(f"{label}: Nova's live migration to {to}: {result.outcome}: "
                             f"{result.detail}")
        self._checks += validation_checks(result.validation.checked.report, label)
        after = result.validation.context.topology
        return Leg(source=result.source, destination=to, seconds=result.seconds,
                   downtime_ms=None, source_pins=_pins(before), dest_pins=_pins(after),
                   source_cells=_cells(before), dest_cells=_cells(after))

    def _refusal(self, scenario: Scenario, server: nova.Server) -> Leg:
        exp = explain_server(self.api, server.id, self.computes)
        host = next((h for h in exp.explanation.hosts if h.result.host == self.destination),
                    None)
        reasons = tuple(host.result.messages) if host else ()
        predicted = host is not None and not host.result.fits
        has_reason = any(scenario.expect_reason in r for r in reasons)
        self._check("explain-refuses", f"explain predicts {self.destination} refuses it",
                    "pass" if predicted and has_reason else "fail",
                    "; ".join(reasons) or "explain says it fits")
        before = {m.id for m in nova.migrations(self.api, server.id)}
        refused_by = ""
        try:
            nova.live_migrate(self.api, server.id, self.destination)
        except nova.NovaRefusedError as exc:
            refused_by = exc.fault
        if not refused_by:
            # Nova took the request: its conductor's checks may still refuse it
            after = nova.wait_server(self.api, server.id, timeout=180.0)
            fresh = [m for m in nova.migrations(self.api, server.id) if m.id not in before]
            status = fresh[0].status if fresh else "no migration record"
            failure = nova.last_live_migration_failure(self.api, server.id)
            if after.host == self.destination:
                refused_by = ""
            elif failure is not None:
                refused_by = f"migration {status}: {failure.event}: {failure.message}"
            else:
                refused_by = f"migration {status}; server still on {after.host}"
        self._check("nova-refuses", f"Nova refuses the move to {self.destination}",
                    "pass" if refused_by else "fail",
                    refused_by or f"Nova moved it to {self.destination}")
        topology = nova.server_topology(self.api, server.id)
        return Leg(source=self.source, destination=self.destination, seconds=None,
                   downtime_ms=None, source_pins=_pins(topology), dest_pins={},
                   source_cells=_cells(topology), dest_cells={},
                   refused_reasons=(*reasons, f"Nova: {refused_by}") if refused_by else
                   reasons or ("explain predicted a refusal",))

    # -------------------------------------------------------------------------- making

    def _image(self) -> str:
        if self._image_id is None:
            found = nova.find_image(self.api, self.image)
            if found is None:
                found = self._upload_image()
            self._image_id = found
        return self._image_id

    def _upload_image(self) -> str:
        made = self.api.request("image", "POST", "/images", body={
            "name": self.image, "disk_format": "raw", "container_format": "bare"})
        if not made.ok:
            raise CloudError(f"cannot create image {self.image}: {made.fault()}")
        image_id = root(made.body, source="image POST /images", error=CloudResponseError) \
            .obj().req("id").text(max_chars=64, non_empty=True)
        self._made.images.append(image_id)
        self.say(f"uploading the counter image as {self.image} ({image_id})")
        uploaded = self.api.request("image", "PUT", f"/images/{image_id}/file",
                                    data=boot_sector() + bytes(IMAGE_SIZE - 512))
        if not uploaded.ok:
            raise CloudError(f"cannot upload image {image_id}: {uploaded.fault()}")

        def active() -> bool:
            got = self.api.request("image", "GET", f"/images/{image_id}")
            return got.ok and isinstance(got.body, dict) and got.body.get("status") == "active"

        if not nova.wait_for(active, timeout=60.0, interval=0.5):
            raise CloudError(f"image {image_id} not active 60 s after its upload")
        return image_id

    def _boot(self, name: str, specs: dict[str, str], vcpus: int, ram: int,
              host: str) -> nova.Server:
        """Boot on ``host``. Our check found room there (see :meth:`_cannot`); when Nova's
        compute still refuses ("Insufficient compute resources"), the boot is retried for up
        to STALE_WAIT_S: a nova-compute keeps the pins of a deleted server that had been
        live-migrated to it until its periodic resource update (seen on Zed: about a
        minute). The wait is reported as a check of its own."""
        flavor_id = nova.create_flavor(self.api, name, vcpus=vcpus, ram_mib=ram,
                                       extra_specs=specs)
        self._made.flavors.append(flavor_id)
        start = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            server_id = nova.boot_server(self.api, name, flavor_id, self._image(), host)
            self._made.servers.append(server_id)
            server = nova.wait_server(self.api, server_id)
            waited = time.monotonic() - start
            stale = server.status == "ERROR" and "Insufficient compute resources" in (
                server.fault or "")
            if not stale or waited >= STALE_WAIT_S:
                break
            self.say(f"{host}: Nova's compute refused {name} although nothing runs in its "
                     f"way ({server.fault}); retrying in {RETRY_S:.0f} s")
            nova.delete_server(self.api, server_id)
            self._made.servers.remove(server_id)
            time.sleep(RETRY_S)
        if attempts > 1:
            self._check(f"{name}:nova-stale-usage", f"Nova's compute on {host} counted "
                        "a deleted server's resources",
                        "pass" if server.status == "ACTIVE" else "fail",
                        f"{attempts - 1} boot(s) refused with '{server.fault or 'no fault'}' "
                        f"while libvirt showed room; accepted after {waited:.0f} s (Nova's "
                        "periodic resource update frees a live-migrated, deleted server's "
                        "pins)" if server.status == "ACTIVE" else
                        f"still refused after {waited:.0f} s: {server.fault}")
        return server

    @contextlib.contextmanager
    def _cleanup(self) -> Iterator[None]:
        try:
            yield
        finally:
            self._delete_made(images=False)

    def _delete_made(self, *, images: bool) -> None:
        errors = []
        for server_id in reversed(self._made.servers):
            try:
                nova.delete_server(self.api, server_id)
            except NumaMigrateError as exc:
                errors.append(str(exc))
        self._made.servers.clear()
        for flavor_id in reversed(self._made.flavors):
            try:
                nova.delete_flavor(self.api, flavor_id)
            except NumaMigrateError as exc:
                errors.append(str(exc))
        self._made.flavors.clear()
        if images:
            for image_id in self._made.images:
                response = self.api.request("image", "DELETE", f"/images/{image_id}")
                if not response.ok and response.status != 404:
                    errors.append(f"image {image_id}: {response.fault()}")
            self._made.images.clear()
        for error in errors:
            self.say(f"cleanup: {error}")

    def _delete_all(self) -> None:
        self._delete_made(images=True)

    # -------------------------------------------------------------------------- report

    def _picture(self, host: str, when: str) -> HostPicture:
        return host_picture(self.computes.read(self.computes.config(host)), when)

    def _check(self, name: str, title: str, outcome: str, detail: str = "") -> None:
        self._checks.append(Check(name, title, outcome, detail))

    def _result(self, scenario: Scenario, status: Status, reason: str = "", *,
                page: int | None = None, legs: tuple[Leg, ...] = (),
                checks: tuple[Check, ...] = (), pictures: tuple[HostPicture, ...] = (),
                ran_on: str = "hosts") -> ScenarioResult:
        return ScenarioResult(scenario.id, scenario.group, scenario.title,
                              dict(scenario.extra_specs), status, reason, page, legs, checks,
                              pictures, ran_on)

    def _environment(self) -> dict[str, str]:
        env = {"source": self.source, "destination": self.destination,
               "driven by": f"Nova (cloud {self.api.name})"}
        try:
            version = nova.api_version(self.api)
            env["Nova API"] = f"{version.min} - {version.max}"
            env["Nova release"] = release_of(version.max)
            for hyp in nova.hypervisors(self.api):
                if hyp.hostname in (self.source, self.destination):
                    env[f"{hyp.hostname} hypervisor"] = f"{hyp.type} {hyp.version}"
        except NumaMigrateError as exc:
            env["Nova"] = str(exc)
        return env


def release_of(max_microversion: str) -> str:
    """The release a Nova API with this maximum microversion runs (preflight's table)."""
    text = describe_api_release(max_microversion)
    return f"{text[:1].upper()}{text[1:]} (API {max_microversion})"


def _pins(topology: ServerTopology | None) -> dict[int, tuple[int, ...]]:
    if topology is None:
        return {}
    return {v: (cpu,) for c in topology.cells for v, cpu in sorted(c.pinning.items())}


def _cells(topology: ServerTopology | None) -> dict[int, int]:
    if topology is None:
        return {}
    return {i: c.host_node for i, c in enumerate(topology.cells) if c.host_node is not None}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

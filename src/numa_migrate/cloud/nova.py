"""What numa-migrate reads from (and asks of) Nova, Placement and Glance, as typed values.

Every answer goes through the field reader: a field that is missing or of the wrong type is
named ("compute GET /servers/ID: server.flavor.extra_specs: expected an object, got ...").
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from numa_migrate.cloud.api import (
    COMPUTE_MICROVERSION,
    PLACEMENT_MICROVERSION,
    CloudApi,
    CloudError,
    CloudResponseError,
    Response,
)
from numa_migrate.core.limits import MAX_CPUS, MAX_GUEST_VCPUS, MAX_MEMORY_MIB, MAX_NUMA_NODES
from numa_migrate.core.novaview import ServerTopology, TopologyCell
from numa_migrate.inputs.fields import Node, root

# the image properties that bear on a guest's NUMA, CPU or memory layout
IMAGE_PROPERTY_PREFIXES = ("hw_", "img_hv_")
MAX_LISTED = 100_000


class ServerNotFoundError(CloudError):
    pass


class NovaRefusedError(CloudError):
    """Nova refused a request (the message is Nova's own)."""

    def __init__(self, message: str, *, status: int, fault: str) -> None:
        super().__init__(message)
        self.status = status
        self.fault = fault


# --------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Service:
    """A Nova service (nova-compute, nova-conductor, nova-scheduler) as os-services lists it."""

    binary: str
    host: str
    state: str  # "up" / "down"
    status: str  # "enabled" / "disabled"
    disabled_reason: str | None = None
    zone: str | None = None

    @property
    def usable(self) -> bool:
        return self.state == "up" and self.status == "enabled"


@dataclass(frozen=True)
class Hypervisor:
    hostname: str
    host: str | None
    type: str | None
    version: int | None  # Nova's integer: libvirt 9.0.0 -> 9000000
    state: str | None
    status: str | None
    id: str


@dataclass(frozen=True)
class FlavorInfo:
    vcpus: int
    ram_mib: int
    name: str
    extra_specs: dict[str, str] = field(hash=False)


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    status: str
    task_state: str | None
    host: str | None
    instance_name: str | None
    flavor: FlavorInfo
    image_id: str | None
    fault: str | None


@dataclass(frozen=True)
class MigrationRecord:
    id: int
    status: str
    source_compute: str | None
    dest_compute: str | None
    memory_total: int | None
    memory_processed: int | None
    memory_remaining: int | None
    created_at: str | None
    updated_at: str | None


@dataclass(frozen=True)
class Provider:
    uuid: str
    name: str
    inventories: dict[str, int] = field(hash=False)  # resource class -> total
    usages: dict[str, int] = field(hash=False)
    traits: frozenset[str] = frozenset()
    reserved: dict[str, int] = field(default_factory=dict, hash=False)
    ratios: dict[str, float] = field(default_factory=dict, hash=False)

    def free(self, resource: str) -> int:
        total = self.inventories.get(resource, 0) - self.reserved.get(resource, 0)
        return int(total * self.ratios.get(resource, 1.0)) - self.usages.get(resource, 0)


@dataclass(frozen=True)
class ApiVersion:
    min: str
    max: str


# --------------------------------------------------------------------------------- reading


def _read(response: Response, what: str) -> Node:
    return root(response.body, source=what, error=CloudResponseError)


def _get(api: CloudApi, service: str, path: str, *, microversion: str | None = None,
         missing: Callable[[], CloudError] | None = None) -> Node:
    response = api.request(service, "GET", path, microversion=microversion)
    if response.status == 404 and missing is not None:
        raise missing()
    if not response.ok:
        raise CloudError(f"cloud {api.name}: {service} GET {path}: {response.fault()}")
    return _read(response, f"{service} GET {path}")


def _text_or_none(node: Node | None) -> str | None:
    return None if node is None else node.text(max_chars=4096)


def api_version(api: CloudApi) -> ApiVersion:
    version = _get(api, "compute", "/").obj().req("version").obj()
    return ApiVersion(version.req("min_version").text(max_chars=16),
                      version.req("version").text(max_chars=16))


def services(api: CloudApi, binary: str | None = None) -> list[Service]:
    """Nova's services (only those of ``binary`` when given)."""
    path = "/os-services" + (f"?binary={urllib.parse.quote(binary)}" if binary else "")
    doc = _get(api, "compute", path, microversion=COMPUTE_MICROVERSION)
    out = []
    for node in doc.obj().req("services").items(max_items=MAX_LISTED):
        s = node.obj()
        out.append(Service(
            binary=s.req("binary").text(max_chars=64),
            host=s.req("host").text(max_chars=255, non_empty=True),
            state=s.req("state").choice(("up", "down")),
            status=s.req("status").choice(("enabled", "disabled")),
            disabled_reason=_text_or_none(s.opt("disabled_reason")),
            zone=_text_or_none(s.opt("zone"))))
    return out


def compute_services(api: CloudApi) -> list[Service]:
    return services(api, "nova-compute")


def hypervisors(api: CloudApi) -> list[Hypervisor]:
    doc = _get(api, "compute", "/os-hypervisors/detail", microversion=COMPUTE_MICROVERSION)
    out = []
    for node in doc.obj().req("hypervisors").items(max_items=MAX_LISTED):
        h = node.obj()
        service = h.opt("service")
        version = h.opt("hypervisor_version")
        out.append(Hypervisor(
            hostname=h.req("hypervisor_hostname").text(max_chars=255),
            host=None if service is None else _text_or_none(service.obj().opt("host")),
            type=_text_or_none(h.opt("hypervisor_type")),
            version=None if version is None else version.integer(maximum=10**12),
            state=_text_or_none(h.opt("state")),
            status=_text_or_none(h.opt("status")),
            id=str(h.req("id").value)))
    return out


def _server(node: Node) -> Server:
    s = node.obj()
    flavor = s.req("flavor").obj()
    extra = flavor.opt("extra_specs")
    image = s.opt("image")
    image_id = None
    if image is not None and isinstance(image.value, dict):  # "" when booted from a volume
        image_id = _text_or_none(image.obj().opt("id"))
    fault = s.opt("fault")
    return Server(
        id=s.req("id").text(max_chars=64, non_empty=True),
        name=s.req("name").text(max_chars=255),
        status=s.req("status").text(max_chars=32),
        task_state=_text_or_none(s.opt("OS-EXT-STS:task_state")),
        host=_text_or_none(s.opt("OS-EXT-SRV-ATTR:host")),
        instance_name=_text_or_none(s.opt("OS-EXT-SRV-ATTR:instance_name")),
        flavor=FlavorInfo(
            vcpus=flavor.req("vcpus").integer(minimum=1, maximum=MAX_GUEST_VCPUS),
            ram_mib=flavor.req("ram").integer(minimum=1, maximum=MAX_MEMORY_MIB),
            name=flavor.get("original_name", lambda n: n.text(max_chars=255), ""),
            extra_specs={} if extra is None else extra.str_map(max_chars=4096)),
        image_id=image_id,
        fault=None if fault is None else _text_or_none(fault.obj().opt("message")))


def get_server(api: CloudApi, server_id: str) -> Server:
    path = f"/servers/{urllib.parse.quote(server_id, safe='')}"
    doc = _get(api, "compute", path, microversion=COMPUTE_MICROVERSION,
               missing=lambda: ServerNotFoundError(f"cloud {api.name}: no server {server_id}"))
    return _server(doc.obj().req("server"))


def find_server(api: CloudApi, name_or_id: str) -> Server:
    """The server with this id, else the one server with exactly this name (all projects)."""
    try:
        return get_server(api, name_or_id)
    except ServerNotFoundError:
        pass
    query = urllib.parse.urlencode({"name": f"^{_regex_escape(name_or_id)}$",
                                    "all_tenants": "1"})
    doc = _get(api, "compute", f"/servers/detail?{query}", microversion=COMPUTE_MICROVERSION)
    found = [_server(n) for n in doc.obj().req("servers").items(max_items=MAX_LISTED)]
    found = [s for s in found if s.name == name_or_id]
    if not found:
        raise ServerNotFoundError(f"cloud {api.name}: no server named or with id "
                                  f"{name_or_id!r}")
    if len(found) > 1:
        ids = ", ".join(s.id for s in found[:5])
        raise CloudError(f"cloud {api.name}: {len(found)} servers are named {name_or_id!r} "
                         f"({ids}); give the id")
    return found[0]


def _regex_escape(text: str) -> str:
    return "".join("\\" + c if c in ".^$*+?{}[]\\|()" else c for c in text)


def servers_on(api: CloudApi, host: str) -> list[Server]:
    query = urllib.parse.urlencode({"host": host, "all_tenants": "1"})
    doc = _get(api, "compute", f"/servers/detail?{query}", microversion=COMPUTE_MICROVERSION)
    return [_server(n) for n in doc.obj().req("servers").items(max_items=MAX_LISTED)]


def image_properties(api: CloudApi, image_id: str) -> dict[str, str]:
    """The image's hw_* properties (what Nova's NUMA rules read), as strings."""
    path = f"/images/{urllib.parse.quote(image_id, safe='')}"
    response = api.request("image", "GET", path)
    if response.status == 404:
        return {}  # a deleted image: Nova kept its properties in the instance's system metadata
    if not response.ok:
        raise CloudError(f"cloud {api.name}: image GET {path}: {response.fault()}")
    doc = _read(response, f"image GET {path}").obj()
    out = {}
    for key, node in doc.items():
        if key.startswith(IMAGE_PROPERTY_PREFIXES) and isinstance(node.value, str | int):
            out[key] = str(node.value)
    return out


def server_topology(api: CloudApi, server_id: str) -> ServerTopology | None:
    """Nova's NUMA view of the server, or None for a server without a NUMA topology."""
    path = f"/servers/{urllib.parse.quote(server_id, safe='')}/topology"
    doc = _get(api, "compute", path, microversion=COMPUTE_MICROVERSION,
               missing=lambda: ServerNotFoundError(f"cloud {api.name}: no server {server_id}"))
    top = doc.obj()
    nodes = top.req("nodes").items(max_items=MAX_NUMA_NODES)
    if not nodes:
        return None
    cells = []
    for node in nodes:
        n = node.obj()
        host_node = n.opt("host_node")
        pinning = n.opt("cpu_pinning")
        siblings = n.opt("siblings")
        cells.append(TopologyCell(
            host_node=None if host_node is None else host_node.integer(maximum=MAX_NUMA_NODES),
            vcpus=frozenset(n.req("vcpu_set").int_list(maximum=MAX_GUEST_VCPUS)),
            memory_mib=n.req("memory_mb").integer(maximum=MAX_MEMORY_MIB),
            pinning={} if pinning is None else pinning.int_key_map(
                lambda v: v.integer(maximum=MAX_CPUS), maximum=MAX_GUEST_VCPUS),
            siblings=() if siblings is None else tuple(
                frozenset(s.int_list(maximum=MAX_CPUS)) for s in siblings.items())))
    pagesize = top.opt("pagesize_kb")
    return ServerTopology(tuple(cells),
                          None if pagesize is None else pagesize.integer(minimum=1))


def migrations(api: CloudApi, server_id: str) -> list[MigrationRecord]:
    """The server's live migrations, newest first."""
    query = urllib.parse.urlencode({"instance_uuid": server_id,
                                    "migration_type": "live-migration"})
    doc = _get(api, "compute", f"/os-migrations?{query}", microversion=COMPUTE_MICROVERSION)
    out = []
    for node in doc.obj().req("migrations").items(max_items=MAX_LISTED):
        m = node.obj()

        def num(key: str, m: Any = m) -> int | None:
            value = m.opt(key)
            return None if value is None else int(value.integer(maximum=1 << 62))

        out.append(MigrationRecord(
            id=m.req("id").integer(), status=m.req("status").text(max_chars=32),
            source_compute=_text_or_none(m.opt("source_compute")),
            dest_compute=_text_or_none(m.opt("dest_compute")),
            memory_total=num("memory_total"), memory_processed=num("memory_processed"),
            memory_remaining=num("memory_remaining"),
            created_at=_text_or_none(m.opt("created_at")),
            updated_at=_text_or_none(m.opt("updated_at"))))
    out.sort(key=lambda r: r.id, reverse=True)
    return out


def providers(api: CloudApi, *, traits: bool = True) -> list[Provider]:
    """Placement's resource providers with their inventories and usages (and traits, one
    request more per provider, unless ``traits`` is False)."""
    doc = _get(api, "placement", "/resource_providers", microversion=PLACEMENT_MICROVERSION)
    out = []
    for node in doc.obj().req("resource_providers").items(max_items=MAX_LISTED):
        p = node.obj()
        uuid = p.req("uuid").text(max_chars=64)
        inv_doc = _get(api, "placement", f"/resource_providers/{uuid}/inventories",
                       microversion=PLACEMENT_MICROVERSION)
        inventories, reserved, ratios = {}, {}, {}
        for rc, inv in inv_doc.obj().req("inventories").obj().items():
            i = inv.obj()
            inventories[rc] = i.req("total").integer(maximum=1 << 62)
            reserved[rc] = i.get("reserved", lambda n: n.integer(maximum=1 << 62), 0)
            ratios[rc] = i.get("allocation_ratio", lambda n: n.number(above=0, maximum=1e6), 1.0)
        use_doc = _get(api, "placement", f"/resource_providers/{uuid}/usages",
                       microversion=PLACEMENT_MICROVERSION)
        usages = {rc: n.integer(maximum=1 << 62)
                  for rc, n in use_doc.obj().req("usages").obj().items()}
        found: frozenset[str] = frozenset()
        if traits:
            trait_doc = _get(api, "placement", f"/resource_providers/{uuid}/traits",
                             microversion=PLACEMENT_MICROVERSION)
            found = frozenset(n.text(max_chars=255) for n in
                              trait_doc.obj().req("traits").items(max_items=MAX_LISTED))
        out.append(Provider(uuid, p.req("name").text(max_chars=255), inventories, usages,
                            found, reserved, ratios))
    return out


# --------------------------------------------------------------------------------- actions


def live_migrate(api: CloudApi, server_id: str, host: str | None) -> None:
    """Ask Nova to live-migrate the server (to ``host``: its scheduler and claim still decide;
    never forced). Nova's refusal (NoValidHost, MigrationPreCheckError, a state conflict)
    raises :class:`NovaRefusedError` with Nova's message."""
    path = f"/servers/{urllib.parse.quote(server_id, safe='')}/action"
    body = {"os-migrateLive": {"host": host, "block_migration": "auto"}}
    response = api.request("compute", "POST", path, microversion=COMPUTE_MICROVERSION,
                           body=body)
    if not response.ok:
        fault = response.fault()
        raise NovaRefusedError(f"Nova refused the live migration of {server_id}"
                               f"{' to ' + host if host else ''}: {fault}",
                               status=response.status, fault=fault)


def wait_for(check: Callable[[], bool], *, timeout: float, interval: float = 1.0,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> bool:
    deadline = clock() + timeout
    while True:
        if check():
            return True
        if clock() >= deadline:
            return False
        sleep(interval)


# ------------------------------------------------------------------- what the matrix makes


def create_flavor(api: CloudApi, name: str, *, vcpus: int, ram_mib: int,
                  extra_specs: dict[str, str], disk_gb: int = 1) -> str:
    """A private flavor with these extra specs; its id."""
    response = api.request("compute", "POST", "/flavors", microversion=COMPUTE_MICROVERSION,
                           body={"flavor": {"name": name, "vcpus": vcpus, "ram": ram_mib,
                                            "disk": disk_gb, "os-flavor-access:is_public":
                                            False}})
    if not response.ok:
        raise CloudError(f"cloud {api.name}: cannot create flavor {name}: {response.fault()}")
    flavor_id = _read(response, "compute POST /flavors").obj().req("flavor").obj() \
        .req("id").text(max_chars=255)
    if extra_specs:
        response = api.request("compute", "POST", f"/flavors/{flavor_id}/os-extra_specs",
                               microversion=COMPUTE_MICROVERSION,
                               body={"extra_specs": dict(extra_specs)})
        if not response.ok:
            delete_flavor(api, flavor_id)
            raise CloudError(f"cloud {api.name}: flavor {name}: Nova refused its extra "
                             f"specs: {response.fault()}")
    return flavor_id


def delete_flavor(api: CloudApi, flavor_id: str) -> None:
    response = api.request("compute", "DELETE", f"/flavors/{flavor_id}",
                           microversion=COMPUTE_MICROVERSION)
    if not response.ok and response.status != 404:
        raise CloudError(f"cloud {api.name}: cannot delete flavor {flavor_id}: "
                         f"{response.fault()}")


def find_image(api: CloudApi, name: str) -> str | None:
    query = urllib.parse.urlencode({"name": name, "status": "active"})
    doc = _get(api, "image", f"/images?{query}")
    images = doc.obj().req("images").items(max_items=MAX_LISTED)
    return images[0].obj().req("id").text(max_chars=64) if images else None


def boot_server(api: CloudApi, name: str, flavor_id: str, image_id: str, host: str) -> str:
    """Boot a server without network on compute ``host`` (availability zone nova:HOST);
    its id (it is still building)."""
    body = {"server": {"name": name, "flavorRef": flavor_id, "imageRef": image_id,
                       "networks": "none", "availability_zone": f"nova:{host}"}}
    response = api.request("compute", "POST", "/servers", microversion=COMPUTE_MICROVERSION,
                           body=body)
    if not response.ok:
        raise NovaRefusedError(f"Nova refused to boot {name} on {host}: {response.fault()}",
                               status=response.status, fault=response.fault())
    return _read(response, "compute POST /servers").obj().req("server").obj() \
        .req("id").text(max_chars=64)


def wait_server(api: CloudApi, server_id: str, *, timeout: float = 180.0,
                interval: float = 1.0) -> Server:
    """Wait until the server is ACTIVE or ERROR (no task running); the server then."""
    last: list[Server] = []

    def settled() -> bool:
        server = get_server(api, server_id)
        last[:] = [server]
        return server.status in ("ACTIVE", "ERROR") and not server.task_state

    if not wait_for(settled, timeout=timeout, interval=interval):
        state = f"{last[0].status} (task {last[0].task_state})" if last else "unknown"
        raise CloudError(f"cloud {api.name}: server {server_id} still {state} after "
                         f"{timeout:.0f} s")
    return last[0]


def delete_server(api: CloudApi, server_id: str, *, wait: float = 120.0) -> None:
    response = api.request("compute", "DELETE", f"/servers/{server_id}",
                           microversion=COMPUTE_MICROVERSION)
    if response.status == 404:
        return
    if not response.ok:
        raise CloudError(f"cloud {api.name}: cannot delete server {server_id}: "
                         f"{response.fault()}")

    def gone() -> bool:
        return api.request("compute", "GET", f"/servers/{server_id}",
                           microversion=COMPUTE_MICROVERSION).status == 404

    if not wait_for(gone, timeout=wait, interval=1.0):
        raise CloudError(f"cloud {api.name}: server {server_id} not gone {wait:.0f} s after "
                         "its deletion")


def cloud_facts(api: CloudApi) -> Any:
    """What ``preflight --cloud`` checks, read from the API: the API's microversions, every
    nova-compute with its hypervisor and Placement inventory and traits, and the control
    services (a :class:`numa_migrate.preflight.cloudfacts.CloudFacts`)."""
    from numa_migrate.preflight.cloudfacts import CloudFacts
    from numa_migrate.preflight.cloudfacts import ComputeService as FactCompute

    version = api_version(api)
    hyps = {h.host or h.hostname: h for h in hypervisors(api)}
    provs = {p.name: p for p in providers(api)}
    computes = []
    others = []
    for service in services(api):
        if service.binary != "nova-compute":
            others.append((service.binary, service.host, service.state, service.status))
            continue
        hyp, prov = hyps.get(service.host), provs.get(service.host)
        computes.append(FactCompute(
            host=service.host, state=service.state, status=service.status,
            hypervisor_type=hyp.type if hyp else None,
            hypervisor_version=hyp.version if hyp else None,
            pcpu_total=prov.inventories.get("PCPU") if prov else None,
            vcpu_total=prov.inventories.get("VCPU") if prov else None,
            traits=prov.traits if prov else frozenset()))
    return CloudFacts(version.max, tuple(computes), tuple(others))


@dataclass(frozen=True)
class Failure:
    """Why Nova's last live migration of a server failed, from its instance action."""

    event: str  # conductor_live_migrate_instance, compute_live_migration, ...
    message: str

    @property
    def refused_before_moving(self) -> bool:
        """The conductor (scheduler, pre-checks) failed it: nothing was moved."""
        return self.event.startswith("conductor_")


def last_live_migration_failure(api: CloudApi, server_id: str) -> Failure | None:
    """The failed event of the server's newest live-migration action (its details need
    microversion 2.84 and an admin; else the last line of the traceback), or None."""
    base = f"/servers/{urllib.parse.quote(server_id, safe='')}/os-instance-actions"
    listed = api.request("compute", "GET", base, microversion="2.84")
    if not listed.ok:
        return None
    actions = _read(listed, f"compute GET {base}").obj().req("instanceActions") \
        .items(max_items=MAX_LISTED)
    lm = [a.obj() for a in actions if a.value.get("action") == "live-migration"]
    if not lm:
        return None
    request_id = lm[0].req("request_id").text(max_chars=255)
    path = f"{base}/{urllib.parse.quote(request_id, safe='')}"
    shown = api.request("compute", "GET", path, microversion="2.84")
    if not shown.ok:
        return None
    action = _read(shown, f"compute GET {path}").obj().req("instanceAction").obj()
    for event in action.list("events", max_items=MAX_LISTED):
        e = event.obj()
        if e.get("result", lambda n: n.text(max_chars=32), "") != "Error":
            continue
        details = e.get("details", lambda n: n.text(max_chars=4096), "")
        traceback = e.get("traceback", lambda n: n.text(max_chars=1 << 20), "")
        lines = [ln.strip() for ln in traceback.strip().splitlines() if ln.strip()]
        message = details or (lines[-1] if lines else "no details")
        return Failure(e.req("event").text(max_chars=255), " ".join(message.split()))
    return None


def delete_made(api: CloudApi, made: list[tuple[str, str]]) -> list[str]:
    """Delete what a run made, given as ("server" | "flavor", id) pairs: the servers first
    (waiting until each is gone), then the flavors. Every deletion is tried; what failed is
    returned, one message each."""
    errors = []
    for kind in ("server", "flavor"):
        for what, ident in reversed(made):
            if what != kind:
                continue
            try:
                (delete_server if kind == "server" else delete_flavor)(api, ident)
            except CloudError as exc:
                errors.append(str(exc))
    return errors

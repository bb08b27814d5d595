"""libvirt-python calls the migration needs (the adapter edge; libvirt is untyped).

Everything libvirt raises is turned into :class:`VirtError` with the host and the step in
the message. libvirt-python is imported lazily, so the rest of numa-migrate works without it.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.core.errors import NumaMigrateError

_silenced: list[bool] = []


class VirtError(NumaMigrateError):
    """A libvirt call failed; the message names the host and what was being done.

    ``post_copy_started``: a migration that failed *after* its switch to post-copy (the
    guest's memory is then split between the hosts: the source can no longer run it)."""

    post_copy_started: bool = False


def lv() -> ModuleType:
    try:
        module = importlib.import_module("libvirt")
    except ImportError as exc:
        raise VirtError(
            f"libvirt-python is not installed ({exc}): run `bash scripts/lab-deps.sh` or "
            "`pip install libvirt-python==$(pkg-config --modversion libvirt)`"
        ) from None
    if not _silenced:
        # libvirt prints every error on stderr by default; we raise them instead
        module.registerErrorHandler(lambda _ctx, _err: None, None)
        _silenced.append(True)
    return module


def connect(uri: str, host: str) -> Any:
    lib = lv()
    try:
        return lib.open(uri)
    except lib.libvirtError as exc:
        raise VirtError(
            f"host {host}: cannot connect to {uri}: {exc.get_error_message()}"
        ) from None


def lookup(conn: Any, name: str, host: str) -> Any | None:
    """The domain named (or with UUID) ``name`` on ``conn``, None if it is not there."""
    lib = lv()
    for find in (conn.lookupByName, conn.lookupByUUIDString):
        try:
            return find(name)
        except lib.libvirtError:
            continue
    return None


def is_running(dom: Any) -> bool:
    return bool(dom.state()[0] == lv().VIR_DOMAIN_RUNNING)


def state_name(dom: Any) -> str:
    lib = lv()
    state, reason = dom.state()
    names = {
        lib.VIR_DOMAIN_RUNNING: "running", lib.VIR_DOMAIN_PAUSED: "paused",
        lib.VIR_DOMAIN_SHUTOFF: "shut off", lib.VIR_DOMAIN_SHUTDOWN: "shutting down",
        lib.VIR_DOMAIN_CRASHED: "crashed", lib.VIR_DOMAIN_BLOCKED: "blocked",
        lib.VIR_DOMAIN_PMSUSPENDED: "suspended",
    }
    return f"{names.get(state, f'state {state}')} (reason {reason})"


def migratable_xml(dom: Any) -> str:
    return str(dom.XMLDesc(lv().VIR_DOMAIN_XML_MIGRATABLE))


def persistent_xml(dom: Any) -> str | None:
    if not dom.isPersistent():
        return None
    lib = lv()
    return str(dom.XMLDesc(lib.VIR_DOMAIN_XML_INACTIVE | lib.VIR_DOMAIN_XML_MIGRATABLE))


@dataclass(frozen=True)
class JobProgress:
    """One poll of the migration job (bytes; None when libvirt did not say)."""

    elapsed_s: float
    data_total: int | None
    data_processed: int | None
    data_remaining: int | None
    bytes_per_s: int | None


@dataclass(frozen=True)
class JobResult:
    """The completed job's statistics."""

    seconds: float
    downtime_ms: int | None
    data_transferred: int | None
    raw: dict[str, Any]
    post_copy: bool = False
    """The migration switched to post-copy (see MigrateOptions.post_copy_after_s)."""


@dataclass(frozen=True)
class MigrateOptions:
    auto_converge: bool = False
    post_copy: bool = False
    post_copy_after_s: float | None = None
    """With ``post_copy``: switch to post-copy this many seconds after the job starts;
    None: once the first full pass over memory is done and it is still copying (memory
    iteration 2, as Nova does), so a migration that converges never switches."""
    bandwidth_mib_s: int | None = None
    uri: str = "tcp://127.0.0.1"
    listen_address: str | None = "127.0.0.1"


def _progress_of(stats: dict[str, Any], start: float) -> JobProgress:
    return JobProgress(
        elapsed_s=time.monotonic() - start,
        data_total=stats.get("data_total"),
        data_processed=stats.get("data_processed"),
        data_remaining=stats.get("data_remaining"),
        bytes_per_s=stats.get("memory_bps"),
    )


def migrate3(
    dom: Any,
    dest_conn: Any,
    *,
    live_xml: str,
    persistent_xml: str | None,
    options: MigrateOptions,
    on_progress: Callable[[JobProgress], None] | None = None,
    poll_s: float = 0.2,
    on_post_copy: Callable[[], None] | None = None,
) -> tuple[Any, JobResult]:
    """Live-migrate ``dom`` to ``dest_conn`` with the rewritten XML (live and persistent).

    Returns the destination domain and the completed job's statistics. While libvirt works,
    another thread polls ``jobStats()`` for ``on_progress``. Raises :class:`VirtError`.
    """
    lib = lv()
    params: dict[str, Any] = {
        lib.VIR_MIGRATE_PARAM_DEST_XML: live_xml,
        lib.VIR_MIGRATE_PARAM_URI: options.uri,
    }
    if persistent_xml is not None:
        params[lib.VIR_MIGRATE_PARAM_PERSIST_XML] = persistent_xml
    if options.listen_address:
        params[lib.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = options.listen_address
    if options.bandwidth_mib_s:
        params[lib.VIR_MIGRATE_PARAM_BANDWIDTH] = int(options.bandwidth_mib_s)
    flags = lib.VIR_MIGRATE_LIVE | lib.VIR_MIGRATE_PERSIST_DEST | lib.VIR_MIGRATE_UNDEFINE_SOURCE
    if options.auto_converge:
        flags |= lib.VIR_MIGRATE_AUTO_CONVERGE
    if options.post_copy:
        flags |= lib.VIR_MIGRATE_POSTCOPY
    done = threading.Event()
    start = time.monotonic()
    switched: list[float] = []
    moving: list[float] = []

    def poll() -> None:
        while not done.wait(poll_s):
            try:
                stats = dom.jobStats()
            except lib.libvirtError:
                continue
            running = stats.get("type", lib.VIR_DOMAIN_JOB_NONE) != lib.VIR_DOMAIN_JOB_NONE
            if running and on_progress is not None:
                on_progress(_progress_of(stats, start))
            if running and options.post_copy and not switched:
                _maybe_post_copy(dom, stats, options, moving, switched)
                if switched and on_post_copy is not None:
                    on_post_copy()

    poller = threading.Thread(target=poll, name="numa-migrate-progress", daemon=True)
    poller.start()
    try:
        new_dom = dom.migrate3(dest_conn, params, flags)
    except lib.libvirtError as exc:
        done.set()
        poller.join()
        error = VirtError(f"migration failed{' after the switch to post-copy' if switched else ''}"
                          f": {exc.get_error_message()}")
        error.post_copy_started = bool(switched)
        raise error from None
    finally:
        done.set()
        poller.join()
    seconds = time.monotonic() - start
    completed: dict[str, Any] = {}
    for holder in (new_dom, dom):  # libvirt keeps them on both sides; either may refuse
        try:
            completed = dict(holder.jobStats(lib.VIR_DOMAIN_JOB_STATS_COMPLETED))
        except lib.libvirtError:
            continue
        if completed.get("type", lib.VIR_DOMAIN_JOB_NONE) != lib.VIR_DOMAIN_JOB_NONE:
            break
    return new_dom, JobResult(
        seconds=seconds,
        downtime_ms=completed.get("downtime"),
        data_transferred=completed.get("data_processed"),
        raw={k: v for k, v in completed.items() if isinstance(v, int | float | str)},
        post_copy=bool(switched),
    )


def _maybe_post_copy(dom: Any, stats: dict[str, Any], options: MigrateOptions,
                     moving: list[float], switched: list[float]) -> None:
    """Switch the running migration to post-copy when ``options`` say it is time (the clock
    of ``post_copy_after_s`` starts at the first poll that finds the job running). QEMU
    refuses the switch until RAM is moving, so nothing is tried before data flows."""
    now = time.monotonic()
    if not moving:
        moving.append(now)
    if not stats.get("data_processed"):
        return
    if options.post_copy_after_s is None:
        due = int(stats.get("memory_iteration") or 0) >= 2
    else:
        due = now - moving[0] >= options.post_copy_after_s
    if not due:
        return
    try:
        dom.migrateStartPostCopy(0)
    except lv().libvirtError:
        return  # finished meanwhile, or not allowed: pre-copy simply goes on
    switched.append(now)


def detach_device(dom: Any, device_xml: str, address: str, *, host: str,
                  timeout_s: float = 30.0, poll_s: float = 0.2) -> None:
    """Hot-unplug the PCI device at host ``address`` from the running ``dom`` and wait until
    the live XML no longer has it (PCI unplug needs the guest's cooperation)."""
    lib = lv()
    try:
        dom.detachDeviceFlags(device_xml, lib.VIR_DOMAIN_AFFECT_LIVE)
    except lib.libvirtError as exc:
        raise VirtError(f"host {host}: cannot detach PCI device {address} from "
                        f"{dom.name()}: {_msg(exc)}") from None
    deadline = time.monotonic() + timeout_s
    while _has_pci_source(str(dom.XMLDesc(0)), address):
        if time.monotonic() > deadline:
            raise VirtError(
                f"host {host}: {dom.name()} did not release PCI device {address} within "
                f"{timeout_s:.0f} s (does the guest OS support PCI hot-unplug?)")
        time.sleep(poll_s)


def attach_device(dom: Any, device_xml: str, address: str, *, host: str,
                  persistent: bool) -> None:
    """Hot-plug a PCI device into the running ``dom`` (and its persistent definition)."""
    lib = lv()
    flags = lib.VIR_DOMAIN_AFFECT_LIVE | (lib.VIR_DOMAIN_AFFECT_CONFIG if persistent else 0)
    try:
        dom.attachDeviceFlags(device_xml, flags)
    except lib.libvirtError as exc:
        raise VirtError(f"host {host}: cannot attach PCI device {address} to "
                        f"{dom.name()}: {_msg(exc)}") from None


def _msg(exc: Exception) -> str:
    get = getattr(exc, "get_error_message", None)
    return str((get() if callable(get) else None) or exc).strip()


def _has_pci_source(xml: str, address: str) -> bool:
    return any(d.address == address for d in domain_from_xml(xml, source="live XML").hostdevs)


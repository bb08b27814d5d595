"""The multi-node lab: the two-daemon lab running inside a QEMU VM with 2 NUMA nodes.

``up`` builds (once) and boots the VM (:mod:`.image`, :mod:`.machine`), copies this
numa-migrate into it and runs ``numa-migrate lab up`` *there*, so lab-src and lab-dst are
exactly the lab of a one-node machine (private mount namespaces, distinct host UUIDs, unix
sockets), only on a kernel with two NUMA nodes, SMT sibling threads and 1 GiB pages. This
machine reaches the daemons with libvirt's ssh transport (:mod:`.sshlink`). The inventory
written here gives the two hosts opposite halves of each node's cores
(:func:`.shape.split_cores`).

State: ``/var/lib/numa-migrate/lab-multi-node`` (or ``$NUMA_MIGRATE_MULTI_NODE_DIR``):
``state.json``, the disk overlay, the console log, the ssh files and ``inventory.toml``.
``down`` stops the VM by pid and removes that directory; the image cache stays.
Any failure of ``up`` stops the VM it started: nothing is left running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numa_migrate
from numa_migrate.lab import processes
from numa_migrate.lab.errors import LabError
from numa_migrate.lab.layout import HOST_NAMES
from numa_migrate.lab.packages import require_root
from numa_migrate.lab.state import inventory_text
from numa_migrate.lab.vm import image as images
from numa_migrate.lab.vm import machine
from numa_migrate.lab.vm.image import INNER_LIB
from numa_migrate.lab.vm.shape import BootFiles, VmShape, split_cores
from numa_migrate.lab.vm.sshlink import SshLink

DIR_ENV = "NUMA_MIGRATE_MULTI_NODE_DIR"
DEFAULT_DIR = Path("/var/lib/numa-migrate/lab-multi-node")
INNER_LAB_DIR = "/var/lib/numa-migrate/lab"
INNER_COUNTER_IMAGE = f"{INNER_LAB_DIR}/images/counter-idle-floppy.img"
BOOT_TIMEOUT_S = 600.0
INNER_UP_TIMEOUT_S = 900.0

Progress = Callable[[str], None]


def _silent(_message: str) -> None:
    return None


def default_dir() -> Path:
    raw = os.environ.get(DIR_ENV, "").strip()
    return (Path(raw) if raw else DEFAULT_DIR).absolute()


@dataclass
class _State:
    pid: int | None = None
    port: int | None = None
    image: str | None = None
    booted_at: float | None = None
    boot_seconds: float | None = None
    up_seconds: float | None = None
    master_pid: int | None = None

    @classmethod
    def load(cls, path: Path) -> _State:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise LabError(f"{path}: unreadable lab state ({exc}); run `numa-migrate lab "
                           "down --multi-node`") from None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known}) \
            if isinstance(data, dict) else cls()

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2) + "\n")
        tmp.replace(path)


@dataclass(frozen=True)
class VmFacts:
    """What the VM's kernel really shows (read through ssh, not assumed from the shape)."""

    nodes: dict[int, str]
    """node -> its CPUs."""
    siblings: dict[int, list[str]]
    """node -> its cores as sibling-thread lists."""
    pages: dict[int, dict[str, int]]
    """node -> {"1048576 KiB free": n, "1048576 KiB total": n, ...}."""

    def to_json(self) -> dict[str, Any]:
        return {"nodes": {str(k): v for k, v in self.nodes.items()},
                "siblings": {str(k): v for k, v in self.siblings.items()},
                "huge_pages": {str(k): v for k, v in self.pages.items()}}


@dataclass(frozen=True)
class MultiNodeStatus:
    state_dir: Path
    running: bool
    pid: int | None
    ssh_port: int | None
    uris: dict[str, str] = field(default_factory=dict)
    inventory: Path | None = None
    image: str | None = None
    domain_type: str | None = None
    facts: VmFacts | None = None
    inner: dict[str, Any] | None = None
    problem: str = ""

    @property
    def up(self) -> bool:
        return self.running and not self.problem and len(self.uris) == len(HOST_NAMES)

    def to_json(self) -> dict[str, Any]:
        return {"state_dir": str(self.state_dir), "up": self.up, "running": self.running,
                "pid": self.pid, "ssh_port": self.ssh_port, "uris": self.uris,
                "inventory": str(self.inventory) if self.inventory else None,
                "image": self.image, "domain_type": self.domain_type,
                "vm": self.facts.to_json() if self.facts else None,
                "problem": self.problem or None}


@dataclass(frozen=True)
class MultiNodeDown:
    state_dir: Path
    stopped: list[int]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"state_dir": str(self.state_dir), "stopped": self.stopped,
                "notes": self.notes}


_FACTS_SCRIPT = r"""
for n in /sys/devices/system/node/node[0-9]*; do
  id=${n##*node}; echo "node $id $(cat $n/cpulist)"
  for p in $n/hugepages/hugepages-*; do
    echo "pages $id ${p##*hugepages-} $(cat $p/nr_hugepages) $(cat $p/free_hugepages)"
  done
done
for c in /sys/devices/system/cpu/cpu[0-9]*/topology/thread_siblings_list; do
  cpu=${c#/sys/devices/system/cpu/cpu}; cpu=${cpu%%/*}
  echo "siblings $cpu $(cat $c)"
done
"""


def parse_facts(text: str) -> VmFacts:
    """The facts script's output -> :class:`VmFacts` (pure)."""
    from numa_migrate.core.cpuset import CpuSet

    nodes: dict[int, str] = {}
    pages: dict[int, dict[str, int]] = {}
    sibling_of: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "node" and parts[1].isdigit():
            nodes[int(parts[1])] = parts[2]
        elif len(parts) == 5 and parts[0] == "pages" and parts[1].isdigit():
            size = parts[2].removesuffix("kB")
            if parts[3].isdigit() and parts[4].isdigit():
                pages.setdefault(int(parts[1]), {})[f"{size} KiB total"] = int(parts[3])
                pages[int(parts[1])][f"{size} KiB free"] = int(parts[4])
        elif len(parts) == 3 and parts[0] == "siblings" and parts[1].isdigit():
            sibling_of[int(parts[1])] = parts[2]
    siblings: dict[int, list[str]] = {}
    for node, spec in nodes.items():
        cores = sorted({sibling_of.get(cpu, str(cpu)) for cpu in CpuSet.parse(spec)},
                       key=lambda s: min(CpuSet.parse(s)))
        siblings[node] = cores
    return VmFacts(nodes=nodes, siblings=siblings, pages=pages)


def facts_problems(facts: VmFacts, shape: VmShape) -> list[str]:
    """What the VM's kernel shows that the lab cannot work with (pure)."""
    problems = []
    if len(facts.nodes) != shape.sockets:
        problems.append(f"the VM kernel shows {len(facts.nodes)} NUMA node(s), not "
                        f"{shape.sockets}")
    if shape.threads > 1 and not any(
            "," in core or "-" in core for cores in facts.siblings.values() for core in cores):
        problems.append("the VM kernel shows no SMT sibling threads")
    for node in facts.nodes:
        total = facts.pages.get(node, {}).get("1048576 KiB total", 0)
        if total < shape.pages_1g_per_node:
            problems.append(f"node {node} has {total} 1 GiB page(s), not "
                            f"{shape.pages_1g_per_node} (the kernel could not reserve them)")
    return problems


class MultiNodeLab:
    """The multi-node lab whose state lives in ``state_dir``."""

    def __init__(self, state_dir: Path | None = None, shape: VmShape | None = None) -> None:
        self.state_dir = (state_dir or default_dir()).absolute()
        self.shape = shape or VmShape()

    # -- paths ------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def inventory_path(self) -> Path:
        return self.state_dir / "inventory.toml"

    @property
    def overlay(self) -> Path:
        return self.state_dir / "disk.qcow2"

    @property
    def console_log(self) -> Path:
        return self.state_dir / "console.log"

    @property
    def counter_image(self) -> Path:
        """The counter guest's floppy, as a path inside the VM (where the guests run): the
        idle counter, so that a guest does not take a whole CPU of this machine."""
        return Path(INNER_COUNTER_IMAGE)

    def domain_type(self) -> str:
        """Guests inside the VM run on TCG (the VM has no KVM of its own)."""
        return "qemu"

    def _boot_files(self, image: images.CachedImage) -> BootFiles:
        return BootFiles(kernel=image.kernel, initrd=image.initrd, disk=self.overlay,
                         console_log=self.console_log, pid_file=self.state_dir / "qemu.pid")

    def _link(self, state: _State, image: images.CachedImage) -> SshLink:
        if state.port is None:
            raise LabError("the multi-node lab has no ssh port recorded")
        return SshLink(self.state_dir, state.port, image.client_key, image.host_key_line())

    def _image_of(self, state: _State) -> images.CachedImage:
        if state.image is None:
            raise LabError("the multi-node lab has no image recorded")
        return images.CachedImage(Path(state.image))

    def link(self) -> SshLink:
        """The ssh link to the running VM (for tests and diagnostics)."""
        state = _State.load(self.state_file)
        return self._link(state, self._image_of(state))

    def uri(self, host: str) -> str:
        state = _State.load(self.state_file)
        link = self._link(state, self._image_of(state))
        if host not in HOST_NAMES:
            raise LabError(f"unknown lab host {host!r}; the lab hosts are "
                           f"{', '.join(HOST_NAMES)}")
        return link.libvirt_uri(f"{INNER_LAB_DIR}/hosts/{host}/run/libvirt-sock")

    @property
    def uris(self) -> dict[str, str]:
        return {h: self.uri(h) for h in HOST_NAMES}

    def run(self, command: str, timeout: float = 120) -> str:
        """Run a shell command in the VM; its standard output."""
        return self.link().run(command, timeout=timeout).stdout

    # -- up -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def up(self, progress: Progress = _silent, *,
           boot_timeout: float = BOOT_TIMEOUT_S) -> MultiNodeStatus:
        """Boot the VM (building its image first if needed) and bring the lab up inside.
        Idempotent: a VM that answers is reused."""
        require_root()
        qemu, qemu_img = machine.qemu_programs()
        started = time.monotonic()
        with self._locked():
            state = _State.load(self.state_file)
            if state.pid is not None and machine.is_lab_vm(state.pid, self.overlay):
                try:
                    link = self._link(state, self._image_of(state))
                    link.run("true", timeout=30)
                except LabError as exc:
                    progress(f"the lab VM {state.pid} does not answer ({exc}); restarting it")
                else:
                    progress(f"lab VM {state.pid} already running, reused")
                    return self._finish_up(state, link, progress, started, fresh=False)
            self._stop_vm(state, [])
            image = images.ensure_image(progress)
            images.remove_stale(image, progress)
            state = _State(image=str(image.root))
            try:
                return self._boot(state, image, (qemu, qemu_img), progress,
                                  started=started, boot_timeout=boot_timeout)
            except BaseException:
                progress("stopping the lab VM (up failed; the image cache is kept)")
                self._stop_vm(_State.load(self.state_file), [])
                raise

    def _boot(self, state: _State, image: images.CachedImage, programs: tuple[str, str],
              progress: Progress, *, started: float, boot_timeout: float) -> MultiNodeStatus:
        qemu, qemu_img = programs
        machine.make_overlay(qemu_img, image.rootfs, self.overlay)
        state.port = machine.free_port()
        link = self._link(state, image)
        link.write()
        files = self._boot_files(image)
        shape = self.shape
        progress(f"booting the lab VM: {shape.sockets} NUMA nodes, {shape.cpus} CPUs "
                 f"({shape.cores} cores x {shape.threads} threads per node), "
                 f"{shape.memory_mib} MiB, TCG; ssh on 127.0.0.1:{state.port}")
        boot_started = time.monotonic()
        state.pid = machine.start(qemu, shape, files, state.port)
        state.booted_at = time.time()
        state.save(self.state_file)
        self._wait_for_ssh(state, link, boot_timeout)
        state.boot_seconds = round(time.monotonic() - boot_started, 1)
        progress(f"lab VM {state.pid} answers on ssh after {state.boot_seconds:.0f} s")
        link.start_master()
        state.master_pid = link.master_pid()
        state.save(self.state_file)
        return self._finish_up(state, link, progress, started, fresh=True)

    def _wait_for_ssh(self, state: _State, link: SshLink, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if state.pid is None or not processes.is_alive(state.pid):
                raise LabError(f"the lab VM stopped while booting; console: "
                               f"{machine.console_tail(self.console_log)}")
            try:
                done = link.run("true", check=False,
                                timeout=max(5.0, min(40.0, deadline - time.monotonic())))
            except LabError as exc:
                last = str(exc)
            else:
                if done.returncode == 0:
                    return
                last = (done.stderr.strip().splitlines() or [""])[-1]
            time.sleep(2)
        raise LabError(
            f"the lab VM did not come up within {timeout:.0f} s (ssh: {last or 'no answer'}; "
            f"console {self.console_log}: {machine.console_tail(self.console_log)})")

    def _finish_up(self, state: _State, link: SshLink, progress: Progress,
                   started: float, *, fresh: bool) -> MultiNodeStatus:
        link.send_trees([Path(numa_migrate.__file__).parent], INNER_LIB)
        progress("numa-migrate copied into the VM; `numa-migrate lab up` there"
                 + (" (its first start probes QEMU under emulation: about a minute)"
                    if fresh else ""))
        inner = self._inner_json("lab up --json", INNER_UP_TIMEOUT_S)
        facts = self._facts(link)
        problems = facts_problems(facts, self.shape)
        if problems:
            raise LabError("the lab VM is not what the multi-node lab needs: "
                           + "; ".join(problems))
        sets = split_cores({n: [frozenset(_cpus(c)) for c in cores]
                            for n, cores in facts.siblings.items()})
        text = inventory_text(
            {h: link.libvirt_uri(f"{INNER_LAB_DIR}/hosts/{h}/run/libvirt-sock")
             for h in HOST_NAMES},
            sets={h: (d.format(), s.format()) for h, (d, s) in sets.items()},
            machine="the multi-node lab VM", command="numa-migrate lab up --multi-node")
        self.inventory_path.write_text(text)
        state.up_seconds = round(time.monotonic() - started, 1)
        state.save(self.state_file)
        progress(f"lab-src and lab-dst are up inside the VM ({state.up_seconds:.0f} s); "
                 f"inventory: {self.inventory_path}")
        return self._status(state, link, inner=inner, facts=facts)

    def _inner_json(self, args: str, timeout: float) -> dict[str, Any]:
        command = (f"cd / && NUMA_MIGRATE_LAB_DIR={INNER_LAB_DIR} "
                   f"PYTHONPATH={INNER_LIB} "
                   f"python3 -m numa_migrate {args}")
        done = self.link().run(command, timeout=timeout, check=False)
        try:
            data = json.loads(done.stdout)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise LabError(f"`numa-migrate {args}` in the lab VM failed (exit "
                           f"{done.returncode}): {' | '.join(tail)}")
        return data

    def _facts(self, link: SshLink) -> VmFacts:
        return parse_facts(link.run(_FACTS_SCRIPT, timeout=60).stdout)

    # -- status -------------------------------------------------------------------------------

    def status(self) -> MultiNodeStatus:
        state = _State.load(self.state_file)
        if state.pid is None or not machine.is_lab_vm(state.pid, self.overlay):
            return MultiNodeStatus(self.state_dir, running=False, pid=None, ssh_port=None,
                                   image=state.image,
                                   problem="" if state.pid is None else
                                   f"the lab VM {state.pid} is gone")
        try:
            link = self._link(state, self._image_of(state))
            inner = self._inner_json("lab status --json", 120)
            facts = self._facts(link)
        except LabError as exc:
            return MultiNodeStatus(self.state_dir, running=True, pid=state.pid,
                                   ssh_port=state.port, image=state.image, problem=str(exc))
        return self._status(state, link, inner=inner, facts=facts)

    def _status(self, state: _State, link: SshLink, *, inner: dict[str, Any],
                facts: VmFacts) -> MultiNodeStatus:
        problem = "" if inner.get("up") else "the daemons inside the VM are not (all) up"
        return MultiNodeStatus(
            self.state_dir, running=True, pid=state.pid, ssh_port=state.port,
            uris={h: link.libvirt_uri(f"{INNER_LAB_DIR}/hosts/{h}/run/libvirt-sock")
                  for h in HOST_NAMES},
            inventory=self.inventory_path if self.inventory_path.exists() else None,
            image=state.image, domain_type=self.domain_type(), facts=facts, inner=inner,
            problem=problem)

    # -- down ---------------------------------------------------------------------------------

    def down(self, progress: Progress = _silent) -> MultiNodeDown:
        """Stop the VM (everything in it goes with it) and remove the state directory."""
        notes: list[str] = []
        stopped: list[int] = []
        if not self.state_dir.exists():
            return MultiNodeDown(self.state_dir, stopped, notes)
        with self._locked():
            state = _State.load(self.state_file)
            stopped = self._stop_vm(state, notes)
            shutil.rmtree(self.state_dir, ignore_errors=True)
        if stopped:
            progress(f"lab VM stopped ({', '.join(map(str, stopped))}); image cache kept in "
                     f"{images.cache_root()}")
        return MultiNodeDown(self.state_dir, stopped, notes)

    def _stop_vm(self, state: _State, notes: list[str]) -> list[int]:
        stopped = []
        if state.master_pid is not None and processes.is_alive(state.master_pid) \
                and "ssh" in processes.exe_name(state.master_pid):
            processes.terminate([state.master_pid])
            stopped.append(state.master_pid)
        pids = ([state.pid] if state.pid is not None else []) + machine.stray_vms(self.overlay)
        for pid in dict.fromkeys(pids):
            if machine.stop(pid, self.overlay):
                stopped.append(pid)
            elif pid == state.pid and processes.is_alive(pid):
                notes.append(f"pid {pid} is no longer the lab VM: left alone")
        for leftover in (self.overlay, self.state_dir / "qemu.pid",
                         self.state_dir / "ssh-master.sock"):
            leftover.unlink(missing_ok=True)
        if self.state_file.exists():
            _State(image=state.image).save(self.state_file)
        return stopped


def _cpus(spec: str) -> frozenset[int]:
    from numa_migrate.core.cpuset import CpuSet

    return frozenset(CpuSet.parse(spec))


__all__ = ["DIR_ENV", "MultiNodeDown", "MultiNodeLab", "MultiNodeStatus", "VmFacts",
           "facts_problems", "parse_facts"]

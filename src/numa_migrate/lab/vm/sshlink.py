"""How this machine reaches the multi-node lab VM: ssh to a port forwarded on 127.0.0.1.

libvirt's own ssh transport (``qemu+ssh://``) carries every libvirt call, the way operators
reach remote hosts; the lab's commands (``lab up`` inside the VM, /proc reads for the tests)
use the same link. The link is strict: the VM's host key is the one recorded when the image
was built (``StrictHostKeyChecking yes`` against a known_hosts file of the lab's own, never
root's), the key is the image's client key, nothing prompts. One master connection is kept
open (ControlMaster) so that each libvirt connection does not pay an ssh handshake in the
emulated VM.
"""

from __future__ import annotations

import shlex
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from numa_migrate.lab.errors import LabError

HOST_ALIAS = "numa-migrate-lab-vm"


@dataclass(frozen=True)
class SshLink:
    """The files of the link (in the lab's state directory) and the forwarded port."""

    state_dir: Path
    port: int
    client_key: Path
    host_key_line: str

    @property
    def config(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def wrapper(self) -> Path:
        """An ``ssh`` that always uses the lab's config: libvirt's ``command=`` runs it."""
        return self.state_dir / "ssh"

    @property
    def control_path(self) -> Path:
        return self.state_dir / "ssh-master.sock"

    def config_text(self) -> str:
        return "\n".join([
            "# numa-migrate multi-node lab: ssh to the lab VM (written by `lab up --multi-node`)",
            f"Host {HOST_ALIAS} 127.0.0.1",
            "  HostName 127.0.0.1",
            f"  Port {self.port}",
            "  User root",
            f"  IdentityFile {self.client_key}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {self.known_hosts}",
            "  GlobalKnownHostsFile /dev/null",
            f"  HostKeyAlias {HOST_ALIAS}",
            "  StrictHostKeyChecking yes",
            "  UpdateHostKeys no",
            "  BatchMode yes",
            "  PasswordAuthentication no",
            "  LogLevel ERROR",
            "  ConnectTimeout 30",
            "  ServerAliveInterval 15",
            "  ServerAliveCountMax 8",
            "  ControlMaster no",
            f"  ControlPath {self.control_path}",
            "",
        ])

    def write(self) -> None:
        """The config, known_hosts and the ssh wrapper (root-only files)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.config_text())
        self.known_hosts.write_text(f"{HOST_ALIAS} {self.host_key_line}\n")
        self.wrapper.write_text(
            "#!/bin/sh\n# ssh with the numa-migrate lab VM's config (libvirt's command=)\n"
            f"exec ssh -F {shlex.quote(str(self.config))} \"$@\"\n")
        for path, mode in ((self.config, 0o600), (self.known_hosts, 0o600),
                           (self.wrapper, 0o700)):
            path.chmod(mode)

    def argv(self, command: str, *, master: bool = False) -> list[str]:
        """ssh's command line running ``command`` (a shell string) in the VM."""
        extra = (["-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-N", "-f"]
                 if master else [])
        return ["ssh", "-F", str(self.config), *extra, HOST_ALIAS,
                *([] if master else [command])]

    def run(self, command: str, *, timeout: float = 120, stdin: bytes | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a shell command in the VM; a failure is a LabError naming it."""
        try:
            done = subprocess.run(self.argv(command), input=stdin.decode() if stdin else None,
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise LabError(f"the lab VM did not finish `{command}` within {timeout:.0f} s") \
                from None
        if check and done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise LabError(f"`{command}` failed in the lab VM (exit {done.returncode}): "
                           + " | ".join(tail))
        return done

    def send_trees(self, sources: list[Path], target: str, *, timeout: float = 120) -> None:
        """Copy the directories ``sources`` into the directory ``target`` of the VM, each
        replacing its namesake there."""
        argv = ["tar", "--exclude=__pycache__", "-czf", "-"]
        for source in sources:
            argv += ["-C", str(source.parent), source.name]
        pack = subprocess.run(argv, capture_output=True, check=False)
        if pack.returncode != 0:
            raise LabError(f"cannot pack {', '.join(map(str, sources))}: "
                           f"{pack.stderr.decode(errors='replace').strip()}")
        quoted = shlex.quote(target)
        names = " ".join(shlex.quote(f"{target}/{s.name}") for s in sources)
        unpack = f"rm -rf {names} && mkdir -p {quoted} && tar -C {quoted} -xzf -"
        try:
            done = subprocess.run(self.argv(unpack), input=pack.stdout, capture_output=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise LabError(f"copying into the lab VM took more than {timeout:.0f} s") from None
        if done.returncode != 0:
            raise LabError(f"cannot copy {', '.join(s.name for s in sources)} into the lab VM: "
                           f"{done.stderr.decode(errors='replace').strip()}")

    def start_master(self, timeout: float = 60) -> None:
        try:
            done = subprocess.run(self.argv("", master=True), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise LabError("the ssh master connection to the lab VM did not open within "
                           f"{timeout:.0f} s") from None
        if done.returncode != 0:
            raise LabError(f"cannot open the ssh master connection to the lab VM: "
                           f"{done.stderr.strip()}")

    def master_pid(self) -> int | None:
        if not self.control_path.exists():
            return None
        done = subprocess.run(["ssh", "-F", str(self.config), "-O", "check", HOST_ALIAS],
                              capture_output=True, text=True, timeout=10, check=False)
        text = done.stderr + done.stdout
        if done.returncode != 0 or "pid=" not in text:
            return None
        digits = text.split("pid=", 1)[1].split(")", 1)[0]
        return int(digits) if digits.isdigit() else None

    def libvirt_uri(self, socket: str) -> str:
        """``qemu+ssh://`` to the daemon listening on ``socket`` inside the VM, through the
        lab's ssh wrapper (its known host, its key) and netcat on the VM's side."""
        query = urllib.parse.urlencode({"socket": socket, "command": str(self.wrapper),
                                        "proxy": "netcat", "no_tty": "1"}, safe="/")
        return f"qemu+ssh://root@{HOST_ALIAS}/system?{query}"


__all__ = ["HOST_ALIAS", "SshLink"]

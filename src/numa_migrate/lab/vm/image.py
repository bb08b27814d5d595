"""The multi-node lab VM's disk image: built once with debootstrap, cached, never written.

The image is a minimal Debian 12 (``debootstrap --variant=minbase``) with a kernel, systemd,
sshd, QEMU, libvirt's daemon and clients, python3 with libvirt-python plus the click and lxml
numa-migrate runs with here (``numa-migrate lab up`` runs inside; numa-migrate itself is
copied in at each ``up``), numactl and netcat (libvirt's ssh transport). It is
made straight from the directory with ``mkfs.ext4 -d`` (no loop devices) and booted with its
own kernel and initrd. Each cache entry is named by a key over everything that shapes it
(suite, packages, the files written into it), so a changed recipe builds a new entry and an
old one is never half-reused. A build happens in a temporary directory beside the cache and
is renamed into place only when complete: a failed or interrupted build leaves the cache as
it was.

Cache: ``/var/cache/numa-migrate/lab-vm/<key>/`` (or ``$NUMA_MIGRATE_VM_CACHE``), holding
``rootfs.img`` (sparse), ``vmlinuz``, ``initrd.img``, the ssh client key the image trusts,
the image's ssh host key (so the VM's identity is checked, not assumed) and
``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from numa_migrate.lab.errors import LabError, LabUnavailableError

CACHE_ENV = "NUMA_MIGRATE_VM_CACHE"
DEFAULT_CACHE = Path("/var/cache/numa-migrate/lab-vm")
MIRROR_ENV = "NUMA_MIGRATE_VM_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
RECIPE_VERSION = 1
BUILD_SPACE_MIB = 4096
"""Free space a build needs beside the cache (the unpacked tree plus the image)."""
IMAGE_SLACK_MIB = 1536
"""Free space left inside the image's file system for the VM's own writes."""
DEBOOTSTRAP_TIMEOUT_S = 1800

IMAGE_PACKAGES: tuple[str, ...] = (
    "linux-image-amd64", "systemd-sysv", "udev", "kmod", "initramfs-tools",
    "openssh-server", "netcat-openbsd", "iproute2", "procps", "numactl",
    "qemu-system-x86", "libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients",
    "python3", "python3-libvirt",
)
"""Not libvirt-daemon-system: the lab starts its own daemons, and that package's polkitd
needs logind, which debootstrap does not resolve. Not python3-click or python3-lxml: the
image gets the versions numa-migrate runs with here (:data:`SUPPORT_MODULES`)."""

MASKED_UNITS: tuple[str, ...] = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
    "systemd-timesyncd.service", "getty@tty1.service",
)
"""Nothing the lab needs; each costs seconds of emulated CPU at boot."""

Progress = Callable[[str], None]

BUILD_TOOLS: dict[str, str] = {"debootstrap": "debootstrap", "mkfs.ext4": "e2fsprogs",
                               "ssh-keygen": "openssh-client"}
"""Programs a build runs -> the Debian package that brings each."""


SUPPORT_MODULES: tuple[str, ...] = ("click", "lxml")
"""Python packages numa-migrate's lab needs inside the VM, copied into the image from the
environment numa-migrate runs in here (the same versions; Debian 12's click is too old).
click is pure Python; lxml's wheel brings its own libxml2; the VM's python3 is 3.11 too."""
INNER_LIB = "/opt/numa-migrate/lib"
"""Where they (and numa-migrate itself, copied at each ``up``) live in the VM."""


def support_trees() -> list[Path]:
    import importlib

    trees = []
    for name in SUPPORT_MODULES:
        module = importlib.import_module(name)
        if module.__file__ is None:
            raise LabError(f"cannot find the {name} package to copy into the lab VM")
        trees.append(Path(module.__file__).parent)
    return trees


def support_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in SUPPORT_MODULES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "unknown"
    return found


def image_files(authorized_key: str) -> dict[str, tuple[str, int]]:
    """The files written into the image: path -> (text, mode)."""
    return {
        "/etc/hostname": ("numa-migrate-lab-vm\n", 0o644),
        "/etc/hosts": ("127.0.0.1 localhost\n127.0.1.1 numa-migrate-lab-vm\n", 0o644),
        "/etc/fstab": ("/dev/vda / ext4 rw,relatime 0 1\n", 0o644),
        "/etc/systemd/network/50-lab.network": (
            "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\n", 0o644),
        "/etc/ssh/sshd_config.d/numa-migrate-lab.conf": (
            "# numa-migrate lab VM: root by key only; many multiplexed sessions (libvirt)\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUseDNS no\nX11Forwarding no\n"
            "MaxSessions 200\nMaxStartups 100:30:200\n", 0o644),
        "/root/.ssh/authorized_keys": (authorized_key.strip() + "\n", 0o600),
    }


@dataclass(frozen=True)
class ImageRecipe:
    """What the image is made of; its :meth:`key` names the cache entry."""

    suite: str = SUITE
    packages: tuple[str, ...] = IMAGE_PACKAGES

    def key(self) -> str:
        shape = {"recipe": RECIPE_VERSION, "suite": self.suite,
                 "packages": sorted(self.packages), "masked": sorted(MASKED_UNITS),
                 "files": image_files("KEY"), "python": support_versions()}
        digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()
        return f"{self.suite}-{digest[:16]}"


@dataclass(frozen=True)
class CachedImage:
    """A complete cache entry."""

    root: Path

    @property
    def rootfs(self) -> Path:
        return self.root / "rootfs.img"

    @property
    def kernel(self) -> Path:
        return self.root / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.root / "initrd.img"

    @property
    def client_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def host_key(self) -> Path:
        return self.root / "ssh_host_ed25519_key.pub"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.rootfs, self.kernel, self.initrd,
                                          self.client_key, self.host_key, self.manifest))

    def read_manifest(self) -> dict[str, object]:
        try:
            data = json.loads(self.manifest.read_text())
        except (OSError, ValueError) as exc:
            raise LabError(f"{self.manifest}: unreadable ({exc}); remove {self.root} "
                           "to build the image again") from None
        if not isinstance(data, dict):
            raise LabError(f"{self.manifest}: not a JSON object; remove {self.root}")
        return data

    def host_key_line(self) -> str:
        """``<type> <base64>`` of the image's ssh host key."""
        parts = self.host_key.read_text().split()
        if len(parts) < 2:
            raise LabError(f"{self.host_key}: not an ssh public key; remove {self.root}")
        return f"{parts[0]} {parts[1]}"


def cache_root() -> Path:
    raw = os.environ.get(CACHE_ENV, "").strip()
    return (Path(raw) if raw else DEFAULT_CACHE).absolute()


def mirror() -> str:
    """The Debian mirror: ``$NUMA_MIGRATE_VM_MIRROR``, else this machine's apt source for
    Debian (so a build uses the same mirror apt does), else deb.debian.org."""
    raw = os.environ.get(MIRROR_ENV, "").strip()
    if raw:
        return raw
    return apt_mirror(_apt_source_texts()) or DEFAULT_MIRROR


def _apt_source_texts() -> list[str]:
    texts = []
    for path in [Path("/etc/apt/sources.list"),
                 *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            if path.is_file() and path.stat().st_size < 1 << 20:
                texts.append(path.read_text(errors="replace"))
        except OSError:
            continue
    return texts


_ONE_LINE = re.compile(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", re.MULTILINE)
_DEB822_URI = re.compile(r"^URIs:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


def apt_mirror(texts: list[str]) -> str | None:
    """The first Debian archive (not the security archive) named by apt sources, one-line
    or deb822 style."""
    for text in texts:
        found = [m.group(1) for m in _ONE_LINE.finditer(text)]
        found += _DEB822_URI.findall(text)
        for uri in found:
            if uri.startswith(("http://", "https://")) and "security" not in uri \
                    and uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return None


def find_cached(recipe: ImageRecipe | None = None) -> CachedImage | None:
    image = CachedImage(cache_root() / (recipe or ImageRecipe()).key())
    return image if image.complete() else None


def _free_mib(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    stat = os.statvfs(probe)
    return stat.f_bavail * stat.f_frsize // (1 << 20)


def check_space(path: Path, need_mib: int = BUILD_SPACE_MIB,
                free_mib: Callable[[Path], int] = _free_mib) -> None:
    free = free_mib(path)
    if free < need_mib:
        raise LabError(
            f"no space to build the multi-node lab image: {free} MiB free under {path}, "
            f"{need_mib} MiB needed (set ${CACHE_ENV} to a file system with more room)")


def _tool(name: str, package: str) -> str:
    from numa_migrate.lab.packages import find_program

    found = find_program(name)
    if found is None:
        raise LabUnavailableError(f"{name} is missing: apt-get install {package}")
    return found


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def _run(argv: list[str], log: Path, what: str, timeout: float = 600) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise LabError(f"{what} took more than {timeout:.0f} s (log: {log})") from None
    if done.returncode != 0:
        raise LabError(f"{what} failed (exit {done.returncode}): {_tail(log)} (log: {log})")


def ensure_image(progress: Progress, recipe: ImageRecipe | None = None) -> CachedImage:
    """The cached image, built first when missing (minutes: it downloads ~200 MB)."""
    recipe = recipe or ImageRecipe()
    image = find_cached(recipe)
    if image is not None:
        return image
    return build_image(recipe, progress)


def build_image(recipe: ImageRecipe, progress: Progress) -> CachedImage:
    from numa_migrate.lab.packages import ensure_packages

    ensure_packages(progress, packages=tuple(BUILD_TOOLS.values()), programs=BUILD_TOOLS)
    debootstrap = _tool("debootstrap", "debootstrap")
    mkfs = _tool("mkfs.ext4", "e2fsprogs")
    keygen = _tool("ssh-keygen", "openssh-client")
    root_dir = cache_root()
    check_space(root_dir)
    root_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(root_dir, 0o700)
    final = root_dir / recipe.key()
    work = root_dir / f".build-{recipe.key()}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    log = work / "build.log"
    tree = work / "tree"
    started = time.monotonic()
    try:
        source = mirror()
        progress(f"building the multi-node lab image ({recipe.suite}, {len(recipe.packages)} "
                 f"packages from {source}; a few minutes, once)")
        _run([debootstrap, "--variant=minbase", "--include=" + ",".join(recipe.packages),
              recipe.suite, str(tree), source], log, "debootstrap",
             timeout=DEBOOTSTRAP_TIMEOUT_S)
        progress(f"image: Debian unpacked in {time.monotonic() - started:.0f} s")
        _run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "numa-migrate-lab",
              "-f", str(work / "id_ed25519")], log, "ssh-keygen")
        _finish_tree(tree, (work / "id_ed25519.pub").read_text(), log)
        lib = tree / INNER_LIB.lstrip("/")
        lib.mkdir(parents=True, exist_ok=True)
        for support in support_trees():
            shutil.copytree(support, lib / support.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        host_key = tree / "etc/ssh/ssh_host_ed25519_key.pub"
        if not host_key.is_file():
            raise LabError(f"the image has no ssh host key ({host_key}) (log: {log})")
        shutil.copy2(host_key, work / "ssh_host_ed25519_key.pub")
        kernels = sorted((tree / "boot").glob("vmlinuz-*"))
        initrds = sorted((tree / "boot").glob("initrd.img-*[0-9]-amd64"))
        if not kernels or not initrds:
            raise LabError(f"the image has no kernel or initrd in {tree / 'boot'} (log: {log})")
        shutil.copy2(kernels[-1], work / "vmlinuz")
        shutil.copy2(initrds[-1], work / "initrd.img")
        used = _tree_mib(tree)
        size = used + IMAGE_SLACK_MIB
        _run([mkfs, "-q", "-F", "-t", "ext4", "-L", "nm-lab-root", "-d", str(tree),
              str(work / "rootfs.img"), f"{size}M"], log, "mkfs.ext4 -d")
        shutil.rmtree(tree)
        manifest = {"key": recipe.key(), "suite": recipe.suite, "mirror": source,
                    "packages": list(recipe.packages), "kernel": kernels[-1].name,
                    "python": support_versions(),
                    "image_mib": size, "tree_mib": used,
                    "build_seconds": round(time.monotonic() - started, 1),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    image = CachedImage(final)
    progress(f"image built in {time.monotonic() - started:.0f} s: {final} ({size} MiB, sparse)")
    return image


def _tree_mib(tree: Path) -> int:
    total = 0
    for path in tree.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.lstat().st_size
        except OSError:
            continue
    return total // (1 << 20) + 1


def _finish_tree(tree: Path, public_key: str, log: Path) -> None:
    """Write the lab's files into the unpacked tree and enable or mask units (offline:
    ``systemctl --root``, nothing runs in the tree)."""
    for path, (text, mode) in image_files(public_key).items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        os.chmod(target, mode)
    os.chmod(tree / "root/.ssh", 0o700)
    (tree / "etc/machine-id").write_text("")  # a fresh one at boot
    systemctl = shutil.which("systemctl") or "/bin/systemctl"
    _run([systemctl, "--root", str(tree), "enable", "systemd-networkd.service",
          "ssh.service"], log, "systemctl enable")
    _run([systemctl, "--root", str(tree), "mask", *MASKED_UNITS], log, "systemctl mask")
    for leftover in (tree / "var/cache/apt/archives").glob("*.deb"):
        leftover.unlink()
    for stale in (tree / "boot").glob("initrd.img-*.dpkg-bak"):
        stale.unlink()


def remove_stale(keep: CachedImage | None, progress: Progress) -> None:
    """Remove cache entries of other recipes and builds that died half-way."""
    root_dir = cache_root()
    if not root_dir.is_dir():
        return
    for entry in root_dir.iterdir():
        if keep is not None and entry == keep.root:
            continue
        if entry.name.startswith(".build-"):
            pid = entry.name.rsplit("-", 1)[-1]
            if pid.isdigit() and Path(f"/proc/{pid}").exists():
                continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            progress(f"removed the old image cache entry {entry.name}")


__all__ = ["CACHE_ENV", "CachedImage", "ImageRecipe", "apt_mirror", "cache_root",
           "check_space", "ensure_image", "find_cached", "image_files", "mirror",
           "remove_stale"]

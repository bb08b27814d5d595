"""The multi-node lab's pure parts and its failure paths that need no VM.

The VM itself (image build, boot, the four multi-node matrix rows) runs in
tests/multinode/ on the real machine.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from numa_migrate.cli.main import cli
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.lab import daemons
from numa_migrate.lab.errors import LabError, LabUnavailableError
from numa_migrate.lab.layout import HostPaths
from numa_migrate.lab.vm import image as images
from numa_migrate.lab.vm import machine
from numa_migrate.lab.vm.multinode import MultiNodeLab, facts_problems, parse_facts
from numa_migrate.lab.vm.shape import VM_NAME, BootFiles, VmShape, qemu_argv, split_cores
from numa_migrate.lab.vm.sshlink import HOST_ALIAS, SshLink


def _files(tmp_path: Path) -> BootFiles:
    return BootFiles(kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd.img",
                     disk=tmp_path / "disk.qcow2", console_log=tmp_path / "console.log",
                     pid_file=tmp_path / "qemu.pid")


# ------------------------------------------------------------------------------ the shape


def test_default_shape_gives_two_nodes_smt_and_gigantic_pages() -> None:
    shape = VmShape()
    assert shape.cpus == 8
    assert shape.node_cpus(0) == CpuSet.of({0, 1, 2, 3})
    assert shape.node_cpus(1) == CpuSet.of({4, 5, 6, 7})
    line = shape.kernel_cmdline()
    assert "hugepagesz=1G hugepages=0:1,1:1" in line
    assert "hugepagesz=2M hugepages=0:160,1:160" in line
    assert "nokaslr" in line and "console=ttyS0" in line


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("sockets", 1, "sockets must be an integer from 2 to 4, not 1"),
    ("threads", 3, "threads must be an integer from 1 to 2, not 3"),
    ("cores", True, "cores must be an integer"),
    ("node_memory_mib", 10**9, "node_memory_mib must be an integer from 1536"),
    ("pages_1g_per_node", 3, "leave less than 1 GiB"),
])
def test_bad_shapes_are_refused_by_name(field: str, value: object, fragment: str) -> None:
    with pytest.raises(LabError, match=fragment):
        VmShape(**{field: value})  # type: ignore[arg-type]


def test_qemu_argv_forwards_ssh_on_loopback_only_and_lets_nothing_out(tmp_path: Path) -> None:
    argv = qemu_argv("qemu-system-x86_64", VmShape(), _files(tmp_path), 40022)
    joined = " ".join(argv)
    net = argv[argv.index("-netdev") + 1]
    assert net == "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22"
    assert "-smp 8,sockets=2,cores=2,threads=2" in joined
    assert "-cpu max,vendor=GenuineIntel" in joined
    assert "-accel tcg,thread=multi" in joined
    assert "q35,max-ram-below-4g=1G" in joined
    assert "node,nodeid=1,cpus=4-7,memdev=mem1" in joined
    assert argv[argv.index("-name") + 1] == VM_NAME
    assert f"file={tmp_path / 'disk.qcow2'},if=virtio,format=qcow2" in joined
    assert "-daemonize" in argv


@pytest.mark.parametrize("port", [0, 80, 70000])
def test_qemu_argv_refuses_bad_ports(tmp_path: Path, port: int) -> None:
    with pytest.raises(LabError, match="ssh port must be from 1024 to 65535"):
        qemu_argv("qemu", VmShape(), _files(tmp_path), port)


def test_split_cores_gives_each_host_whole_cores_on_every_node() -> None:
    sets = split_cores({0: [frozenset({2, 3}), frozenset({0, 1})],
                        1: [frozenset({4, 5}), frozenset({6, 7})]})
    assert sets["lab-src"] == (CpuSet.of({0, 1, 4, 5}), CpuSet.of({2, 3, 6, 7}))
    assert sets["lab-dst"] == (CpuSet.of({2, 3, 6, 7}), CpuSet.of({0, 1, 4, 5}))


def test_split_cores_refuses_a_node_with_one_core() -> None:
    with pytest.raises(LabError, match="node 1 has 1 core"):
        split_cores({0: [frozenset({0, 1}), frozenset({2, 3})], 1: [frozenset({4, 5})]})


# ------------------------------------------------------------------------------ facts

FACTS = """node 0 0-3
pages 0 1048576kB 1 1
pages 0 2048kB 160 158
node 1 4-7
pages 1 1048576kB 1 0
pages 1 2048kB 160 160
siblings 0 0-1
siblings 1 0-1
siblings 2 2-3
siblings 3 2-3
siblings 4 4-5
siblings 5 4-5
siblings 6 6-7
siblings 7 6-7
"""


def test_parse_facts_reads_nodes_siblings_and_pages() -> None:
    facts = parse_facts(FACTS)
    assert facts.nodes == {0: "0-3", 1: "4-7"}
    assert facts.siblings == {0: ["0-1", "2-3"], 1: ["4-5", "6-7"]}
    assert facts.pages[1]["1048576 KiB free"] == 0
    assert facts.pages[0]["2048 KiB free"] == 158
    assert facts_problems(facts, VmShape()) == []


def test_facts_problems_name_what_the_kernel_lacks() -> None:
    one_node = parse_facts("node 0 0-1\nsiblings 0 0\nsiblings 1 1\n")
    problems = facts_problems(one_node, VmShape())
    assert "the VM kernel shows 1 NUMA node(s), not 2" in problems
    assert "the VM kernel shows no SMT sibling threads" in problems
    assert any("node 0 has 0 1 GiB page(s), not 1" in p for p in problems)


# ------------------------------------------------------------------------------ image


def test_apt_mirror_reads_both_source_styles_and_skips_security() -> None:
    deb822 = ("Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: x\n\n"
              "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    assert images.apt_mirror([deb822]) == "http://mirror.example/debian"
    one_line = "deb [arch=amd64] http://ftp.example.org/debian bookworm main\n"
    assert images.apt_mirror([one_line]) == "http://ftp.example.org/debian"
    assert images.apt_mirror(["# nothing\n"]) is None


def test_mirror_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(images.MIRROR_ENV, "http://local/debian")
    assert images.mirror() == "http://local/debian"


def test_recipe_key_follows_the_packages() -> None:
    base = images.ImageRecipe()
    assert base.key() == images.ImageRecipe().key()
    assert base.key() != images.ImageRecipe(packages=(*base.packages, "vim")).key()
    assert base.key().startswith("bookworm-")


def test_no_space_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"no space to build .* 100 MiB free under .*"
                                       r"4096 MiB needed \(set \$NUMA_MIGRATE_VM_CACHE"):
        images.check_space(tmp_path, free_mib=lambda _p: 100)


def test_a_failed_build_leaves_the_cache_as_it_was(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(images.CACHE_ENV, str(tmp_path))
    other = tmp_path / "bookworm-older"
    other.mkdir()
    (other / "rootfs.img").write_text("kept")
    monkeypatch.setattr("numa_migrate.lab.packages.ensure_packages", lambda *a, **k: None)
    monkeypatch.setattr(images, "_tool", lambda name, _package: f"/usr/bin/{name}")
    monkeypatch.setattr(images, "check_space", lambda _path: None)

    def failing(argv: list[str], log: Path, what: str, timeout: float = 0) -> None:
        raise LabError(f"{what} failed (exit 1): E: no network")

    monkeypatch.setattr(images, "_run", failing)
    with pytest.raises(LabError, match="debootstrap failed"):
        images.build_image(images.ImageRecipe(), lambda _m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bookworm-older"]
    assert (other / "rootfs.img").read_text() == "kept"
    assert images.find_cached() is None


def test_image_files_allow_root_by_key_only() -> None:
    files = images.image_files("ssh-ed25519 AAAA test")
    sshd = files["/etc/ssh/sshd_config.d/numa-migrate-lab.conf"][0]
    assert "PasswordAuthentication no" in sshd and "PermitRootLogin prohibit-password" in sshd
    assert files["/root/.ssh/authorized_keys"] == ("ssh-ed25519 AAAA test\n", 0o600)


# ------------------------------------------------------------------------------ ssh link


def test_ssh_link_checks_the_recorded_host_key(tmp_path: Path) -> None:
    link = SshLink(tmp_path / "state", 40022, tmp_path / "id_ed25519", "ssh-ed25519 AAAAC3")
    link.write()
    config = link.config.read_text()
    assert "StrictHostKeyChecking yes" in config
    assert f"UserKnownHostsFile {link.known_hosts}" in config
    assert "Port 40022" in config and "BatchMode yes" in config
    assert link.known_hosts.read_text() == f"{HOST_ALIAS} ssh-ed25519 AAAAC3\n"
    assert stat.S_IMODE(link.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(link.wrapper.stat().st_mode) == 0o700
    uri = link.libvirt_uri("/var/lib/numa-migrate/lab/hosts/lab-src/run/libvirt-sock")
    assert uri.startswith(f"qemu+ssh://root@{HOST_ALIAS}/system?socket=/var/lib/")
    assert f"command={link.wrapper}".replace("/", "%2F") not in uri
    assert f"command={link.wrapper}" in uri and "proxy=netcat" in uri


# ------------------------------------------------------------------------------ machine


def test_no_qemu_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("numa_migrate.lab.packages.find_program", lambda _name: None)
    with pytest.raises(LabUnavailableError,
                       match=r"qemu-system-x86_64 is missing .* apt-get install qemu-system-x86"):
        machine.qemu_programs()


def test_a_foreign_pid_is_never_signalled(tmp_path: Path) -> None:
    assert not machine.is_lab_vm(os.getpid(), tmp_path / "disk.qcow2")
    assert machine.stop(os.getpid(), tmp_path / "disk.qcow2") is False


def test_console_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(b"one\r\ntwo\r\n\r\nthree\nfour\n")
    assert machine.console_tail(log, 2) == "three | four"
    assert machine.console_tail(tmp_path / "none") == "(no console output)"


# ------------------------------------------------------------------------------ the lab


def test_status_and_down_without_a_vm(tmp_path: Path) -> None:
    lab = MultiNodeLab(tmp_path / "mn")
    status = lab.status()
    assert not status.running and not status.up and status.problem == ""
    assert lab.down().stopped == []
    assert lab.counter_image == Path("/var/lib/numa-migrate/lab/images/counter-idle-floppy.img")
    assert lab.domain_type() == "qemu"


def test_lab_daemons_mount_a_gigantic_hugetlbfs_when_the_kernel_has_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = HostPaths("lab-src", tmp_path / "lab-src")
    config = daemons.DaemonConfig("u", (1, 2), hugetlbfs=True, gigantic=True)
    assert (f'hugetlbfs_mount = [ "{host.hugepages_dir}", "{host.hugepages_1g_dir}" ]'
            in daemons.qemu_conf(config, host))
    monkeypatch.setattr(daemons, "gigantic_pages", lambda: True)
    script = daemons._start_script(host, "/usr/sbin/libvirtd", hugetlbfs=True)
    assert f"-o pagesize=1G numa-migrate-lab {host.hugepages_1g_dir}" in script
    monkeypatch.setattr(daemons, "gigantic_pages", lambda: False)
    assert "pagesize=1G" not in daemons._start_script(host, "/usr/sbin/libvirtd",
                                                      hugetlbfs=True)


# ------------------------------------------------------------------------------ CLI


def test_cli_refuses_hugepages_with_multi_node() -> None:
    result = CliRunner().invoke(cli, ["lab", "up", "--multi-node", "--hugepages", "4"])
    assert result.exit_code == 2
    assert "reserves its pages at boot" in result.output


def test_cli_matrix_multi_node_takes_no_hosts(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate-matrix", "--multi-node", "--hosts",
                                      str(tmp_path / "inv.toml")])
    assert result.exit_code == 2
    assert "--multi-node runs on the multi-node lab" in result.output


def test_cli_boot_timeout_is_bounded() -> None:
    result = CliRunner().invoke(cli, ["lab", "up", "--multi-node", "--boot-timeout", "5"])
    assert result.exit_code == 2
    assert "--boot-timeout" in result.output


# ------------------------------------------------------------------------------ idle counter


def test_idle_boot_sector_sleeps_between_interrupts_and_counts() -> None:
    from numa_migrate.lab.guest import IDLE_BOOT_CODE, boot_sector

    sector = boot_sector(idle=True)
    assert len(sector) == 512 and sector[510:] == b"\x55\xaa"
    assert sector.startswith(IDLE_BOOT_CODE)
    assert sector[4] == 0xFB  # sti
    assert sector[5] == 0xF4  # hlt
    assert sector[6:11] == bytes.fromhex("66FF060005")  # inc dword [0x500]
    # jmp short: back from the end of the jump (offset 13) to the hlt (offset 5)
    assert sector[11] == 0xEB and 13 + (sector[12] - 256) == 5


class _Monitor:
    def __init__(self, memory: bytes) -> None:
        self.memory = memory

    def name(self) -> str:
        return "g"

    def monitor_command(self, command: str) -> str:
        count = int(command.split("/", 1)[1].split("x", 1)[0])  # "xp /13xb 0x7c00"
        return "0000000000007c00: " + " ".join(f"0x{b:02x}" for b in self.memory[:count])


@pytest.mark.parametrize("idle", [False, True])
def test_either_counter_is_recognised_once_loaded(idle: bool) -> None:
    from numa_migrate.lab.guest import boot_sector, boot_sector_loaded

    loaded = _Monitor(boot_sector(idle=idle)[:26])
    assert boot_sector_loaded(loaded)  # type: ignore[arg-type]
    assert not boot_sector_loaded(_Monitor(bytes(26)))  # type: ignore[arg-type]

"""The --cloud side of the CLI without a cloud: usage errors, exit codes on recorded
answers (the cloud replaced by a replay of them, from the test side), compute mapping and
Nova's view as a placement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from numa_migrate.adapters.inventory import HostConfig
from numa_migrate.cloud.computes import ComputeMappingError, check_template, with_nova_conf
from numa_migrate.cloud.matrix import release_of
from numa_migrate.core.novaview import (
    NovaViewError,
    ServerTopology,
    TopologyCell,
    placement_from_nova,
)

FIXTURES = Path(__file__).parent / "fixtures" / "openstack"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "numa_migrate", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120,
                          check=False)


@pytest.mark.parametrize("args, message", [
    (("explain", "--server", "s", "--flavor-vcpus", "2"), "--server takes the guest"),
    (("explain", "--flavor-vcpus", "1", "--flavor-ram", "64", "--uri-template", "x{host}"),
     "go with --server"),
    (("migrate", "s", "--cloud", "c", "--post-copy"), "Nova migrates"),
    (("migrate", "s"), "Missing option '--to'"),
    (("validate", "s"), "Missing option '--host'"),
    (("validate", "s", "--cloud", "c", "--plan", "p.json"), "--plan is for numa-migrate"),
    (("validate-matrix", "--cloud", "c", "--source", "a"), "give --source and --destination"),
])
def test_usage_errors(args: tuple[str, ...], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def _replayed(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The cloud of the command line answers from a recording of the lab's OpenStack."""
    from numa_migrate.cloud import api
    from numa_migrate.cloud.record import ReplayApi

    monkeypatch.setattr(api, "connect_cloud", lambda _name: ReplayApi.load(
        FIXTURES / f"{name}.jsonl", name="numa-migrate-lab"))
    monkeypatch.setenv("NUMA_MIGRATE_INVENTORY", "")


def invoke(*args: str) -> Result:
    from numa_migrate.cli.main import cli

    return CliRunner().invoke(cli, list(args))


def test_server_not_found_on_recorded_answers_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    _replayed(monkeypatch, "server-not-found")
    result = invoke("validate", "no-such-server", "--cloud", "numa-migrate-lab",
                    "--uri-template", "qemu+ssh://root@{host}/system")
    assert result.exit_code == 2
    assert result.stderr == ("error: cloud numa-migrate-lab: no server named or with id "
                             "'no-such-server'\n")


def test_unrecorded_answer_is_a_cloud_error_exit_4(monkeypatch: pytest.MonkeyPatch) -> None:
    _replayed(monkeypatch, "preflight")
    result = invoke("explain", "--cloud", "numa-migrate-lab", "--server", "zz",
                    "--uri-template", "qemu+ssh://root@{host}/system")
    assert result.exit_code == 4 and "no recorded answer" in result.stderr


def test_uri_template() -> None:
    assert check_template("qemu+ssh://root@{host}/system") == "qemu+ssh://root@{host}/system"
    for bad in ("qemu:///system", "qemu+ssh://{host}/{x}", "{host}"):
        with pytest.raises(ComputeMappingError):
            check_template(bad)


def test_cpu_sets_from_a_compute_nova_conf(tmp_path: Path) -> None:
    conf = tmp_path / "nova.conf"
    conf.write_text("[DEFAULT]\nhost = cmp-1\n[compute]\ncpu_dedicated_set = 2-5\n"
                    "cpu_shared_set = 0,1\n")
    config = with_nova_conf(HostConfig("cmp-1", "qemu:///system", "inv"), conf)
    assert config.cpu_dedicated_set == {2, 3, 4, 5} and config.cpu_shared_set == {0, 1}
    conf.write_text("[compute]\ncpu_dedicated_set = 0-99999999\n")
    with pytest.raises(Exception, match="cpu_dedicated_set"):
        with_nova_conf(HostConfig("cmp-1", "qemu:///system", "inv"), conf)


def test_placement_from_nova_refuses_an_incoherent_topology() -> None:
    cell = TopologyCell(None, frozenset({0}), 64, {0: 1})
    with pytest.raises(NovaViewError, match="no host node"):
        placement_from_nova(ServerTopology((cell,), 2048))
    stray = TopologyCell(0, frozenset({0}), 64, {3: 1})
    with pytest.raises(NovaViewError, match="pins vCPU 3"):
        placement_from_nova(ServerTopology((stray,), None))


def test_release_of_microversions() -> None:
    assert release_of("2.93") == "Zed (API 2.93)"
    assert release_of("2.79") == "Train (API 2.79)"
    # between 2025.2's maximum (2.100) and 2026.1's (2.103): a development snapshot
    assert release_of("2.101") == "2025.2 (flamingo) or 2026.1 (gazpacho) (API 2.101)"


def test_release_check_before_asking_nova() -> None:
    from numa_migrate.cloud.migrate import CheckRefused, _check_release
    from numa_migrate.cloud.nova import ApiVersion

    assert "Train or later" in _check_release(ApiVersion("2.1", "2.93"))
    assert "Train or later" in _check_release(ApiVersion("2.1", "2.79"))
    with pytest.raises(CheckRefused, match="older than Train"):
        _check_release(ApiVersion("2.1", "2.72"))


@pytest.mark.parametrize("content, message", [
    ("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "alias"),
    ("clouds:\n  c:\n    auth: " + "[" * 2000 + "]" * 2000 + "\n", "deep"),
    ("x" * (2 << 20), "more than"),
])
def test_hostile_clouds_yaml_is_one_line_exit_4(tmp_path: Path, content: str,
                                                message: str) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(content)
    done = run("explain", "--cloud", "c", "--server", "s", "--uri-template",
               "qemu+ssh://{host}/system", env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("error: cloud c: ") and done.stderr.count("\n") == 1
    assert message in done.stderr.lower() or "nest" in done.stderr.lower(), done.stderr


def test_clouds_yaml_that_is_not_a_file_exit_4() -> None:
    done = run("validate", "s", "--cloud", "c", "--uri-template", "qemu+ssh://{host}/system",
               env={"OS_CLIENT_CONFIG_FILE": "/dev/zero"})
    assert done.returncode == 4 and done.stderr.count("\n") == 1, done.stderr
    assert "/dev/zero" in done.stderr

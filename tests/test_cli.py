"""The command line as an operator uses it: outputs, JSON, exit codes and error messages."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from click.testing import CliRunner, Result

from numa_migrate.cli.main import cli

PINNED = ["--flavor-vcpus", "4", "--flavor-ram", "4096",
          "--extra-spec", "hw:cpu_policy=dedicated"]


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def test_fit_prints_the_placement() -> None:
    result = run("fit", "--host", "cmp-small-01", *PINNED)
    assert result.exit_code == 0
    assert "✔ cmp-small-01" in result.output and "Pins" in result.output


def test_fit_json_and_no_fit_exit_code() -> None:
    result = run("fit", "--host", "cmp-small-01", "--json", "--flavor-vcpus", "8",
                 "--flavor-ram", "4096", "--extra-spec", "hw:cpu_policy=dedicated")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["fits"] is False and doc["placement"] is None
    assert doc["reasons"][0]["code"] == "dedicated_cpus_busy"
    assert doc["reasons"][0]["need"] == 8


def test_fit_on_capabilities_xml() -> None:
    caps = resources.files("numa_migrate") / "data" / "fleet" / "caps-cmp-epyc-01.xml"
    with resources.as_file(caps) as path:
        result = run("fit", "--capabilities", str(path), "--dedicated-set", "2-31,34-63",
                     "--shared-set", "0-1,32-33", "--json", "--flavor-vcpus", "32",
                     "--flavor-ram", "65536", "--extra-spec", "hw:cpu_policy=dedicated",
                     "--extra-spec", "hw:numa_nodes=4")
    doc = json.loads(result.output)
    assert result.exit_code == 0, doc
    assert sorted(c["host_cell"] for c in doc["placement"]["cells"]) == [0, 1, 2, 3]


def test_explain_summary_and_json_rows() -> None:
    result = run("explain", "--json", "--flavor-vcpus", "16", "--flavor-ram", "65536",
                 "--extra-spec", "hw:cpu_policy=dedicated", "--extra-spec", "hw:numa_nodes=2",
                 "--extra-spec", "hw:mem_page_size=1GB")
    doc = json.loads(result.output)
    assert result.exit_code == 1
    assert doc["summary"].startswith("0/3 hosts can take guest (16 dedicated vCPUs")
    assert "1 too few NUMA cells" in doc["summary"]
    epyc = next(h for h in doc["hosts"] if h["host"] == "cmp-epyc-01")
    assert len(epyc["cells"]) == 8  # 4 host cells x 2 guest cells
    assert all(c["reasons"][0]["code"] == "page_size_missing" for c in epyc["cells"])


def test_explain_human_lists_every_host() -> None:
    result = run("explain", *PINNED, "--extra-spec", "hw:numa_nodes=2")
    assert result.exit_code == 0
    for name in ("cmp-intel-01", "cmp-epyc-01", "cmp-small-01"):
        assert name in result.output
    assert "2/3 hosts can take guest" in result.output


def test_fleet_json() -> None:
    doc = json.loads(run("fleet", "--json").output)
    assert [h["name"] for h in doc["hosts"]] == ["cmp-intel-01", "cmp-epyc-01", "cmp-small-01"]
    intel = doc["hosts"][0]
    assert {g["name"] for g in intel["guests"]} == {"db-1", "nfv-1", "vnf-2", "web-1"}


def test_demo_runs() -> None:
    # the lab part is tests/e2e/test_demo.py's (it needs root and the lab lock)
    result = run("demo", "--no-lab")
    assert result.exit_code == 0
    assert "1. The sample fleet" in result.output and "3. Why can't" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["fit", "--host", "nope", *PINNED], "host 'nope' is not in sample fleet"),
    (["fit", "--host", "cmp-small-01", "--flavor-vcpus", "4", "--flavor-ram", "4096",
      "--extra-spec", "hw:cpu_policy=fast"],
     "invalid guest request (InvalidCPUAllocationPolicy): hw:cpu_policy='fast'"),
    (["fit", "--host", "cmp-small-01", "--flavor-vcpus", "4", "--flavor-ram", "4096",
      "--extra-spec", "hw:cpu_policy"], "'hw:cpu_policy' is not KEY=VALUE"),
    (["fit", "--host", "cmp-small-01"], "describe the guest with --flavor-vcpus"),
    (["fit", *PINNED], "name one host with --host NAME"),
    (["explain", *PINNED, "--dedicated-set", "1-3"], "go with --capabilities"),
])
def test_bad_input_is_one_clear_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_batch_answers_every_line_even_bad_ones() -> None:
    lines = [
        json.dumps({"id": "ok", "host": {"cells": [{"id": 0, "cpuset": [0], "pcpuset": [1],
                                                    "memory_mib": 1024}]},
                    "flavor": {"vcpus": 1, "memory_mib": 512,
                               "extra_specs": {"hw:cpu_policy": "dedicated"}}}),
        "{not json",
        json.dumps({"id": "no-host", "flavor": {"vcpus": 1, "memory_mib": 512}}),
        json.dumps({"id": "bad-cpu", "host": {"cells": [{"id": 0, "cpuset": ["x"],
                                                         "memory_mib": 1}]},
                    "flavor": {"vcpus": 1, "memory_mib": 512}}),
    ]
    result = run("fit", "--batch", stdin="\n".join(lines) + "\n")
    assert result.exit_code == 0
    answers = [json.loads(line) for line in result.output.splitlines()]
    assert [a["id"] for a in answers] == ["ok", None, "no-host", "bad-cpu"]
    assert answers[0]["fits"] is True
    assert answers[0]["cells"][0]["cpu_pinning"] == {"0": 1}
    assert answers[1]["error"]["type"] == "InvalidCase"
    assert answers[2]["error"] == {"type": "InvalidCase", "message": "case.host is missing"}
    assert "host.cells[0].cpuset" in answers[3]["error"]["message"]


def test_batch_of_garbage_fails() -> None:
    result = run("fit", "--batch", stdin="\x00\x01garbage\nmore garbage\n")
    assert result.exit_code == 2
    assert "not JSON Lines" in result.output


def test_help_teaches_with_examples() -> None:
    top = run("--help").output
    assert "numa-migrate explain --flavor-vcpus" in top
    fit_help = run("fit", "--help").output
    assert "--batch" in fit_help and "--domain-xml" in fit_help and "Exit 0 fits" in fit_help

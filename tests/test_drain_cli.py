"""`numa-migrate drain`: the plan on the sample fleet, its JSON, and bad input."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from click.testing import CliRunner, Result

from numa_migrate.cli.main import cli
from tests.drainvalidity import violations


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["drain", *args])


def test_drain_json_lists_waves_moves_and_the_guests_that_cannot_move() -> None:
    result = run("cmp-intel-01", "--json", "--solver", "heuristic")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert doc["drain"] == ["cmp-intel-01"] and doc["solver"] == "heuristic"
    moved = {m["guest"] for w in doc["waves"] for m in w["moves"]}
    stuck = {u["guest"]: u["reason"] for u in doc["unplaceable"]}
    assert moved | set(stuck) == {"db-1", "nfv-1", "vnf-2", "web-1"}
    assert not moved & set(stuck)
    assert all(m["destination"] != "cmp-intel-01" for w in doc["waves"] for m in w["moves"])
    assert "1 GiB" in stuck["db-1"]
    assert not doc["complete"]
    assert doc["gap"] == 0.0 and doc["lower_bound_waves"] == len(doc["waves"])
    assert {m["kind"] for w in doc["waves"] for m in w["moves"]} == {"drain"}
    # the 1 GiB pages exist only on cmp-intel-01: one more host of its shape is the answer
    (add,) = doc["suggestions"]
    assert add["kind"] == "add-host" and add["host"] == "cmp-intel-01"
    assert "re-planned (bound 6)" in doc["suggestion_note"]


def test_drain_prints_the_smallest_change() -> None:
    result = run("cmp-intel-01")
    assert "smallest change: add one more host shaped like cmp-intel-01" in result.output
    assert "Kind" in result.output


def test_drain_cp_sat_says_which_solver_and_the_gap() -> None:
    result = run("cmp-intel-01", "--json", "--solver", "cp-sat", "--time-limit", "20")
    doc = json.loads(result.output)
    assert doc["solver"] in ("cp-sat", "cp-sat (optimal)", "heuristic")  # 2 hosts: no cap
    assert 0.0 <= doc["gap"] <= 1.0 and doc["lower_bound_waves"] >= 1
    assert any(n.startswith("CP-SAT ") for n in doc["notes"])
    human = run("cmp-intel-01", "--solver", "cp-sat")
    assert "gap " in human.output and "CP-SAT " in human.output


def test_drain_limits_are_kept_and_the_plan_is_valid() -> None:
    result = run("cmp-epyc-01", "cmp-small-01", "--max-parallel", "1", "--json")
    doc = json.loads(result.output)
    assert all(len(w["moves"]) == 1 for w in doc["waves"])
    # the same plan, checked by the independent replay of the waves
    from numa_migrate.adapters.drainstate import fleet_state
    from numa_migrate.adapters.fleet import load_fleet
    from numa_migrate.core.drain import plan_drain, relocate

    state = fleet_state(load_fleet())
    drained = ("cmp-epyc-01", "cmp-small-01")
    plan = relocate(state, drained, plan_drain(state, drained, 1, 2), 1, 2)
    assert violations(state, drained, plan, 1, 2) == []
    assert len(plan.moves) == sum(len(w["moves"]) for w in doc["waves"])


def test_drain_human_output_names_waves_and_reasons() -> None:
    result = run("cmp-epyc-01")
    assert "drain cmp-epyc-01:" in result.output
    assert "cannot move: needs" in result.output


def test_bad_input_is_one_clear_line() -> None:
    unknown = run("nope")
    assert unknown.exit_code == 2 and "nope not in sample fleet" in unknown.output
    everything = run("cmp-intel-01", "cmp-epyc-01", "cmp-small-01")
    assert everything.exit_code == 2 and "nowhere to go" in everything.output
    limit = run("cmp-intel-01", "--time-limit", "0")
    assert limit.exit_code == 2 and "--time-limit" in limit.output and "0.1 to 3600" in \
        limit.output
    solver = run("cmp-intel-01", "--solver", "gurobi")
    assert solver.exit_code == 2 and "--solver" in solver.output
    keep = run("cmp-intel-01", "--keep-free", "disk=3")
    assert keep.exit_code == 2 and "use cpus=N and/or memory=MiB" in keep.output
    zero = run("cmp-intel-01", "--max-parallel", "0")
    assert zero.exit_code == 2
    assert "Traceback" not in unknown.output + keep.output + zero.output


def test_keep_free_leaves_headroom_on_destinations() -> None:
    loose = json.loads(run("cmp-small-01", "--json").output)
    tight = json.loads(run("cmp-small-01", "--json", "--keep-free", "cpus=1000").output)
    assert loose["waves"] and not tight["waves"]
    assert {u["guest"] for u in tight["unplaceable"]} == {"ci-runner-1", "web-2"}


def test_drain_relocates_a_guest_to_make_room(tmp_path: Path) -> None:
    # three 8-CPU hosts: b and c have 4 CPUs free each, g needs 6: y1 moves b -> c first
    caps = files("numa_migrate.data.fleet").joinpath("caps-cmp-small-01.xml").read_text()
    (tmp_path / "caps.xml").write_text(caps)

    def pinned(name: str, vcpus: int) -> dict[str, object]:
        return {"name": name, "vcpus": vcpus, "memory_mib": 1024,
                "extra_specs": {"hw:cpu_policy": "dedicated"}}

    fleet = {"hosts": [
        {"name": "a", "capabilities": "caps.xml", "guests": [pinned("g", 6)]},
        {"name": "b", "capabilities": "caps.xml", "guests": [pinned("y1", 2), pinned("y2", 2)]},
        {"name": "c", "capabilities": "caps.xml", "guests": [pinned("x1", 2), pinned("x2", 2)]},
    ]}
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet))
    result = run("a", "--fleet", str(path), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [[(m["guest"], m["kind"], m["source"], m["destination"]) for m in w["moves"]]
            for w in doc["waves"]] == [[("y1", "relocate", "b", "c")], [("g", "drain", "a", "b")]]
    assert doc["complete"] and doc["suggestions"] == []
    human = run("a", "--fleet", str(path))
    assert "1 of them relocations" in human.output and "relocate" in human.output

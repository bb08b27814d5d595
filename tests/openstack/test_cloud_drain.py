"""``drain --cloud`` on the real OpenStack lab: the plan is made on the cloud's live fleet,
and its move runs through Nova (live migration to the planned compute) and passes our
validation. Nothing is mocked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from numa_migrate.cli.cloud import CloudTarget
from numa_migrate.cloud import nova
from numa_migrate.cloud.drainmoves import run_cloud_move
from numa_migrate.lab.openstack import CLOUD_NAME
from tests.openstack.conftest import PINNED_HUGE, RESULTS, Stack, boot, cli_json
from tests.openstack.test_openstack import _pins

pytestmark = pytest.mark.openstack


def test_drain_plans_executes_and_moves_back_through_nova(stack: Stack, tmp_path: Path) -> None:
    """One server, there and back, never deleted in between: after a server migrated into
    lab-dst was deleted there, lab-dst was not usable again within 3 minutes on this lab
    (Placement's PCPU usage and the kernel's huge pages were polled together and not told
    apart), so a second server cannot follow the first: `drain --cloud` plans it onto lab-dst,
    `drain --cloud --execute` moves it there through Nova and our validation passes, `plan
    run` of the same file skips it, and run_cloud_move brings it back to lab-src."""
    server = boot(stack, "lab-src", PINNED_HUGE, prefix="nm-e2e-drain")
    started = time.monotonic()
    rc, doc, err = cli_json(stack, "drain", "lab-src", "--cloud", CLOUD_NAME)
    plan_s = time.monotonic() - started
    assert rc == 0, err
    assert doc["complete"] is True and doc["fleet"] == f"cloud {CLOUD_NAME}"
    guest = next(name for name, sid in doc["servers"].items() if sid == server.id)
    (move,) = [m for w in doc["waves"] for m in w["moves"] if m["guest"] == guest]
    assert (move["source"], move["destination"]) == ("lab-src", "lab-dst")
    (cell,) = move["cells"]
    assert cell["cpu_pinning"] == {"0": 0}  # lab-dst dedicates CPU 0
    assert cell["pagesize_kib"] == 2048  # the page size it runs with is kept

    rc, where, err = cli_json(stack, "where", server.id, "--cloud", CLOUD_NAME)
    assert rc == 0, err
    assert where["server_id"] == server.id and where["source"]["host"] == "lab-src"
    assert [d["host"] for d in where["destinations"]] == ["lab-dst"]

    plan = tmp_path / "drain.json"
    started = time.monotonic()
    rc, report, err = cli_json(stack, "drain", "lab-src", "--cloud", CLOUD_NAME, "--execute",
                               "--save", str(plan))
    execute_s = time.monotonic() - started
    assert rc == 0, (report, err)
    assert report["complete"] is True and report["counts"]["done"] >= 1, report
    (done,) = [m for m in report["moves"] if m["outcome"] == "done"]
    assert (done["source"], done["destination"]) == ("lab-src", "lab-dst")
    assert done["pins"] == {"0": [0]} and not done["rolled_back"]
    assert any(n.startswith(f"server {server.id}: check") for n in done["notes"]), done
    saved = json.loads(plan.read_text())
    assert saved["planned_from"] == {"kind": "cloud", "source": CLOUD_NAME}
    assert saved["servers"][done["guest"]] == server.id
    moved = nova.get_server(stack.api, server.id)
    assert (moved.status, moved.host) == ("ACTIVE", "lab-dst")
    assert _pins(stack, "lab-dst", server.instance_name) == ({0: {0}}, {0: {0}})
    rc, checked, err = cli_json(stack, "validate", server.id, "--cloud", CLOUD_NAME)
    assert rc == 0, (checked, err)

    started = time.monotonic()
    rc, again, err = cli_json(stack, "plan", "run", str(plan))
    rerun_s = time.monotonic() - started
    assert rc == 0, (again, err)
    (same,) = [m for m in again["moves"] if m["guest"] == done["guest"]]
    assert same["outcome"] == "skipped" and "already runs on lab-dst" in same["reason"]
    rc, _, err = cli_json(stack, "plan", "run", str(plan), "--cloud", "another")
    assert rc == 2 and f"made on cloud {CLOUD_NAME!r}" in err

    # and back, one move through run_cloud_move (what the wave runner calls per move)
    api = stack.api
    computes = CloudTarget(CLOUD_NAME, None, None, ()).computes()
    back = run_cloud_move(api, computes, server.id, "lab-dst", "lab-src")
    assert back.state == "done", back.as_dict()
    assert back.nova_outcome == "completed" and not back.failed_checks
    assert set(back.timings) == {"check", "nova", "validate"}
    assert nova.get_server(api, server.id).host == "lab-src"
    again_back = run_cloud_move(api, computes, server.id, "lab-dst", "lab-src")
    assert again_back.state == "skipped" and "already runs on lab-src" in again_back.reason

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openstack-drain.json").write_text(json.dumps(
        {"plan_s": round(plan_s, 2), "move_back_s": round(back.seconds, 2),
         "timings": {k: round(v, 2) for k, v in back.timings.items()},
         "up_s": round(stack.up_seconds, 1)}, indent=2))
    (RESULTS / "openstack-drain-execute.json").write_text(json.dumps(
        {"execute_s": round(execute_s, 2), "move_s": done["seconds"],
         "rerun_s": round(rerun_s, 2), "notes": done["notes"]}, indent=2))

"""``drain --cloud`` on the real OpenStack lab: the plan is made on the cloud's live fleet,
and its move runs through Nova (live migration to the planned compute) and passes our
validation. Nothing is mocked."""

from __future__ import annotations

import json
import time

import pytest

from numa_migrate.cli.cloud import CloudTarget
from numa_migrate.cloud import nova
from numa_migrate.cloud.drainmoves import run_cloud_move
from numa_migrate.lab.openstack import CLOUD_NAME
from tests.openstack.conftest import PINNED_HUGE, RESULTS, Stack, boot, cli_json
from tests.openstack.test_openstack import _pins

pytestmark = pytest.mark.openstack


def test_drain_plans_on_the_cloud_and_nova_moves_it(stack: Stack) -> None:
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

    api = stack.api
    computes = CloudTarget(CLOUD_NAME, None, None, ()).computes()
    outcome = run_cloud_move(api, computes, server.id, move["source"], move["destination"],
                             planned_pins=((0, 0),))
    assert outcome.state == "done", outcome.as_dict()
    assert outcome.nova_outcome == "completed" and not outcome.failed_checks
    assert outcome.pins == ((0, 0),)
    assert set(outcome.timings) == {"check", "nova", "validate"}
    assert nova.get_server(api, server.id).host == "lab-dst"
    assert _pins(stack, "lab-dst", server.instance_name) == ({0: {0}}, {0: {0}})

    again = run_cloud_move(api, computes, server.id, "lab-src", "lab-dst")
    assert again.state == "skipped" and "already runs on lab-dst" in again.reason

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openstack-drain.json").write_text(json.dumps(
        {"plan_s": round(plan_s, 2), "move_s": round(outcome.seconds, 2),
         "timings": {k: round(v, 2) for k, v in outcome.timings.items()},
         "up_s": round(stack.up_seconds, 1)}, indent=2))

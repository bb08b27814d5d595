"""Issue 12's drain pictures on a synthetic fleet: the time to build and render them.

The fleet and the plan are those of ``bench/drain_plan.py`` (``tests/fleetgen.py``, seeded);
timed here: the picture's model (the fleet after the plan and every host's occupancy,
``drain_picture`` with every other host too, as ``drain --html`` draws them), the HTML page
(``render_drain_html``) and the terminal view of the touched hosts (``print_picture`` to a
string, no colour, 80 columns)::

    PYTHONPATH=src .venv/bin/python bench/drain_picture.py [--hosts 200] [--guests 4000]
        [--drain 5] [--max-parallel 10] [--per-host 2] [--seed 1] [--load 0.7] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from tests.fleetgen import add_drain_arguments, generate

from numa_migrate.adapters.picturehtml import render_drain_html
from numa_migrate.adapters.pictures import drain_picture
from numa_migrate.cli.picture import print_picture
from numa_migrate.core.drain.heuristic import plan_drain


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_drain_arguments(p, drains=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    state = generate(args.seed, args.hosts, args.guests, args.load)
    drained = [h.name for h in state.hosts[: args.drain]]
    plan = plan_drain(state, drained, args.max_parallel, args.per_host)
    t0 = time.perf_counter()
    picture = drain_picture(state, plan, drained, others=True)
    t1 = time.perf_counter()
    page = render_drain_html(picture, "generated")
    t2 = time.perf_counter()
    buf = io.StringIO()
    print_picture(Console(file=buf, width=80, color_system=None), replace(picture, others=()))
    t3 = time.perf_counter()
    out = {
        "hosts": len(state.hosts),
        "guests": len(state.guests),
        "drained_hosts": len(drained),
        "moves": len(plan.moves),
        "waves": len(plan.waves),
        "touched_hosts": len(picture.touched),
        "model_s": round(t1 - t0, 3),
        "html_s": round(t2 - t1, 3),
        "html_bytes": len(page.encode("utf-8")),
        "terminal_s": round(t3 - t2, 3),
        "terminal_lines": buf.getvalue().count("\n"),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>16}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

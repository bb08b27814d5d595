"""Issue 12's heuristic drain planner on a synthetic fleet: time, waves, moves, unplaceable.

The fleet comes from ``tests/fleetgen.py`` (seeded: intel/epyc/small hosts, a flavor mix of
shared, pinned, huge-page, 2-cell and SR-IOV guests placed by the fitter at a load factor);
the plan is checked by the independent replay in ``tests/drainvalidity.py``. The relocation
post-pass (``core/drain/relocate.py``) runs on the plan and is timed on its own; with
``--suggest`` the smallest-change search (``core/drain/suggest.py``) too, when guests remain
unplaceable::

    PYTHONPATH=src .venv/bin/python bench/drain_plan.py [--hosts 200] [--guests 4000]
        [--drain 5] [--max-parallel 10] [--per-host 2] [--seed 1] [--load 0.7] [--suggest]
        [--max-stuck 8]
        [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.drainvalidity import violations
from tests.fleetgen import add_drain_arguments, generate

from numa_migrate.core.drain.heuristic import plan_drain
from numa_migrate.core.drain.plan import Plan
from numa_migrate.core.drain.relocate import relocate
from numa_migrate.core.drain.state import FleetState
from numa_migrate.core.drain.suggest import suggest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_drain_arguments(p, drains=5)
    p.add_argument("--suggest", action="store_true",
                   help="also search the smallest change when guests remain unplaceable")
    p.add_argument("--max-stuck", type=int, default=8,
                   help="search one change only when at most this many guests are stuck")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    t0 = time.perf_counter()
    state = generate(args.seed, args.hosts, args.guests, args.load)
    t1 = time.perf_counter()
    drained = [h.name for h in state.hosts[: args.drain]]
    plan = plan_drain(state, drained, args.max_parallel, args.per_host)
    t2 = time.perf_counter()
    unplaceable_before = len(plan.unplaceable)
    waves_before = len(plan.waves)
    plan = relocate(state, drained, plan, args.max_parallel, args.per_host)
    t_reloc = time.perf_counter()
    bad = violations(state, drained, plan, args.max_parallel, args.per_host)
    t3 = time.perf_counter()
    suggest_s = None
    if args.suggest and plan.unplaceable:
        def planner(s: FleetState) -> Plan:
            return relocate(s, drained, plan_drain(s, drained, args.max_parallel,
                                                   args.per_host),
                            args.max_parallel, args.per_host)
        plan = suggest(state, drained, plan, planner, max_stuck=args.max_stuck)
        suggest_s = round(time.perf_counter() - t3, 3)
    out = {
        "hosts": len(state.hosts),
        "guests": len(state.guests),
        "drained_hosts": len(drained),
        "guests_to_move": plan.stat("guests"),
        "max_parallel": args.max_parallel,
        "per_host_parallel": args.per_host,
        "generate_s": round(t1 - t0, 3),
        "plan_s": round(t2 - t1, 3),
        "relocate_s": round(t_reloc - t2, 3),
        "check_s": round(t3 - t_reloc, 3),
        "waves": len(plan.waves),
        "waves_before_relocations": waves_before,
        "moves": len(plan.moves),
        "unplaceable_before_relocations": unplaceable_before,
        "relocations": plan.stat("relocations"),
        "unplaceable": len(plan.unplaceable),
        "fit_calls": plan.stat("fit_calls"),
        "relocation_fit_calls": plan.stat("relocation_fit_calls"),
        "relocation_search_cut": plan.stat("relocation_search_cut"),
        "suggest_s": suggest_s,
        "suggestions": [s.text for s in plan.suggestions],
        "suggestion_note": plan.suggestion_note,
        "valid": not bad,
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>18}: {v}")
        for u in plan.unplaceable[:5]:
            print(f"  unplaceable {u.guest} (on {u.source}): {u.reason}")
        for v in bad[:5]:
            print(f"  INVALID: {v}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())

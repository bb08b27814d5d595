"""Issue 12's drain planners side by side: the heuristic alone and CP-SAT, on one fleet.

The fleet comes from ``tests/fleetgen.py`` (seeded: intel/epyc/small hosts, shared, pinned,
huge-page, 2-cell, isolated-emulator, require and SR-IOV guests at a load factor); each drain
(the first N hosts) is planned by ``solve_drain`` with ``solver="heuristic"`` and with
``solver="cp-sat"`` under ``--time-limit`` (the whole plan: heuristic, model, solve,
realization), and every plan is replayed by ``tests/drainvalidity.py``::

    PYTHONPATH=src .venv/bin/python bench/drain_cpsat.py [--hosts 200] [--guests 4000]
        [--drain 5 20] [--max-parallel 10] [--per-host 2] [--time-limit 25] [--workers 2]
        [--seed 1] [--load 0.7] [--json]
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

from numa_migrate.adapters.ortools_sat import OrToolsModel
from numa_migrate.core.drain.cpsat import plan_objective
from numa_migrate.core.drain.solve import solve_drain


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_drain_arguments(p, drains=[5, 20])
    p.add_argument("--time-limit", type=float, default=25.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    state = generate(args.seed, args.hosts, args.guests, args.load)
    rows = []
    bad = False
    for n in args.drain:
        drained = [h.name for h in state.hosts[:n]]
        row: dict[str, object] = {"drained_hosts": n}
        for solver in ("heuristic", "cp-sat"):
            t0 = time.perf_counter()
            plan = solve_drain(state, drained, args.max_parallel, args.per_host,
                               solver=solver, time_limit_s=args.time_limit,
                               new_model=OrToolsModel, workers=args.workers)
            seconds = time.perf_counter() - t0
            wrong = violations(state, drained, plan, args.max_parallel, args.per_host)
            bad = bad or bool(wrong)
            left, waves, frag = plan_objective(state, plan, args.max_parallel, args.per_host)
            row[solver] = {
                "solver": plan.solver, "s": round(seconds, 2), "moves": len(plan.moves),
                "unplaceable": left, "waves": waves,
                "lower_bound_waves": plan.lower_bound_waves,
                "gap": None if plan.gap is None else round(plan.gap, 6),
                "fragmentation": frag, "valid": not wrong, "notes": list(plan.notes),
            }
        h, c = row["heuristic"], row["cp-sat"]
        assert isinstance(h, dict) and isinstance(c, dict)
        row["time_ratio"] = round(c["s"] / h["s"], 1) if h["s"] else None
        rows.append(row)
    out = {"hosts": len(state.hosts), "guests": len(state.guests),
           "max_parallel": args.max_parallel, "per_host_parallel": args.per_host,
           "time_limit_s": args.time_limit, "workers": args.workers, "runs": rows}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"{out['hosts']} hosts / {out['guests']} guests, --max-parallel "
              f"{args.max_parallel}, {args.per_host} per host, --time-limit {args.time_limit}")
        for row in rows:
            for solver in ("heuristic", "cp-sat"):
                r = row[solver]
                assert isinstance(r, dict)
                print(f"drain {row['drained_hosts']:>3} {solver:>9}: {r['solver']:<16} "
                      f"{r['s']:>6} s  moves {r['moves']:>4}  left {r['unplaceable']}  "
                      f"waves {r['waves']} (>= {r['lower_bound_waves']})  gap {r['gap']}  "
                      f"fragmentation {r['fragmentation']}  valid {r['valid']}")
                for note in r["notes"]:
                    print(f"      {note}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

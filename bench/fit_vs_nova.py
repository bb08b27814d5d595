"""Fit speed against Nova 34 on the same generated corpus, measured in the same run.

Each case is timed on its own: numa-migrate's ``guest_from_flavor`` + ``fit_guest`` in this
process, Nova's ``numa_get_constraints`` + ``numa_fit_instance_to_host`` in the oracle venv
(tests/oracle/nova_driver.py; object construction from JSON excluded on both sides). Each
figure is the median of ``--repeat`` runs of the case. Printed: the per-case medians, their
ratio, the distribution of per-case ratios, and whether feasibility was identical.

    python bench/fit_vs_nova.py --cases 2000 --seed 11          # mixed: 1-8 cells, 1-4 nodes
    python bench/fit_vs_nova.py --worst --nova-timeout 120      # 8/12/16-cell worst cases
    python bench/fit_vs_nova.py --pci --cases 2000 --seed 11    # SR-IOV / PCI: 1-4 cells
    python bench/fit_vs_nova.py --pci-coupled                   # PCI decides the cell set

With PCI, Nova's side is ``numa_fit_instance_to_host`` with the host's ``PciDeviceStats`` and
the guest's ``InstancePCIRequest`` list (or ``support_requests`` for a guest without NUMA
topology), as tests/oracle/nova_driver.py builds them; ours is the same ``fit_guest`` with the
case's PCI requests. "pairs/s" is (host, guest) pairs decided per second of fit work: the
number of cases over the sum of the per-case medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.casegen import generate_cases, generate_pci_cases, pci_coupled_cases, worst_cases
from tests.differential import run_oracle

from numa_migrate.adapters.casefmt import FitCase, case_from_json
from numa_migrate.core.errors import InvalidRequestError
from numa_migrate.core.fit.fitter import fit_guest
from numa_migrate.core.request import guest_from_flavor


def _decide(case: FitCase) -> bool | None:
    try:
        guest = guest_from_flavor(case.flavor, case.image_properties, case.pci_requests)
    except InvalidRequestError:
        return None
    return fit_guest(case.host, guest, case.options).fits


def time_ours(raw: dict[str, Any], repeat: int) -> tuple[float, bool | None]:
    case = case_from_json(raw)
    times = []
    decision: bool | None = None
    for _ in range(repeat):
        start = time.perf_counter()
        decision = _decide(case)
        times.append(time.perf_counter() - start)
    return statistics.median(times), decision


def _fmt_us(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def _quantiles(values: list[float]) -> str:
    qs = statistics.quantiles(values, n=10) if len(values) >= 10 else values
    return f"p10 {qs[0]:.1f}×  median {statistics.median(values):.1f}×  p90 {qs[-1]:.1f}×"


def corpus(args: argparse.Namespace) -> int:
    if args.pci:
        cells = args.max_host_cells or 4
        nodes = args.max_guest_nodes or 3
        cases = generate_pci_cases(args.cases, args.seed, max_host_cells=cells,
                                   max_guest_nodes=nodes)
        kind = "PCI corpus"
    else:
        cells = args.max_host_cells or 8
        nodes = args.max_guest_nodes or 4
        cases = generate_cases(args.cases, args.seed, max_host_cells=cells,
                               max_guest_nodes=nodes)
        kind = "corpus"
    print(f"{kind}: {len(cases)} cases (1-{cells} host cells, "
          f"1-{nodes} guest nodes), seed {args.seed}, repeat {args.repeat}",
          flush=True)
    nova = run_oracle(cases, timeout_s=args.nova_timeout, repeat=args.repeat)
    ours = [time_ours(c, args.repeat) for c in cases]
    same = differ = timeouts = 0
    ratios = []
    for (t_ours, decision), n in zip(ours, nova, strict=True):
        if n.get("timed_out"):
            timeouts += 1
            continue
        if decision == n["fits"]:
            same += 1
        else:
            differ += 1
        ratios.append(n["seconds"] / t_ours)
    nova_med = statistics.median(n["seconds"] for n in nova if not n.get("timed_out"))
    ours_med = statistics.median(t for t, _ in ours)
    print(f"Nova 34 median per case : {_fmt_us(nova_med)}")
    print(f"numa-migrate median     : {_fmt_us(ours_med)}")
    nova_sum = sum(n["seconds"] for n in nova if not n.get("timed_out"))
    ours_sum = sum(t for (t, _), n in zip(ours, nova, strict=True) if not n.get("timed_out"))
    print(f"Nova 34 pairs/s         : {len(ratios) / nova_sum:,.0f}")
    print(f"numa-migrate pairs/s    : {len(ratios) / ours_sum:,.0f}")
    print(f"ratio of pairs/s        : {nova_sum / ours_sum:.1f}×")
    print(f"ratio of medians        : {nova_med / ours_med:.1f}×")
    print(f"per-case ratios         : {_quantiles(ratios)}")
    print(f"feasibility             : {same} same, {differ} differ, {timeouts} Nova timeouts")
    return 0


def worst(args: argparse.Namespace) -> int:
    cases = pci_coupled_cases(args.seed) if args.pci_coupled else worst_cases(args.seed)
    kind = "PCI-coupled cases" if args.pci_coupled else "worst cases"
    print(f"{kind}: {len(cases)}, Nova timeout {args.nova_timeout:g} s", flush=True)
    print(f"{'case':<28} {'host cells':>10} {'guest cells':>11} {'fits':>5} "
          f"{'numa-migrate':>13} {'Nova 34':>12} {'ratio':>8}")
    slowest = 0.0
    for case in cases:
        (nova,) = run_oracle([case], timeout_s=args.nova_timeout, repeat=1)
        t_ours, decision = time_ours(case, max(1, args.repeat))
        slowest = max(slowest, t_ours)
        nova_t = ("> " + _fmt_us(args.nova_timeout)) if nova.get("timed_out") else _fmt_us(
            nova["seconds"])
        nodes = case["flavor"]["extra_specs"].get("hw:numa_nodes", "1")
        note = "" if nova.get("timed_out") or nova["fits"] == decision else (
            f"  (Nova says fits={nova['fits']})")
        ratio = (f"> {args.nova_timeout / t_ours:,.0f}×" if nova.get("timed_out")
                 else f"{nova['seconds'] / t_ours:,.0f}×")
        print(f"{case['id']:<28} {len(case['host']['cells']):>10} {nodes:>11} "
              f"{decision!s:>5} {_fmt_us(t_ours):>13} {nova_t:>12} {ratio:>8}{note}",
              flush=True)
    print(f"slowest numa-migrate case: {_fmt_us(slowest)} (goal < 50 ms)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--nova-timeout", type=float, default=30.0)
    parser.add_argument("--max-host-cells", type=int, default=None,
                        help="default 8 (4 with --pci)")
    parser.add_argument("--max-guest-nodes", type=int, default=None,
                        help="default 4 (3 with --pci)")
    parser.add_argument("--worst", action="store_true", help="the 8/12/16-cell worst cases")
    parser.add_argument("--pci", action="store_true",
                        help="the generated corpus with SR-IOV / PCI devices and requests")
    parser.add_argument("--pci-coupled", action="store_true",
                        help="4-12-cell hosts where the PCI devices decide the set of cells")
    args = parser.parse_args()
    return worst(args) if args.worst or args.pci_coupled else corpus(args)


if __name__ == "__main__":
    sys.exit(main())

"""`numa-migrate demo`: a guided tour of the core on the bundled sample fleet."""

from __future__ import annotations

from rich.console import Console
from rich.rule import Rule

from numa_migrate.adapters.fleet import load_fleet
from numa_migrate.cli import render
from numa_migrate.core.explain import explain_guest
from numa_migrate.core.fit.fitter import fit_guest
from numa_migrate.core.request import Flavor, guest_from_flavor

PINNED_2CELL = Flavor(
    8,
    8192,
    {
        "hw:cpu_policy": "dedicated",
        "hw:numa_nodes": "2",
        "hw:mem_page_size": "large",
        "hw:emulator_threads_policy": "isolate",
    },
    "nfv-8",
)
ISOLATED_BIG = Flavor(
    16,
    65536,
    {
        "hw:cpu_policy": "dedicated",
        "hw:cpu_thread_policy": "isolate",
        "hw:numa_nodes": "2",
        "hw:mem_page_size": "1GB",
    },
    "db-16-isolate",
)


def run_demo(console: Console) -> None:
    fleet = load_fleet()
    console.print(Rule("1. The sample fleet (hosts from libvirt capabilities XML)"))
    render.print_fleet(console, fleet)

    console.print(Rule("2. Where can a pinned 2-cell huge-page guest go?"))
    guest = guest_from_flavor(PINNED_2CELL)
    exp = explain_guest(fleet.hosts, guest)
    console.print(exp.summary)
    if exp.fitting_hosts:
        host = fleet.host(exp.fitting_hosts[0])
        console.print(f"\nPlacement on {host.name} (Nova's cell order, spread):")
        render.print_fit(console, fit_guest(host, guest))

    console.print(Rule("3. Why can't a 16-vCPU isolate guest on 1 GiB pages go anywhere?"))
    render.print_explanation(console, explain_guest(fleet.hosts, guest_from_flavor(ISOLATED_BIG)))
    console.print(Rule())
    console.print(
        "Next: `numa-migrate explain --help`, `numa-migrate fit --help`, and "
        "`numa-migrate fit --batch < cases.jsonl` for the fit-case JSON format."
    )

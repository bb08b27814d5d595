"""`numa-migrate demo`: a guided tour of the core on the bundled sample fleet."""

from __future__ import annotations

from rich.console import Console
from rich.rule import Rule

from numa_migrate.adapters.fleet import Fleet, load_fleet
from numa_migrate.cli import render
from numa_migrate.core.explain import explain_guest
from numa_migrate.core.fit.fitter import fit_guest
from numa_migrate.core.model.pcidev import PciNumaPolicy, PciRequest
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
SRIOV_2VF = Flavor(4, 4096, {"hw:cpu_policy": "dedicated"}, "vnf-2vf")
TWO_VFS_NEAR = PciRequest(2, ((("physical_network", "physnet1"),),), PciNumaPolicy.REQUIRED,
                          name="2 SR-IOV ports")


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
    console.print(Rule("4. Which hosts have 2 free VFs on physnet1 next to the guest's cell?"))
    sriov = guest_from_flavor(SRIOV_2VF, {}, (TWO_VFS_NEAR,))
    sriov_exp = explain_guest(fleet.hosts, sriov)
    render.print_explanation(console, sriov_exp)
    if sriov_exp.fitting_hosts:
        chosen = fit_guest(fleet.host(sriov_exp.fitting_hosts[0]), sriov)
        if chosen.pci is not None and chosen.placement is not None:
            cells = ", ".join(str(c.host_cell) for c in chosen.placement.cells)
            console.print(f"On {chosen.host}: cell {cells} with VFs "
                          f"{', '.join(chosen.pci.taken[0])} (chosen together by the fit)")
    _drain_step(console, fleet)
    console.print(Rule())
    console.print(
        "Next: `numa-migrate drain --help` (--hosts to plan on the running hosts, --execute "
        "to run the waves), `numa-migrate where --help`, "
        "`numa-migrate explain --help` (--pci-request for SR-IOV ports), "
        "`numa-migrate fit --help`, and "
        "`numa-migrate fit --batch < cases.jsonl` for the fit-case JSON format."
    )


DRAIN_HOST = "cmp-epyc-01"


def _drain_step(console: Console, fleet: Fleet) -> None:
    """5. A drain plan for one sample host: waves, the solver and its gap, the picture."""
    from numa_migrate.adapters.drainstate import fleet_state
    from numa_migrate.adapters.pictures import drain_picture
    from numa_migrate.cli.drain import plan_for, print_plan
    from numa_migrate.cli.picture import print_picture

    console.print(Rule(f"5. Can {DRAIN_HOST} be emptied for maintenance, and in what order?"))
    state = fleet_state(fleet)
    drained = (DRAIN_HOST,)
    plan = plan_for(state, drained, 4, 2, time_limit_s=10)
    print_plan(console, plan, drained)
    print_picture(console, drain_picture(state, plan, drained, others=False))

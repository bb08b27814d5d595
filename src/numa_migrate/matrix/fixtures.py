"""The matrix's SR-IOV row, run on bundled fixtures: no lab host has an SR-IOV NIC.

Two hosts from one capabilities XML of a 2-socket SMT server (``data/sriov/caps.xml``) and
the node-device XML of an Intel X710 PF with four VFs on NUMA node 1 and a ConnectX-5 VF on
node 0. The source runs the guest on node 1 with VF 0000:3b:02.1; the destination dedicates
node 1's CPUs (its ``cpu_dedicated_set``), has VFs 0000:3b:02.0-1 busy, and must give the guest
another X710 VF on node 1 under the scenario's PCI NUMA policy. Checked: the plan's VF
choice, the rewritten live and persistent XML, and numa-migrate's ``validate`` checks on the
rewritten XML (VF on the guest's node, not given to anyone else, pins, NUMA memory). The
detach/attach around a real migration was NOT run: the row says so.
"""

from __future__ import annotations

from importlib import resources

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.nodedev import pci_functions_from_nodedevs
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.pci import PciFunction
from numa_migrate.core.request import Flavor
from numa_migrate.core.validation import validate
from numa_migrate.lab.flavored import FlavoredGuest, flavored_guest
from numa_migrate.matrix.report import Check, Leg, ScenarioResult, Status
from numa_migrate.matrix.runner import validation_checks
from numa_migrate.matrix.scenarios import Scenario
from numa_migrate.migrate.plan import MigrationPlan, NoRoom, SriovInputs
from numa_migrate.migrate.planxml import plan_migration

SOURCE_VF = "0000:3b:02.1"
BUSY_ON_DESTINATION = {"0000:3b:02.0": "vnf-other (running)",
                       "0000:3b:02.1": "vnf-third (running)"}
NODE1_CPUS = "10-19,30-39"
NOT_ON_HARDWARE = ("planned and validated on node-device fixtures only: no SR-IOV NIC on "
                   "these machines, so the VF detach/attach around a real migration was not "
                   "run (it is covered by unit tests with a recording stand-in)")


def _data(name: str) -> str:
    return (resources.files("numa_migrate") / "data" / "sriov" / name).read_text()


def _functions() -> tuple[PciFunction, ...]:
    folder = resources.files("numa_migrate") / "data" / "sriov"
    return pci_functions_from_nodedevs(
        (p.name, p.read_text()) for p in sorted(folder.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".xml") and p.name != "caps.xml")


def _host(name: str) -> HostTopology:
    return host_from_capabilities(_data("caps.xml"), name=name,
                                  cpu_dedicated_set=CpuSet.parse(NODE1_CPUS))


def run_fixture_scenario(scenario: Scenario) -> ScenarioResult:
    """The scenario's guest with one VF port, planned from fixture-src to fixture-dst.

    With ``expect_reason`` every X710 VF of the destination is busy: the fit must refuse,
    naming the PCI shortage."""
    if scenario.expect_reason:
        return _refusal(scenario)
    checks: list[Check] = []
    try:
        plan = _plan(scenario)
    except NumaMigrateError as exc:
        return _result(scenario, Status.FAILED, f"{exc}", (), ())
    [move] = plan.vf_moves
    checks.append(Check("vf_choice", "destination VF on the port's network and the guest's "
                        "node, not a busy one", "pass" if (
                            move.destination not in BUSY_ON_DESTINATION
                            and move.destination.startswith("0000:3b:02.")
                            and move.numa_node == 1) else "fail",
                        f"{move.source} -> {move.destination} ({move.network}, node "
                        f"{move.numa_node})"))
    for label, xml in (("live", plan.live_xml), ("persistent", plan.persistent_xml)):
        addresses = [d.address for d in domain_from_xml(xml or "").hostdevs] if xml else []
        checks.append(Check(f"{label}_xml", f"{label} XML names the destination VF",
                            "pass" if addresses == [move.destination] else "fail",
                            f"PCI hostdevs: {', '.join(addresses) or 'none'}"))
    report = validate(domain_from_xml(plan.live_xml),
                      domain_from_xml(plan.persistent_xml) if plan.persistent_xml else None,
                      plan=plan.dest_plan, host=_host("fixture-dst"),
                      pci_functions=_functions(), host_name="fixture-dst",
                      affinity_skip_reason="fixtures: no QEMU process")
    checks += validation_checks(report)
    failed = [c for c in checks if c.outcome == "fail"]
    leg = Leg(source="fixture-src", destination="fixture-dst", seconds=None, downtime_ms=None,
              source_pins={v: tuple(sorted(c)) for v, c in plan.source_info.vcpupin},
              dest_pins={v: tuple(sorted(c)) for v, c in
                         (plan.dest_plan.vcpu_pins.items() if plan.dest_plan else ())},
              source_cells={}, dest_cells=dict(plan.dest_plan.cell_nodes)
              if plan.dest_plan else {})
    if failed:
        reason = "; ".join(f"{c.title}: {c.detail}" for c in failed[:3])
        return _result(scenario, Status.FAILED, reason, (leg,), tuple(checks))
    return _result(scenario, Status.FIXTURES, NOT_ON_HARDWARE, (leg,), tuple(checks))


def _refusal(scenario: Scenario) -> ScenarioResult:
    busy = {f.address: "vnf-other (running)" for f in _functions()
            if f.is_vf and f.address.startswith("0000:3b:02.")}
    outcome = _planned(scenario, busy)
    if isinstance(outcome, MigrationPlan):
        moves = ", ".join(f"{m.source} -> {m.destination}" for m in outcome.vf_moves)
        return _result(scenario, Status.FAILED, f"planned although every VF is busy: {moves}",
                       (), ())
    text = "; ".join((outcome.summary, *outcome.reasons))
    check = Check("reason", f"the refusal mentions {scenario.expect_reason!r}",
                  "pass" if scenario.expect_reason in text else "fail", outcome.summary)
    status = Status.FIXTURES if check.outcome == "pass" else Status.FAILED
    return _result(scenario, status, f"refused as expected ({outcome.summary}); "
                   + NOT_ON_HARDWARE if status is Status.FIXTURES else text, (), (check,))


def _plan(scenario: Scenario) -> MigrationPlan:
    plan = _planned(scenario, BUSY_ON_DESTINATION)
    if not isinstance(plan, MigrationPlan):
        extra = [r for r in plan.reasons if r not in plan.summary]
        detail = f" ({'; '.join(extra)})" if extra else ""
        raise NumaMigrateError(f"refused: {plan.summary}{detail}")
    return plan


def _planned(scenario: Scenario, busy: dict[str, str]) -> MigrationPlan | NoRoom:
    specs = dict(scenario.extra_specs)
    policy = specs.pop("hw:pci_numa_affinity_policy", "legacy")
    guest = flavored_guest("nm-mx-sriov", Flavor(scenario.vcpus, scenario.memory_mib, specs),
                           _host("fixture-src"), image="/var/lib/numa-migrate/counter.img")
    if not isinstance(guest, FlavoredGuest):
        raise NumaMigrateError(f"the guest does not fit on the fixture host: {guest.summary}")
    port = ("<interface type='hostdev' managed='yes'><mac address='52:54:00:6d:90:02'/>"
            "<source><address type='pci' domain='0x0000' bus='0x3b' slot='0x02' "
            "function='0x1'/></source></interface>")
    xml = guest.xml.replace("<memballoon", port + "<memballoon")
    functions = _functions()
    plan = plan_migration(live_xml=xml, persistent_xml=xml, source="fixture-src",
                          destination=_host("fixture-dst"),
                          sriov=SriovInputs(functions, functions, busy, policy))
    return plan


def _result(scenario: Scenario, status: Status, reason: str, legs: tuple[Leg, ...],
            checks: tuple[Check, ...]) -> ScenarioResult:
    return ScenarioResult(id=scenario.id, group=scenario.group, title=scenario.title,
                          extra_specs=dict(scenario.extra_specs), status=status, reason=reason,
                          legs=legs, checks=checks, ran_on="fixtures")

"""``numa-migrate validate-matrix``: prove each kind of NUMA guest migrates correctly.

Exit codes: 0 no scenario failed (skipped ones are listed with their reason); 1 a scenario
failed; 2 the matrix could not run (bad input, no hosts, the lab cannot come up).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import click

from numa_migrate.cli.cloud import CloudTarget, cloud_options
from numa_migrate.cli.common import db_option, open_store
from numa_migrate.cli.hosts import hosts_option
from numa_migrate.core.errors import NumaMigrateError
from numa_migrate.matrix.scenarios import SCENARIOS, scenario_ids, select

# The lab, the runner and the inventory reader are imported when the matrix runs, so that
# --help (which lists the scenarios) answers at once.
if TYPE_CHECKING:
    from numa_migrate.lab import Lab
    from numa_migrate.lab.vm.multinode import MultiNodeLab
    from numa_migrate.matrix.report import MatrixReport

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
LAB_HUGEPAGES = 80


def _say(message: str) -> None:
    click.echo(message, err=True)


def _scenario_list(width: int = 78) -> str:
    """The scenarios by group as click paragraphs kept as written (``\\b``), for --help."""
    name_width = max(len(s.id) for s in SCENARIOS) + 2
    groups: dict[str, list[str]] = {}
    for scenario in SCENARIOS:
        lines = textwrap.wrap(scenario.title, width - name_width - 2) or [""]
        groups.setdefault(scenario.group, []).extend(
            [f"  {scenario.id:<{name_width}}{lines[0]}",
             *(f"  {'':<{name_width}}{line}" for line in lines[1:])])
    return "\n\n".join("\b\n" + f"{group}:\n" + "\n".join(rows)
                       for group, rows in groups.items())


@click.command("validate-matrix",
               epilog="Scenarios (ID for --only), by group:\n\n" + _scenario_list())
@hosts_option
@click.option("--source", metavar="HOST", help="Source host (default: the inventory's first).")
@click.option("--destination", metavar="HOST",
              help="Destination host (default: the inventory's second).")
@click.option("--only", "only", multiple=True, metavar="ID",
              help="Run only this scenario (repeatable); see the list below.")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False),
              metavar="OUT.html", help="Write the report as one self-contained HTML file.")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path, dir_okay=False),
              metavar="OUT.md", help="Also write the markdown report to a file.")
@click.option("--image", type=click.Path(path_type=Path, dir_okay=False), metavar="PATH",
              help="With --hosts: the counter guest's floppy image, at the same path on both "
              "hosts (written here if missing; copy it to remote hosts). The lab has its own.")
@click.option("--domain-type", type=click.Choice(["kvm", "qemu"]), default=None,
              help="With --hosts: kvm (default) or qemu (TCG). The lab chooses by itself.")
@click.option("--keep-lab", is_flag=True,
              help="Leave the lab up afterwards even when this command brought it up.")
@click.option("--multi-node", is_flag=True,
              help="Run on the multi-node lab (the lab in a VM with 2 NUMA nodes, SMT and "
              "1 GiB pages; brought up first, built once: minutes), where the two-node, "
              "thread-policy and 1 GiB rows are real.")
@db_option
@cloud_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
def validate_matrix_cmd(  # noqa: PLR0917 (click passes every option)
    hosts_path: Path | None, source: str | None, destination: str | None,
                        only: tuple[str, ...], report_path: Path | None,
                        markdown_path: Path | None, image: Path | None,
                        domain_type: str | None, keep_lab: bool, multi_node: bool,
                        db_url: str | None, target: CloudTarget, as_json: bool) -> None:
    """Run the validation matrix: real guests, migrated there and back, then validated.

    Each scenario defines a counter guest from Nova-style extra specs on the source host,
    placed and pinned by numa-migrate's fitter; migrates it with `numa-migrate migrate`
    (claims, rewritten live and persistent XML, libvirt migrate3); checks it with
    `validate` (pins, NUMA memory, huge pages, persistent XML, real thread affinity);
    migrates it back and checks again. Refusal scenarios must be refused before anything
    moves. Scenarios the hosts cannot express (two host NUMA nodes on a one-node machine,
    SMT, 1 GiB pages) are skipped with the reason; SR-IOV runs on XML fixtures and says so.

    Without --hosts (and without $NUMA_MIGRATE_INVENTORY or ./inventory.toml) it runs on
    the two-daemon lab, bringing it up first (root) and down afterwards if it was down.
    With --multi-node it runs on the lab inside a VM with 2 NUMA nodes, SMT threads and
    1 GiB pages (`numa-migrate lab up --multi-node`), where numa-2, numa-asymmetric,
    pin-require and pages-1g run for real; each row of the report says which lab it ran
    on. Guests there are emulated inside an emulated VM: about a minute per row.

    \b
    Examples:
      numa-migrate validate-matrix --report matrix.html
      numa-migrate validate-matrix --only pin-isolate --only pages-2m --json
      numa-migrate validate-matrix --multi-node --only numa-2 --only pages-1g
      numa-migrate validate-matrix --hosts inventory.toml --source cmp-01 \\
          --destination cmp-02 --image /var/lib/libvirt/images/nm-counter.img

    \b
    Through Nova (--cloud NAME --source A --destination B): per scenario a flavor from
    its extra specs, a server booted on compute A, live-migrated BY NOVA to B and back
    (migrate --cloud: our checks, then Nova's API with the host), validated after each
    move; a refusal scenario must be predicted by explain and refused by Nova. Every
    server and flavor it makes is deleted afterwards, also on failure or Ctrl-C. The
    report names Nova's release and the computes' hypervisors.
      numa-migrate validate-matrix --cloud mycloud --source cmp-01 --destination cmp-02 \
          --report nova-matrix.html

    Exit 0 no scenario failed, 1 a scenario failed, 2 the matrix could not run; with
    --cloud also 4 the cloud cannot be reached or refuses the credentials.
    """
    if multi_node and (target.given or hosts_path is not None or image is not None):
        raise click.UsageError("--multi-node runs on the multi-node lab: it takes no --hosts, "
                               "--image or --cloud")
    if target.given:
        from numa_migrate.cli.cloud import cloud_errors

        sys.exit(cloud_errors(_cloud_matrix)(target, source, destination, only=only,
                                             report_path=report_path,
                                             markdown_path=markdown_path, as_json=as_json))
    from numa_migrate.adapters.inventory import InventoryError, load_inventory
    from numa_migrate.adapters.inventory import default_inventory_path as configured_inventory
    from numa_migrate.lab.guest import write_floppy_image
    from numa_migrate.matrix.fixtures import run_fixture_scenario
    from numa_migrate.matrix.report import render_markdown
    from numa_migrate.matrix.runner import MatrixRun

    lab: Lab | MultiNodeLab | None = None
    brought_up = False
    try:
        scenarios = select(list(only))
        inventory_path = hosts_path
        if multi_node:
            lab = _multi_node_lab()
            brought_up = not lab.status().running
            lab.up(progress=lambda m: _say(f"lab: {m}"))
            inventory_path = lab.inventory_path
            image, domain_type = lab.counter_image, lab.domain_type()
        elif inventory_path is None:
            try:
                inventory_path = configured_inventory()
            except InventoryError:
                inventory_path = None
        if inventory_path is None:
            lab = _lab()
            brought_up = not lab.status().up
            status = lab.up(hugepages=LAB_HUGEPAGES, progress=lambda m: _say(f"lab: {m}"))
            inventory_path = status.inventory
            image, domain_type = lab.counter_image, lab.domain_type()
        else:
            if image is None:
                raise InventoryError(
                    "--image PATH is needed with --hosts: the counter guest's floppy image, "
                    "at the same path on both hosts (it is written here if missing)")
            write_floppy_image(image)
            domain_type = domain_type or "kvm"
        inventory = load_inventory(inventory_path)
        if len(inventory.hosts) < 2 and (source is None or destination is None):
            raise InventoryError(f"{inventory.path}: the matrix needs two hosts "
                                 f"(it has {', '.join(inventory.names) or 'none'})")
        src = source or inventory.hosts[0].name
        dst = destination or next(h.name for h in inventory.hosts if h.name != src)
        inventory.host(src), inventory.host(dst)
        if src == dst:
            raise InventoryError(f"--source and --destination are both {src}")
        with open_store(db_url) as store:
            run = MatrixRun(inventory=inventory, source=src, destination=dst, store=store,
                            image=Path(image), domain_type=domain_type, lab=lab is not None,
                            lab_kind="multi-node-lab" if multi_node else "lab",
                            say=_say, fixtures=run_fixture_scenario)
            where = ("the multi-node lab" if multi_node else
                     "the lab" if lab is not None else f"{src} and {dst}")
            report = run.run(scenarios, f"numa-migrate validation matrix on {where}")
    except NumaMigrateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    finally:
        if lab is not None and brought_up and not keep_lab:
            lab.down()
    _write(report, report_path, markdown_path)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(render_markdown(report))
    sys.exit(0 if report.ok else EXIT_FAILED)


def _cloud_matrix(target: CloudTarget, source: str | None, destination: str | None, *,
                  only: tuple[str, ...], report_path: Path | None,
                  markdown_path: Path | None, as_json: bool) -> int:
    from numa_migrate.cloud.matrix import CloudMatrixRun
    from numa_migrate.matrix.report import render_markdown

    if source is None or destination is None or source == destination:
        raise click.UsageError("with --cloud give --source and --destination: two different "
                               "nova-compute hosts")
    scenarios = select(list(only))
    api = target.api()
    run = CloudMatrixRun(api, target.computes(), source, destination, say=_say)
    report = run.run(scenarios, f"numa-migrate validation matrix through Nova ({api.name}: "
                                f"{source} and {destination})")
    _write(report, report_path, markdown_path)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(render_markdown(report))
    return 0 if report.ok else EXIT_FAILED


def _multi_node_lab() -> MultiNodeLab:
    from numa_migrate.lab.vm.multinode import MultiNodeLab

    return MultiNodeLab()


def _lab() -> Lab:
    from numa_migrate.lab import LabUnavailableError
    from numa_migrate.lab.state import default_lab

    if os.geteuid() != 0:
        raise LabUnavailableError(
            "without --hosts the matrix runs on the lab, which needs root (two libvirtd "
            "daemons, huge pages): run it as root, or give --hosts with two real hosts")
    return default_lab()


def _write(report: MatrixReport, html: Path | None, markdown: Path | None) -> None:
    from numa_migrate.matrix.report import render_html, render_markdown

    for path, text in ((html, render_html(report) if html else ""),
                       (markdown, render_markdown(report) if markdown else "")):
        if path is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        _say(f"report written: {path}")


__all__ = ["scenario_ids", "validate_matrix_cmd"]

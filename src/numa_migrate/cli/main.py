"""The ``numa-migrate`` command line.

Exit codes: 0 success / fits; 1 does not fit (``fit``) or no host can take the guest
(``explain``); 2 bad input or usage (the message says which option or field and why).
Human output is rich text on stdout; ``--json`` prints one JSON document instead.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from numa_migrate import __version__
from numa_migrate.cli.fleetsource import fleet_sources
from numa_migrate.cli.lazy import LazyCommand, LazyGroup
from numa_migrate.cli.numbers import Bounded
from numa_migrate.core.errors import InvalidRequestError, NumaMigrateError
from numa_migrate.core.limits import (
    MAX_ALLOCATION_RATIO,
    MAX_GUEST_VCPUS,
    MAX_MEMORY_MIB,
    MAX_PAGE_SIZE_KIB,
)

# Only what --help and every command need is imported here; the rest is imported in the
# function that uses it (start-up time: see docs/performance.md).
if TYPE_CHECKING:
    from rich.console import Console

    from numa_migrate.cli.cloud import CloudTarget
    from numa_migrate.core.fit.fitter import FitOptions
    from numa_migrate.core.model.guest import Guest
    from numa_migrate.core.model.host import HostTopology
    from numa_migrate.core.model.pcidev import PciRequest

F = TypeVar("F", bound=Callable[..., Any])
EXIT_NO_FIT = 1
EXIT_BAD_INPUT = 2

GUEST_HELP = """
\b
The guest is given either as a Nova flavor:
  --flavor-vcpus 8 --flavor-ram 16384 --extra-spec hw:cpu_policy=dedicated \\
  --extra-spec hw:numa_nodes=2 --extra-spec hw:mem_page_size=large
(image properties with --image-property hw_cpu_thread_policy=require), or as the
domain XML of a running guest (--domain-xml FILE): its pins, guest NUMA cells and
huge pages become the request.
"""


def _stdout() -> Console:
    """Rich console on stdout; when piped, wide enough that tables do not wrap."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=140)
    return console


def handle_errors(func: F) -> F:
    """Turn our errors into one clear line on stderr and exit code 2 (never a traceback)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidRequestError as exc:
            click.echo(f"error: invalid guest request ({exc.nova_type}): {exc.message}", err=True)
        except NumaMigrateError as exc:
            click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)

    return wrapper  # type: ignore[return-value]


def _key_values(values: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        out[key.strip()] = value.strip()
    return out


def _bundle(
    options: list[Callable[[Any], Any]],
    build: Callable[..., object],
    names: tuple[str, ...],
    into: str,
) -> Callable[[F], F]:
    """Add click options to a command and hand them to it as one object named ``into``."""

    def decorate(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs[into] = build(*(kwargs.pop(n) for n in names))
            return func(*args, **kwargs)

        out: Any = wrapper
        for option in reversed(options):
            out = option(out)
        return out  # type: ignore[no-any-return]

    return decorate


@dataclass(frozen=True)
class GuestSpec:
    """The guest as given on the command line: a Nova flavor or a domain XML."""

    vcpus: int | None
    ram: int | None
    extra_specs: tuple[str, ...]
    image_props: tuple[str, ...]
    domain_xml: Path | None
    name: str
    pci_requests: tuple[str, ...] = ()

    def guest(self) -> Guest:
        from dataclasses import replace

        guest = self._guest()
        if not self.pci_requests:
            return guest
        from numa_migrate.core.request import with_pci_requests

        return replace(guest, pci_requests=with_pci_requests(
            guest.pci_requests + _pci_requests(self.pci_requests), self._policy()))

    def _policy(self) -> str | None:
        specs = _key_values(self.extra_specs, "--extra-spec")
        images = _key_values(self.image_props, "--image-property")
        return (specs.get("hw:pci_numa_affinity_policy")
                or images.get("hw_pci_numa_affinity_policy"))

    def _guest(self) -> Guest:
        if self.domain_xml is not None:
            if self.vcpus or self.ram or self.extra_specs or self.image_props:
                raise click.UsageError("give either --domain-xml or the flavor options, not both")
            from numa_migrate.adapters.domain import domain_from_xml
            from numa_migrate.core.domainrequest import guest_request_from_domain
            from numa_migrate.core.model.guest import Guest
            from numa_migrate.inputs.files import read_bytes

            info = domain_from_xml(read_bytes(self.domain_xml, what="domain XML file"),
                                   source=str(self.domain_xml))
            request, _how = guest_request_from_domain(info)
            return Guest(info.vcpus, info.memory_mib, request, info.name or self.name)
        if self.vcpus is None or self.ram is None:
            raise click.UsageError(
                "describe the guest with --flavor-vcpus and --flavor-ram (plus --extra-spec), "
                "or with --domain-xml"
            )
        from numa_migrate.core.request import Flavor, guest_from_flavor

        specs = _key_values(self.extra_specs, "--extra-spec")
        flavor = Flavor(self.vcpus, self.ram, specs, self.name)
        return guest_from_flavor(flavor, _key_values(self.image_props, "--image-property"))


def _pci_requests(values: tuple[str, ...]) -> tuple[PciRequest, ...]:
    """``--pci-request physical_network=physnet1,count=2,numa_policy=required`` as requests:
    the spec attributes, ``count`` (default 1), ``numa_policy`` and ``name``; read with the
    fit-case format's rules, so a bad value is refused the same way."""
    from numa_migrate.adapters.pcicase import pci_requests_from_node
    from numa_migrate.inputs.fields import root

    docs: list[dict[str, object]] = []
    for value in values:
        fields = _key_values(tuple(v for v in value.split(",") if v.strip()), "--pci-request")
        doc: dict[str, object] = {"count": 1}
        if "count" in fields:
            count = fields.pop("count")
            if not count.isdigit() or len(count) > 9:
                raise click.BadParameter(f"count={count!r} is not a positive whole number",
                                         param_hint="--pci-request")
            doc["count"] = int(count)
        for key in ("numa_policy", "name"):
            if key in fields:
                doc[key] = fields.pop(key)
        doc["spec"] = [fields]
        docs.append(doc)
    return pci_requests_from_node(root(docs, label="--pci-request"))


guest_options = _bundle(
    [
        click.option("--flavor-vcpus", type=Bounded(1, MAX_GUEST_VCPUS,
                                                    why="QEMU's maximum vCPUs"),
                     metavar="N", help="Flavor vCPUs."),
        click.option("--flavor-ram", type=Bounded(1, MAX_MEMORY_MIB, why="4 PiB"), metavar="MiB",
                     help="Flavor memory in MiB."),
        click.option(
            "--extra-spec",
            "extra_specs",
            multiple=True,
            metavar="KEY=VALUE",
            help="Flavor extra spec (hw:numa_nodes=2, hw:cpu_policy=dedicated, "
            "hw:mem_page_size=1GB, ...). Repeat for more.",
        ),
        click.option(
            "--image-property",
            "image_props",
            multiple=True,
            metavar="KEY=VALUE",
            help="Image property (hw_cpu_thread_policy=isolate, ...). Repeat for more.",
        ),
        click.option(
            "--pci-request",
            "pci_requests",
            multiple=True,
            metavar="KEY=VALUE,...",
            help="A PCI device the guest needs, as an SR-IOV port or a flavor's PCI alias "
            "asks: spec attributes (physical_network, vendor_id, product_id, dev_type, "
            "address of the PF) with count=N (default 1), numa_policy=required|legacy|"
            "preferred|socket (default: hw:pci_numa_affinity_policy, else legacy) and "
            "name=TEXT. Example: physical_network=physnet1,numa_policy=required. The fit "
            "chooses host cells near free matching devices. Repeat for more.",
        ),
        click.option(
            "--domain-xml",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Take the guest's needs from a libvirt domain XML instead of a flavor "
            "(its SR-IOV ports: give them with --pci-request).",
        ),
        click.option(
            "--name",
            "guest_name",
            default="guest",
            show_default=True,
            help="Name shown for the guest.",
        ),
    ],
    GuestSpec,
    ("flavor_vcpus", "flavor_ram", "extra_specs", "image_props", "domain_xml", "guest_name",
     "pci_requests"),
    "guest_spec",
)


def _fit_options(
    cpu_ratio: float | None, ram_ratio: float | None, pack: bool, current: int | None
) -> FitOptions:
    from numa_migrate.core.fit.cellfit import Limits
    from numa_migrate.core.fit.fitter import FitOptions

    limits = None
    if cpu_ratio is not None or ram_ratio is not None:
        limits = Limits(cpu_ratio or 1.0, ram_ratio or 1.0)
    return FitOptions(limits=limits, packing=pack, current_pagesize_kib=current)


fit_options = _bundle(
    [
        click.option(
            "--cpu-allocation-ratio",
            type=Bounded(0, MAX_ALLOCATION_RATIO, integer=False, above=True),
            metavar="RATIO",
            help="Over-commit limit for shared vCPUs per cell (Nova's limits); without "
            "ratios no over-commit check is made, as in Nova.",
        ),
        click.option(
            "--ram-allocation-ratio",
            type=Bounded(0, MAX_ALLOCATION_RATIO, integer=False, above=True),
            metavar="RATIO",
            help="Over-commit limit for the memory of shared guests per cell.",
        ),
        click.option(
            "--pack",
            is_flag=True,
            help="Prefer the fullest host cells (Nova's "
            "packing_host_numa_cells_allocation_strategy); the default spreads.",
        ),
        click.option(
            "--current-pagesize",
            type=Bounded(1, MAX_PAGE_SIZE_KIB, why="the largest page size, 16 GiB"),
            metavar="KiB",
            help="Live-migration refit: the guest runs with this page size (KiB) and "
            "must keep it on the destination.",
        ),
    ],
    _fit_options,
    ("cpu_allocation_ratio", "ram_allocation_ratio", "pack", "current_pagesize"),
    "fit_opts",
)


@dataclass(frozen=True)
class HostSpec:
    """Where the hosts come from: a fleet file (default: the sample fleet) or one XML."""

    fleet_path: Path | None
    names: tuple[str, ...]
    capabilities: Path | None
    dedicated: str | None
    shared: str | None

    def hosts(self) -> list[HostTopology]:
        if self.capabilities is not None:
            if self.names or self.fleet_path:
                raise click.UsageError("give either --capabilities or --fleet/--host, not both")
            from numa_migrate.adapters.capabilities import host_from_capabilities
            from numa_migrate.core.novaopts import cpu_set_option
            from numa_migrate.inputs.files import read_bytes

            data = read_bytes(self.capabilities, what="capabilities XML file")
            # the host's own CPU count bounds the sets (read before any set is expanded)
            bound = max(host_from_capabilities(data, source=str(self.capabilities)).cpus,
                        default=-1) + 1
            dedicated = (
                cpu_set_option(self.dedicated, option="--dedicated-set", bound=bound)
                if self.dedicated
                else None
            )
            shared = (
                cpu_set_option(self.shared, option="--shared-set", bound=bound)
                if self.shared
                else None
            )
            return [
                host_from_capabilities(
                    data,
                    name=self.capabilities.stem,
                    cpu_dedicated_set=dedicated,
                    cpu_shared_set=shared,
                    source=str(self.capabilities),
                )
            ]
        if self.dedicated or self.shared:
            raise click.UsageError("--dedicated-set/--shared-set go with --capabilities")
        from numa_migrate.adapters.fleet import load_fleet

        fleet = load_fleet(self.fleet_path)
        if self.names:
            return [fleet.host(n) for n in self.names]
        return list(fleet.hosts)


fleet_option = click.option(
    "--fleet",
    "fleet_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Fleet file or fleet snapshot (`fleet snapshot`), JSON; default: the bundled "
    "sample fleet.",
)

host_options = _bundle(
    [
        fleet_option,
        click.option(
            "--host",
            "host_names",
            multiple=True,
            metavar="NAME",
            help="Host of the fleet (repeat for several; default: all).",
        ),
        click.option(
            "--capabilities",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="A host from `virsh capabilities` XML instead of the fleet.",
        ),
        click.option(
            "--dedicated-set",
            metavar="CPUS",
            help="With --capabilities: Nova [compute] cpu_dedicated_set.",
        ),
        click.option(
            "--shared-set",
            metavar="CPUS",
            help="With --capabilities: Nova [compute] cpu_shared_set.",
        ),
    ],
    HostSpec,
    ("fleet_path", "host_names", "capabilities", "dedicated_set", "shared_set"),
    "host_spec",
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


# Commands that live in their own modules, imported only when they run. The short help is
# what `numa-migrate --help` lists without importing them; tests/test_cli_startup.py checks
# it against each command's own.
LAZY_COMMANDS = {
    "drain": LazyCommand(
        "numa_migrate.cli.drain:drain",
        "Plan moving every guest off HOST(s) onto the rest of the fleet, in waves.",
    ),
    "lab": LazyCommand(
        "numa_migrate.cli.lab:lab",
        "A real two-host libvirt lab on this machine: lab-src and lab-dst.",
    ),
    "migrate": LazyCommand(
        "numa_migrate.cli.migrate:migrate",
        "Live-migrate a running DOMAIN to another host with NUMA-correct pins.",
    ),
    "plan": LazyCommand(
        "numa_migrate.cli.planrun:plan_group",
        "Run a saved drain plan: its waves of live migrations, resumable.",
    ),
    "preflight": LazyCommand(
        "numa_migrate.cli.preflight:preflight_cmd",
        "Check that Nova (and the nova-compute charm) allow NUMA live migration, and how well.",
    ),
    "recover": LazyCommand(
        "numa_migrate.cli.migrate:recover_cmd",
        "Repair migrations interrupted by a crash or a kill.",
    ),
    "validate": LazyCommand(
        "numa_migrate.cli.validate:validate_cmd",
        "Prove that running DOMAIN is placed as planned on HOST.",
    ),
    "where": LazyCommand(
        "numa_migrate.cli.where:where_cmd",
        "Where can a guest of the fleet go: every other host, ranked, or why not.",
    ),
    "validate-matrix": LazyCommand(
        "numa_migrate.cli.matrix:validate_matrix_cmd",
        "Run the validation matrix: real guests, migrated there and back, then validated.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(version=__version__, prog_name="numa-migrate")
def cli() -> None:
    """Fit, explain, live-migrate and validate NUMA-sensitive guests (pinned CPUs, guest
    NUMA cells, huge pages, SR-IOV VFs) on KVM/libvirt hosts, with Nova's placement rules.

    \b
    Start with the bundled sample fleet:
      numa-migrate fleet                       # hosts, cells, free CPUs and pages
      numa-migrate explain --flavor-vcpus 8 --flavor-ram 8192 \\
          --extra-spec hw:cpu_policy=dedicated --extra-spec hw:numa_nodes=2
      numa-migrate fit --host cmp-intel-01 --flavor-vcpus 4 --flavor-ram 4096 \\
          --extra-spec hw:cpu_policy=dedicated --extra-spec hw:mem_page_size=large
      numa-migrate fit --batch < cases.jsonl   # fit-case format, one answer per line
      numa-migrate demo                        # a guided tour, with a real migration (root)
    Then, on hosts of an inventory (or the lab: numa-migrate lab up):
      numa-migrate migrate DOMAIN --to HOST --dry-run    # the plan, nothing moved
      numa-migrate migrate DOMAIN --to HOST              # claim, migrate, roll back on failure
      numa-migrate validate DOMAIN --host HOST           # prove the placement
    """


@cli.command()
@click.option(
    "--batch",
    is_flag=True,
    help="Read fit cases (JSON Lines) on stdin, write one answer line per case.",
)
@guest_options
@host_options
@fit_options
@json_option
@handle_errors
def fit(
    batch: bool, guest_spec: GuestSpec, host_spec: HostSpec, fit_opts: FitOptions, as_json: bool
) -> None:
    """Fit one guest on one host: the placement (cells, pages, pins) or the reasons.

    The host is a fleet host (--host NAME; default fleet: the bundled sample) or a
    capabilities XML (--capabilities with --dedicated-set/--shared-set).

    With --batch, fit cases in the fit-case JSON format are read on stdin (one per
    line) and one answer line per case is written on stdout; a bad case gets an
    answer with "error", and the exit status is 0 unless no line was JSON at all.
    """
    if batch:
        sys.exit(_fit_batch())
    guest = guest_spec.guest()
    if host_spec.capabilities is None and len(host_spec.names) != 1:
        raise click.UsageError(
            "name one host with --host NAME (or give --capabilities); "
            "to compare hosts use `numa-migrate explain`"
        )
    (host,) = host_spec.hosts()
    from numa_migrate.cli import render
    from numa_migrate.core.fit.fitter import fit_guest

    result = fit_guest(host, guest, fit_opts)
    if as_json:
        doc = {"guest": render.guest_json(guest), **render.fit_json(result)}
        click.echo(json.dumps(doc, indent=2))
    else:
        render.print_fit(_stdout(), result)
    sys.exit(0 if result.fits else EXIT_NO_FIT)


def _fit_batch() -> int:
    """Answer every case line; exit 2 only when no line at all was JSON."""
    from numa_migrate.adapters.casefmt import answer_lines

    lines = parsed = 0
    out = sys.stdout
    for answer in answer_lines(sys.stdin.buffer):
        lines += 1
        parsed += answer.parsed
        out.write(json.dumps(answer.answer, separators=(",", ":")) + "\n")
    out.flush()
    if lines and not parsed:
        click.echo("error: the input is not JSON Lines (no line parsed as JSON)", err=True)
        return EXIT_BAD_INPUT
    return 0


def _cloud_explain_options(func: F) -> F:
    from numa_migrate.cli.cloud import cloud_options

    out = cloud_options(func)
    out = click.option(
        "--hosts", "hosts_path", type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE", help="With --server: the inventory mapping compute hosts to libvirt "
        "URIs (default: $NUMA_MIGRATE_INVENTORY, ./inventory.toml, the lab's).")(out)
    return click.option(
        "--server", metavar="SERVER",
        help="OpenStack mode: explain this Nova server (name or id) instead of a flavor: "
        "every compute, per NUMA cell, as Nova decides its live migration.")(out)


@cli.command()
@guest_options
@host_options
@fit_options
@_cloud_explain_options
@json_option
@handle_errors
def explain(
    *, guest_spec: GuestSpec, host_spec: HostSpec, fit_opts: FitOptions, server: str | None,
    target: CloudTarget, as_json: bool
) -> None:
    """For one guest, every host and every host cell: fits, or exactly why not.

    Prints a one-line summary ("1/3 hosts can take web-7 (...): 2 not enough free
    dedicated CPUs, ...") and, per host, a grid of host cells x guest cells.

    \b
    OpenStack mode (--server, with --cloud NAME or OS_CLOUD / OS_* variables):
      numa-migrate explain --cloud mycloud --server web-7
    reads the server's flavor and image from Nova, every compute's NUMA state from
    libvirt on it (URIs from --hosts or --uri-template), its allocation ratios and free
    PCPU from Placement, and explains each compute as Nova decides the live migration
    (the page size the server runs with is kept). The server's own compute, and computes
    that are down or disabled, are listed but not destinations.

    Exit 0 some host fits, 1 none does, 2 bad input; with --server also 4 the cloud
    cannot be reached or refuses the credentials.
    """
    if server is not None:
        from numa_migrate.cli.cloud import cloud_errors, explain_cloud

        if guest_spec.vcpus or guest_spec.ram or guest_spec.extra_specs or \
                guest_spec.domain_xml or host_spec.fleet_path or host_spec.names or \
                host_spec.capabilities:
            raise click.UsageError("--server takes the guest from Nova and the hosts from the "
                                   "cloud: give no flavor, --domain-xml, --fleet or --host")
        sys.exit(cloud_errors(explain_cloud)(target, server, pack=fit_opts.packing,
                                             as_json=as_json))
    if target.given or target.uri_template or target.nova_confs or target.hosts_path:
        raise click.UsageError("--cloud, --hosts, --uri-template and --nova-conf go with "
                               "--server")
    from numa_migrate.cli import render
    from numa_migrate.core.explain import explain_guest

    exp = explain_guest(host_spec.hosts(), guest_spec.guest(), fit_opts)
    if as_json:
        click.echo(json.dumps(render.explanation_json(exp), indent=2))
    else:
        render.print_explanation(_stdout(), exp)
    sys.exit(0 if exp.fitting_hosts else EXIT_NO_FIT)


FLEET_EXAMPLES = """
\b
Examples:
  numa-migrate fleet                            # the bundled sample fleet
  numa-migrate fleet --picture                  # who holds each CPU, page and MiB
  numa-migrate fleet --hosts inventory.toml     # the hosts as they run now (libvirt)
  numa-migrate fleet --fleet snapshot.json --json
  numa-migrate fleet snapshot --hosts inventory.toml -o snapshot.json
"""


@cli.group(invoke_without_command=True)
@fleet_sources(fleet_option)
@click.option("--picture", is_flag=True,
              help="Draw each cell instead: a letter per CPU for its guest (coloured on a "
              "terminal), huge pages and memory as bars.")
@json_option
@click.pass_context
@handle_errors
def fleet(ctx: click.Context, *, fleet_path: Path | None, hosts_path: Path | None,
          db_url: str | None, picture: bool, as_json: bool) -> None:
    """Show a fleet: hosts, NUMA cells, free dedicated CPUs, memory, huge pages, guests.

    Without --fleet or --hosts, the bundled sample fleet (the one `fit` and `explain` use
    by default). --fleet takes a fleet file or a snapshot (`fleet snapshot`); --hosts reads
    the hosts of an inventory live: each running domain with its real pins, cells, page
    size and VFs; domains that cannot be modelled are listed as notes.
    Exit 0, or 2 when the fleet file is bad or no host can be read.
    """
    if ctx.invoked_subcommand is not None:
        if fleet_path or hosts_path or as_json or picture:
            raise click.UsageError(
                f"give --fleet/--hosts/--json after `fleet {ctx.invoked_subcommand}`")
        return
    from numa_migrate.cli import render
    from numa_migrate.cli.fleetsource import load_fleet_from

    if picture and as_json:
        raise click.UsageError("--picture draws for people: give --picture or --json, not both")
    loaded = load_fleet_from(fleet_path, hosts_path, db_url)
    if as_json:
        click.echo(json.dumps(render.fleet_json(loaded), indent=2))
    elif picture:
        from numa_migrate.adapters.drainstate import fleet_state
        from numa_migrate.cli.pictureopts import show_fleet_picture

        console = _stdout()
        console.print(f"Fleet: {loaded.source}", highlight=False, markup=False)
        show_fleet_picture(fleet_state(loaded))
        from numa_migrate.cli.fleetsource import print_fleet_notes

        print_fleet_notes(console, loaded.notes)
    else:
        render.print_fleet(_stdout(), loaded)


fleet.help = inspect.cleandoc(fleet.help or "") + "\n" + FLEET_EXAMPLES


@fleet.command("snapshot")
@fleet_sources(fleet_option)
@click.option("-o", "--output", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The snapshot file to write (JSON; replaced atomically if it exists).")
@json_option
@handle_errors
def fleet_snapshot(fleet_path: Path | None, hosts_path: Path | None, db_url: str | None,
                   output: Path, as_json: bool) -> None:
    """Save a fleet to ONE self-contained JSON file that every --fleet option reads.

    The snapshot holds each host's capabilities XML inline with its Nova CPU sets,
    reserved huge pages and PCI devices, what else uses it (domains that could not be
    modelled, other operators' claims, pages the kernel says are used), and each guest
    with its request AND its actual placement (cells, pins, page size, emulator CPUs) and
    the VFs it holds; the notes, when and from where it was taken, a format version.
    Read back with --fleet FILE by fit, explain, where, drain and fleet, the guests keep
    their recorded placements (one that no longer fits its host is an error, never
    re-fitted): for planning away from production and for bug reports.

    \b
    Examples:
      numa-migrate fleet snapshot --hosts inventory.toml -o prod-2026-12-04.json
      numa-migrate where vm-7 --fleet prod-2026-12-04.json
      numa-migrate drain cmp-07 --fleet prod-2026-12-04.json --json
      numa-migrate fleet snapshot -o sample.json          # the bundled sample fleet

    Exit 0 written, 2 bad input (or no host could be read, or the file cannot be written).
    """
    from numa_migrate.adapters.snapshot import write_snapshot
    from numa_migrate.cli.fleetsource import load_fleet_from

    loaded = load_fleet_from(fleet_path, hosts_path, db_url)
    size = write_snapshot(loaded, output)
    summary = {"snapshot": str(output), "bytes": size, "taken_from": loaded.source,
               "hosts": len(loaded.hosts), "guests": len(loaded.guests),
               "notes": list(loaded.notes)}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    console = _stdout()
    console.print(f"wrote {output} ({size} bytes): {len(loaded.hosts)} hosts, "
                  f"{len(loaded.guests)} guests from {loaded.source}", highlight=False)
    from numa_migrate.cli.fleetsource import print_fleet_notes

    print_fleet_notes(console, loaded.notes)


@cli.command()
@click.option("--no-lab", is_flag=True, help="Only the sample-fleet tour, no live migration.")
@click.option("--keep-lab", is_flag=True,
              help="Leave the lab up afterwards even when the demo brought it up.")
@click.option("--openstack", is_flag=True,
              help="Then the OpenStack part: a real Nova on the lab (packages installed when "
              "missing), a pinned huge-page server explained, live-migrated by Nova to the "
              "compute numa-migrate chose, and Nova's result validated.")
@click.option("--multi-node", is_flag=True,
              help="Then a two-cell guest spread over two NUMA nodes, moved and validated on "
              "the multi-node lab (a VM with 2 NUMA nodes, SMT and 1 GiB pages; its image "
              "is built the first time: a few minutes).")
@handle_errors
def demo(no_lab: bool, keep_lab: bool, openstack: bool, multi_node: bool) -> None:
    """A guided tour: the bundled sample fleet (a placement, a refusal explained per NUMA
    cell), then a real pinned guest live-migrated on the two-daemon lab and back, with its
    pins before and after and `validate` after each move; with --openstack, then Nova
    moving a pinned huge-page server that numa-migrate explains, drives and validates;
    with --multi-node, a two-cell guest across two NUMA nodes on the multi-node lab.

    The lab parts need root (they bring the labs up when they are down, and down again
    afterwards); without root it says so and stops after the fleet tour.
    Exit 0 when the tour ran (or stopped for want of root), 1 when a lab part failed.
    """
    from numa_migrate.cli.demo import run_demo

    console = _stdout()
    run_demo(console)
    if no_lab:
        return
    from numa_migrate.cli.demo_lab import run_lab_demo
    from numa_migrate.lab.state import default_lab

    lab_was_up = os.geteuid() == 0 and default_lab().status().up
    outcome = run_lab_demo(console, keep_lab=keep_lab or openstack)
    if openstack and outcome != "skipped":
        from numa_migrate.cli.demo_openstack import run_openstack_demo

        try:
            if run_openstack_demo(console, keep_lab=keep_lab) == "failed":
                outcome = "failed"
        finally:
            if not lab_was_up and not keep_lab:
                default_lab().down()
    if multi_node and outcome != "skipped":
        from numa_migrate.cli.demo_lab import run_multi_node_demo

        if run_multi_node_demo(console, keep_lab=keep_lab) == "failed":
            outcome = "failed"
    if outcome == "failed":
        sys.exit(1)


FIT_TAIL = """
\b
Examples:
  numa-migrate fit --host cmp-intel-01 --flavor-vcpus 4 --flavor-ram 4096 \\
      --extra-spec hw:cpu_policy=dedicated --extra-spec hw:mem_page_size=large
  numa-migrate fit --capabilities caps.xml --dedicated-set 2-15 --domain-xml web-1.xml
  numa-migrate fit --batch < cases.jsonl > answers.jsonl

Exit 0 fits, 1 does not fit, 2 bad input.
"""

EXPLAIN_TAIL = """
\b
Examples:
  numa-migrate explain --flavor-vcpus 8 --flavor-ram 8192 \\
      --extra-spec hw:cpu_policy=dedicated --extra-spec hw:numa_nodes=2
  numa-migrate explain --fleet fleet.json --host cmp-01 --host cmp-02 \\
      --domain-xml web-1.xml --json

Exit 0 when at least one host can take the guest, 1 when none can, 2 bad input.
"""

# cleandoc first: the docstring is indented, the parts added are not (click would
# otherwise dedent nothing and rewrap the docstring's indented lines into one paragraph).
fit.help = inspect.cleandoc(fit.help or "") + "\n" + GUEST_HELP + FIT_TAIL
explain.help = inspect.cleandoc(explain.help or "") + "\n" + GUEST_HELP + EXPLAIN_TAIL



def main() -> None:
    cli(prog_name="numa-migrate")

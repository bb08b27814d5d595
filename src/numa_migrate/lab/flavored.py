"""A counter guest made from a Nova-style flavor, placed and pinned by numa-migrate's fitter.

What Nova's libvirt driver does when it boots an instance, done here for the lab: the
flavor's extra specs give the NUMA request (:func:`numa_migrate.core.request.guest_from_flavor`),
the fitter places it on the host's live topology (minus what runs there), and the pins, the
NUMA memory binding and the huge page backing of that placement are written into the
domain XML (the same :func:`plan_from_placement` / :func:`rewrite_domain_xml` a migration
uses). A guest with no NUMA need floats on the host's shared CPUs (``<vcpu cpuset>``).
The extra specs are kept in the domain's numa-migrate metadata, so that migrations of the
guest honour what its XML cannot say (thread and emulator-thread policies).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from numa_migrate.adapters.domain import declared_specs_xml, domain_from_xml
from numa_migrate.adapters.rewrite import DestinationPlan, plan_from_placement, rewrite_domain_xml
from numa_migrate.adapters.xmlsafe import parse_xml
from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.fit.fitter import fit_request
from numa_migrate.core.model.guest import GuestRequest
from numa_migrate.core.model.host import HostTopology
from numa_migrate.core.model.placement import Placement
from numa_migrate.core.request import Flavor, guest_from_flavor
from numa_migrate.lab.guest import counter_guest_xml
from numa_migrate.migrate.plan import NoRoom


@dataclass(frozen=True)
class FlavoredGuest:
    """The domain XML of a guest placed on ``host``; ``plan`` is None for a floating guest."""

    name: str
    host: str
    flavor: Flavor
    request: GuestRequest | None
    placement: Placement | None
    plan: DestinationPlan | None
    xml: str


def flavored_guest(
    name: str,
    flavor: Flavor,
    host: HostTopology,
    *,
    image: Path | str,
    domain_type: str = "kvm",
) -> FlavoredGuest | NoRoom:
    """Place ``flavor`` on ``host`` (its live topology with usage) and write the domain XML.

    :class:`NoRoom` (its ``destination`` is ``host``) when the fitter refuses it there.
    Raises :class:`numa_migrate.core.errors.InvalidRequestError` for extra specs Nova refuses.
    """
    guest = guest_from_flavor(flavor)
    request = guest.numa
    if request is None:
        shared = host.shared_cpus
        xml = counter_guest_xml(
            name, image=image, vcpus=flavor.vcpus, memory_mib=flavor.memory_mib,
            domain_type=domain_type, vcpu_cpuset=CpuSet.of(shared).format() if shared else None,
        )
        return FlavoredGuest(name, host.name, flavor, None, None, None,
                             _with_identity(xml, flavor))
    fit = fit_request(host, request)
    if fit.placement is None:
        return NoRoom(name, host.name, fit.summary, fit.messages)
    base = _with_identity(
        counter_guest_xml(
            name, image=image, vcpus=flavor.vcpus, memory_mib=flavor.memory_mib,
            cells=[(CpuSet.of(c.vcpus).format(), c.memory_mib) for c in request.cells],
            domain_type=domain_type,
        ),
        flavor,
    )
    plan = plan_from_placement(domain_from_xml(base, source=name), fit.placement, host)
    xml = rewrite_domain_xml(base, plan, source=name)
    return FlavoredGuest(name, host.name, flavor, request, fit.placement, plan, xml)


def _with_identity(xml: str, flavor: Flavor) -> str:
    """``xml`` with a fresh ``<uuid>`` and the metadata naming the flavor's extra specs."""
    root = parse_xml(xml, source="counter guest")
    name = root.find("name")
    assert name is not None  # counter_guest_xml always writes it
    uuid_el = etree.Element("uuid")
    uuid_el.text = str(uuid.uuid4())
    metadata = etree.Element("metadata")
    metadata.append(etree.fromstring(declared_specs_xml(dict(flavor.extra_specs))))
    name.addnext(uuid_el)
    uuid_el.addnext(metadata)
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode") + "\n"

"""Plan one live migration from the domain's XML: read it, plan, rewrite both documents.

The XML side of :mod:`numa_migrate.migrate.plan` (which is pure and sees only values):
:func:`plan_migration` reads the live XML (:func:`~numa_migrate.adapters.domain.domain_from_xml`),
plans with :func:`~numa_migrate.migrate.plan.plan_destination`, and rewrites the live and
persistent XML for the destination (:func:`~numa_migrate.adapters.rewrite.rewrite_domain_xml`).
No I/O: XML text in, a :class:`~numa_migrate.migrate.plan.MigrationPlan` out.
"""

from __future__ import annotations

from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.rewrite import rewrite_domain_xml, xml_diff
from numa_migrate.core.model.host import HostTopology
from numa_migrate.migrate.plan import MigrationPlan, NoRoom, SriovInputs, plan_destination

__all__ = ["plan_migration"]


def plan_migration(
    *,
    live_xml: str,
    persistent_xml: str | None,
    source: str,
    destination: HostTopology,
    shared_cpus: frozenset[int] | None = None,
    hostdev_map: dict[str, str] | None = None,
    sriov: SriovInputs | None = None,
    realtime_priority: int | None = None,
) -> MigrationPlan | NoRoom:
    """Plan the move of the domain described by ``live_xml`` onto ``destination``.

    ``destination`` must already be the live topology minus other claims' holdings;
    ``realtime_priority`` is its ``realtime_scheduler_priority`` (None: not known).
    """
    info = domain_from_xml(live_xml, source=f"{source}: live XML")
    placed = plan_destination(info, destination=destination, shared_cpus=shared_cpus,
                              hostdev_map=hostdev_map, sriov=sriov,
                              realtime_priority=realtime_priority)
    if isinstance(placed, NoRoom):
        return placed
    plan = placed.dest_plan
    unchanged = plan is None
    new_live = live_xml if plan is None else rewrite_domain_xml(
        live_xml, plan, source=f"{info.name} (live)")
    new_persistent = (
        persistent_xml if plan is None or persistent_xml is None
        else rewrite_domain_xml(persistent_xml, plan, source=f"{info.name} (persistent)")
    )
    diff = "" if unchanged or new_live == live_xml else xml_diff(
        live_xml, new_live, before_name=f"{source}/{info.name}",
        after_name=f"{destination.name}/{info.name}")
    return MigrationPlan(
        domain=info.name, uuid=info.uuid, source=source, destination=destination.name,
        request=placed.request, inference=placed.inference, placement=placed.placement,
        dest_plan=plan, source_info=info, live_xml=new_live, persistent_xml=new_persistent,
        current_pagesize_kib=placed.current_pagesize_kib,
        source_live_xml="" if unchanged else live_xml, vf_moves=placed.vf_moves,
        notes=placed.notes, live_diff=diff,
    )

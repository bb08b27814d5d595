"""numa-migrate: plan, claim, live-migrate and validate NUMA-sensitive guests.

The pure core (model, request rules, fitter, reasons, explain) has no I/O; adapters
(XML parsers, the fit-case JSON format, the sample fleet, the CLI) sit at the edges.
"""

from numa_migrate.core.errors import InvalidRequestError, NumaMigrateError, ParseError
from numa_migrate.core.fit.fitter import FitOptions, FitResult, fit_guest
from numa_migrate.core.model.guest import GuestRequest
from numa_migrate.core.model.host import HostCell, HostTopology, PagePool
from numa_migrate.core.model.placement import CellPlacement, Placement
from numa_migrate.core.request import guest_from_flavor

__all__ = [
    "CellPlacement",
    "FitOptions",
    "FitResult",
    "GuestRequest",
    "HostCell",
    "HostTopology",
    "InvalidRequestError",
    "NumaMigrateError",
    "PagePool",
    "ParseError",
    "Placement",
    "fit_guest",
    "guest_from_flavor",
]
__version__ = "0.1.0"

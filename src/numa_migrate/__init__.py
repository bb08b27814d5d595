"""numa-migrate: plan, claim, live-migrate and validate NUMA-sensitive guests.

The pure core (model, request rules, fitter, reasons, explain) has no I/O; adapters
(XML parsers, the fit-case JSON format, the sample fleet, the CLI) sit at the edges.

The names below are imported on first use, so that importing a submodule (the command
line's ``--help``, say) does not load the whole core.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numa_migrate.core.errors import InvalidRequestError, NumaMigrateError, ParseError
    from numa_migrate.core.fit.fitter import FitOptions, FitResult, fit_guest
    from numa_migrate.core.model.guest import GuestRequest
    from numa_migrate.core.model.host import HostCell, HostTopology, PagePool
    from numa_migrate.core.model.placement import CellPlacement, Placement
    from numa_migrate.core.request import guest_from_flavor

_EXPORTS = {
    "CellPlacement": "numa_migrate.core.model.placement",
    "FitOptions": "numa_migrate.core.fit.fitter",
    "FitResult": "numa_migrate.core.fit.fitter",
    "GuestRequest": "numa_migrate.core.model.guest",
    "HostCell": "numa_migrate.core.model.host",
    "HostTopology": "numa_migrate.core.model.host",
    "InvalidRequestError": "numa_migrate.core.errors",
    "NumaMigrateError": "numa_migrate.core.errors",
    "PagePool": "numa_migrate.core.model.host",
    "ParseError": "numa_migrate.core.errors",
    "Placement": "numa_migrate.core.model.placement",
    "fit_guest": "numa_migrate.core.fit.fitter",
    "guest_from_flavor": "numa_migrate.core.request",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

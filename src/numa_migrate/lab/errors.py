"""Errors of the lab harness."""

from __future__ import annotations

from numa_migrate.core.errors import NumaMigrateError


class LabError(NumaMigrateError):
    """The lab could not do what was asked (a daemon did not start, a guest did not boot)."""


class LabUnavailableError(LabError):
    """This machine cannot run the lab at all (not root, packages missing, no libvirt-python).

    The message says what to run to fix it. Tests skip on this error unless the lab is
    required (``NUMA_MIGRATE_REQUIRE_LAB=1``).
    """

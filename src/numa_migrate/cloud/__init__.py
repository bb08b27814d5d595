"""OpenStack mode: Nova moves the guest; numa-migrate explains where it can go, drives Nova's
live migration to a host that will pass, and validates Nova's result.

- :mod:`numa_migrate.cloud.api`: the HTTP seam (openstacksdk, or a recording on replay);
- :mod:`numa_migrate.cloud.nova`: typed reads of Nova, Placement and Glance, and the
  live-migration request;
- :mod:`numa_migrate.cloud.computes`: each compute's NUMA state from libvirt on it, its CPU
  sets from its nova.conf or the inventory, cross-checked against Placement;
- :mod:`numa_migrate.cloud.explain`, :mod:`~numa_migrate.cloud.migrate`,
  :mod:`~numa_migrate.cloud.validate`: what the ``--cloud`` commands do;
- :mod:`numa_migrate.cloud.fleet`: the cloud's fleet read live (``drain``/``where --cloud``),
  :mod:`numa_migrate.cloud.drainmoves`: one planned move through Nova, then validated.
"""

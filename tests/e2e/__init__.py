"""End-to-end tests on the real two-daemon libvirt lab (``pytest -m lab``)."""

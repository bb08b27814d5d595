"""The pure core: model, Nova's request rules, the fitter, usage, explain, validation.

Nothing here does I/O or imports anything but the standard library and
``numa_migrate.core`` itself (``tests/test_architecture.py`` holds it to that); adapters at
the edges translate XML, JSON, databases and libvirt into these values and back.
"""

"""The hypervisor seam: one typed interface to a host (:mod:`.base`), its libvirt
implementation (:mod:`.libvirt`, the only module that calls libvirt-python) and an in-memory
implementation for unit tests (:mod:`.memory`). /proc thread affinity: :mod:`.procaffinity`.
"""

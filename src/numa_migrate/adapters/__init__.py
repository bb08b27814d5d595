"""Adapters at the edges: libvirt XML parsers and other input/output formats."""

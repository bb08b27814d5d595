"""Immutable value types: host NUMA topology, guest request, placement."""

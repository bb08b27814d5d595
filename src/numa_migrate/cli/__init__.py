"""The command line (an adapter over the pure core)."""

"""Schema revisions of the claims store, oldest first."""

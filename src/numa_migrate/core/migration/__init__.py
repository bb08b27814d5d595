"""The migration state machine (pure): phases and their transitions, typed journal entries,
and the recovery decision for an interrupted migration."""

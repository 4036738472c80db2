"""Live operation: the observation store, the ways observations come in, the live cycle and its alerts."""

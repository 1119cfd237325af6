"""The collection domain: pure rules for registries, trips, loads and refusals (no I/O)."""

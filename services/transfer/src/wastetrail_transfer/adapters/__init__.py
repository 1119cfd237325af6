"""The transfer service's adapters: its own tables."""

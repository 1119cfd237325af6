"""Commands → domain decisions → one unit of work (state and events committed together)."""
